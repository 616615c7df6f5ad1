"""User mistakes the CLI answers with one line naming the field, exit 2, no traceback, and
nothing written: an empty config, a folder that is no experiment, an unusable storage, bad
scheduler arguments."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import QUICKSTART, REPO
from tests.test_analysis import VENV_BIN


def raynas(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "raynas"), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def assert_user_error(proc: subprocess.CompletedProcess[str], message: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("got ") <= 1, proc.stderr  # no "got X, got X"


def test_an_empty_config_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    for command in ("validate", "run"):
        assert_user_error(raynas(command, str(empty), cwd=tmp_path), "config: ")
        assert not (tmp_path / "runs").exists()
    assert "is empty; write at least the sections" in raynas("validate", str(empty)).stderr


def test_analyze_of_a_folder_that_is_no_experiment(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    proc = raynas("analyze", str(tmp_path))
    assert_user_error(proc, f"dir: {str(tmp_path)!r} is not an experiment folder")


def test_an_unusable_storage_names_the_field_and_writes_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder must go")
    proc = raynas("run", str(QUICKSTART), "--storage", str(blocker / "runs"), cwd=tmp_path)
    assert_user_error(proc, "storage: cannot create the experiment folder")
    assert blocker.read_text() == "a file where a folder must go"


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["scheduler.name=asha", "scheduler.grace_period=-1"], "scheduler.grace_period: "),
        (["scheduler.name=asha", "scheduler.reduction_factor=1"], "scheduler.reduction_factor: "),
        (["scheduler.name=hyperband", "scheduler.max_t=0"], "scheduler.max_t: "),
        (["scheduler.name=median", "scheduler.grace_period=-2"], "scheduler.grace_period: "),
        (["resources.gpu=1.5"], "resources.gpu: must be a fraction <= 1 or a whole number"),
    ],
)
def test_out_of_range_arguments_fail_validation_not_tune(
    overrides: list[str], message: str
) -> None:
    args = [a for o in overrides for a in ("--set", o)]
    assert_user_error(raynas("validate", str(QUICKSTART), *args), message)
