"""The hand driver: suggest / report / complete a searcher the way Ray Tune does, no Ray runtime."""

from __future__ import annotations

import copy

import numpy as np
from ray.tune.search import Searcher

from raynas.space import Arch
from raynas.testing.strategies._common import (
    METRIC,
    Objective,
    _fail,
)


class HandDriver:
    """Drive a searcher by hand as Tune would: suggest, report, complete; FIFO or shuffled.

    Args:
        searcher: The searcher under test.
        objective: ``arch -> value``: a number (reported as ``{metric: value}``), a result
            dict, None (completed with ``result=None``), ``"error"`` (``error=True``) or
            ``"reported-only"`` (``{metric: 0.5}`` by ``on_trial_result``, then
            ``on_trial_complete(trial_id, None)``).
        concurrency: Most trials in flight; the oldest (or, with ``shuffle``, a random one)
            completes when the limit is reached or the searcher asks to wait.
        metric: Result key for numeric objectives.
        shuffle: Complete a random in-flight trial (seeded by ``seed``) instead of the oldest.
        seed: Seed of the completion order.

    Example:
        >>> driver = HandDriver(searcher, lambda arch: 0.5, concurrency=4)
        >>> archs = driver.run(20)
    """

    def __init__(
        self,
        searcher: Searcher,
        objective: Objective,
        *,
        concurrency: int = 1,
        metric: str = METRIC,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        self.searcher = searcher
        self.objective = objective
        self.concurrency = concurrency
        self.metric = metric
        self.shuffle = shuffle
        self.rng = np.random.default_rng(seed)
        self.in_flight: list[tuple[str, Arch]] = []
        self.proposals: list[Arch] = []
        self.finished = False
        self.count = 0

    def clone_for(self, searcher: Searcher) -> HandDriver:
        """A driver in this driver's exact state (trials in flight, order RNG) for ``searcher``."""
        other = copy.copy(self)
        other.searcher = searcher
        other.rng = copy.deepcopy(self.rng)
        other.in_flight = list(self.in_flight)
        other.proposals = list(self.proposals)
        return other

    def complete_one(self) -> None:
        """Complete one trial in flight (the oldest, or a random one with ``shuffle``)."""
        i = int(self.rng.integers(len(self.in_flight))) if self.shuffle else 0
        trial_id, arch = self.in_flight.pop(i)
        value = self.objective(arch)
        if value == "error":
            self.searcher.on_trial_complete(trial_id, None, error=True)
            return
        if value == "reported-only":  # the metric came with on_trial_result only
            self.searcher.on_trial_result(trial_id, {self.metric: 0.5})
            self.searcher.on_trial_complete(trial_id, None)
            return
        result = {self.metric: value} if isinstance(value, int | float) else value
        if result is not None:
            self.searcher.on_trial_result(trial_id, dict(result))
        self.searcher.on_trial_complete(trial_id, result)

    def complete_all(self) -> None:
        while self.in_flight:
            self.complete_one()

    def step(self) -> Arch | None:
        """One suggestion (completing trials as needed); None once the searcher FINISHED."""
        while True:
            if len(self.in_flight) >= self.concurrency:
                self.complete_one()
            trial_id = f"trial_{self.count:05d}"
            out = self.searcher.suggest(trial_id)
            if out == Searcher.FINISHED:
                self.finished = True
                return None
            if out is None:
                if not self.in_flight:
                    name = getattr(self.searcher, "name", type(self.searcher).__name__)
                    raise _fail(name, "suggest() returned None with no trial in flight")
                self.complete_one()
                continue
            self.count += 1
            if not (isinstance(out, dict) and set(out) == {"arch"}):
                name = getattr(self.searcher, "name", "?")
                raise _fail(name, f"suggest() must return {{'arch': arch}}, got {out!r}")
            arch = out["arch"]
            self.in_flight.append((trial_id, arch))
            self.proposals.append(arch)
            return arch  # type: ignore[no-any-return]

    def run(self, n: int) -> list[Arch]:
        """Up to ``n`` more proposals (fewer if the searcher finishes); returns them."""
        out = []
        for _ in range(n):
            arch = self.step()
            if arch is None:
                break
            out.append(arch)
        return out
