"""``moea``: multi-objective evolution with NSGA-II selection (Deb et al., IEEE TEC 2002).

The search keeps a population of evaluated architectures and ranks it the NSGA-II way:
non-dominated sorting into fronts, then crowding distance inside a front (members in sparse
regions of the front rank higher). It is steady-state, as an asynchronous Tune search must be:
each proposal is a child of the population as it stands (binary tournament on rank, then
crowding; uniform crossover of two winners with ``crossover_prob``; one mutation), and each
result joins the population, after which the worst member (last front, most crowded) leaves.

Objectives come from the experiment (``objective.metric`` plus ``objective.also``) or, when the
strategy is built directly, default to the searcher's metric plus ``("params", "min")``. A
failed result (error, NaN, missing primary metric, ``constraint_violated``, ``diverged``) is
dominated by every valid one; a valid result that lacks a secondary objective counts as the
worst value of that objective.

Not inside Tune's ``Repeater``: it hands the inner searcher only the mean of the primary
metric, so every other objective would be lost and the search would be silently
single-objective. With two or more objectives, ``suggest`` under a ``Repeater`` raises a
:class:`~raynas.strategies.base.StrategyError`; average repeats inside the trainable instead.
A scalarised objective (``objective.scalarize``) is one metric: its mean over repeats is the
scalarisation of the means, so any single-objective strategy, and ``moea`` with that one
objective, works under a ``Repeater``.

Example:
    >>> searcher = get_strategy("moea", space, metric="val_acc", mode="max",
    ...                         objectives=[("val_acc", "max"), ("latency_ms", "min")])
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from raynas.space import Arch, Space
from raynas.strategies import register_strategy
from raynas.strategies.base import NASSearcher, StrategyError, check_int, check_range, result_score
from raynas.strategies.evolution import tournament_parent

DEFAULT_SECONDARY = ("params", "min")
REPEATER_UNSUPPORTED = (
    "strategy 'moea' cannot run inside ray.tune.search.Repeater: the Repeater passes only the "
    "mean of {metric!r} to the searcher, so the other objectives {others} would be lost; "
    "average the repeats inside the trainable, or optimise one (scalarised) objective"
)
#: Frames above ``suggest`` searched for a ``Repeater`` (wrappers may stack).
CALLER_DEPTH = 6


def _under_repeater(searcher: object) -> bool:
    """Whether ``searcher.suggest`` was called by a Tune ``Repeater`` wrapping it (directly
    or through other wrappers, e.g. a ``ConcurrencyLimiter``). The Repeater's own
    interface offers no way to know: it is found among the calling frames."""
    from ray.tune.search import Repeater

    frame = inspect.currentframe()
    try:
        for _ in range(CALLER_DEPTH):
            frame = frame.f_back if frame is not None else None
            if frame is None:
                return False
            owner = frame.f_locals.get("self")
            if isinstance(owner, Repeater):
                inner: Any = owner.searcher
                while inner is not None:
                    if inner is searcher:
                        return True
                    inner = getattr(inner, "searcher", None)
        return False
    finally:
        del frame


def _parse_objectives(objectives: Any) -> list[tuple[str, str]] | None:
    """``[(metric, mode), ...]`` from tuples, lists or ``{metric, mode}`` mappings."""
    if objectives is None:
        return None
    if isinstance(objectives, str | bytes) or not isinstance(objectives, Sequence):
        raise StrategyError(
            f"objectives must be a list of (metric, mode) pairs, got {objectives!r}; e.g. "
            "[['val_acc', 'max'], ['params', 'min']]"
        )
    out: list[tuple[str, str]] = []
    for item in objectives:
        if isinstance(item, Mapping):
            metric, mode = item.get("metric"), item.get("mode", "min")
        elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
            metric, mode = item
        else:
            raise StrategyError(
                f"objectives: each entry must be (metric, mode) or {{metric, mode}}, got {item!r}"
            )
        if not isinstance(metric, str) or not metric:
            raise StrategyError(f"objectives: metric must be a non-empty string, got {metric!r}")
        if mode not in ("max", "min"):
            raise StrategyError(
                f"objectives: mode of {metric!r} must be 'max' or 'min', got {mode!r}"
            )
        out.append((metric, str(mode)))
    if not out:
        raise StrategyError("objectives must name at least one (metric, mode) pair")
    if len({m for m, _ in out}) != len(out):
        raise StrategyError(f"objectives name a metric twice: {out}")
    return out


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether ``a`` Pareto-dominates ``b`` (every value higher is better)."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def non_dominated_sort(points: np.ndarray) -> list[list[int]]:
    """Fronts of row indices of ``points`` (maximisation), best front first (NSGA-II)."""
    n = len(points)
    if n == 0:
        return []
    ge = (points[:, None, :] >= points[None, :, :]).all(axis=2)
    gt = (points[:, None, :] > points[None, :, :]).any(axis=2)
    dom = np.asarray(ge & gt, dtype=bool)  # dom[i, j]: i dominates j
    counts = dom.sum(axis=0)
    fronts: list[list[int]] = []
    current = [i for i in range(n) if counts[i] == 0]
    while current:
        fronts.append(current)
        nxt = []
        for i in current:
            for j in np.flatnonzero(dom[i]):
                counts[j] -= 1
                if counts[j] == 0:
                    nxt.append(int(j))
        current = sorted(nxt)
    return fronts


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each row (boundary rows get ``inf``)."""
    n, m = points.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, math.inf)
    for k in range(m):
        col = points[:, k]
        order = np.argsort(col, kind="stable")
        with np.errstate(invalid="ignore"):  # -inf - -inf: a missing objective, skipped
            span = col[order[-1]] - col[order[0]]
        dist[order[0]] = dist[order[-1]] = math.inf
        if not math.isfinite(span) or span <= 0:
            continue
        gaps = (col[order[2:]] - col[order[:-2]]) / span
        dist[order[1:-1]] += gaps
    return dist


