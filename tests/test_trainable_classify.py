"""The classify trainable, driven directly (no Tune run): real training on digits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import ray.tune.trainable.trainable as tune_trainable
import torch

import raynas
from raynas.experiment.config import trial_settings
from raynas.experiment.config_load import load_config
from tests.conftest import QUICKSTART
from trainables import child
from trainables.classify import ClassifyTrainable

STRONG = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def make_config(**overrides: Any) -> dict[str, Any]:
    exp = load_config(QUICKSTART, overrides=[f"{k}={v}" for k, v in overrides.items()])
    cfg = trial_settings(exp)
    space = raynas.get_space(exp.space, **exp.space_args)
    cfg["arch"] = space.from_string(STRONG)
    return cfg


def make_trainable(cfg: dict[str, Any], tmp_path: Path) -> ClassifyTrainable:
    """A trainable outside Tune; its scratch log folder goes under ``tmp_path``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    tune_trainable.DEFAULT_STORAGE_PATH = str(tmp_path)
    return ClassifyTrainable(config=cfg)


def test_fixed_child_trains_to_085_on_digits(tmp_path: Path) -> None:
    trainable = make_trainable(make_config(**{"train.epochs": 4}), tmp_path)
    results = [trainable.train() for _ in range(4)]
    assert [r["epoch"] for r in results] == [1, 2, 3, 4]
    assert results[-1]["done"] is True
    assert results[-1]["val_acc"] >= 0.85, results[-1]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "time_this_iter_s"):
        assert key in results[-1]
    assert results[-1]["status"] == "ok"
    assert results[-1]["train_loss"] < results[0]["train_loss"]


def test_cost_metrics_are_real(tmp_path: Path) -> None:
    trainable = make_trainable(make_config(), tmp_path)
    result = trainable.train()
    assert result["params"] == sum(p.numel() for p in trainable.model.parameters())
    assert result["flops"] > 0
    assert 0 < result["latency_ms"] < 1000


def test_checkpoint_restore_continues_bit_for_bit(tmp_path: Path) -> None:
    cfg = make_config(**{"train.epochs": 4})
    a = make_trainable(cfg, tmp_path / "a")
    a.train()
    a.train()
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    a.save_checkpoint(str(ckpt))
    ra = [a.train() for _ in range(2)]

    b = make_trainable(cfg, tmp_path / "b")
    b.load_checkpoint(str(ckpt))
    rb = [b.train() for _ in range(2)]
    assert [r["epoch"] for r in rb] == [3, 4]
    for key in ("train_loss", "val_loss", "val_acc", "lr"):
        assert [r[key] for r in ra] == [r[key] for r in rb]
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_constraint_violating_child_is_never_trained(tmp_path: Path) -> None:
    cfg = make_config()
    cfg["constraints"] = ["params <= 1000"]
    trainable = make_trainable(cfg, tmp_path)
    before = {k: v.clone() for k, v in trainable.model.state_dict().items()}
    result = trainable.train()
    assert result["status"] == "constraint_violated"
    assert result["done"] is True
    assert result["epoch"] == 0
    assert "params <= 1000" in result["violations"]
    assert "val_acc" not in result
    assert result["params"] > 1000
    assert trainable.optimizer.state_dict()["state"] == {}
    for k, v in trainable.model.state_dict().items():
        assert torch.equal(v, before[k])


def test_diverging_child_ends_as_diverged(tmp_path: Path) -> None:
    cfg = make_config()
    cfg["train"].update(lr=1e12, grad_clip=None, momentum=0.0)
    result = make_trainable(cfg, tmp_path).train()
    assert result["status"] == "diverged"
    assert result["done"] is True


