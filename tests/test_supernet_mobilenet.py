"""The ``mobilenet`` supernet and the ``supernet`` / ``subnet`` trainables.

Weight-sharing invariants: an extracted sub-network computes what the supernet computes with
that arch (eval mode, same BN statistics), the largest sub-network is the whole supernet, and an
extracted child has exactly the parameters of the space's own network. Then the trainables,
driven directly on digits (train, checkpoint, resume, evaluate with inherited weights), their
config errors by field, and (slow) both Fashion-MNIST examples through the real CLI.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray.tune.trainable.trainable as tune_trainable
import torch

import raynas
from raynas.experiment.config import ConfigError, trial_settings
from raynas.experiment.config_check import check_experiment
from raynas.experiment.config_load import load_config
from raynas.registry import resolve_space
from search_spaces.models.supernet.mobilenet import MobileNetSupernet, recalibrate_bn
from tests.conftest import REPO, VENV_BIN, small_experiment
from trainables.cost import count_params
from trainables.supernet import (
    CHECKPOINT_FILE,
    SubnetTrainable,
    SupernetTrainable,
    find_supernet_checkpoint,
    load_supernet,
)

SMALL = {
    "stages": [[8, 1], [16, 2], [16, 1]],
    "max_depth": 2,
    "kernels": [3, 5, 7],
    "expands": [2, 3],
    "width_mults": [0.5, 0.75, 1.25],
}
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def _supernet(args: dict[str, Any], in_channels: int = 1) -> tuple[Any, MobileNetSupernet]:
    torch.manual_seed(0)
    space = resolve_space("mobilenet", args)
    net = MobileNetSupernet(space, num_classes=10, in_channels=in_channels)
    # Move every BN's statistics off their initial values, as training does.
    net.train()
    rng = np.random.default_rng(1)
    with torch.no_grad():
        for _ in range(4):
            net(torch.randn(8, in_channels, 16, 16) * 2 + 0.5, net.sample(rng))
    return space, net.eval()


# --- weight-sharing invariants -----------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [SMALL, {**SMALL, "expands": [1, 4], "se": False}, {}],
    ids=["small", "expand-1-no-se", "default"],
)
def test_extracted_subnets_compute_what_the_supernet_computes(args: dict[str, Any]) -> None:
    space, net = _supernet(args)
    x = torch.randn(4, 1, 16, 16)
    rng = np.random.default_rng(0)
    randoms = 2 if not args else 5  # the default space's supernet is 7.5M parameters
    archs = [net.sample(rng) for _ in range(randoms)] + [net.smallest(), net.largest()]
    with torch.no_grad():
        for arch in archs:
            child = net.extract(arch).eval()
            torch.testing.assert_close(child(x), net(x, arch), atol=1e-5, rtol=0)
            built = space.build(arch, num_classes=10, in_channels=1)
            assert count_params(child) == count_params(built)
            assert type(child) is type(built)


def test_the_largest_subnet_is_the_whole_supernet() -> None:
    _, net = _supernet(SMALL)
    largest = net.largest()
    assert largest["width_mult"] == 1.25 and all(len(s) == 2 for s in largest["stages"])
    assert all(b == {"kernel": 7, "expand": 3, "se": True} for s in largest["stages"] for b in s)
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(net(x, largest), net(x), atol=0, rtol=0)  # active default
        child = net.extract(largest).eval()
        torch.testing.assert_close(child(x), net(x), atol=1e-5, rtol=0)
    assert count_params(child) == sum(p.numel() for p in net.parameters())


def test_set_active_selects_what_forward_runs() -> None:
    _, net = _supernet(SMALL)
    arch = net.smallest()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        before = net(x)
        net.set_active(arch)
        torch.testing.assert_close(net(x), net(x, arch), atol=0, rtol=0)
        assert not torch.allclose(net(x), before)


def test_a_smaller_kernel_is_the_centre_crop_and_gradients_reach_only_the_slice() -> None:
    _, net = _supernet(SMALL)
    arch = net.smallest()  # kernel 3, expand 2, width 0.5, depth 1, no SE
    child = net.extract(arch)
    dw = net.stages[1][0].dw.conv.weight
    mid = child.features[1].body[1][0].weight.shape[0]
    torch.testing.assert_close(child.features[1].body[1][0].weight, dw[:mid, :, 2:5, 2:5])
    net.train()
    net.zero_grad()
    net(torch.randn(4, 1, 16, 16), arch).sum().backward()
    grad = dw.grad
    assert grad is not None and grad[:mid, :, 2:5, 2:5].abs().sum() > 0
    assert grad[mid:].abs().sum() == 0 and grad[:, :, :2].abs().sum() == 0
    # The second block of each stage is skipped (depth 1): no gradient reaches it.
    assert net.stages[1][1].project.conv.weight.grad is None


def test_bn_recalibration_of_the_child_matches_the_supernet_slice() -> None:
    _, net = _supernet(SMALL)
    arch = net.sample(np.random.default_rng(3))
    child = net.extract(arch)
    data = [torch.randn(8, 1, 16, 16) * 3 + 1 for _ in range(3)]
    assert recalibrate_bn(child, data) == 3
    recalibrate_bn(net, data, forward=lambda xb: net(xb, arch))
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(child(x), net(x, arch), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(net.extract(arch).eval()(x), child(x), atol=1e-5, rtol=1e-5)
    assert not child.training and all(
        m.momentum == 0.1 for m in child.modules() if hasattr(m, "momentum")
    )


def test_a_non_mobilenet_space_is_refused() -> None:
    with pytest.raises(ValueError, match="space: a MobileNetSupernet needs a mobilenet space"):
        MobileNetSupernet(resolve_space("nb201", {}), num_classes=10)


# --- the trainables, driven directly -------------------------------------------------------------
def _experiment(tmp_path: Path, trainable: str, trainable_args: dict[str, Any], **sections: Any):
    data = small_experiment(
        tmp_path,
        space="mobilenet",
        trainable=trainable,
        trainable_args=trainable_args,
        data={"name": "digits", "limit": 300},
        train={"epochs": 2, "batch_size": 64, "lr": 0.05, "latency_repeats": 1},
        **sections,
    )
    data["space_args"] = {**SMALL, "stages": [[8, 1], [16, 2]]}
    return data


def _trainable(cls: type, tmp_path: Path, data: dict[str, Any], seed: int = 0) -> Any:
    exp = load_config(data)
    cfg = trial_settings(exp)
    cfg["arch"] = raynas.get_space(exp.space, **exp.space_args).sample(seed)
    tmp_path.mkdir(parents=True, exist_ok=True)
    tune_trainable.DEFAULT_STORAGE_PATH = str(tmp_path)
    return cls(config=cfg)


@pytest.mark.parametrize("sandwich", [False, True], ids=["spos", "sandwich"])
def test_supernet_trains_checkpoints_and_resumes_the_same(tmp_path: Path, sandwich: bool) -> None:
    data = _experiment(tmp_path, "supernet", {"sandwich": sandwich, "eval_bn_batches": 2})
    a = _trainable(SupernetTrainable, tmp_path / "a", data)
    first = a.train()
    assert first["epoch"] == 1 and first["status"] == "ok" and not first["done"]
    for key in ("train_loss", "val_acc", "val_acc_largest", "val_acc_smallest"):
        assert np.isfinite(first[key]), key
    assert first["params"] == sum(p.numel() for p in a.net.parameters())
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    a.save_checkpoint(str(ckpt))
    assert json.loads((ckpt / "supernet.json").read_text())["space"]["name"] == "mobilenet"
    ra = a.train()
    b = _trainable(SupernetTrainable, tmp_path / "b", data)
    b.load_checkpoint(str(ckpt))
    rb = b.train()
    assert rb["epoch"] == ra["epoch"] == 2 and rb["done"] is True
    for key in ("train_loss", "val_loss", "val_acc_smallest", "lr"):
        assert ra[key] == rb[key], key


def test_subnet_evaluates_with_inherited_weights(tmp_path: Path) -> None:
    sdata = _experiment(tmp_path, "supernet", {"eval_bn_batches": 2})
    sup = _trainable(SupernetTrainable, tmp_path / "s", sdata)
    sup.train()
    ckpt = tmp_path / "exp" / "trial_a" / "checkpoint_000001"
    ckpt.mkdir(parents=True)
    sup.save_checkpoint(str(ckpt))
    # A checkpoint folder, the file and the experiment folder all name the same checkpoint.
    assert find_supernet_checkpoint(tmp_path / "exp") == ckpt / CHECKPOINT_FILE
    assert find_supernet_checkpoint(ckpt) == find_supernet_checkpoint(ckpt / CHECKPOINT_FILE)
    data = _experiment(tmp_path, "subnet", {"supernet": str(tmp_path / "exp"), "bn_batches": 3})
    one = _trainable(SubnetTrainable, tmp_path / "t1", data, seed=1)
    result = one.train()
    assert result["status"] == "ok" and result["done"] is True and result["epoch"] == 1
    assert 0.0 <= result["val_acc"] <= 1.0 and result["flops"] > 0
    built = one.space.build(one.arch, num_classes=10, in_channels=1)
    assert result["params"] == count_params(built)
    exp = load_config(data)
    assert SubnetTrainable.driver_cost(exp)(one.arch)["params"] == result["params"]
    # The supernet is loaded once per worker process and shared by its subnets.
    two = _trainable(SubnetTrainable, tmp_path / "t2", data, seed=2)
    assert two.supernet is one.supernet
    assert torch.equal(one.supernet.classifier.weight, sup.net.classifier.weight.detach().to("cpu"))
    assert two.reset_config({**one.config}) and two.arch == one.arch
    again = two.train()
    assert again["val_acc"] == result["val_acc"]  # same arch, same BN batches
    assert load_supernet(ckpt, torch.device("cpu"))[0] is one.supernet
    # Its checkpoint holds the evaluated child in classify's layout (what `raynas export` reads).
    out = tmp_path / "child"
    out.mkdir()
    two.save_checkpoint(str(out))
    state = torch.load(out / "state.pt", map_location="cpu", weights_only=False)
    assert state["arch"] == two.arch and state["epoch"] == 1
    built.load_state_dict(state["model"])  # strict: every tensor of the space's own network


def test_subnet_constraint_violation_is_reported_without_evaluation(tmp_path: Path) -> None:
    sup = _trainable(SupernetTrainable, tmp_path / "s", _experiment(tmp_path, "supernet", {}))
    sup.save_checkpoint(str(tmp_path))
    data = _experiment(
        tmp_path, "subnet", {"supernet": str(tmp_path)}, objective={"constraints": ["params <= 10"]}
    )
    result = _trainable(SubnetTrainable, tmp_path / "t", data).train()
    assert result["status"] == "constraint_violated" and "val_acc" not in result


@pytest.mark.parametrize(
    ("trainable", "args", "field"),
    [
        ("subnet", {}, "trainable_args.supernet: field required"),
        ("subnet", {"supernet": "/nonexistent/x"}, "trainable_args.supernet: no file or folder"),
        ("subnet", {"supernet": ".", "bn_batchez": 3}, "trainable_args.bn_batchez: unknown"),
        ("subnet", {"supernet": ".", "bn_batches": 0}, "trainable_args.bn_batches:"),
        ("supernet", {"sandwitch": True}, "trainable_args.sandwitch: unknown option"),
        ("supernet", {"num_random": True}, "trainable_args.num_random: must be an integer"),
    ],
)
def test_bad_trainable_args_are_named(
    tmp_path: Path, trainable: str, args: dict[str, Any], field: str
) -> None:
    exp = load_config(_experiment(tmp_path, trainable, args))
    with pytest.raises(ConfigError) as info:
        check_experiment(exp)
    assert any(line.startswith(field) for line in info.value.errors), info.value.errors


def test_a_file_that_is_no_supernet_checkpoint_is_a_config_error(tmp_path: Path) -> None:
    bogus = tmp_path / CHECKPOINT_FILE
    bogus.write_text("not a checkpoint")
    exp = load_config(_experiment(tmp_path, "subnet", {"supernet": str(bogus)}))
    with pytest.raises(ConfigError) as info:
        check_experiment(exp)
    assert any(e.startswith("trainable_args.supernet: cannot read") for e in info.value.errors)


def test_a_supernet_of_another_space_is_a_config_error(tmp_path: Path) -> None:
    sup = _trainable(SupernetTrainable, tmp_path / "s", _experiment(tmp_path, "supernet", {}))
    sup.save_checkpoint(str(tmp_path))
    data = _experiment(tmp_path, "subnet", {"supernet": str(tmp_path)})
    data["space_args"] = {**data["space_args"], "max_depth": 3}
    with pytest.raises(ConfigError) as info:
        check_experiment(load_config(data))
    assert any(
        e.startswith("trainable_args.supernet: trained for space") for e in info.value.errors
    )


def test_supernet_refuses_constraints_and_learning_strategies(tmp_path: Path) -> None:
    data = _experiment(
        tmp_path,
        "supernet",
        {},
        objective={"constraints": ["params <= 1e5"]},
        strategy={"name": "evolution"},
    )
    with pytest.raises(ConfigError) as info:
        check_experiment(load_config(data))
    assert any(e.startswith("objective.constraints:") for e in info.value.errors)
    assert any(e.startswith("strategy.name:") for e in info.value.errors)


# --- the examples, on the real files ---------------------------------------------------------------
needs_files = pytest.mark.skipif(
    not (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"Fashion-MNIST is not installed in {FASHION_MNIST}",
)


@needs_files
def test_the_example_configs_validate() -> None:
    exp = load_config(REPO / "examples" / "supernet-fashion-mnist.yaml")
    check_experiment(exp)
    search = load_config(REPO / "examples" / "subnet-search-fashion-mnist.yaml")
    assert search.space_args == exp.space_args and search.data == exp.data
    assert search.objective.constraints and search.strategy.name == "evolution"


@pytest.mark.slow
@needs_files
def test_train_a_supernet_then_search_it_through_the_cli(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    tiny = ["--set", "data.limit=200", "--storage", str(runs)]

    def raynas_run(example: str, *extra: str) -> str:
        command = [str(VENV_BIN / "raynas"), "run", str(REPO / "examples" / example), *tiny]
        proc = subprocess.run(
            [*command, *extra], capture_output=True, text=True, timeout=600, cwd=tmp_path
        )
        assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout

    raynas_run("supernet-fashion-mnist.yaml", "--set", "train.epochs=1")
    lines = [
        json.loads(ln)
        for path in (runs / "supernet-fashion-mnist").glob("*/result.json")
        for ln in path.read_text().splitlines()
    ]
    assert len(lines) == 1 and lines[0]["status"] == "ok" and "val_acc_smallest" in lines[0]
    # A latency table of the same space on this CPU, at the deployed input (1x28x28): the
    # subnet search below is constrained by the latency it predicts, on the driver.
    search_cfg = load_config(REPO / "examples" / "subnet-search-fashion-mnist.yaml")
    table = tmp_path / "latency.json"
    profile = [str(VENV_BIN / "raynas"), "latency", "profile", "--space", "mobilenet"]
    for key, value in search_cfg.space_args.items():
        profile += ["--space-arg", f"{key}={json.dumps(value)}"]
    profile += ["--input-shape", "1,28,28", "--repeats", "3", "--warmup", "1"]
    profile += ["--networks", "3", "--clock", "cpu", "--out", str(table), "--quiet"]
    proc = subprocess.run(profile, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from raynas.experiment.config_check import load_latency_model

    model = load_latency_model(str(table), "mobilenet", search_cfg.space_args)
    space = raynas.get_space("mobilenet", **search_cfg.space_args)
    rng = np.random.default_rng(0)
    bound = float(np.median([model.predict_ms(space.sample(rng)) for _ in range(40)]))
    # The second example's default supernet path is runs/supernet-fashion-mnist, relative to
    # the working directory: the chain needs no --set for it.
    out = raynas_run(
        "subnet-search-fashion-mnist.yaml",
        *("--set", "budget.trials=4", "--set", "trainable_args.bn_batches=2"),
        *("--set", f"objective.latency_model={table}"),
        *("--set", f'objective.constraints=["params <= 75000", "latency_pred_ms <= {bound}"]'),
    )
    assert "top 4 by val_acc" in out
    result = raynas.load(runs / "subnet-search-fashion-mnist")
    assert len(result.trials) == 4 and set(result.trials["status"]) == {"completed"}
    assert (result.trials["params"] <= 75000).all()
    archs = [result.trial_config(t)["arch"] for t in result.trials["trial_id"]]
    assert all(model.predict_ms(a) <= bound for a in archs), bound
    # The best sub-network as a standalone module, with its inherited weights.
    from raynas.results.export import export_trial

    done = export_trial(runs / "subnet-search-fashion-mnist", tmp_path / "best")
    trials = result.trials.set_index("trial_id")
    acc = float(trials.loc[done.trial_id, "val_acc"])
    assert acc == trials["val_acc"].max() and done.reported["val_acc"] == acc
    assert all(abs(got - acc) < 1e-6 for got in done.reproduced.values()), done.reproduced
