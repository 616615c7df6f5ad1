"""Every command in the README's usage block runs and succeeds, as a user would type it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

VENV = Path(sys.executable).parent.parent


def usage_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("## Usage", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_usage_block_lists_the_cli() -> None:
    commands = usage_commands()
    assert len(commands) >= 8
    assert all(c.startswith(".venv/bin/raynas ") for c in commands)


@pytest.mark.slow
def test_every_usage_command_succeeds(tmp_path: Path) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    (tmp_path / "benchmarks").mkdir()
    shutil.copytree(REPO / "benchmarks" / "data", tmp_path / "benchmarks" / "data")
    (tmp_path / ".venv").symlink_to(VENV)
    out: dict[str, str] = {}
    for command in usage_commands():
        proc = subprocess.run(
            command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        out[command.split()[1]] = out.get(command.split()[1], "") + proc.stdout
    # the `run` line: 4 one-epoch children, each with cost metrics and a checkpoint
    folder = tmp_path / "runs" / "tiny"
    assert (
        f"experiment folder: {folder.resolve()}" in out["run"] and "top 4 by val_acc" in out["run"]
    )
    assert "completed=4" in out["analyze"]
    assert (folder / "raynas_experiment.yaml").is_file()
    trial_dirs = sorted(p.parent for p in folder.glob("*/params.json"))
    arch_ids = set()
    for tdir in trial_dirs:
        last = json.loads((tdir / "result.json").read_text().splitlines()[-1])
        assert last["epoch"] == 1 and last["status"] == "ok" and 0.0 <= last["val_acc"] <= 1.0
        assert {"params", "flops", "latency_ms"} <= last.keys()
        assert list(tdir.glob("checkpoint_*/state.pt")), f"no checkpoint in {tdir}"
        arch_ids.add(last["arch_id"])
    assert len(trial_dirs) == len(arch_ids) == 4, "random search must not repeat an architecture"
    # the same name again is refused, and the folder is kept
    again = subprocess.run(
        ".venv/bin/raynas run examples/quickstart.yaml --name tiny",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2 and "already exists" in again.stderr
    assert len(list(folder.glob("*/params.json"))) == 4
    assert (tmp_path / "runs" / "tiny-tables" / "trials.parquet").is_file()
    assert list((tmp_path / "runs" / "tiny-plots").glob("*.png"))
    assert (tmp_path / "runs" / "tiny-best").is_dir()


@pytest.mark.slow
def test_the_python_snippet_runs_as_written(tmp_path: Path) -> None:
    """The README's Python block, in a checkout where the main command already ran."""
    text = (REPO / "README.md").read_text()
    snippet = text.split("From Python:", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    (tmp_path / "runs" / "from-python").mkdir(parents=True)  # a folder of that name exists
    (tmp_path / "runs" / "from-python" / "raynas_experiment.yaml").write_text("name: old\n")
    proc = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "top" in proc.stdout.lower() or "val_acc" in proc.stdout
    assert len(list((tmp_path / "runs" / "from-python").glob("*/params.json"))) == 4


@pytest.mark.slow
def test_the_plugin_commands_run_as_written(tmp_path: Path) -> None:
    text = (REPO / "README.md").read_text()
    section = text.split("## Your own space, strategy or trainable (plugins)", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands = [ln.split("#", 1)[0].strip() for ln in block.splitlines() if ln.strip()]
    assert len(commands) == 2
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    (tmp_path / ".venv").symlink_to(VENV)
    outputs = []
    for command in commands:
        proc = subprocess.run(
            command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        outputs.append(proc.stdout)
    assert "tiny_cnn" in outputs[0]
    assert "status: completed=8" in outputs[1]