def test_reset_config_reuses_the_process_for_a_new_child(tmp_path: Path) -> None:
    cfg = make_config()
    trainable = make_trainable(cfg, tmp_path)
    trainable.train()
    other = dict(cfg)
    space = raynas.get_space("nb201", C=8, N=1)
    other["arch"] = space.from_string(
        "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|none~2|"
    )
    assert trainable.reset_config(other) is True
    assert trainable.epoch == 0
    r = trainable.train()
    assert r["arch_str"].startswith("|skip_connect~0|")
    assert r["epoch"] == 1


@pytest.mark.parametrize("space,args", [("mlp", {}), ("mobilenet", {"max_depth": 1})])
def test_other_spaces_train_one_epoch(tmp_path: Path, space: str, args: dict[str, Any]) -> None:
    cfg = make_config()
    cfg["space"] = {"name": space, "args": args}
    cfg["constraints"] = []
    if space == "mlp":
        cfg["data"]["name"] = "wine"
    sp = raynas.get_space(space, **args)
    cfg["arch"] = sp.sample(0)
    result = make_trainable(cfg, tmp_path).train()
    assert result["status"] == "ok"
    assert 0.0 <= result["val_acc"] <= 1.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a worker without CUDA")
def test_a_gpu_trial_on_a_worker_without_cuda_fails_with_the_reason(tmp_path: Path) -> None:
    cfg = make_config()
    cfg["resources"] = {"cpu": 1, "gpu": 1}
    with pytest.raises(RuntimeError, match=r"resources\.gpu: .*no CUDA device.*resources\.gpu: 0"):
        make_trainable(cfg, tmp_path)


def test_images_are_held_as_uint8_and_train_exactly_as_floats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(**{"train.epochs": 2})
    compact = make_trainable(cfg, tmp_path / "compact")
    assert compact.data.compact and compact.data.train_x.dtype == torch.uint8
    got = [compact.train() for _ in range(2)]

    load = child.load_dataset

    def float_storage(*args: Any, **kwargs: Any) -> Any:
        return load(*args, **{**kwargs, "compact": False})

    monkeypatch.setattr(child, "load_dataset", float_storage)
    floats = make_trainable(cfg, tmp_path / "floats")
    assert floats.data.train_x.dtype == torch.float32
    ref = [floats.train() for _ in range(2)]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert [r[key] for r in got] == [r[key] for r in ref], key
    assert compact.data.train_x.nbytes * 4 == floats.data.train_x.nbytes


@pytest.mark.parametrize(
    ("overrides", "loaded"),
    [
        ({}, False),
        ({"data.evaluate_test": "true"}, True),
        ({"data.val_fraction": 0}, True),
    ],
)
def test_the_test_split_is_loaded_only_when_evaluated(
    tmp_path: Path, overrides: dict[str, Any], loaded: bool
) -> None:
    cfg = make_config(**{"train.epochs": 1, **overrides})
    if cfg["data"]["val_fraction"] == 0:
        cfg["objective"]["metric"] = "test_acc"
    trainable = make_trainable(cfg, tmp_path)
    assert (trainable.data.test_x is not None) == loaded
    result = trainable.train()
    assert ("test_acc" in result) == loaded and result["status"] == "ok"


def test_a_long_epoch_prints_progress_but_reports_one_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = make_config(**{"train.epochs": 2, "train.progress_s": 1e-9})
    trainable = make_trainable(cfg, tmp_path)
    capsys.readouterr()
    result = trainable.train()
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[raynas]")]
    steps = trainable._steps_per_epoch()
    # Every batch after the first (each took longer than 1e-9 s): batch 1/n .. (n-1)/n.
    assert len(lines) == steps - 1, lines
    assert lines[0].startswith("[raynas] trial default epoch 1/2: batch 1/")
    assert f"batch {steps - 1}/{steps} " in lines[-1] and "train_loss" in lines[-1]
    assert result["epoch"] == 1 and trainable.iteration == 1  # one Tune result per epoch

    quiet = make_trainable(make_config(**{"train.progress_s": "null"}), tmp_path / "quiet")
    capsys.readouterr()
    quiet.train()
    assert "[raynas]" not in capsys.readouterr().out
