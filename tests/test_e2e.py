"""End to end: the real CLI in a subprocess and the Python API on a real Ray runtime."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import raynas
from tests.conftest import QUICKSTART, REPO, small_experiment

VENV_BIN = Path(sys.executable).parent


def raynas_cli(*args: str, cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    exe = VENV_BIN / "raynas"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "raynas.cli"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [*cmd, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.slow
def test_quickstart_through_the_cli(tmp_path: Path) -> None:
    proc = raynas_cli(
        "run",
        str(QUICKSTART),
        "--set",
        "budget.trials=4",
        "--set",
        "train.epochs=1",
        "--storage",
        str(tmp_path),
        "--name",
        "e2e",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    folder = tmp_path / "e2e"
    assert f"experiment folder: {folder}" in proc.stdout
    assert "top 4 by val_acc" in proc.stdout
    assert (folder / "raynas_experiment.yaml").is_file()
    trial_dirs = sorted(p.parent for p in folder.glob("*/params.json"))
    assert len(trial_dirs) == 4
    arch_ids = set()
    for tdir in trial_dirs:
        results = [json.loads(line) for line in (tdir / "result.json").read_text().splitlines()]
        assert results[-1]["epoch"] == 1
        assert results[-1]["status"] == "ok"
        assert 0.0 <= results[-1]["val_acc"] <= 1.0
        assert {"params", "flops", "latency_ms"} <= results[-1].keys()
        arch_ids.add(results[-1]["arch_id"])
        checkpoints = list(tdir.glob("checkpoint_*/state.pt"))
        assert checkpoints, f"no checkpoint in {tdir}"
    assert len(arch_ids) == 4, "random search must not repeat an architecture"

    analyzed = raynas_cli("analyze", str(folder), "--top", "3", "--parquet", str(tmp_path / "pq"))
    assert analyzed.returncode == 0, analyzed.stderr
    assert "completed=4" in analyzed.stdout
    assert (tmp_path / "pq" / "trials.parquet").is_file()

    again = raynas_cli("run", str(QUICKSTART), "--storage", str(tmp_path), "--name", "e2e")
    assert again.returncode == 2
    assert "already exists" in again.stderr


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
