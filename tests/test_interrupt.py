"""Ctrl-C on ``raynas run``: Tune stops gracefully, raynas exits 130 and says how to continue."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, VENV_BIN, small_experiment


@pytest.mark.slow
def test_ctrl_c_exits_130_with_the_resume_command(tmp_path: Path) -> None:
    config = tmp_path / "exp.yaml"
    exp = small_experiment(tmp_path, budget={"trials": 40, "concurrent": 1}, name="ctrlc")
    config.write_text(json.dumps(exp))
    proc = subprocess.Popen(
        [str(VENV_BIN / "raynas"), "run", str(config)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # synchronise on the first finished trial, not on a sleep
        if line.startswith("[  1/40]"):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    folder = (tmp_path / "runs" / "ctrlc").resolve()
    assert proc.returncode == 130, err[-3000:]
    assert f"raynas: interrupted; continue with `raynas resume {folder}`" in err
    assert "Tuner.restore" not in err + out
    assert "Traceback" not in err
    assert list(folder.glob("experiment_state-*.json")), "Tune saved the experiment"
