"""End to end: the real CLI in a subprocess and the Python API on a real Ray runtime."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import raynas
from tests.conftest import REPO, VENV_BIN, small_experiment


@pytest.mark.slow
def test_python_api_run_and_load(tmp_path: Path, ray_session: None) -> None:
    exp = small_experiment(
        tmp_path,
        budget={"trials": 3, "concurrent": 2},
        objective={"constraints": ["params <= 20000"]},
        storage=f"file://{tmp_path}/uri-runs",
    )
    result = raynas.run(exp, verbose=False)
    assert result.path == tmp_path / "uri-runs" / "t"
    assert (result.path / "raynas_experiment.yaml").is_file()
    assert len(result.trials) == 3
    statuses = set(result.trials["status"])
    assert statuses <= {"completed", "constraint_violated"}
    again = raynas.load(result.path)
    assert list(again.trials["trial_id"]) == list(result.trials["trial_id"])
    assert len(result.curves) == (result.trials["status"] == "completed").sum()


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("```", 2)[1]
    lines = [ln.strip() for ln in block.splitlines()[1:] if ln.strip()]
    return lines


def test_readme_starts_with_exactly_two_commands() -> None:
    head = (REPO / "README.md").read_text().splitlines()[:12]
    assert any(line.startswith("```") for line in head), "the commands must open the README"
    commands = readme_commands()
    assert len(commands) == 2, commands
    main_cmd, test_cmd = commands
    assert main_cmd.startswith("python3 -m venv .venv && ")
    assert main_cmd.endswith(".venv/bin/raynas run examples/quickstart.yaml")
    assert test_cmd.startswith("python3 -m venv .venv && ")
    ci = (REPO / ".ci" / "run").read_text()
    assert "README" in ci


@pytest.mark.slow
def test_readme_main_command_runs_the_quickstart(tmp_path: Path) -> None:
    """The README's main job, as a fresh user runs it (the install part is this venv)."""
    main_cmd = readme_commands()[0]
    job = main_cmd.split(" && ")[-1]
    assert job == ".venv/bin/raynas run examples/quickstart.yaml"
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    (tmp_path / ".venv").symlink_to(VENV_BIN.parent)
    proc = subprocess.run(
        job, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = raynas.load(tmp_path / "runs" / "quickstart")
    assert len(result.trials) == 20
    assert result.trials["val_acc"].max() >= 0.9
