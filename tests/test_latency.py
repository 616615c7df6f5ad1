"""Latency tables (``raynas latency profile``), ``latency_pred_ms`` and its driver-side check.

Real profiles on tiny mobilenet spaces (few space args, few repeats): the figures are timings,
so the tests check structure, additivity and errors, never a time.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from torch import nn

import raynas
from raynas.experiment.config import ConfigError
from raynas.experiment.config_check import check_experiment
from raynas.experiment.config_load import load_config
from raynas.experiment.constraints import ConstraintCheck, driver_metrics
from raynas.latency import LatencyError, LatencyTable, decomposition_for, profile_space
from raynas.registry import resolve_space
from search_spaces.models.mobilenet_net import InvertedResidual, SqueezeExcite
from tests.conftest import small_experiment
from tests.test_user_errors import assert_user_error
from tests.test_user_errors import raynas as raynas_cli

#: A tiny mobilenet: two stages, depth 1-2, two kernels, one expansion, SE, two widths.
TINY = {
    "stages": [[8, 1], [16, 2]],
    "max_depth": 2,
    "kernels": [3, 5],
    "expands": [3],
    "width_mults": [1.0, 1.25],
}
DIGITS = (1, 8, 8)


def _cli_args(args: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in args.items():
        out += ["--space-arg", f"{key}={json.dumps(value)}"]
    return out


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real profile of TINY at the digits shape, saved once for the module.

    One thread's CPU time (``clock="cpu"``): with few repeats on a machine busy with other
    work, a wall-clock median can hold a wait for a core many times the block's own time.
    """
    table = profile_space(
        "mobilenet",
        TINY,
        input_shape=DIGITS,
        warmup=2,
        repeats=5,
        networks=4,
        seed=0,
        clock="cpu",
    )
    return table.save(tmp_path_factory.mktemp("lat") / "tiny.json")


# --- the decomposition is what MobileNetNetwork builds ------------------------------------
def _archs() -> list[tuple[dict[str, Any], Any, tuple[int, ...]]]:
    cases = []
    default = resolve_space("mobilenet", {})
    rng = np.random.default_rng(0)
    for width in (0.75, 1.0, 1.25):
        for se in (False, True):
            arch = default.sample(rng)
            arch["width_mult"] = width
            for stage in arch["stages"]:
                for layer in stage:
                    layer["se"] = se
            cases.append((arch, default, (3, 32, 32)))
    tiny = resolve_space("mobilenet", TINY)
    cases += [(tiny.sample(np.random.default_rng(s)), tiny, DIGITS) for s in range(4)]
    return cases


@pytest.mark.parametrize("case", range(10))
def test_the_decomposition_matches_the_modules_mobilenet_builds(case: int) -> None:
    arch, space, shape = _archs()[case]
    blocks = decomposition_for(space).blocks(space, arch, shape, 10)
    net = space.build(arch, num_classes=10, in_channels=shape[0])
    seen: list[tuple[int, ...]] = []
    hooks = [m.register_forward_pre_hook(lambda _m, x: seen.append(tuple(x[0].shape[1:])))
             for m in (net.stem, *net.features, net.head)]  # fmt: skip
    import torch

    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, *shape))
    for h in hooks:
        h.remove()
    assert [b.kind for b in blocks] == ["stem"] + ["mbconv"] * len(net.features) + ["head"]
    assert [b.input_shape for b in blocks] == seen  # channels and resolution of every input
    stem_conv = net.stem[0]
    assert (blocks[0].field("in"), blocks[0].field("out")) == (
        stem_conv.in_channels,
        stem_conv.out_channels,
    )
    for block, layer in zip(blocks[1:-1], net.features):
        assert isinstance(layer, InvertedResidual)
        convs = [m for m in layer.body.modules() if isinstance(m, nn.Conv2d)]
        depthwise = next(c for c in convs if c.groups > 1 or c.kernel_size[0] > 1)
        assert convs[0].in_channels == block.field("in")
        assert layer.body[-1][0].out_channels == block.field("out")
        assert depthwise.kernel_size == (block.field("kernel"),) * 2
        assert depthwise.stride == (block.field("stride"),) * 2
        assert depthwise.out_channels == block.field("in") * block.field("expand")
        has_se = any(isinstance(m, SqueezeExcite) for m in layer.body)
        assert has_se == bool(block.field("se"))
        assert layer.use_residual == bool(block.field("res"))
    head_conv = net.head[0][0]
    assert (blocks[-1].field("in"), blocks[-1].field("out")) == (
        head_conv.in_channels,
        head_conv.out_channels,
    )
    assert blocks[-1].field("classes") == net.classifier.out_features


@pytest.mark.parametrize("args,shape", [({}, (3, 32, 32)), (TINY, DIGITS)])
def test_the_profiled_block_set_covers_every_member(args: dict[str, Any], shape: tuple) -> None:
    space = resolve_space("mobilenet", args)
    dec = decomposition_for(space)
    keys = [b.key for b in dec.space_blocks(space, shape, 10)]
    assert len(keys) == len(set(keys))
    rng = np.random.default_rng(1)
    used = set()
    for _ in range(200):
        used |= {b.key for b in dec.blocks(space, space.sample(rng), shape, 10)}
    assert used <= set(keys)
    if args:  # a tiny space: 200 draws reach every block it has
        assert used == set(keys)


