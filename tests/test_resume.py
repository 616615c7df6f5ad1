"""A driver killed with SIGKILL mid-search loses no recorded trial; `raynas resume` finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import raynas
from tests.conftest import QUICKSTART, REPO, recorded_finished

VENV_BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_sigkill_then_resume_keeps_completed_trials(tmp_path: Path) -> None:
    overrides = [
        "--set",
        "budget.trials=6",
        "--set",
        "budget.concurrent=1",
        "--set",
        "train.epochs=2",
        "--set",
        "space_args={C: 4, N: 1}",
    ]
    cmd = [
        str(VENV_BIN / "raynas"),
        "run",
        str(QUICKSTART),
        "--storage",
        str(tmp_path),
        "--name",
        "killed",
        *overrides,
    ]
    folder = tmp_path / "killed"
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.time() + 300
        while len(recorded_finished(folder)) < 2:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, "no two trials finished in 300 s"
            time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: an abrupt crash
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    before = recorded_finished(folder)
    assert 2 <= len(before) < 6
    time.sleep(3)  # let the orphaned workers notice their driver is gone

    resumed = subprocess.run(
        [str(VENV_BIN / "raynas"), "resume", str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    after = recorded_finished(folder)
    for name, lines in before.items():
        assert after[name] == lines, f"completed trial {name} was changed by the resume"
    result = raynas.load(folder)
    assert len(result.trials) == 6, "the budget must be met exactly"
    assert (result.trials["status"] == "completed").all(), result.trials[["trial_id", "status"]]
    assert result.trials["arch_id"].is_unique, "no architecture may be evaluated twice"
