"""``raynas export``: the exported models take raw inputs and reproduce the trial's accuracy.

Raw inputs are the dataset's documented range (``trainables.data.RAW_INPUTS``: digits pixels
/ 16); each model normalises them inside, so PyTorch alone (or onnxruntime) classifies them.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray.tune.trainable.trainable as tune_trainable
import torch
from sklearn.datasets import load_digits

import raynas
import raynas.results.export as export_module
from raynas.cli import main as cli_main
from raynas.experiment.config import ConfigError, trial_settings
from raynas.experiment.config_load import load_config
from raynas.files import trial_dirs_of
from raynas.results.export import evaluate_accuracy, export_trial, load_exported
from tests.conftest import QUICKSTART, REPO
from tests.test_analysis import real_experiment, write_experiment, write_state, write_trial
from trainables.classify import ClassifyTrainable
from trainables.data import load_dataset

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"


def trained_folder(tmp_path: Path, epochs: int = 2, overrides: Sequence[str] = ()) -> Path:
    """A folder in Tune's layout around a child really trained by the ``classify`` trainable
    (driven directly, no Ray): params.json, result.json, checkpoint_*/state.pt."""
    exp = load_config(
        QUICKSTART,
        overrides=[
            f"train.epochs={epochs}",
            "space_args={C: 4, N: 1}",
            "train.latency_repeats=1",
            *overrides,
        ],
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


def reported_val_acc(
    folder: Path, trial_id: str, metric: str = "val_acc"
) -> tuple[float, dict[str, Any]]:
    (tdir,) = trial_dirs_of(folder, trial_id)
    last = json.loads((tdir / "result.json").read_text().splitlines()[-1])
    return float(last[metric]), raynas.load(folder).trial_config(trial_id)


def raw_split(config: dict[str, Any], split: str = "val") -> tuple[torch.Tensor, torch.Tensor]:
    """The trial's ``split`` as raw inputs (digits pixels / 16), as a user would hold them."""
    data = config["data"]
    raw = load_dataset(
        data["name"], val_fraction=data["val_fraction"], seed=config["data_seed"], normalize=False
    )
    return (raw.val_x, raw.val_y) if split == "val" else (raw.test_x, raw.test_y)


def check_round_trip(folder: Path, out: Path, trial_id: str) -> None:
    """Load the export back and reproduce the reported val_acc exactly from raw inputs."""
    reported, config = reported_val_acc(folder, trial_id)
    x, y = raw_split(config)
    program = torch.export.load(str(out / "model.pt2")).module()
    assert evaluate_accuracy(program, x, y) == reported
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
        scripted = torch.jit.load(str(out / "model.ts")).eval()
    assert evaluate_accuracy(scripted, x, y) == reported
    rebuilt = load_exported(out)
    assert evaluate_accuracy(rebuilt, x, y) == reported
    with torch.no_grad():
        assert torch.equal(rebuilt(x[:64]), scripted(x[:64]))
        assert torch.equal(rebuilt(x[:64]), program(x[:64]))
    meta = json.loads((out / "arch.json").read_text())
    assert meta["trial_id"] == trial_id and meta["metrics"]["val_acc"] == reported
    assert (
        raynas.get_space("nb201", **meta["space"]["args"]).arch_id(meta["arch"]) == meta["arch_id"]
    )


