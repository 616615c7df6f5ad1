"""``evolution``: regularized (aging) evolution, Real et al., AAAI 2019 ("AmoebaNet").

A population of the ``population_size`` most recent *results*. Each child is the mutation of
the best of ``sample_size`` members drawn at random (a tournament); when a result arrives
the oldest member dies, whatever its score, which keeps the search from resting on one lucky
evaluation. The algorithm is asynchronous: until the population holds ``population_size``
results, proposals are random; after that every proposal is a child of the population as it
stands at that moment.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from raynas.space import Arch, Space
from raynas.strategies import register_strategy
from raynas.strategies.base import StrategyError, check_int, check_range
from raynas.strategies.proxy import ProxyGuided


def tournament_parent(
    space: Space, rng: np.random.Generator, tournament: Callable[[], Arch], crossover_prob: float
) -> Arch:
    """The parent of a steady-state child: a ``tournament()`` winner or, with probability
    ``crossover_prob``, the uniform crossover of two winners (then mutated by the caller)."""
    parent = tournament()
    if crossover_prob > 0.0 and rng.random() < crossover_prob:
        parent = space.crossover(parent, tournament(), rng)
    return parent


@register_strategy("evolution", description="regularized (aging) evolution, Real et al. 2019")
class RegularizedEvolution(ProxyGuided):
    """Regularized evolution: tournament selection, mutation, the oldest member dies.

    Works on every space (continuous decisions mutate by resampling). A failed trial joins
    the population with the lowest rank, so it ages out like any other member. Members are
    compared by :meth:`~raynas.strategies.base.NASSearcher.values` at each tournament (an
    early-stopped member within its rung), never by a number kept from when it arrived.

    Args:
        space: The search space.
        population_size: Members kept (P); the first P results come from random proposals.
        sample_size: Members drawn for each tournament (S), ``1 <= S <= P``. ``S = 1`` is a
            random walk; ``S = P`` always mutates the current best.
        crossover_prob: Probability that a child is the uniform crossover of two tournament
            winners (then mutated) instead of a mutant of one winner. 0 is Real et al.
        **kwargs: ``metric``, ``mode``, ``seed``, ``allow_repeats`` (see
            :class:`~raynas.strategies.base.NASSearcher`) and ``proxy`` (see
            :class:`~raynas.strategies.proxy.ProxyGuided`: the initial population is the top of
            a proxy-ranked random pool, each child the proxy's best of ``move_candidates``
            mutants of the tournament winner).

    Raises:
        StrategyError: An argument out of range.

    Example:
        >>> searcher = RegularizedEvolution(space, population_size=50, sample_size=10,
        ...                                 metric="val_acc", mode="max", seed=0)
        >>> searcher.suggest("trial_1")
        {'arch': {...}}
    """

    def __init__(
        self,
        space: Space,
        *,
        population_size: int = 20,
        sample_size: int = 5,
        crossover_prob: float = 0.0,
        **kwargs: Any,
    ) -> None:
        check_int("population_size", population_size, 2)
        check_int("sample_size", sample_size, 1)
        if sample_size > population_size:
            raise StrategyError(
                f"sample_size must be in [1, population_size], got ({sample_size=}, "
                f"{population_size=})"
            )
        crossover = check_range("crossover_prob", crossover_prob, 0.0, 1.0)
        super().__init__(space, **kwargs)
        self.population_size = population_size
        self.sample_size = sample_size
        self.crossover_prob = crossover
        #: (arch, history index) of the most recent results, oldest first.
        self.population: deque[tuple[Arch, int]] = deque(maxlen=population_size)

    def propose(self) -> Arch | None:
        if len(self.population) < self.population_size or self.space.cardinality == 1:
            return self.draw_initial()
        parent = tournament_parent(self.space, self.rng, self._tournament, self.crossover_prob)
        return self.best_of_draws(lambda: self.space.mutate(parent, self.rng))

    def observe(self, arch: Arch, score: float | None, result: Mapping[str, Any] | None) -> None:
        self.population.append((arch, len(self.history) - 1))  # maxlen: the oldest dies

    def _tournament(self) -> Arch:
        """The best of ``sample_size`` members drawn without replacement (failed rank last)."""
        picks = self.rng.choice(len(self.population), size=self.sample_size, replace=False)
        values = self.values()
        best_arch, index = self.population[int(picks[0])]
        best = values[index]  # NaN (failed) loses every comparison
        for i in picks[1:]:
            arch, index = self.population[int(i)]
            if values[index] > best or (np.isnan(best) and not np.isnan(values[index])):
                best_arch, best = arch, values[index]
        return best_arch
