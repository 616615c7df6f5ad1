"""A Tune callback that prints one line per finished trial."""

from __future__ import annotations

import sys
from typing import Any

from ray.tune import Callback


class TrialPrinter(Callback):
    """``[ 3/20] ok  val_acc=0.9412 params=12,345 arch=|nor_conv_3x3~0|+...`` per trial."""

    def __init__(self, exp: Any, *, enabled: bool = True) -> None:
        self.metric = exp.objective.metric
        self.total = exp.budget.trials
        self.enabled = enabled
        self.done = 0

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
