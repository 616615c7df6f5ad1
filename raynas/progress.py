"""Tune callbacks of a run: one printed line per finished trial, and why trials stopped."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback


class TrialPrinter(Callback):
    """``[ 3/20] ok  val_acc=0.9412 params=12,345 arch=|nor_conv_3x3~0|+...`` per trial."""

    def __init__(self, exp: Any, *, enabled: bool = True) -> None:
        self.metric = exp.objective.metric
        self.total = exp.budget.trials
        self.enabled = enabled
        self.done = 0
        #: Distinct error lines seen, with the first trial that raised each.
        self.errors: dict[str, str] = {}

    def _line(self, trial: Any, status: str) -> None:
        if not self.enabled:
            return
        self.done += 1
        r = trial.last_result or {}
        value = r.get(self.metric)
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        params = r.get("params")
        ptxt = f"{params:,}" if isinstance(params, int) else "-"
        sys.stdout.write(
            f"[{self.done:>3}/{self.total}] {status:<20} {self.metric}={shown} "
            f"epochs={r.get('epoch', '-')} params={ptxt} arch={r.get('arch_str', '?')}\n"
        )
        sys.stdout.flush()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, str((trial.last_result or {}).get("status", "ok")))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, "error")
        if not self.enabled:
            return
        from raynas.analysis import error_line

        path = getattr(trial, "error_file", None)
        message = error_line(Path(path)) if path else None
        if message and message not in self.errors:
            self.errors[message] = str(trial.trial_id)
            sys.stdout.write(f"        error: {message} (traceback: {trial.error_file})\n")
        elif message:
            sys.stdout.write(f"        error: the same as trial {self.errors[message]}\n")
        sys.stdout.flush()


class StopRecorder(Callback):
    """Record the trials that ``budget.time_s`` cut, so analysis calls them ``timed_out``.

    When Tune's time budget runs out it stops every live trial without the completion event
    a trial that finished, or that a scheduler stopped, gets; the trial's files then look
    like those of an early-stopped trial. This callback notes which trials got that event,
    and at the end of an experiment whose budget ran out writes ``{trial_id: "time_budget"}``
    (atomically, JSON) for every other trial that ended short of its planned length.

    Args:
        path: The file to write (``<experiment>/raynas_stops.json``).
        time_s: The experiment's ``budget.time_s``.
        epochs: The planned length of a trial (``train.epochs``), unless a result says its
            own (``epochs_total``).
    """

    def __init__(self, path: Path, time_s: float, epochs: int) -> None:
        self.path, self.time_s, self.epochs = Path(path), float(time_s), int(epochs)
        self.start: float | None = None
        self.ended: set[str] = set()

    def setup(self, *args: Any, **info: Any) -> None:
        self.start = time.monotonic()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ended.add(str(trial.trial_id))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ended.add(str(trial.trial_id))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.start is None or time.monotonic() - self.start < self.time_s:
            return
        try:  # a resumed run keeps what the first part recorded
            stopped = dict(json.loads(self.path.read_text()))
        except (OSError, ValueError, TypeError):
            stopped = {}
        for trial in trials:
            last = trial.last_result or {}
            planned = last.get("epochs_total") or self.epochs
            short = not last.get("done") and int(last.get("epoch") or 0) < int(planned)
            if str(trial.trial_id) not in self.ended and short:
                stopped[str(trial.trial_id)] = "time_budget"
        if stopped:
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(stopped, sort_keys=True))
            os.replace(tmp, self.path)
