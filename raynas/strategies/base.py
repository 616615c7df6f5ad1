"""``NASSearcher``: the plumbing every NAS strategy needs, over Ray Tune's ``Searcher``.

A strategy implements two methods:

- ``propose() -> arch | None``: the next architecture to evaluate, or None to wait for results;
- ``observe(arch, score, result)``: a finished evaluation. ``score`` is the objective turned
  to "higher is better" (the sign of ``mode`` is handled here, once), or None when the trial
  gave no usable value (error, NaN/inf, metric missing, ``status: constraint_violated`` or
  ``diverged``): treat None as the worst value; :meth:`NASSearcher.worst_score` gives a number.

The base owns the rest: trial-to-arch bookkeeping, no duplicate trials in discrete spaces
(a duplicate proposal is re-proposed; after ``MAX_REPROPOSE`` tries an unseen member is
drawn), ``FINISHED`` when the space is exhausted, metric and mode, a per-instance seeded RNG,
and ``save``/``restore`` of the complete state, RNGs included, so a restored searcher proposes
exactly what an uninterrupted one would.

Fidelity: a trial that a scheduler (ASHA, HyperBand, median) stopped before the full number
of epochs reports a score at a lower fidelity. It was stopped because peers beat it *at that
fidelity*, so it is observed as censored: its score is capped at the worst score of any
fully trained child seen so far (it never outranks a full-budget result), and ``result``
carries ``fidelity`` (epochs trained) and ``censored: True``. A trial whose architecture a
scheduler changed (PBT-evolution) is observed under the architecture it ended with.
"""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from ray.tune.search import Searcher

from raynas.space import Arch, Space

#: Result statuses that mean "no usable objective value".
FAILED_STATUSES = frozenset({"constraint_violated", "diverged", "error", "oom"})
MAX_REPROPOSE = 50
ENUMERATE_UNSEEN_LIMIT = 200_000


