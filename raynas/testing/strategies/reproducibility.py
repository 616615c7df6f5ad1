"""Reproducibility checks: seeds, mode, synchronous batches and concurrency limits change
no search."""

from __future__ import annotations

from typing import Any

from ray.tune.search import ConcurrencyLimiter, Searcher

from raynas.space import Arch, Space
from raynas.strategies import get_strategy
from raynas.testing.strategies._common import (
    METRIC,
    _fail,
    _first_difference,
    _ids,
    hash_objective,
    make_searcher,
    small_space,
)
from raynas.testing.strategies.driver import HandDriver


def _sequence(name: str, space: Space, n: int, *, seed: int, **kwargs: Any) -> list[str]:
    driver = HandDriver(make_searcher(name, space, seed=seed, **kwargs), hash_objective)
    return _ids(space, driver.run(n))


def check_seeded(name: str, n: int = 25, **kwargs: Any) -> None:
    """The same seed gives the same sequence; another seed another one."""
    space = small_space()
    first = _sequence(name, space, n, seed=3, **kwargs)
    if first != _sequence(name, space, n, seed=3, **kwargs):
        raise _fail(name, "two searchers with seed 3 proposed different sequences")
    if first == _sequence(name, space, n, seed=4, **kwargs):
        raise _fail(name, "seeds 3 and 4 proposed the same sequence")


def check_mode(name: str, n: int = 30, **kwargs: Any) -> None:
    """``mode="min"`` on ``-f`` searches exactly like ``mode="max"`` on ``f``; metric and mode
    given later through ``set_search_properties`` work like constructor arguments."""
    space = small_space()

    def neg(arch: Arch) -> float:
        return -hash_objective(arch)

    maxed = HandDriver(make_searcher(name, space, mode="max", **kwargs), hash_objective)
    mined = HandDriver(make_searcher(name, space, mode="min", **kwargs), neg)
    seq_max, seq_min = _ids(space, maxed.run(n)), _ids(space, mined.run(n))
    if seq_max != seq_min:
        raise _fail(name, "mode='min' on -f and mode='max' on f proposed different sequences")
    late = get_strategy(name, space, seed=0, **kwargs)
    late.set_search_properties(METRIC, "max", {})
    if _ids(space, HandDriver(late, hash_objective).run(n)) != seq_max:
        raise _fail(name, "metric/mode from set_search_properties changed the sequence")


def check_sync_batch(name: str, n: int = 30, batch: int = 4, **kwargs: Any) -> None:
    """``set_sync_batch(4)``: the same proposals one trial at a time (FIFO) and with 3, 4 or
    8 in flight completing in random orders."""
    space = small_space()
    runs = []
    for concurrency, shuffle, seed in ((1, False, 0), (4, True, 1), (3, True, 2), (8, True, 3)):
        searcher = make_searcher(name, space, **kwargs)
        searcher.set_sync_batch(batch)
        driver = HandDriver(
            searcher, hash_objective, concurrency=concurrency, shuffle=shuffle, seed=seed
        )
        runs.append((concurrency, _ids(space, driver.run(n))))
    base = runs[0][1]
    if len(base) < n:
        raise _fail(name, f"only {len(base)} proposals in synchronous batches")
    for concurrency, ids in runs[1:]:
        if ids != base:
            first = next((i for i, (x, y) in enumerate(zip(base, ids)) if x != y), len(ids))
            raise _fail(
                name,
                f"synchronous batches of {batch}: {concurrency} in flight diverge from one at a "
                f"time at proposal {first} of {n}",
            )


def check_concurrency_limit(name: str, limit: int = 3, n: int = 30, **kwargs: Any) -> None:
    """``set_max_concurrency`` (which Tune's ``ConcurrencyLimiter`` calls, then leaves the
    limit to the searcher) returns True and is honoured: with ``limit`` trials in flight
    ``suggest`` returns None, before that it proposes what an unlimited searcher proposes;
    a limit changes no search (FIFO), nor a synchronous batch's, and never stalls one."""
    space = small_space()
    searcher = make_searcher(name, space, **kwargs)
    limited = ConcurrencyLimiter(searcher, limit)
    if (
        searcher.max_concurrent != limit
        or make_searcher(name, space).set_max_concurrency(2) is not True
    ):
        raise _fail(name, "set_max_concurrency did not take the limit or returned False")
    free = make_searcher(name, space, **kwargs)
    want = [free.suggest(f"p{i}") for i in range(limit)]
    outs = [limited.suggest(f"p{i}") for i in range(limit + 2)]
    if outs[:limit] != want or any(o is not None for o in outs[limit:]):
        raise _fail(name, f"under a limit of {limit}: {outs}, not {want} and then None")
    first = next(i for i, o in enumerate(outs) if isinstance(o, dict))
    limited.on_trial_complete(f"p{first}", {METRIC: 0.5})
    if not isinstance(limited.suggest("p_next"), dict):
        raise _fail(name, "no proposal after a trial under the limit completed")
    for batch in (None, 3):
        runs = []
        for wrap, concurrency in ((False, 2), (True, 5)):
            s = make_searcher(name, space, **kwargs)
            s.set_sync_batch(batch)
            target: Searcher = ConcurrencyLimiter(s, 2) if wrap else s
            runs.append(
                _ids(space, HandDriver(target, hash_objective, concurrency=concurrency).run(n))
            )
        if runs[0] != runs[1] or len(runs[0]) < n:
            raise _fail(
                name,
                f"ConcurrencyLimiter(searcher, 2) searches unlike 2 trials in flight ({batch=}): "
                f"{len(runs[1])} proposals, first difference at {_first_difference(*runs)}",
            )
