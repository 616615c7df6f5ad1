"""The result loggers keep the driver's copy of a restarted trial's files (raynas/loggers.py).

The trial below carries the four attributes Tune's ``LoggerCallback._restore_from_remote``
reads; the files, the storage filesystem and the loggers are Tune's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs
import pytest
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from raynas.loggers import CsvProgressLogger, JsonResultLogger, result_loggers


def _trial(tmp_path: Path) -> SimpleNamespace:
    local, remote = tmp_path / "staging" / "trial", tmp_path / "storage" / "trial"
    local.mkdir(parents=True)
    remote.mkdir(parents=True)
    return SimpleNamespace(
        checkpoint=object(),  # restarted from a checkpoint: the case Tune restores in
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
