"""Tune's result-file loggers (``result.json``, ``progress.csv``), written where they are read.

Tune's logger callbacks write a trial's rows in the driver's staging folder and a background
upload copies that folder to the experiment's storage folder at each experiment snapshot. Two
consequences a crash makes visible:

- A driver killed between a row and the next upload loses the row for good: a resume starts
  from the storage copy. When the trial's checkpoint of that epoch was recorded, the trial goes
  on from there and its ``result.json`` misses an epoch (seen in raynas' kill loop as a trial
  whose rows are epochs 1 and 3).
- When a trial starts again from a checkpoint within one session (every pause and resume of
  synchronous PBT, every exploit, every retry), Tune copies the storage file over the driver's
  own copy and appends to it; that copy can be one upload old or half written (seen in CI as a
  PBT trial that trained 4 epochs labelled ``early_stopped``).

So, when the storage is on this machine (a folder or ``file://``), these loggers append each
row to the trial's files *in the experiment folder itself*, flushed as it is reported (a row
written survives a SIGKILL of the driver), and never copy a file over them; nothing in the
staging folder shadows them, so Tune's upload leaves them alone. A file a kill left with a cut
last line gets a newline first, so the next row stays whole. For remote storage (``s3://``...),
Tune's staging and upload remain, and a storage copy replaces the driver's copy only when the
driver has none (a resume in a new Ray session, another machine).

:func:`rows_dir` says where a trial's rows are; the journal cuts, through it, the rows a resumed
trial will report again (:func:`raynas.experiment.journal.drop_stale_rows`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.result import EXPR_PROGRESS_FILE, EXPR_RESULT_FILE


def rows_dir(trial: Any) -> Path:
    """The folder of ``trial``'s ``result.json`` and ``progress.csv`` as the loggers write
    them: its folder in the experiment folder for local storage, else Tune's staging folder."""
    from pyarrow import fs as pafs

    storage = trial.storage
    if isinstance(storage.storage_filesystem, pafs.LocalFileSystem):
        return Path(storage.trial_fs_path)
    return Path(trial.local_path)


def _is_direct(trial: Any) -> bool:
    return rows_dir(trial) != Path(trial.local_path)


def _open_rows(path: Path) -> TextIO:
    """``path`` opened for appending rows; a last line a kill cut is ended first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        if f.tell() > 0:
            f.seek(-1, 2)
            if f.read(1) != b"\n":
                f.write(b"\n")
    return open(path, "a", encoding="utf-8")  # the logger keeps it open until the trial ends


class _KeepDriverCopy:
    """Mixin: the storage copy replaces the driver's copy only when the driver has none."""

    def _restore_from_remote(self, file_name: str, trial: Any) -> None:
        if trial.local_path and Path(trial.local_path, file_name).exists():
            return
        super()._restore_from_remote(file_name, trial)  # type: ignore[misc]


class JsonResultLogger(_KeepDriverCopy, JsonLoggerCallback):
    """Tune's ``result.json`` logger, writing into the experiment folder when it is local."""

    def log_trial_start(self, trial: Any) -> None:
        if not _is_direct(trial):
            super().log_trial_start(trial)
            return
        if trial in self._trial_files:
            self._trial_files[trial].close()
        trial.init_local_path()  # params.json stays with Tune's upload
        self.update_config(trial, trial.config)
        self._trial_files[trial] = _open_rows(rows_dir(trial) / EXPR_RESULT_FILE)


class CsvProgressLogger(_KeepDriverCopy, CSVLoggerCallback):
    """Tune's ``progress.csv`` logger, writing into the experiment folder when it is local."""

    def _setup_trial(self, trial: Any) -> None:
        if not _is_direct(trial):
            super()._setup_trial(trial)
            return
        if trial in self._trial_files:
            self._trial_files[trial].close()
        path = rows_dir(trial) / EXPR_PROGRESS_FILE
        self._trial_continue[trial] = path.exists() and path.stat().st_size > 0
        self._trial_files[trial] = _open_rows(path)
        self._trial_csv[trial] = None  # type: ignore[assignment]


def result_loggers() -> list[Any]:
    """The loggers that replace Tune's default JSON and CSV ones (Tune adds a default only
    when no callback of its class is given)."""
    return [JsonResultLogger(), CsvProgressLogger()]
