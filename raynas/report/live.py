"""``raynas report DIR --watch``: rewrite the report while the search runs.

Each round loads the folder, writes the page (atomically, with a meta refresh so an open
browser tab reloads itself) and stops once the experiment is over: Tune recorded every trial
as ended and no live driver holds the folder, or the driver that held it is gone (a crashed
run's folder changes no more). The last page is written without the refresh.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from raynas.files import LOCK_FILE
from raynas.report.build import write_report
from raynas.results.analysis import ExperimentResult, load

__all__ = ["experiment_over", "watch"]


def _driver_alive(folder: Path) -> bool | None:
    """Whether the driver holding ``folder`` runs: None without a lock, True for a lock from
    another host (it cannot be checked from here)."""
    try:
        lock = json.loads((folder / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(lock, dict):
        return None
    if lock.get("host") not in (None, socket.gethostname()):
        return True
    try:
        os.kill(int(lock.get("pid", -1)), 0)
    except (ProcessLookupError, ValueError, TypeError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def experiment_over(result: ExperimentResult) -> bool:
    """Whether ``result``'s folder will change no more: its driver's lock is stale, or there is
    no lock and Tune recorded every trial as ended."""
    alive = _driver_alive(result.path)
    if alive is False:
        return True
    return alive is None and result.finished


def watch(
    folder: str | Path,
    out: str | Path | None = None,
    *,
    interval_s: float = 5.0,
    k: int = 5,
    on_write: Callable[[Path, ExperimentResult], None] | None = None,
    max_rounds: int | None = None,
) -> Path:
    """Rewrite the report of ``folder`` every ``interval_s`` seconds until the experiment is
    over (see :func:`experiment_over`); Ctrl-C (KeyboardInterrupt) propagates to the caller.

    Args:
        folder: The experiment folder.
        out: The report file (default ``folder/report.html``).
        interval_s: Seconds between rewrites (and the page's reload period).
        k: Top-k of the report.
        on_write: Called with the path and the result after each write (tests, progress).
        max_rounds: Stop after this many writes even if the experiment runs on.

    Returns:
        The report's path.
    """
    rounds = 0
    while True:
        result = load(folder)
        over = experiment_over(result)
        path = write_report(folder, out, k=k, refresh_s=None if over else interval_s, result=result)
        rounds += 1
        if on_write is not None:
            on_write(path, result)
        if over or (max_rounds is not None and rounds >= max_rounds):
            return path
        time.sleep(interval_s)
