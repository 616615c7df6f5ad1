"""Plugins: a module beside the config is importable on the driver and the workers, the
trainable's capabilities are checked before Ray starts, and export / report / the tables
work on a plugin space (examples/plugin)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from raynas.experiment.config_check import checkpoint_every, reuse_actors
from raynas.experiment.config_load import load_config
from raynas.experiment.run_notes import run_notes
from tests.conftest import REPO, VENV_BIN

BARE_TRAINABLE = """
from ray import tune
from raynas.registry import TRAINABLES, register_trainable

if "bare" not in TRAINABLES:

    @register_trainable("bare", description="a trainable with step() only")
    class Bare(tune.Trainable):
        def step(self):
            return {"val_acc": 0.5, "epoch": 1, "done": True}
"""


def _plugin_config(tmp_path: Path, **extra: object) -> Path:
    (tmp_path / "bare_plugin.py").write_text(BARE_TRAINABLE)
    cfg = {"plugins": ["bare_plugin"], "trainable": "bare", "space": "mlp", **extra}
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps(cfg))
    return path


def test_the_configs_folder_is_the_plugin_path_unless_one_is_given(tmp_path: Path) -> None:
    exp = load_config(_plugin_config(tmp_path))
    assert exp.plugin_path == [str(tmp_path.resolve())]
    (tmp_path / "lib").mkdir()
    exp = load_config(_plugin_config(tmp_path, plugin_path=["lib", "/opt/x"]))
    assert exp.plugin_path == [str(tmp_path.resolve() / "lib"), "/opt/x"]
    # the experiment folder keeps the resolved config: loading it again changes nothing
    again = tmp_path / "again.yaml"
    again.write_text(json.dumps(exp.to_dict()))
    assert load_config(again).plugin_path == exp.plugin_path


def test_a_trainable_without_checkpoints_or_reset_gets_defaults_that_fit(tmp_path: Path) -> None:
    exp = load_config(_plugin_config(tmp_path))
    from raynas.experiment.config_check import check_experiment

    check_experiment(exp)  # imports the plugin from the config's folder
    assert checkpoint_every(exp) == 0 and reuse_actors(exp) is False
    notes = run_notes(exp)
    assert any(n.startswith("checkpoint.every: 0, as trainable 'bare'") for n in notes)
    assert any(n.startswith("reuse_actors: false, as trainable 'bare'") for n in notes)
    builtin = load_config({})
    assert checkpoint_every(builtin) == 1 and reuse_actors(builtin) is True


def test_explicit_settings_the_trainable_cannot_honour_are_refused(tmp_path: Path) -> None:
    config = _plugin_config(tmp_path, checkpoint={"every": 1}, reuse_actors=True)
    proc = subprocess.run(
        [str(VENV_BIN / "raynas"), "validate", str(config)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "checkpoint.every: trainable 'bare' does not implement save_checkpoint" in proc.stderr
    assert "reuse_actors: trainable 'bare' does not implement reset_config" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_missing_plugin_names_where_to_put_it(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps({"plugins": ["not_here"]}))
    proc = subprocess.run(
        [str(VENV_BIN / "raynas"), "validate", str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "put not_here.py beside the config, name its folder in plugin_path" in proc.stderr


@pytest.mark.slow
def test_the_plugin_example_runs_exports_and_reports_from_another_folder(tmp_path: Path) -> None:
    """examples/plugin copied elsewhere (not on any path): workers import it by plugin_path."""
    shutil.copytree(REPO / "examples" / "plugin", tmp_path / "plugin")
    cli = str(VENV_BIN / "raynas")

    def raynas(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [cli, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=600
        )

    run = raynas(
        "run", "plugin/experiment.yaml", "--storage", "runs",
        "--set", "budget.trials=3", "--set", "train.epochs=1",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "status: completed=3" in run.stdout
    assert "arch=?" not in run.stdout and 'arch={"activation":' in run.stdout
    folder = tmp_path / "runs" / "plugin-tiny-cnn"
    from raynas.results.analysis import load

    trials = load(folder).trials
    assert trials["arch"].notna().all() and trials["arch"].str.startswith("{").all()
    export = raynas("export", str(folder), "--best", "--out", "best")
    assert export.returncode == 0, export.stderr[-3000:]
    assert (tmp_path / "best" / "arch.json").is_file()
    meta = json.loads((tmp_path / "best" / "arch.json").read_text())
    assert meta["plugins"] == ["tiny_cnn"] and meta["space"]["name"] == "tiny_cnn"
    report = raynas("report", str(folder))
    assert report.returncode == 0, report.stderr[-3000:]
    assert (folder / "report.html").stat().st_size > 100_000


def test_spaces_lists_arguments_plugin_spaces_and_a_yaml_files_decisions(capsys) -> None:  # type: ignore[no-untyped-def]
    from raynas.cli import main

    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    assert "space_args (defaults)" in out and "C=16, N=5" in out
    assert main(["spaces", "--config", str(REPO / "examples" / "plugin" / "experiment.yaml")]) == 0
    assert "tiny_cnn" in capsys.readouterr().out
    assert main(["spaces", str(REPO / "examples" / "plugin" / "tiny_cnn_space.yaml")]) == 0
    out = capsys.readouterr().out
    assert "tiny_cnn: 1,032 architectures" in out and "arch.blocks[0].kernel  2" in out