def test_a_space_without_a_decomposition_is_refused_by_name() -> None:
    with pytest.raises(LatencyError, match=r"'nb201' has no block decomposition.*mobilenet"):
        decomposition_for(resolve_space("nb201", {"C": 4, "N": 1}))


# --- profile -> file -> predictor ---------------------------------------------------------
def test_profile_file_predictor_round_trip_is_additive(tiny_table: Path) -> None:
    table = LatencyTable.load(tiny_table, space="mobilenet", space_args=TINY)
    meta = table.meta
    assert meta["device"] == "cpu" and meta["batch"] == 1 and meta["dtype"] == "float32"
    assert meta["memory_format"] == "contiguous" and meta["threads"] == 1
    assert meta["clock"] == "cpu"
    assert meta["input_shape"] == list(DIGITS) and meta["torch"]
    assert len(table.overhead["networks"]) == 4
    assert table.overhead["per_block_ms"] >= 0
    for entry in table.blocks.values():
        assert entry["median_ms"] > 0 and entry["iqr_ms"] >= 0 and entry["repeats"] == 5
    space = table.space()
    short = {"width_mult": 1.0, "stages": [[{"kernel": 3, "expand": 3, "se": False}]] * 2}
    longer = json.loads(json.dumps(short))
    longer["stages"][1].append({"kernel": 5, "expand": 3, "se": True})
    additive = {}
    for name, arch in (("short", short), ("longer", longer), ("drawn", space.sample(3))):
        parts = [table.blocks[b.key]["median_ms"] for b in table.arch_blocks(arch)]
        overhead = table.overhead["intercept_ms"] + table.overhead["per_block_ms"] * len(parts)
        additive[name] = sum(parts) + overhead
        floor = sum(parts) * table.floor_ratio()
        assert table.predict_ms(arch) == pytest.approx(max(additive[name], floor))
        assert table.predict_ms(arch) > 0
    extra = table.arch_blocks(longer)[-2]  # the added layer (before the head)
    assert additive["longer"] - additive["short"] == pytest.approx(
        table.blocks[extra.key]["median_ms"] + table.overhead["per_block_ms"]
    )
    again = pickle.loads(pickle.dumps(table))  # the driver ships it to trials
    assert again.predict_ms(longer) == table.predict_ms(longer)


def test_a_negative_fitted_intercept_never_predicts_below_the_floor(tiny_table: Path) -> None:
    """Whole networks timed faster than their blocks' sum fit a negative intercept; an
    architecture of few cheap blocks would be predicted below zero (seen on a busy machine:
    -0.40 ms). It gets the smallest measured / block-sum share of the timed networks."""
    data = json.loads(tiny_table.read_text())
    data["overhead"]["intercept_ms"] = -1e6
    data["overhead"]["networks"] = [
        {"measured_ms": 3.0, "blocks_ms": 4.0, "blocks": 5},
        {"measured_ms": 6.0, "blocks_ms": 6.0, "blocks": 7},
    ]
    table = LatencyTable.from_dict(data)
    arch = table.space().sample(3)
    assert table.floor_ratio() == 0.75
    assert table.predict_ms(arch) == pytest.approx(0.75 * table.blocks_ms(arch))
    data["overhead"]["networks"] = []
    assert LatencyTable.from_dict(data).floor_ratio() == 0.0


def test_a_bad_table_file_is_refused_with_the_fix(tiny_table: Path, tmp_path: Path) -> None:
    with pytest.raises(LatencyError, match=r"does not exist; write it with `raynas latency"):
        LatencyTable.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(LatencyError, match=r"cannot be read as JSON"):
        LatencyTable.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"blocks": {}}')
    with pytest.raises(LatencyError, match=r"not a raynas latency table"):
        LatencyTable.load(tmp_path / "other.json")
    with pytest.raises(LatencyError, match=r"profiled for space 'mobilenet', not 'nb201'"):
        LatencyTable.load(tiny_table, space="nb201")
    with pytest.raises(LatencyError, match=r"lacks .* block"):
        LatencyTable.load(tiny_table, space="mobilenet", space_args={})