class StrategyError(ValueError):
    """A strategy that cannot work on the given space or with the given arguments."""


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` if it is an integer (not a bool) ``>= minimum``, else a StrategyError
    naming the argument, e.g. ``population_size must be an integer >= 2, got ...``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StrategyError(f"{name} must be an integer >= {minimum}, got {name}={value!r}")
    return value


def result_score(
    result: Mapping[str, Any] | None, metric: str, mode: str, *, error: bool = False
) -> float | None:
    """The objective of a result as "higher is better", or None when it is unusable."""
    if error or not result:
        return None
    if str(result.get("status", "ok")) in FAILED_STATUSES:
        return None
    value = result.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return value if mode == "max" else -value


class NASSearcher(Searcher):
    """Base class of every raynas strategy (a Ray Tune ``Searcher``).

    Args:
        space: The search space.
        metric: The result key to optimise (may come later from ``set_search_properties``).
        mode: ``"max"`` or ``"min"``.
        seed: Seed of this searcher's RNG (``self.rng``); same seed, same search.
        allow_repeats: Propose architectures already evaluated or in flight.
    """

    #: Registry name, set by ``@register_strategy``.
    name: ClassVar[str] = "base"
    #: Whether the strategy needs a discrete space.
    needs_discrete: ClassVar[bool] = False

    def __init__(
        self,
        space: Space,
        *,
        metric: str | None = None,
        mode: str | None = None,
        seed: int = 0,
        allow_repeats: bool = False,
    ) -> None:
        if mode is not None and mode not in ("max", "min"):
            raise StrategyError(f"mode must be 'max' or 'min', got {mode!r}")
        super().__init__(metric=metric, mode=mode)
        if not isinstance(space, Space):
            raise StrategyError(f"space must be a raynas Space, got {type(space).__name__}")
        if self.needs_discrete and not space.is_discrete:
            raise StrategyError(
                f"strategy {self.name!r} needs a discrete space; {space.name!r} has continuous "
                "decisions (give each Float a step, or use 'random', 'evolution' or 'tpe')"
            )
        self.space = space
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.allow_repeats = allow_repeats
        self.live: dict[str, Arch] = {}
        self.seen: set[str] = set()
        self.history: list[tuple[Arch, float | None]] = []
        self.last_results: dict[str, dict[str, Any]] = {}
        self.max_fidelity: int | None = None
        self.full_scores: list[float] = []

    # --- the strategy API -----------------------------------------------------------
    def propose(self) -> Arch | None:
        """The next architecture to evaluate, or None to wait for running trials."""
        raise NotImplementedError

    def observe(self, arch: Arch, score: float | None, result: Mapping[str, Any] | None) -> None:
        """Learn from a finished evaluation (``score`` None: failed, treat as worst)."""

    # --- helpers for strategies -----------------------------------------------------
    @property
    def observed_scores(self) -> list[float]:
        return [s for _, s in self.history if s is not None]

    def worst_score(self) -> float:
        """A number for failed trials: below every valid score seen so far."""
        scores = self.observed_scores
        if not scores:
            return 0.0
        lo, hi = min(scores), max(scores)
        return lo - max(hi - lo, abs(lo) * 0.1, 1e-3)

    def score_or_worst(self, score: float | None) -> float:
        return self.worst_score() if score is None else score

    def is_seen(self, arch: Arch) -> bool:
        return self.space.arch_id(arch) in self.seen

    def random_unseen(self) -> Arch | None:
        """A member not yet evaluated nor in flight (None when the space is exhausted)."""
        for _ in range(MAX_REPROPOSE):
            arch = self.space.sample(self.rng)
            if self.space.arch_id(arch) not in self.seen:
                return arch
        card = self.space.cardinality
        if card is not None and card <= ENUMERATE_UNSEEN_LIMIT:
            unseen = [a for a in self.space.enumerate() if self.space.arch_id(a) not in self.seen]
            if not unseen:
                return None
            return unseen[int(self.rng.integers(len(unseen)))]
        return self.space.sample(self.rng)

    def exhausted(self) -> bool:
        card = self.space.cardinality
        return not self.allow_repeats and card is not None and len(self.seen) >= card

    # --- Tune's Searcher API ----------------------------------------------------------
    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        if metric and not self._metric:
            self._metric = metric
        if mode and not self._mode:
            if mode not in ("max", "min"):
                raise StrategyError(f"mode must be 'max' or 'min', got {mode!r}")
            self._mode = mode
        train = config.get("train") if isinstance(config, dict) else None
        epochs = train.get("epochs") if isinstance(train, dict) else None
        if isinstance(epochs, int) and epochs > 0:
            self.max_fidelity = epochs
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        if self.exhausted():
            return Searcher.FINISHED
        arch: Arch | None = None
        for _ in range(MAX_REPROPOSE):
            arch = self.propose()
            if arch is None:
                return None
            arch = self.space.canonical(arch)
            if self.allow_repeats or self.space.arch_id(arch) not in self.seen:
                break
            arch = None
        if arch is None:
            arch = self.random_unseen()
            if arch is None:
                return Searcher.FINISHED
        arch = self.space.canonical(arch)
        self.seen.add(self.space.arch_id(arch))
        self.live[trial_id] = arch
        return {"arch": copy.deepcopy(arch)}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in self.live:
            self.last_results[trial_id] = dict(result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        arch = self.live.pop(trial_id, None)
        last = self.last_results.pop(trial_id, None)
        if arch is None:
            return
        if result is None:
            result = last
        final_arch = (result.get("config") or {}).get("arch") if result else None
        if final_arch is not None and self.space.is_valid(final_arch):
            arch = self.space.canonical(final_arch)  # a scheduler may have mutated it (PBT)
        score = result_score(result, self.metric or "", self.mode or "max", error=error)
        if self.metric is None:
            score = None
        if score is not None and result is not None:
            score, result = self._fidelity_adjusted(score, result)
        self.history.append((arch, score))
        self.observe(arch, score, result)

    def _fidelity_adjusted(
        self, score: float, result: Mapping[str, Any]
    ) -> tuple[float, dict[str, Any]]:
        """Cap an early-stopped (lower-fidelity) score below every full-fidelity score."""
        epoch = result.get("epoch")
        # A replayed run (tabular trainable) says its own length.
        full = result.get("epochs_total") or self.max_fidelity
        if not isinstance(full, int | float) or not isinstance(epoch, int | float):
            return score, dict(result)
        if epoch >= full:
            self.full_scores.append(score)
            return score, dict(result)
        if self.full_scores:
            score = min(score, min(self.full_scores))
        return score, {**result, "fidelity": epoch, "censored": True}

    # --- state ------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue the same search, RNGs included."""
        return copy.deepcopy(self.__dict__)

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(copy.deepcopy(state))

    def save(self, checkpoint_path: str) -> None:
        path = Path(checkpoint_path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(self.get_state(), f)
        tmp.replace(path)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))