class MultiObjectiveSearcher(NASSearcher):
    """A searcher that may optimise several objectives (:meth:`active_objectives`), and so
    refuses to run inside a Tune ``Repeater`` with more than one: the Repeater passes on the
    mean of the first objective only, and the others' values would be lost."""

    #: The refusal's message, formatted with ``metric`` (the first objective) and ``others``.
    REPEATER_UNSUPPORTED: ClassVar[str] = REPEATER_UNSUPPORTED

    def active_objectives(self) -> list[tuple[str, str]]:
        """The objectives in use, ``(metric, mode)`` each, the first the primary one."""
        raise NotImplementedError

    # --- Tune -----------------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        """The base's ``suggest``; refused inside a ``Repeater`` with several objectives.

        Raises:
            StrategyError: wrapped in ``ray.tune.search.Repeater`` with two or more
                objectives (their other values would be lost; see the module docstring).
        """
        objectives = self.active_objectives()
        if len(objectives) > 1 and _under_repeater(self):
            raise StrategyError(
                self.REPEATER_UNSUPPORTED.format(
                    metric=objectives[0][0], others=[m for m, _ in objectives[1:]]
                )
            )
        return super().suggest(trial_id)


@register_strategy(
    "moea", description="multi-objective evolution: NSGA-II sorting and crowding (Pareto)"
)
class MOEA(MultiObjectiveSearcher):
    """Pareto search: NSGA-II non-dominated sorting and crowding over mutation/crossover.

    Args:
        space: The search space.
        objectives: ``[(metric, mode), ...]``; None: ``[(metric, mode), ("params", "min")]``
            with the searcher's metric and mode. The runner passes the experiment's
            ``objective.metric`` and ``objective.also``.
        population_size: Members kept; the first ``population_size`` results come from random
            proposals.
        tournament_size: Members drawn for each tournament (at most the population).
        crossover_prob: Probability that a child is the crossover of two tournament winners
            (then mutated) rather than a mutant of one.
        **kwargs: ``metric``, ``mode``, ``seed``, ``allow_repeats`` (see
            :class:`~raynas.strategies.base.NASSearcher`).

    Raises:
        StrategyError: An argument out of range or malformed objectives.

    Example:
        >>> searcher = MOEA(space, metric="val_acc", mode="max", population_size=20)
        >>> searcher.suggest("trial_1")
        {'arch': {...}}
    """

    def __init__(
        self,
        space: Space,
        *,
        objectives: list[tuple[str, str]] | None = None,
        population_size: int = 20,
        tournament_size: int = 3,
        crossover_prob: float = 0.1,
        **kwargs: Any,
    ) -> None:
        for name, value, low in (
            ("population_size", population_size, 2),
            ("tournament_size", tournament_size, 1),
        ):
            check_int(name, value, low)
        crossover = check_range("crossover_prob", crossover_prob, 0.0, 1.0)
        parsed = _parse_objectives(objectives)
        super().__init__(space, **kwargs)
        self.objectives = parsed
        self.population_size = population_size
        self.tournament_size = tournament_size
        self.crossover_prob = crossover
        #: (arch, objective vector as "higher is better", or None when the result failed).
        self.population: list[tuple[Arch, list[float] | None]] = []
        #: Selection key per member: (front index, -crowding); lower is better.
        self.keys: list[tuple[float, float]] = []
        #: Per member: its history index when its primary objective is the base's score (then
        #: re-read from ``values()`` at each ranking: an early-stopped member within its
        #: rung), else None.
        self.member_index: list[int | None] = []

    # --- objectives ---------------------------------------------------------------------
    def active_objectives(self) -> list[tuple[str, str]]:
        """The objectives in use: the given ones, or the metric plus ``params`` (min)."""
        if self.objectives is not None:
            return list(self.objectives)
        return [(self.metric or "", self.mode or "max"), DEFAULT_SECONDARY]

    def objective_vector(
        self, score: float | None, result: Mapping[str, Any] | None
    ) -> list[float] | None:
        """``result`` as a "higher is better" vector; None when it failed."""
        objs = self.active_objectives()
        first_metric, first_mode = objs[0]
        if first_metric == self.metric and first_mode == (self.mode or "max"):
            primary = score  # the base's score (failures are None); re-read in _rank
        else:
            primary = None if score is None else result_score(result, first_metric, first_mode)
        if primary is None:
            return None
        vec = [primary]
        for metric, mode in objs[1:]:
            value = result_score(result, metric, mode)
            vec.append(-math.inf if value is None else value)
        return vec

    # --- the strategy API ---------------------------------------------------------------
    def propose(self) -> Arch | None:
        if len(self.population) < self.population_size or self.space.cardinality == 1:
            return self.random_unseen()
        parent = tournament_parent(self.space, self.rng, self._tournament, self.crossover_prob)
        return self.space.mutate(parent, self.rng)

    def observe(self, arch: Arch, score: float | None, result: Mapping[str, Any] | None) -> None:
        self.population.append((arch, self.objective_vector(score, result)))
        first_metric, first_mode = self.active_objectives()[0]
        own = first_metric == self.metric and first_mode == (self.mode or "max")
        # Called by the base right after appending to history (a direct call: not tracked).
        tracked = own and bool(self.history) and self.history[-1][0] is arch
        self.member_index.append(len(self.history) - 1 if tracked else None)
        self._rank()
        if len(self.population) > self.population_size:
            worst = max(range(len(self.population)), key=lambda i: (self.keys[i], -i))
            del self.population[worst]
            del self.member_index[worst]
            self._rank()

    # --- NSGA-II --------------------------------------------------------------------------
    def _rank(self) -> None:
        """Recompute every member's (front, -crowding) key; failed members rank last."""
        values = self.values()
        for (_, vec), index in zip(self.population, self.member_index):
            if vec is not None and index is not None and np.isfinite(values[index]):
                vec[0] = float(values[index])  # the primary as resolved now
        valid = [i for i, (_, v) in enumerate(self.population) if v is not None]
        keys: list[tuple[float, float]] = [(math.inf, 0.0)] * len(self.population)
        if valid:
            points = np.asarray([self.population[i][1] for i in valid], dtype=float)
            for f, front in enumerate(non_dominated_sort(points)):
                crowd = crowding_distance(points[front])
                for local, c in zip(front, crowd):
                    keys[valid[local]] = (float(f), -float(c))
        self.keys = keys

    def _tournament(self) -> Arch:
        """The best (front, then crowding) of ``tournament_size`` members drawn at random."""
        size = min(self.tournament_size, len(self.population))
        picks = self.rng.choice(len(self.population), size=size, replace=False)
        best = min((int(i) for i in picks), key=lambda i: self.keys[i])
        return self.population[best][0]

    def front(self) -> list[tuple[Arch, list[float]]]:
        """The current population's first front: ``(arch, objective vector)`` pairs."""
        return [
            (arch, vec)
            for (arch, vec), key in zip(self.population, self.keys)
            if vec is not None and key[0] == 0
        ]
