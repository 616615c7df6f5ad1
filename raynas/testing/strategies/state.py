"""State checks: ``save`` / ``restore`` (also mid-batch, and without search properties)
continue the same search."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ray.tune.search import ConcurrencyLimiter

from raynas.space import Space
from raynas.strategies import StrategyError, get_strategy
from raynas.testing.strategies._common import (
    METRIC,
    _fail,
    _first_difference,
    _ids,
    continuous_space,
    hash_check,
    hash_objective,
    make_searcher,
    small_space,
    supports,
)
from raynas.testing.strategies.driver import HandDriver


def check_save_restore(
    name: str,
    spaces: Sequence[Space] | None = None,
    *,
    tmp_path: Path | None = None,
    **kwargs: Any,
) -> None:
    """``save`` mid-search (trials in flight) then ``restore`` into a *fresh* instance built
    with the same arguments: the next 20 proposals equal the uninterrupted searcher's. And
    Tune's own warm-start test: under ``ConcurrencyLimiter(searcher, 1)``, 5 trials, ``save``,
    ``restore`` into a fresh limited searcher, 5 more: the 10 configs of one 10-trial run."""
    for space in spaces if spaces is not None else [small_space(), continuous_space()]:
        if not supports(name, space):
            continue
        _check_split_run(name, space, tmp_path, **kwargs)
        with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
            a = make_searcher(name, space, seed=7, **kwargs)
            driver_a = HandDriver(a, hash_objective, concurrency=3, shuffle=True, seed=1)
            driver_a.run(25)
            path = str(Path(tmp) / "searcher.pkl")
            a.save(path)
            b = make_searcher(name, space, seed=7, **kwargs)
            b.restore(path)
            first = _divergence(space, driver_a, driver_a.clone_for(b))
        if first is not None:
            raise _fail(
                name,
                f"on {space.name!r} a restored searcher diverges at proposal {first} of 20 "
                "after the checkpoint",
            )


def _check_split_run(name: str, space: Space, tmp_path: Path | None, **kwargs: Any) -> None:
    """5 + 5 trials around a save / restore equal 10 in one go, one trial at a time."""

    def limited() -> ConcurrencyLimiter:
        return ConcurrencyLimiter(make_searcher(name, space, seed=9, **kwargs), 1)

    whole = _ids(space, HandDriver(limited(), hash_objective).run(10))
    first = HandDriver(limited(), hash_objective)
    part = first.run(5)
    first.complete_all()
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        path = str(Path(tmp) / "searcher.pkl")
        first.searcher.save(path)
        restored = limited()
        restored.restore(path)
        rest = first.clone_for(restored).run(5)
    if _ids(space, part + rest) != whole:
        at = _first_difference(_ids(space, part + rest), whole)
        raise _fail(
            name,
            f"on {space.name!r} under ConcurrencyLimiter(searcher, 1), 5 trials + restore + 5 "
            f"differ from one 10-trial run at trial {at}",
        )


def check_save_restore_wiring(name: str, *, tmp_path: Path | None = None, **kwargs: Any) -> None:
    """``save`` in the middle of a synchronous batch (results held back, trials in flight)
    and after refusals, ``restore`` into a fresh instance: the same next 20 proposals. The
    constraint check (a lambda: not picklable) is wiring, left out of the state; the batch
    size and the refusals are state."""
    space = small_space()
    check = hash_check()
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        a = make_searcher(name, space, seed=5, **kwargs)
        a.set_sync_batch(4)
        a.set_constraint_check(lambda arch: check(arch))
        driver_a = HandDriver(a, hash_objective, concurrency=3, shuffle=True, seed=4)
        driver_a.run(10)
        if not (a.batch and a.refused):
            raise _fail(name, "the checkpoint is not mid-batch after refusals (test setup)")
        path = str(Path(tmp) / "searcher.pkl")
        a.save(path)
        b = make_searcher(name, space, seed=5, **kwargs)
        b.set_constraint_check(lambda arch: check(arch))
        b.restore(path)
        if b.sync_batch != 4 or b.refused != a.refused or b.refused_ids != a.refused_ids:
            raise _fail(name, "restore lost the batch size or the refusals")
        first = _divergence(space, driver_a, driver_a.clone_for(b))
    if first is not None:
        raise _fail(
            name, f"restored mid-batch after refusals, the searcher diverges at proposal {first}"
        )


def check_restore_without_properties(
    name: str, *, tmp_path: Path | None = None, **kwargs: Any
) -> None:
    """A searcher built without metric and mode that got them from ``set_search_properties``
    (as Tune does), saved with trials in flight and restored into a fresh instance *without*
    calling ``set_search_properties`` again (also through Tune's ``save_to_dir`` /
    ``restore_from_dir``), has the metric and mode, observes the trials suggested before the
    save and completed after the restore, and goes on proposing. A searcher with no metric
    refuses to ``suggest`` with a StrategyError rather than learn from nothing."""
    space = small_space()
    bare = get_strategy(name, space, seed=1, **kwargs)
    try:
        bare.suggest("t0")
    except StrategyError as err:
        if "metric" not in str(err):
            raise _fail(name, f"the error without a metric does not say so: {err}") from err
    else:
        raise _fail(name, "suggest() without metric and mode did not raise")
    bare.set_search_properties(METRIC, "min", {})
    driver = HandDriver(bare, lambda arch: -hash_objective(arch), concurrency=2)
    driver.run(6)
    pending = [a for _, a in driver.in_flight]
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        bare.save(str(Path(tmp) / "searcher.pkl"))
        bare.save_to_dir(tmp, session_str="s0")
        restored = []
        for how in ("restore", "restore_from_dir"):
            fresh = get_strategy(name, space, seed=1, **kwargs)
            if how == "restore":
                fresh.restore(str(Path(tmp) / "searcher.pkl"))
            else:
                fresh.restore_from_dir(tmp)
            restored.append((how, fresh))
    for how, fresh in restored:
        if (fresh.metric, fresh.mode) != (METRIC, "min"):
            raise _fail(name, f"{how}: metric and mode are {(fresh.metric, fresh.mode)}")
        n = len(fresh.history)
        driver.clone_for(fresh).complete_all()
        got = fresh.history[n:]
        want = [(space.arch_id(a), hash_objective(a)) for a in pending]
        if [(space.arch_id(a), s) for a, s in got] != want:
            raise _fail(name, f"{how}: trials in flight at the save were not observed after it")
        if not isinstance(fresh.suggest("after_restore"), dict):
            raise _fail(name, f"{how}: no proposal after the restore")


def _divergence(space: Space, original: HandDriver, restored: HandDriver) -> int | None:
    """Run both drivers for 20 more proposals: the index of the first that differs, or None."""
    next_a = _ids(space, original.run(20))
    next_b = _ids(space, restored.run(20))
    return None if next_a == next_b else _first_difference(next_a, next_b)
