"""Every command in the README's usage block runs and succeeds, as a user would type it."""

from __future__ import annotations

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
    for command in usage_commands():
        proc = subprocess.run(
            command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert (tmp_path / "runs" / "tiny-tables" / "trials.parquet").is_file()
    assert list((tmp_path / "runs" / "tiny-plots").glob("*.png"))
    assert (tmp_path / "runs" / "tiny-best").is_dir()
