"""``report: {live: true}``: the run itself keeps ``report.html`` current.

A Tune callback on the driver: a background thread rewrites the report every
``report.interval_s`` seconds while the search runs (the page reloads itself), and the end
of the experiment writes the final page without the reload. Writing is atomic, so a browser
or ``raynas serve``-style file server never reads half a page.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from ray.tune import Callback

log = logging.getLogger(__name__)


class LiveReport(Callback):
    """Rewrite ``folder``'s report every ``interval_s`` seconds during the run, and at its end.

    Args:
        folder: The experiment folder (local).
        interval_s: Seconds between two rewrites (and the open page's reload period).
        k: Top-k architectures drawn.
    """

    def __init__(self, folder: Path, interval_s: float, k: int = 5) -> None:
        self.folder, self.interval_s, self.k = Path(folder), float(interval_s), int(k)
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        #: Pages written (by the thread and at the end); ``written`` is set at each write.
        self.writes = 0
        self.written: threading.Event | None = None

    def __getstate__(self) -> dict[str, Any]:
        # A Tuner pickles its callbacks; the thread and its events belong to one run.
        return {**self.__dict__, "_stop": None, "_thread": None, "written": None}

    def _write(self, refresh_s: float | None) -> None:
        from raynas.report.build import write_report

        try:
            write_report(self.folder, k=self.k, refresh_s=refresh_s)
            self.writes += 1
            if self.written is not None:
                self.written.set()
        except Exception as err:  # a report must never fail the search it describes
            log.warning("raynas: the live report was not written (%s)", err)

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s):
            self._write(self.interval_s)

    def setup(self, *args: Any, **info: Any) -> None:
        self._stop, self.written = threading.Event(), threading.Event()
        self._thread = threading.Thread(
            target=self._loop, args=(self._stop,), name="raynas-live-report", daemon=True
        )
        self._thread.start()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._stop is not None and self._thread is not None:
            self._stop.set()
            self._thread.join()
        self._write(None)  # the final page: no reload
