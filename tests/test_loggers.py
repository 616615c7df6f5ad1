"""The result loggers (raynas/experiment/loggers.py): rows go straight into a local experiment folder,
and for remote storage the driver's copy of a restarted trial's files is kept.

The trial below carries the attributes Tune's logger callbacks read; the files, the storage
filesystem and the loggers' row writing are Tune's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs
import pytest
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from raynas.experiment.loggers import CsvProgressLogger, JsonResultLogger, result_loggers, rows_dir


class _Trial(SimpleNamespace):
    """Hashable by identity, as Tune's trials are (the loggers key their files by trial)."""

    __hash__ = object.__hash__
    __eq__ = object.__eq__


def _trial(tmp_path: Path) -> SimpleNamespace:
    local, remote = tmp_path / "staging" / "trial", tmp_path / "storage" / "trial"
    local.mkdir(parents=True)
    remote.mkdir(parents=True)
    return _Trial(
        checkpoint=object(),  # restarted from a checkpoint: the case Tune restores in
        config={"arch": "a"},
        init_local_path=lambda: local.mkdir(parents=True, exist_ok=True),
        local_path=str(local),
        storage=SimpleNamespace(
            trial_fs_path=str(remote), storage_filesystem=pyarrow.fs.LocalFileSystem()
        ),
    )


def _rows(epochs: range) -> str:
    return "".join(json.dumps({"epoch": e}) + "\n" for e in epochs)


@pytest.mark.parametrize("logger_cls", [JsonResultLogger, CsvProgressLogger])
def test_a_stale_storage_copy_never_replaces_the_drivers_file(
    tmp_path: Path, logger_cls: type
) -> None:
    trial = _trial(tmp_path)
    name = "result.json" if logger_cls is JsonResultLogger else "progress.csv"
    local, remote = Path(trial.local_path, name), Path(trial.storage.trial_fs_path, name)
    local.write_text(_rows(range(1, 4)))
    remote.write_text(_rows(range(1, 3)) + '{"epo')  # one upload old, cut mid-line
    logger_cls()._restore_from_remote(name, trial)
    assert local.read_text() == _rows(range(1, 4))


def test_an_empty_trial_folder_is_still_restored_from_storage(tmp_path: Path) -> None:
    trial = _trial(tmp_path)
    remote = Path(trial.storage.trial_fs_path, "result.json")
    remote.write_text(_rows(range(1, 3)))
    JsonResultLogger()._restore_from_remote("result.json", trial)
    assert Path(trial.local_path, "result.json").read_text() == _rows(range(1, 3))


def test_they_replace_tunes_default_loggers() -> None:
    # Tune adds its own JSON / CSV logger only when no callback is an instance of its class.
    kinds = {type(c) for c in result_loggers()}
    assert any(issubclass(k, JsonLoggerCallback) for k in kinds)
    assert any(issubclass(k, CSVLoggerCallback) for k in kinds)


def _result(epoch: int) -> dict[str, object]:
    return {"epoch": epoch, "training_iteration": epoch, "val_acc": epoch / 10, "config": {}}


@pytest.mark.parametrize("logger_cls", [JsonResultLogger, CsvProgressLogger])
def test_rows_go_straight_into_a_local_experiment_folder(tmp_path: Path, logger_cls: type) -> None:
    """Nothing for Tune's upload to copy over them, nothing a kill before the upload loses;
    a last line a kill cut is ended before the next row."""
    trial = _trial(tmp_path)
    name = "result.json" if logger_cls is JsonResultLogger else "progress.csv"
    assert rows_dir(trial) == Path(trial.storage.trial_fs_path)
    logger = logger_cls()
    for epoch in (1, 2):
        logger.on_trial_result(epoch, [], trial, _result(epoch))
    stored = Path(trial.storage.trial_fs_path, name)
    assert not Path(trial.local_path, name).exists()
    lines = stored.read_text().splitlines()
    assert len(lines) == (2 if name == "result.json" else 3)  # the CSV has its header
    logger.on_trial_complete(2, [], trial)
    with open(stored, "a") as f:
        f.write('{"epoch": 3, "trainin' if name == "result.json" else "3,0.")  # a cut row
    logger.on_trial_result(3, [], trial, _result(3))  # the trial restarted in a new session
    text = stored.read_text()
    assert text.endswith("\n") and len(text.splitlines()) == len(lines) + 2
    last = text.splitlines()[-1]
    assert (json.loads(last)["epoch"] == 3) if name == "result.json" else last.startswith("3,")
    if name == "result.json":
        assert Path(trial.local_path, "params.json").is_file()  # Tune still uploads params


def test_remote_storage_keeps_tunes_staging(tmp_path: Path) -> None:
    trial = _trial(tmp_path)
    trial.storage.storage_filesystem = pyarrow.fs.SubTreeFileSystem(
        "/", pyarrow.fs.LocalFileSystem()
    )
    assert rows_dir(trial) == Path(trial.local_path)
    logger = JsonResultLogger()
    logger.on_trial_result(1, [], trial, _result(1))
    assert Path(trial.local_path, "result.json").is_file()
    assert not Path(trial.storage.trial_fs_path, "result.json").exists()
