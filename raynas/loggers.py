"""Tune's result-file loggers (``result.json``, ``progress.csv``), minus one race.

When a trial starts again from a checkpoint (every pause and resume of synchronous PBT, every
exploit, every retry), Tune's logger callbacks copy the trial's file from the experiment's
storage folder over the driver's own copy in its staging folder, then append to it. The storage
copy is written by Tune's background upload, which runs at every experiment snapshot (raynas
snapshots at every step). So the copy that overwrites the driver's file can be one upload old
(the last rows are gone) or half written (the next row is glued to a cut line, and the file
reads as if the trial had stopped early). Seen in CI as a PBT trial that trained 4 epochs
labelled ``early_stopped``.

The driver's own copy is never older than the storage copy while it exists: Tune writes it
first and uploads it from there. These loggers therefore restore from storage only when the
driver has no copy (a resume in a new Ray session, another machine).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback


class _KeepDriverCopy:
    """Mixin: the storage copy replaces the driver's copy only when the driver has none."""

    def _restore_from_remote(self, file_name: str, trial: Any) -> None:
        if trial.local_path and Path(trial.local_path, file_name).exists():
            return
        super()._restore_from_remote(file_name, trial)  # type: ignore[misc]


class JsonResultLogger(_KeepDriverCopy, JsonLoggerCallback):
    """Tune's ``result.json`` logger, restoring from storage only into an empty trial folder."""


class CsvProgressLogger(_KeepDriverCopy, CSVLoggerCallback):
    """Tune's ``progress.csv`` logger, restoring from storage only into an empty trial folder."""


def result_loggers() -> list[Any]:
    """The loggers that replace Tune's default JSON and CSV ones (Tune adds a default only
    when no callback of its class is given)."""
    return [JsonResultLogger(), CsvProgressLogger()]
