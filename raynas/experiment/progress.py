"""Tune callbacks of a run: what it prints while it runs, and why trials stopped."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.stopper import Stopper

from raynas.results.analysis import arch_text, short_arch

#: What a run prints: ``quiet`` nothing; ``summary`` only the final table; ``trials`` also a
#: line per finished trial and, on a terminal, a live status line; ``epochs`` also a line per
#: reported epoch.
LEVELS = ("quiet", "summary", "trials", "epochs")


def output_level(verbose: bool | str) -> str:
    """``verbose`` of :func:`raynas.run` as one of :data:`LEVELS` (True: ``trials``)."""
    if verbose is True:
        return "trials"
    if verbose is False:
        return "quiet"
    if verbose in LEVELS:
        return str(verbose)
    raise ValueError(f"verbose: {verbose!r} is not one of True, False, {', '.join(LEVELS)}")


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class TrialPrinter(Callback):
    """What the user sees while a search runs.

    - A line per finished trial, ``[ 3/20] completed  val_acc=0.9412 epochs=4 ...``, whose
      status word says why it ended: ``completed``, ``stopped by asha`` (a scheduler ended it
      before ``train.epochs``), ``error``, or the trainable's verdict (``constraint_violated``,
      ``diverged``, ``oom``). A resumed run counts on from the trials it already has.
    - On a terminal only, a status line rewritten in place: done / running / pending, the
      best value so far, elapsed time and an estimate of the time left. In a pipe or a CI
      log it is never written, so the log holds one line per trial.
    - With level ``epochs``, a line per reported epoch.

    Args:
        exp: The experiment.
        level: One of :data:`LEVELS`; below ``trials`` this prints nothing.
        stream: Where to write (standard output).
        live: Draw the status line (default: when ``stream`` is a terminal).
    """

    #: Seconds between two redraws of the status line.
    REDRAW_S = 0.5

    def __init__(
        self,
        exp: Any,
        *,
        level: bool | str = "trials",
        stream: Any = None,
        live: bool | None = None,
    ) -> None:
        self.metric, self.mode = exp.objective.metric, exp.objective.mode
        self.total = exp.budget.trials
        self.epochs = exp.train.epochs
        self.time_s = exp.budget.time_s
        self.scheduler = exp.scheduler.name
        self._stream = stream  # None: sys.stdout when written (a Tuner pickles callbacks)
        self._live = live
        self.set_level(level)
        self.done = 0
        self.done_here = 0  # trials this session ended (a resume's rate, for the estimate)
        self.started = time.monotonic()
        self.counted = False
        self.best: float | None = None
        self.shown = ""  # the status line on screen now
        self.drawn_at = 0.0
        #: Distinct error lines seen, with the first trial that raised each.
        self.errors: dict[str, str] = {}

    def set_level(self, level: str | bool) -> None:
        """Print at ``level`` (a resume's ``verbose`` applies to the restored callback)."""
        self.level = LEVELS.index(output_level(level))
        self.enabled = self.level >= LEVELS.index("trials")

    @property
    def stream(self) -> Any:
        return self._stream if self._stream is not None else sys.stdout

    @property
    def live(self) -> bool:
        if not self.enabled:
            return False
        if self._live is not None:
            return self._live
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    # -- the lines -------------------------------------------------------------------------

    def _write(self, text: str) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")  # take the status line away, write, draw it again
        self.stream.write(text)
        if self.shown:
            self.stream.write(self.shown)
        self.stream.flush()

    def _why(self, trial: Any) -> str:
        r = trial.last_result or {}
        status = str(r.get("status", "ok"))
        if status != "ok":
            return status  # the trainable's verdict
        planned = r.get("epochs_total") or self.epochs
        # Not `done`: Tune marks the last result of a trial a scheduler stopped done too.
        if int(r.get("epoch") or 0) < int(planned):
            return f"stopped by {self.scheduler}" if self.scheduler != "fifo" else "stopped early"
        return "completed"

    def _line(self, trial: Any, status: str) -> None:
        self.done += 1
        self.done_here += 1
        if not self.enabled:
            return
        r = trial.last_result or {}
        value = r.get(self.metric)
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        params = r.get("params")
        ptxt = f"{params:,}" if isinstance(params, int) else "-"
        self._write(
            f"[{self.done:>3}/{self.total}] {status:<20} {self.metric}={shown} "
            f"epochs={r.get('epoch', '-')} params={ptxt} "
            f"arch={short_arch(arch_text(r, getattr(trial, 'config', None) or {}))}\n"
        )

    def _status_line(self, trials: list) -> str:
        running = sum(t.status == "RUNNING" for t in trials)
        pending = max(0, self.total - self.done - running)
        elapsed = time.monotonic() - self.started
        parts = [f"{self.done}/{self.total} done", f"{running} running", f"{pending} pending"]
        if self.best is not None:
            parts.append(f"best {self.metric}={self.best:.4f}")
        parts.append(f"{_duration(elapsed)} elapsed")
        left = None
        if self.done_here:
            left = elapsed / self.done_here * (self.total - self.done)
        if self.time_s is not None:
            budget_left = max(0.0, self.time_s - elapsed)
            left = budget_left if left is None else min(left, budget_left)
        if left is not None and self.done < self.total:
            parts.append(f"about {_duration(left)} left")
        width = shutil.get_terminal_size((100, 24)).columns - 1
        return " | ".join(parts)[:width]

    def _draw(self, trials: list, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.live or (not force and now - self.drawn_at < self.REDRAW_S):
            return
        self.drawn_at = now
        self.shown = self._status_line(trials)
        self.stream.write("\r\x1b[K" + self.shown)
        self.stream.flush()

    # -- Tune's events ---------------------------------------------------------------------

    def setup(self, *args: Any, **info: Any) -> None:
        self.started = time.monotonic()
        self.counted, self.done_here, self.shown = False, 0, ""

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if not self.counted:  # a resume starts with the trials that already ended
            self.counted = True
            self.done = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
            for t in trials:
                self._observe((t.last_result or {}).get(self.metric))
        self._draw(trials)

    def _observe(self, value: Any) -> None:
        if isinstance(value, (int, float)) and value == value:
            if self.best is None:
                self.best = float(value)
            else:
                pick = max if self.mode == "max" else min
                self.best = float(pick(self.best, value))

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self._observe(result.get(self.metric))
        if self.level >= LEVELS.index("epochs"):
            value = result.get(self.metric)
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            self._write(
                f"        {trial.trial_id} epoch {result.get('epoch', '-')}/"
                f"{result.get('epochs_total') or self.epochs} {self.metric}={shown}\n"
            )
        self._draw(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._observe((trial.last_result or {}).get(self.metric))
        self._line(trial, self._why(trial))
        self._draw(trials, force=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, "error")
        if self.enabled:
            from raynas.results.analysis import error_line

            path = getattr(trial, "error_file", None)
            message = error_line(Path(path)) if path else None
            if message and message not in self.errors:
                self.errors[message] = str(trial.trial_id)
                self._write(f"        error: {message} (traceback: {trial.error_file})\n")
            elif message:
                self._write(f"        error: the same as trial {self.errors[message]}\n")
        self._draw(trials, force=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = ""


def target_met(
    result: Mapping[str, Any], targets: Mapping[str, float], modes: Mapping[str, str]
) -> bool:
    """Whether ``result`` reaches every ``budget.stop`` target (``>=`` for a ``max`` metric,
    ``<=`` for a ``min`` one); a metric it does not report is not reached."""
    for metric, target in targets.items():
        value = result.get(metric)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
            return False
        if (value < target) if modes.get(metric, "max") == "max" else (value > target):
            return False
    return True


class TargetStop(Stopper):
    """Tune stopper of ``budget.stop``: ends the whole search once a result meets it."""

    def __init__(self, targets: Mapping[str, float], modes: Mapping[str, str]) -> None:
        self.targets, self.modes = dict(targets), dict(modes)
        self.reached = False

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        self.reached = self.reached or target_met(result, self.targets, self.modes)
        return False  # the search ends through stop_all; no single trial is stopped here

    def stop_all(self) -> bool:
        return self.reached


class StopRecorder(Callback):
    """Record the trials the budget cut, so analysis calls them ``timed_out`` (``budget.time_s``
    ran out) or ``stopped_at_target`` (a result met ``budget.stop``).

    When Tune's time budget runs out, or a stopper ends the search, Tune stops every live
    trial without the completion event a trial that finished, or that a scheduler stopped,
    gets; the trial's files then look like those of an early-stopped trial. This callback
    notes which trials got that event, and at the end of an experiment the budget ended writes
    ``{trial_id: "time_budget" | "target"}`` (atomically, JSON) for every other trial that
    ended short of its planned length.

    Args:
        path: The file to write (``<experiment>/raynas_stops.json``).
        time_s: The experiment's ``budget.time_s`` (None: no time budget).
        epochs: The planned length of a trial (``train.epochs``), unless a result says its
            own (``epochs_total``).
        targets: ``budget.stop`` and the mode of each of its metrics (None: no target).
    """

    def __init__(
        self,
        path: Path,
        time_s: float | None,
        epochs: int,
        targets: tuple[Mapping[str, float], Mapping[str, str]] | None = None,
    ) -> None:
        self.path, self.epochs = Path(path), int(epochs)
        self.time_s = None if time_s is None else float(time_s)
        self.targets = targets
        self.reached = False
        self.start: float | None = None
        self.ended: set[str] = set()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if self.targets is not None and not self.reached:
            self.reached = target_met(result, *self.targets)

    def setup(self, *args: Any, **info: Any) -> None:
        self.start = time.monotonic()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ended.add(str(trial.trial_id))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ended.add(str(trial.trial_id))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        timed_out = (
            self.time_s is not None
            and self.start is not None
            and time.monotonic() - self.start >= self.time_s
        )
        if not (self.reached or timed_out):
            return
        reason = "target" if self.reached else "time_budget"
        try:  # a resumed run keeps what the first part recorded
            stopped = dict(json.loads(self.path.read_text()))
        except (OSError, ValueError, TypeError):
            stopped = {}
        for trial in trials:
            last = trial.last_result or {}
            planned = last.get("epochs_total") or self.epochs
            short = not last.get("done") and int(last.get("epoch") or 0) < int(planned)
            if str(trial.trial_id) not in self.ended and short:
                stopped[str(trial.trial_id)] = reason
        if stopped:
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(stopped, sort_keys=True))
            os.replace(tmp, self.path)