@pytest.fixture(scope="module")
def exported(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return export_trial(folder, tmp_path_factory.mktemp("exported") / "out")


def test_export_round_trip_reproduces_val_acc(exported: Any, folder: Path) -> None:
    done = exported
    assert done.trial_id == "real0001" and done.epoch == 2 and done.split == "val"
    names = {p.name for p in done.files}
    assert {"arch.json", "weights.pt", "model.pt2", "model.ts", "model.onnx", "README.md"} <= names
    assert set(done.reproduced) == {"model.pt2", "model.ts", "model.onnx"}
    assert all(acc == done.reported["val_acc"] for acc in done.reproduced.values())
    readme = (done.out / "README.md").read_text()
    assert "torch.export.load" in readme and "torch.jit.load" in readme
    assert "load_exported" in readme and ARCH in readme
    # exactly what input the models take: shape, dtype, layout, raw range, the normalisation
    assert "`(N, 1, 8, 8)`: channels first, (N, C, H, W)" in readme
    assert "torch.float32" in readme and "load_digits().images[:, None] / 16" in readme
    assert "(x - mean) / std" in readme and "**raw** inputs" in readme
    meta = json.loads((done.out / "arch.json").read_text())
    stats = load_dataset("digits", seed=0)
    assert meta["input"]["mean"] == stats.mean.flatten().tolist()
    assert meta["input"]["std"] == stats.std.flatten().tolist()
    assert meta["input"]["shape"] == [1, 8, 8] and meta["input"]["layout"] == "NCHW"
    check_round_trip(folder, done.out, "real0001")


# Run by a plain interpreter: only torch and numpy, no raynas on the way.
RAW_CHECK = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch

    out, data = sys.argv[1], np.load(sys.argv[2])
    x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
    models = {
        "model.pt2": torch.export.load(out + "/model.pt2").module(),
        "model.ts": torch.jit.load(out + "/model.ts").eval(),
    }
    with torch.no_grad():
        acc = {k: float((m(x).argmax(1) == y).float().mean()) for k, m in models.items()}
        acc["batch_of_1"] = int(models["model.pt2"](x[:1]).argmax(1)) == int(y[0])
    ours = sorted(m for m in sys.modules if m.split(".")[0] in ("raynas", "trainables", "search_spaces"))
    print(json.dumps({"acc": acc, "raynas_modules": ours}))
    """
)


def test_exported_models_classify_raw_inputs_with_only_torch(
    exported: Any, folder: Path, tmp_path: Path
) -> None:
    """A user with only the export and raw digits (pixels / 16, in [0, 1]) gets the trial's
    accuracy: the normalisation the trial trained with is inside the model files."""
    reported, config = reported_val_acc(folder, "real0001")
    x, y = raw_split(config)
    # The raw split is scikit-learn's digits as documented, pixel for pixel: images / 16.
    digits = {row.tobytes() for row in (load_digits().images[:, None] / 16).astype(np.float32)}
    assert all(row.tobytes() in digits for row in x.numpy())
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    np.savez(tmp_path / "raw.npz", x=x.numpy(), y=y.numpy())
    proc = subprocess.run(
        [sys.executable, "-I", "-c", RAW_CHECK, str(exported.out), str(tmp_path / "raw.npz")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["raynas_modules"] == []
    assert abs(got["acc"]["model.pt2"] - reported) <= 0.005, (got, reported)
    assert abs(got["acc"]["model.ts"] - reported) <= 0.005, (got, reported)
    assert reported > 0.5  # a trained child, far from chance (0.1)


def test_onnx_round_trip_with_onnxruntime_on_raw_inputs(exported: Any, folder: Path) -> None:
    import onnxruntime  # the `test` extra installs it: ONNX is tested, never skipped

    reported, config = reported_val_acc(folder, "real0001")
    x, y = raw_split(config)
    session = onnxruntime.InferenceSession(
        str(exported.out / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    program = torch.export.load(str(exported.out / "model.pt2")).module()
    for batch in (x[:1], x[:7], x):  # a dynamic batch
        (logits,) = session.run(None, {"input": batch.numpy()})
        with torch.no_grad():
            expected = program(batch).numpy()
        assert logits.shape == expected.shape and np.allclose(logits, expected, atol=1e-4)
    (logits,) = session.run(None, {"input": x.numpy()})
    acc = float((logits.argmax(1) == y.numpy()).mean())
    assert abs(acc - reported) <= 0.005


def test_export_without_onnx_writes_the_rest_and_says_so(
    folder: Path, exported: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name in ("onnx", "onnxscript") else real_find_spec(name, *args)

    monkeypatch.setattr(export_module.importlib.util, "find_spec", find_spec)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_text("an earlier export's ONNX")  # replaced: none left stale
    done = export_trial(folder, out, trial_id="real0001", overwrite=True)
    names = {p.name for p in done.files}
    assert {"model.pt2", "model.ts"} <= names and "model.onnx" not in names
    assert not (out / "model.onnx").exists()
    assert any("ONNX skipped: onnx and onnxscript are not installed" in n for n in done.notes)
    assert "ONNX was not written" in (out / "README.md").read_text()
    assert set(done.reproduced) == {"model.pt2", "model.ts"}


def test_export_cli(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert cli_main(["export", str(folder), "--trial", "real0001", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "exported trial real0001 (epoch 2" in text and f"wrote {out / 'model.pt2'}" in text
    for name in ("model.pt2", "model.ts", "model.onnx"):
        assert f"check: {name} scores val_acc" in text
    assert "on raw inputs of the trial's validation split" in text
    assert text.count("identical)") == 3
    check_round_trip(folder, out, "real0001")


def raynas_cli(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "raynas"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "raynas.cli"]
    return subprocess.run([*cmd, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_export_refuses_a_non_empty_out_without_overwrite(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "model.ts").write_text("an earlier export")
    refused = raynas_cli("export", str(folder), "--trial", "real0001", "--out", str(out))
    assert refused.returncode == 2, refused.stderr
    assert "raynas: error: --out: folder" in refused.stderr and "is not empty" in refused.stderr
    assert "--overwrite" in refused.stderr and "Traceback" not in refused.stderr
    assert sorted(p.name for p in out.iterdir()) == ["model.ts", "notes.txt"]  # nothing written
    assert (out / "model.ts").read_text() == "an earlier export"

    done = raynas_cli(
        "export", str(folder), "--trial", "real0001", "--out", str(out), "--overwrite"
    )
    assert done.returncode == 0, done.stderr
    assert (out / "notes.txt").read_text() == "mine"  # not an export's file: kept
    assert {"arch.json", "model.pt2", "model.ts", "README.md"} <= {p.name for p in out.iterdir()}
    check_round_trip(folder, out, "real0001")


def test_export_of_a_final_training_checks_the_test_split(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """A child trained without a validation split (``data.val_fraction: 0``, what
    ``raynas retrain --final`` runs) reports and is checked on the official test split."""
    final = trained_folder(tmp_path_factory.mktemp("final"), overrides=["data.val_fraction=0"])
    reported, config = reported_val_acc(final, "real0001", "test_acc")
    done = export_trial(final, tmp_path / "out", trial_id="real0001")
    assert done.split == "test" and done.reported["test_acc"] == reported
    assert done.reproduced["model.pt2"] == reported and done.reproduced["model.ts"] == reported
    x, y = raw_split(config, "test")
    program = torch.export.load(str(done.out / "model.pt2")).module()
    assert evaluate_accuracy(program, x, y) == reported


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
