"""``raynas export``: the exported model reproduces the trial's reported val_acc exactly."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray.tune.trainable.trainable as tune_trainable
import torch

import raynas
from raynas.cli import main as cli_main
from raynas.config import ConfigError, load_config
from raynas.export import evaluate_accuracy, export_trial, load_exported
from raynas.runner import trial_settings
from tests.conftest import QUICKSTART
from tests.test_analysis import real_experiment, write_experiment, write_state, write_trial
from trainables.classify import ClassifyTrainable
from trainables.data import load_dataset

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"


def trained_folder(tmp_path: Path, epochs: int = 2) -> Path:
    """A folder in Tune's layout around a child really trained by the ``classify`` trainable
    (driven directly, no Ray): params.json, result.json, checkpoint_*/state.pt."""
    exp = load_config(
        QUICKSTART,
        overrides=[f"train.epochs={epochs}", "space_args={C: 4, N: 1}", "train.latency_repeats=1"],
    )
    cfg = trial_settings(exp)
    cfg["arch"] = raynas.get_space("nb201", C=4, N=1).from_string(ARCH)
    folder = write_experiment(tmp_path / "exp", epochs=epochs)
    # As `raynas run` writes them: the experiment's config, and only the trial's own part.
    (folder / "raynas_experiment.yaml").write_text(json.dumps(exp.to_dict()))
    tdir = folder / "ClassifyTrainable_real0001_1_x_2026-01-01_00-00-00"
    tdir.mkdir()
    (tdir / "params.json").write_text(json.dumps({"arch": cfg["arch"]}))
    tune_trainable.DEFAULT_STORAGE_PATH = str(tmp_path / "scratch")
    trainable = ClassifyTrainable(config=cfg)
    lines = []
    for e in range(epochs):
        result = trainable.train()
        result["trial_id"] = "real0001"
        lines.append(json.dumps(result, default=str))
        ckpt = tdir / f"checkpoint_{e:06d}"
        ckpt.mkdir()
        trainable.save_checkpoint(str(ckpt))
    trainable.stop()
    (tdir / "result.json").write_text("\n".join(lines) + "\n")
    write_trial(folder, "viol0001", 2, [], status="constraint_violated", params=10**6)
    write_state(folder, {"real0001": "TERMINATED", "viol0001": "TERMINATED"})
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_folder(tmp_path_factory.mktemp("export"))


def reported_val_acc(folder: Path, trial_id: str) -> tuple[float, dict[str, Any]]:
    tdir = next(folder.glob(f"*_{trial_id}_*"))
    last = json.loads((tdir / "result.json").read_text().splitlines()[-1])
    return float(last["val_acc"]), raynas.load(folder).trial_config(trial_id)


def check_round_trip(folder: Path, out: Path, trial_id: str) -> None:
    """Load the export back and reproduce the reported val_acc exactly on the same split."""
    reported, config = reported_val_acc(folder, trial_id)
    data = config["data"]
    split = load_dataset(data["name"], val_fraction=data["val_fraction"], seed=config["data_seed"])
    scripted = torch.jit.load(str(out / "model.ts")).eval()
    assert evaluate_accuracy(scripted, split.val_x, split.val_y) == reported
    rebuilt = load_exported(out)
    assert evaluate_accuracy(rebuilt, split.val_x, split.val_y) == reported
    with torch.no_grad():
        assert torch.equal(rebuilt(split.val_x[:64]), scripted(split.val_x[:64]))
    meta = json.loads((out / "arch.json").read_text())
    assert meta["trial_id"] == trial_id and meta["metrics"]["val_acc"] == reported
    assert (
        raynas.get_space("nb201", **meta["space"]["args"]).arch_id(meta["arch"]) == meta["arch_id"]
    )


def test_export_round_trip_reproduces_val_acc(folder: Path, tmp_path: Path) -> None:
    done = export_trial(folder, tmp_path / "out")
    assert done.trial_id == "real0001" and done.epoch == 2
    assert done.reproduced_val_acc == done.reported["val_acc"]
    names = {p.name for p in done.files}
    assert {"arch.json", "weights.pt", "model.ts", "README.md"} <= names
    if importlib.util.find_spec("onnx") is None:
        assert "model.onnx" not in names and any("ONNX skipped" in n for n in done.notes)
    else:
        from onnx.reference import ReferenceEvaluator

        x = load_dataset("digits", seed=0).val_x[:8]
        (logits,) = ReferenceEvaluator(str(tmp_path / "out" / "model.onnx")).run(
            None, {"input": x.numpy()}
        )
        expected = torch.jit.load(str(tmp_path / "out" / "model.ts"))(x).detach().numpy()
        assert np.allclose(logits, expected, atol=1e-4)
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "torch.jit.load" in readme and "load_exported" in readme and ARCH in readme
    check_round_trip(folder, tmp_path / "out", "real0001")


def test_export_cli(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert cli_main(["export", str(folder), "--trial", "real0001", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "exported trial real0001 (epoch 2" in text and f"wrote {out / 'model.ts'}" in text
    assert "check: model.ts scores val_acc" in text and "identical)" in text
    check_round_trip(folder, out, "real0001")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--trial", "viol0001"],
            "--trial: trial viol0001 (status constraint_violated) holds no trained weights",
        ),
        (["--trial", "nope"], "--trial: no trial 'nope'"),
    ],
)
def test_export_user_errors_exit_2(
    folder: Path, tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["export", str(folder), *args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_export_without_a_ranked_trial(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "exp")
    write_trial(exp, "cv", 1, [], status="constraint_violated")
    with pytest.raises(ConfigError, match=r"--best: no trial of .* reported 'val_acc' yet"):
        export_trial(exp, tmp_path / "o", best=True)


def test_export_refuses_both_selectors(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(["export", str(folder), "--trial", "x", "--best", "--out", str(tmp_path)])
    assert exc.value.code == 2


def test_load_exported_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"arch\.json' is missing; run `raynas export`"):
        load_exported(tmp_path)


@pytest.mark.slow
def test_export_best_of_a_real_run(
    tmp_path_factory: pytest.TempPathFactory, ray_session: None, tmp_path: Path
) -> None:
    folder = real_experiment(tmp_path_factory, "mixed")
    best = str(raynas.load(folder).best()["trial_id"])
    assert cli_main(["export", str(folder), "--best", "--out", str(tmp_path / "best")]) == 0
    check_round_trip(folder, tmp_path / "best", best)