# --- the command line -----------------------------------------------------------------------
def test_the_cli_writes_the_table_and_refuses_bad_arguments(tmp_path: Path) -> None:
    out = tmp_path / "lat.json"
    args = ["latency", "profile", "--space", "mobilenet", *_cli_args(TINY)]
    quick = ["--repeats", "2", "--warmup", "1", "--networks", "2", "--input-shape", "1,8,8"]
    proc = raynas_cli(*args, *quick, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout
    table = LatencyTable.load(out, space="mobilenet", space_args=TINY)
    assert table.meta["repeats"] == 2 and len(table.overhead["networks"]) == 2
    nb201 = ["latency", "profile", "--space", "nb201", "--out", str(tmp_path / "x.json")]
    assert_user_error(raynas_cli(*nb201), "--space: space 'nb201' has no block decomposition")
    assert_user_error(
        raynas_cli(*args, "--input-shape", "3,32", "--out", str(tmp_path / "x.json")),
        "--input-shape: must be three positive integers",
    )
    assert_user_error(
        raynas_cli(*args, "--device", "tpu", "--out", str(tmp_path / "x.json")), "--device: use"
    )
    assert_user_error(raynas_cli(*args, "--out", str(tmp_path / "x.txt")), "--out: must end")
    assert_user_error(raynas_cli(*args, "--repeats", "0", "--out", "x.json"), "--repeats")
    assert not (tmp_path / "x.json").exists()


# --- the config --------------------------------------------------------------------------
def _mobilenet_exp(tmp_path: Path, **objective: Any) -> dict[str, Any]:
    exp = small_experiment(
        tmp_path, space="mobilenet", objective={"metric": "val_acc", "mode": "max", **objective}
    )
    exp["space_args"] = dict(TINY)
    return exp


def test_latency_pred_without_a_model_exits_2_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "exp.yaml"
    exp = _mobilenet_exp(tmp_path, constraints=["latency_pred_ms <= 5"])
    config.write_text(yaml.safe_dump(exp))
    proc = raynas_cli("validate", str(config))
    assert_user_error(proc, "objective.latency_model: objective.constraints")
    assert "raynas latency profile" in proc.stderr
    exp["objective"]["latency_model"] = "missing.json"  # relative to the config file
    config.write_text(yaml.safe_dump(exp))
    proc = raynas_cli("run", str(config))
    assert_user_error(proc, "objective.latency_model: file ")
    assert str(tmp_path / "missing.json") in proc.stderr
    assert not (tmp_path / "runs").exists()  # refused before Ray started


def test_a_model_for_another_space_is_refused(tiny_table: Path, tmp_path: Path) -> None:
    nb201 = small_experiment(tmp_path, objective={"latency_model": str(tiny_table)})
    with pytest.raises(ConfigError, match=r"objective.latency_model: .*not 'nb201'"):
        check_experiment(load_config(nb201))
    wider = _mobilenet_exp(tmp_path, latency_model=str(tiny_table))
    wider["space_args"] = {**TINY, "kernels": [3, 5, 7]}
    with pytest.raises(ConfigError, match=r"objective.latency_model: .*lacks"):
        check_experiment(load_config(wider))
    exp = load_config(_mobilenet_exp(tmp_path, latency_model=str(tiny_table)))
    check_experiment(exp)  # the right space passes
    assert driver_metrics(exp) == ("params", "flops", "latency_pred_ms")


def test_the_driver_refuses_an_arch_whose_predicted_latency_breaks_the_bound(
    tiny_table: Path, tmp_path: Path
) -> None:
    table = LatencyTable.load(tiny_table, space="mobilenet", space_args=TINY)
    layer = {"kernel": 3, "expand": 3, "se": False}
    fast = {"width_mult": 1.0, "stages": [[layer], [layer]]}
    slow = {"width_mult": 1.25, "stages": [[{**layer, "se": True, "kernel": 5}] * 2] * 2}
    assert table.predict_ms(fast) < table.predict_ms(slow)
    bound = (table.predict_ms(fast) + table.predict_ms(slow)) / 2
    rule = f"latency_pred_ms <= {bound:.6f}"
    exp = load_config(_mobilenet_exp(tmp_path, constraints=[rule], latency_model=str(tiny_table)))
    check = ConstraintCheck.for_experiment(exp)
    assert check is not None
    assert check(fast) == []
    assert check(slow) == [rule]
    assert check.cost(slow)["latency_pred_ms"] == pytest.approx(table.predict_ms(slow))
    again = pickle.loads(pickle.dumps(check))  # PBT saves its explorer with the scheduler
    assert again(slow) == [rule]


# --- a real run ----------------------------------------------------------------------------
@pytest.mark.slow
def test_a_run_keeps_every_trial_inside_the_predicted_latency_bound(
    tiny_table: Path, tmp_path: Path, ray_session: None
) -> None:
    table = LatencyTable.load(tiny_table, space="mobilenet", space_args=TINY)
    space = table.space()
    rng = np.random.default_rng(0)
    bound = float(np.median([table.predict_ms(space.sample(rng)) for _ in range(40)]))
    rule = f"latency_pred_ms <= {bound:.6f}"
    exp = _mobilenet_exp(
        tmp_path,
        constraints=[rule],
        latency_model=str(tiny_table),
        also=[{"metric": "latency_pred_ms", "mode": "min"}],
    )
    exp["budget"] = {"trials": 3, "concurrent": 2}
    result = raynas.run(exp, verbose=False)
    trials = result.trials
    assert len(trials) == 3
    assert set(trials["status"]) == {"completed"}, trials[["status"]]
    assert trials["latency_pred_ms"].notna().all()
    assert (trials["latency_pred_ms"] <= bound).all()
    for arch_str, predicted in zip(trials["arch"], trials["latency_pred_ms"]):
        assert predicted == pytest.approx(table.predict_ms(space.from_string(arch_str)))
