"""``local_search``: hill climbing over single-decision neighbours, White et al., 2020.

"Local Search is State of the Art for Neural Architecture Search Benchmarks": start at a
random architecture, evaluate every neighbour (every architecture one decision away), move to
the best neighbour if it beats the current one, and restart from a random architecture at a
local optimum. Neighbours already evaluated are not evaluated again; their known scores take
part in the comparison.

Asynchronous: the centre and its neighbours are proposed (in a random order) while earlier
ones are still in flight; once every neighbour of the centre is proposed, ``propose()`` waits
(returns None) until their results are in, because the next move depends on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from raynas.space import Arch, Space
from raynas.strategies import register_strategy
from raynas.strategies.base import StrategyError
from raynas.strategies.proxy import ProxyGuided


@register_strategy("local_search", description="hill climbing with restarts, White et al. 2020")
class LocalSearch(ProxyGuided):
    """Local search with random restarts; needs a discrete space.

    Args:
        space: A discrete search space.
        first_improvement: Move as soon as a finished neighbour beats the centre (the best
            such neighbour finished so far) instead of waiting for the whole neighbourhood.
        **kwargs: ``metric``, ``mode``, ``seed``, ``allow_repeats`` (see
            :class:`~raynas.strategies.base.NASSearcher`) and ``proxy`` (see
            :class:`~raynas.strategies.proxy.ProxyGuided`: starts come from a proxy-ranked
            random pool, and each neighbour proposed is the proxy's best of
            ``move_candidates`` of the centre's neighbours not yet proposed).

    Raises:
        StrategyError: The space has continuous decisions, or a bad argument.

    Example:
        >>> searcher = LocalSearch(raynas.get_space("nb201"), metric="val_acc", mode="max")
        >>> searcher.suggest("trial_1")  # the random start; then its 24 neighbours
        {'arch': {...}}
    """

    needs_discrete = True

    def __init__(self, space: Space, *, first_improvement: bool = False, **kwargs: Any) -> None:
        if not isinstance(first_improvement, bool):
            raise StrategyError(
                f"first_improvement must be True or False, got {first_improvement!r}"
            )
        super().__init__(space, **kwargs)
        self.first_improvement = first_improvement
        #: History index of each finished arch (its latest result); compared by value.
        self.index: dict[str, int] = {}
        self.center: Arch | None = None
        self.center_id: str | None = None
        #: (arch id, arch) of the centre's neighbours not yet proposed (popped from the end).
        self.queue: list[tuple[str, Arch]] = []
        #: Every neighbour of the centre by arch id (proposed now or evaluated before).
        self.neighbourhood: dict[str, Arch] = {}
        #: Number of moves and restarts so far (for logs and tests).
        self.moves = 0
        self.restarts = 0

    def propose(self) -> Arch | None:
        # Each pass proposes, waits, or moves / restarts. Moves go strictly up through known
        # scores and restarts propose at once, so the loop ends.
        while True:
            if self.center is None:
                return self._restart()
            better = self._best_improvement() if self.first_improvement else None
            if better is not None:
                self._set_center(better)
                self.moves += 1
                continue
            arch = self._next_neighbour()
            if arch is not None:
                return arch
            step, target = self._decide()
            if step == "wait":
                return None
            if target is None:
                self.center = None  # local optimum: restart on the next pass
                continue
            self._set_center(target)
            self.moves += 1

    def observe(self, arch: Arch, score: float | None, result: Mapping[str, Any] | None) -> None:
        self.index[self.space.arch_id(arch)] = len(self.history) - 1

    def on_infeasible(self, arch: Arch, violations: Sequence[str]) -> None:
        key = self.space.arch_id(arch)
        if key == self.center_id:
            self.center, self.center_id = None, None  # an infeasible start: restart
        self.neighbourhood.pop(key, None)  # never evaluated: do not wait for it

    def score(self, arch_id: str) -> float | None:
        """The value of a finished arch now (None: failed or not finished)."""
        i = self.index.get(arch_id)
        return None if i is None else self.value(i)

    # --- internals --------------------------------------------------------------------
    def _next_neighbour(self) -> Arch | None:
        """The next unseen neighbour of the queue: the last one, or with a proxy the best of
        ``move_candidates`` of the unseen ones drawn at random; None when none is left."""
        if self.proxy is None or self.proxy.move_candidates <= 1:
            while self.queue:
                key, arch = self.queue.pop()
                if key not in self.seen:
                    return arch
            return None
        self.queue = [(k, a) for k, a in self.queue if k not in self.seen]
        if not self.queue:
            return None
        k = min(self.proxy.move_candidates, len(self.queue))
        picks = [int(i) for i in self.rng.choice(len(self.queue), size=k, replace=False)]
        best = picks[self.best_of([self.queue[i][1] for i in picks])]
        return self.queue.pop(best)[1]

    def _restart(self) -> Arch | None:
        arch = self.draw_initial()
        if arch is None:
            return None
        self.restarts += 1
        self._set_center(arch)
        return arch

    def _set_center(self, arch: Arch) -> None:
        self.center = self.space.canonical(arch)
        self.center_id = self.space.arch_id(self.center)
        neighbours = [(self.space.arch_id(a), a) for a in self.space.neighbours(self.center)]
        self.neighbourhood = dict(neighbours)
        order = self.rng.permutation(len(neighbours))
        # Popped from the end: the last index of the permutation is proposed first.
        self.queue = [neighbours[int(i)] for i in order]

    def _best_improvement(self) -> Arch | None:
        """The best finished neighbour that beats the finished centre, if any."""
        if self.center_id not in self.index:
            return None
        best_id, best = None, self.score(self.center_id)
        for i in self.neighbourhood:
            s = self.score(i)
            if s is not None and (best is None or s > best):
                best_id, best = i, s
        return None if best_id is None else self.neighbourhood[best_id]

    def _decide(self) -> tuple[str, Arch | None]:
        """``("wait", None)`` for results, ``("move", arch)``, or ``("restart", None)``.

        Results still missing while no trial is in flight will never come (a trial lost by
        the caller); they are then left out rather than waited for forever.
        """
        can_wait = bool(self.live)
        if self.center_id not in self.index and can_wait:
            return "wait", None
        best_id, best = None, self.score(self.center_id or "")
        finished = [i for i in self.neighbourhood if i in self.index]
        for i in finished:
            s = self.score(i)
            if s is not None and (best is None or s > best):
                best_id, best = i, s
        if len(finished) < len(self.neighbourhood) and can_wait:
            return "wait", None
        if best_id is None:
            return "restart", None
        return "move", self.neighbourhood[best_id]
