"""Zero-cost proxies inside a search: a ranked warm-up pool and best-of-K moves, for any strategy.

A strategy that subclasses :class:`ProxyGuided` takes ``proxy={name, warmup_pool,
move_candidates}`` and marks the one or two places where it draws an architecture:

- :meth:`ProxyGuided.draw_initial` where it would take a random unseen member (evolution's
  initial population, BO's initial design, local search's starts, random search): the first
  call draws a pool of ``warmup_pool`` distinct unseen members from the searcher's seeded RNG,
  ranks it by the proxy (NaN last, draw order on ties) and each call proposes the next of that
  ranking; once the pool is used up it is a random unseen member again;
- :meth:`ProxyGuided.best_of_draws` where it makes a move (evolution's mutation): the proxy's
  best of ``move_candidates`` draws; :meth:`ProxyGuided.best_of` ranks a set the strategy
  already has (local search's neighbours, BO's acquisition candidates).

The scorer is a pluggable callable ``arch -> float`` (higher is better; NaN ranks last); one
with a ``many(archs) -> list[float]`` method is asked for a whole pool at once (e.g. chunked
over Ray tasks). Scores are cached by arch id (part of the saved state, so a restored search
rescores nothing), cost no trial of the budget, and their cost is counted in
:attr:`ProxyGuided.proxy_stats`. The scorer is wiring, not state: give it in
``proxy["scorer"]`` or with :meth:`ProxyGuided.set_proxy_scorer`; ``save`` leaves it out.

This layer does not import :mod:`raynas.proxies` (strategies depend on the space and the
registries only): a real run builds a model scorer from it and hands it over;
``raynas bench search --proxy-table`` hands over a table lookup.

Example:
    >>> searcher = get_strategy("evolution", space, metric="val_acc", mode="max", seed=0,
    ...                         proxy={"name": "synflow", "warmup_pool": 1000,
    ...                                "move_candidates": 10, "scorer": my_scorer})
    >>> searcher.proxy_stats
    {'proxy': 'synflow', 'archs_scored': 0, 'seconds': 0.0, 'lookups': 0}
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from raynas.space import Arch, Space
from raynas.strategies.base import (
    ENUMERATE_UNSEEN_LIMIT,
    MAX_REPROPOSE,
    NASSearcher,
    StrategyError,
)

#: The names ``raynas.proxies`` registers (per-model proxies, then ensembles of a score table).
#: Kept here because strategies may not import ``raynas.proxies``; a test checks they agree.
PER_MODEL_PROXIES = (
    "synflow",
    "zen",
    "params",
    "flops",
    "snip",
    "grasp",
    "grad_norm",
    "fisher",
    "zico",
    "jacob_cov",
    "nwot",
    "meco",
)
TABLE_ENSEMBLES = ("vote", "rank_average")
KNOWN_PROXIES = (*PER_MODEL_PROXIES, *TABLE_ENSEMBLES)
PROXY_KEYS = ("name", "warmup_pool", "move_candidates", "scorer")
DEFAULT_WARMUP_POOL = 100
DEFAULT_MOVE_CANDIDATES = 10

#: ``arch -> score`` (higher is better, NaN: invalid).
ProxyScorer = Callable[[Arch], float]


class BatchScorer:
    """A scorer over whole lists: ``BatchScorer(score_many)`` with ``score_many(archs) ->
    scores``, so a pool is scored in one call (e.g. chunked over Ray tasks) instead of one
    arch at a time.

    Example:
        >>> scorer = BatchScorer(lambda archs: [float(len(str(a))) for a in archs])
        >>> scorer.many([arch_a, arch_b])
        [52.0, 57.0]
    """

    def __init__(self, score_many: Callable[[list[Arch]], Sequence[float]]) -> None:
        if not callable(score_many):
            raise StrategyError(f"score_many must be callable, got {score_many!r}")
        self.score_many = score_many

    def many(self, archs: Sequence[Arch]) -> list[float]:
        values = list(self.score_many(list(archs)))
        if len(values) != len(archs):
            raise StrategyError(
                f"proxy scorer returned {len(values)} scores for {len(archs)} archs"
            )
        return values

    def __call__(self, arch: Arch) -> float:
        return self.many([arch])[0]


@dataclass(frozen=True)
class ProxySettings:
    """A validated ``strategy.proxy``.

    Attributes:
        name: The proxy (a ``raynas.proxies`` name, or any label when a scorer is given).
        warmup_pool: Size of the ranked random pool the first proposals come from (1: off).
        move_candidates: Candidates per move, the proxy's best is proposed (1: off).
    """

    name: str
    warmup_pool: int = DEFAULT_WARMUP_POOL
    move_candidates: int = DEFAULT_MOVE_CANDIDATES


def _check_count(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise StrategyError(
            f"strategy.proxy.{key} must be an integer >= 1, got {key}={value!r} (1 turns "
            "that use of the proxy off)"
        )
    return value


def parse_proxy(value: Any) -> tuple[ProxySettings | None, ProxyScorer | None]:
    """``strategy.proxy`` as settings and an optional scorer; None: no proxy.

    Args:
        value: None, a proxy name, or a mapping with ``name`` and optionally ``warmup_pool``,
            ``move_candidates`` (integers >= 1) and ``scorer`` (a callable ``arch -> float``).

    Raises:
        StrategyError: naming the bad key (``strategy.proxy.name`` ...) and the fix; an
            unknown proxy name lists the known ones.
    """
    if value is None:
        return None, None
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise StrategyError(
            f"strategy.proxy must be a mapping like {{name: synflow, warmup_pool: 1000, "
            f"move_candidates: 10}}, got {value!r}"
        )
    unknown = sorted(str(k) for k in value if k not in PROXY_KEYS)
    if unknown:
        raise StrategyError(
            f"strategy.proxy has no key {unknown[0]!r}; its keys are {list(PROXY_KEYS)}"
        )
    scorer = value.get("scorer")
    if scorer is not None and not callable(scorer):
        raise StrategyError(f"strategy.proxy.scorer must be callable arch -> float, got {scorer!r}")
    name = value.get("name")
    if not isinstance(name, str) or not name:
        raise StrategyError(
            f"strategy.proxy.name must be a proxy name, one of {list(KNOWN_PROXIES)}; got "
            f"name={name!r}"
        )
    if scorer is None and name not in KNOWN_PROXIES:
        raise StrategyError(
            f"strategy.proxy.name: proxy {name!r} is unknown; choose one of {list(KNOWN_PROXIES)}"
        )
    settings = ProxySettings(
        name,
        _check_count("warmup_pool", value.get("warmup_pool", DEFAULT_WARMUP_POOL)),
        _check_count("move_candidates", value.get("move_candidates", DEFAULT_MOVE_CANDIDATES)),
    )
    return settings, scorer


class ProxyGuided(NASSearcher):
    """A :class:`NASSearcher` whose initial draws and moves can be guided by a proxy.

    Args:
        space: The search space.
        proxy: None (no proxy), or ``{name, warmup_pool, move_candidates, scorer}`` (see
            :func:`parse_proxy`; ``warmup_pool`` defaults to 100, ``move_candidates`` to 10).
        **kwargs: The base's arguments (``metric``, ``mode``, ``seed``, ``allow_repeats``).

    Raises:
        StrategyError: A bad ``proxy`` (naming ``strategy.proxy.<key>``).
    """

    TRANSIENT_PROXY: ClassVar[tuple[str, ...]] = ("_proxy_scorer",)

    def __init__(self, space: Space, *, proxy: Mapping[str, Any] | None = None, **kwargs: Any):
        settings, scorer = parse_proxy(proxy)
        super().__init__(space, **kwargs)
        #: The validated settings (None: no proxy; the strategy behaves as without one).
        self.proxy = settings
        self._proxy_scorer: ProxyScorer | None = scorer
        #: Proxy score by arch id (state: a restored search rescores nothing).
        self.proxy_cache: dict[str, float] = {}
        #: The ranked warm-up pool, best first (None: not drawn yet), and the next position.
        self.warmup: list[Arch] | None = None
        self.warmup_next = 0
        self.proxy_seconds = 0.0
        self.proxy_scored = 0
        self.proxy_lookups = 0

    def _transient(self) -> tuple[str, ...]:
        return (*super()._transient(), *self.TRANSIENT_PROXY)

    def set_proxy_scorer(self, scorer: ProxyScorer | None) -> None:
        """Score with ``scorer`` (``arch -> float``; may have ``many(archs)``); wiring, not
        state: ``restore`` keeps the scorer set on the instance.

        Raises:
            StrategyError: ``scorer`` is not callable.
        """
        if scorer is not None and not callable(scorer):
            raise StrategyError(f"scorer must be callable arch -> float, got {scorer!r}")
        self._proxy_scorer = scorer

    @property
    def proxy_stats(self) -> dict[str, Any]:
        """What the proxy cost so far (no trial of the budget): ``{proxy, archs_scored,
        seconds, lookups}``; ``archs_scored`` counts scorer calls (cache misses), ``lookups``
        every score asked for; None values when no proxy is configured."""
        return {
            "proxy": None if self.proxy is None else self.proxy.name,
            "archs_scored": self.proxy_scored,
            "seconds": self.proxy_seconds,
            "lookups": self.proxy_lookups,
        }

    # --- scores ---------------------------------------------------------------------------
    def proxy_scores(self, archs: Sequence[Arch]) -> np.ndarray:
        """The proxy score of each arch (NaN: invalid), from the cache or the scorer.

        Raises:
            StrategyError: a proxy is configured but no scorer was set.
        """
        if self._proxy_scorer is None:
            name = None if self.proxy is None else self.proxy.name
            raise StrategyError(
                f"strategy {self.name!r}: strategy.proxy {name!r} has no scorer; the runner or "
                "bench search sets one (set_proxy_scorer), or pass proxy['scorer']"
            )
        ids = [self.space.arch_id(a) for a in archs]
        self.proxy_lookups += len(ids)
        todo: dict[str, Arch] = {}
        for key, arch in zip(ids, archs):
            if key not in self.proxy_cache:
                todo.setdefault(key, arch)
        if todo:
            start = time.perf_counter()
            many = getattr(self._proxy_scorer, "many", None)
            if callable(many):
                values = list(many(list(todo.values())))
            else:
                values = [self._proxy_scorer(a) for a in todo.values()]
            self.proxy_seconds += time.perf_counter() - start
            self.proxy_scored += len(todo)
            for key, value in zip(todo, values):
                self.proxy_cache[key] = _finite(value)
        return np.asarray([self.proxy_cache[k] for k in ids], dtype=np.float64)

    def best_of(self, candidates: Sequence[Arch]) -> int:
        """Index of the proxy's best candidate (NaN last; the first on ties)."""
        scores = self.proxy_scores(candidates)
        return int(_ranking(scores)[0])

    # --- the hooks a strategy calls -------------------------------------------------------
    def draw_initial(self) -> Arch | None:
        """An initial (or restart) arch: the next of the proxy-ranked warm-up pool, else a
        random unseen member (None when none is left)."""
        if self.proxy is None or self.proxy.warmup_pool <= 1:
            return self.random_unseen()
        if self.warmup is None:
            pool = self._random_pool(self.proxy.warmup_pool)
            order = _ranking(self.proxy_scores(pool)) if pool else np.zeros(0, dtype=int)
            self.warmup = [pool[int(i)] for i in order]
        while self.warmup_next < len(self.warmup):
            arch = self.warmup[self.warmup_next]
            self.warmup_next += 1
            if not self.is_seen(arch):
                return arch
        return self.random_unseen()

    def best_of_draws(self, draw: Callable[[], Arch]) -> Arch:
        """``draw()`` once without a proxy; with one, the proxy's best of ``move_candidates``
        draws (unseen distinct ones preferred, so a move is not wasted on a repeat)."""
        if self.proxy is None or self.proxy.move_candidates <= 1:
            return draw()
        raw = [self.space.canonical(draw()) for _ in range(self.proxy.move_candidates)]
        fresh: dict[str, Arch] = {}
        for arch in raw:
            key = self.space.arch_id(arch)
            if self.allow_repeats or key not in self.seen:
                fresh.setdefault(key, arch)
        if not fresh:
            return raw[0]
        candidates = list(fresh.values())
        return candidates[self.best_of(candidates)]

    def _random_pool(self, n: int) -> list[Arch]:
        """Up to ``n`` distinct unseen canonical members drawn from ``self.rng``."""
        pool: dict[str, Arch] = {}
        card = self.space.cardinality
        limit = n if card is None else min(n, card - len(self.seen))
        for _ in range(MAX_REPROPOSE * max(limit, 1)):
            if len(pool) >= limit:
                break
            arch = self.space.canonical(self.space.sample(self.rng))
            key = self.space.arch_id(arch)
            if key not in self.seen:
                pool.setdefault(key, arch)
        if len(pool) < limit and card is not None and card <= ENUMERATE_UNSEEN_LIMIT:
            rest = [
                a
                for a in self.space.enumerate()
                if (k := self.space.arch_id(a)) not in self.seen and k not in pool
            ]
            for i in self.rng.permutation(len(rest))[: limit - len(pool)]:
                arch = self.space.canonical(rest[int(i)])
                pool[self.space.arch_id(arch)] = arch
        return list(pool.values())


def _finite(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def _ranking(scores: np.ndarray) -> np.ndarray:
    """Indices best first: higher scores first, NaN last, the earlier index on ties."""
    key = np.where(np.isnan(scores), np.inf, -scores)
    return np.argsort(key, kind="stable")
