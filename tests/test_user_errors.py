"""User mistakes the CLI answers with one line naming the field, exit 2, no traceback, and
nothing written: an empty config, a folder that is no experiment, an unusable storage, bad
scheduler arguments."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import QUICKSTART, REPO, VENV_BIN


def raynas(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    # The test plugin (tests.faulty) is importable from the repository, for workers too.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [str(VENV_BIN / "raynas"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
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


def test_a_data_root_without_the_files_fails_validation_not_every_trial(tmp_path: Path) -> None:
    (tmp_path / "empty-root").mkdir()
    proc = raynas(
        "run",
        str(QUICKSTART),
        *("--set", "data.name=fashion_mnist", "--set", f"data.root={tmp_path / 'empty-root'}"),
        cwd=tmp_path,
    )
    assert_user_error(proc, "data.root: fashion_mnist: not found at")
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_search_in_which_every_trial_failed_exits_1_and_shows_the_error_once(
    tmp_path: Path,
) -> None:
    import json

    from tests.conftest import small_experiment

    exp = small_experiment(tmp_path, plugins=["tests.faulty"], space="faulty", name="allfail")
    exp["space_args"] = {"behaviours": ["raise"]}
    exp["budget"] = {"trials": 1}
    config = tmp_path / "exp.yaml"
    config.write_text(json.dumps(exp))
    proc = raynas("run", str(config))
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "raynas: error: no trial succeeded" in proc.stderr
    line = "RuntimeError: deliberate failure while building the child"
    assert f"        error: {line} (traceback: " in proc.stdout  # the progress line
    assert f"  1 trial(s): {line}" in proc.stdout  # the summary


def test_a_folder_another_live_driver_runs_is_never_replaced(tmp_path: Path) -> None:
    import json
    import socket

    from raynas.experiment.lock import check_free

    folder = tmp_path / "runs" / "busy"
    folder.mkdir(parents=True)
    (folder / "precious.txt").write_text("a trial's result")
    (folder / "raynas_experiment.yaml").write_text("name: busy\n")
    holder = subprocess.Popen(["sleep", "120"])  # a live process stands for the other driver
    try:
        lock = {"pid": holder.pid, "host": socket.gethostname(), "started": 0}
        (folder / "raynas_driver.json").write_text(json.dumps(lock))
        args = ("--storage", str(tmp_path / "runs"), "--name", "busy", "--overwrite")
        proc = raynas("run", str(QUICKSTART), *args, cwd=tmp_path)
        assert_user_error(proc, f"is being run by pid {holder.pid} on host")
        assert (folder / "precious.txt").read_text() == "a trial's result"
        assert_user_error(raynas("resume", str(folder)), "is being run by pid")
    finally:
        holder.kill()
        holder.wait()
    check_free(folder)  # the holder is gone: its lock is stale and the folder is free


def test_an_unreachable_address_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    proc = raynas(
        "run", str(QUICKSTART), "--address", "127.0.0.1:1", "--storage", str(tmp_path / "runs")
    )
    assert_user_error(proc, "--address: cannot reach a Ray head at '127.0.0.1:1' within 5 s")
    assert not (tmp_path / "runs").exists()


def test_a_resume_of_a_finished_experiment_is_refused(tmp_path: Path) -> None:
    from tests.test_analysis import write_state, write_trial

    folder = tmp_path / "done"
    folder.mkdir()
    (folder / "raynas_experiment.yaml").write_text(
        "name: done\ntrain: {epochs: 3}\nbudget: {trials: 2}\n"
    )
    write_trial(folder, "h0", 1, [0.5, 0.6, 0.7])
    write_trial(folder, "h1", 2, [0.4])
    write_state(folder, {"h0": "TERMINATED", "h1": "TERMINATED"})
    assert_user_error(raynas("resume", str(folder)), "is finished (2 trials ended")


@pytest.mark.slow
def test_constraints_that_exclude_the_space_are_a_config_error(tmp_path: Path) -> None:
    proc = raynas(
        "run",
        str(QUICKSTART),
        *("--set", "objective.constraints=['params <= 10']", "--set", "budget.trials=2"),
        *("--storage", str(tmp_path / "runs")),
    )
    assert_user_error(proc, "objective.constraints: strategy 'random': the constraints exclude")
    assert "violates ['params <= 10']" in proc.stderr


def test_a_command_releases_its_folder_only_after_its_ray_stopped(tmp_path: Path) -> None:
    """The CLI keeps the lock until the Ray it started is shut down: a driver killed while
    its Ray stops still names its process group, so the next command reaps that Ray."""
    from raynas.experiment.lock import holding, keeping_locks
    from raynas.files import LOCK_FILE

    seen: list[bool] = []
    with keeping_locks(lambda: seen.append((tmp_path / LOCK_FILE).is_file())):
        with holding(tmp_path):
            pass
        assert (tmp_path / LOCK_FILE).is_file()  # kept after the run's block ends
    assert seen == [True]  # still held while the Ray stops
    assert not (tmp_path / LOCK_FILE).exists()  # released afterwards
    with holding(tmp_path):  # outside the CLI: released when the block ends
        pass
    assert not (tmp_path / LOCK_FILE).exists()
