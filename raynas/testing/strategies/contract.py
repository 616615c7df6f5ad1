"""Searcher-contract checks: constructor, valid and distinct proposals, ``FINISHED``, bad
results, concurrent suggestions, constraint checks."""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from typing import Any

from ray.tune.search import Searcher

from raynas.registry import STRATEGIES
from raynas.space import InvalidArchitecture, Space
from raynas.strategies import StrategyError
from raynas.strategies.base import InfeasibleSpaceError
from raynas.testing.strategies._common import (
    METRIC,
    _fail,
    _ids,
    _searcher_for,
    continuous_space,
    default_spaces,
    flaky_objective,
    hash_check,
    hash_objective,
    make_searcher,
    small_space,
    tiny_space,
)
from raynas.testing.strategies.driver import HandDriver


def check_constructor(name: str, **kwargs: Any) -> None:
    """Every constructor argument after ``space`` is keyword-only with a default, and a
    continuous space is refused with :class:`StrategyError` exactly when the strategy says
    it ``needs_discrete``."""
    cls = STRATEGIES.get(name)
    for pname, p in inspect.signature(cls.__init__).parameters.items():
        if pname in ("self", "space") or p.kind is p.VAR_KEYWORD:
            continue
        if p.kind is not p.KEYWORD_ONLY or p.default is inspect.Parameter.empty:
            raise _fail(name, f"argument {pname!r} must be keyword-only with a default")
    space = continuous_space()
    try:
        make_searcher(name, space, **kwargs)
    except StrategyError as err:
        if not cls.needs_discrete:
            raise _fail(name, f"refused a continuous space without needs_discrete: {err}") from err
    else:
        if cls.needs_discrete:
            raise _fail(name, "needs_discrete but accepted a continuous space")


def check_proposals_valid(
    name: str, spaces: Sequence[Space] | None = None, n: int = 30, **kwargs: Any
) -> None:
    """Proposals are ``{"arch": arch}`` with ``arch`` a valid, JSON-able member."""
    tested = 0
    for space in spaces if spaces is not None else default_spaces():
        searcher = _searcher_for(name, space, **kwargs)
        if searcher is None:
            continue
        tested += 1
        driver = HandDriver(searcher, hash_objective, concurrency=2)
        for arch in driver.run(n):
            try:
                space.validate(arch)
            except InvalidArchitecture as err:
                raise _fail(name, f"invalid proposal on {space.name!r}: {err}") from err
            if json.loads(json.dumps(arch)) != arch:
                raise _fail(name, f"proposal on {space.name!r} is not plain JSON: {arch!r}")
        if len(driver.proposals) < n and not driver.finished:
            raise _fail(name, f"only {len(driver.proposals)} proposals on {space.name!r}")
    if not tested:
        raise _fail(name, "refused every space it was given")


def check_no_duplicates(name: str, n: int = 120, **kwargs: Any) -> None:
    """No architecture is proposed twice on a small discrete space (729 members)."""
    space = small_space()
    driver = HandDriver(
        make_searcher(name, space, **kwargs), hash_objective, concurrency=4, shuffle=True
    )
    ids = _ids(space, driver.run(n))
    if len(set(ids)) != len(ids):
        raise _fail(name, f"{len(ids) - len(set(ids))} duplicate proposals in {len(ids)}")


def check_finishes(name: str, **kwargs: Any) -> None:
    """On a 4-member space: the 4 members once each, then ``Searcher.FINISHED``, for good."""
    for concurrency in (1, 3):
        space = tiny_space()
        searcher = make_searcher(name, space, **kwargs)
        driver = HandDriver(searcher, hash_objective, concurrency=concurrency)
        archs = driver.run(50)
        ids = _ids(space, archs)
        if not driver.finished:
            raise _fail(name, f"no FINISHED on a 4-member space after {len(archs)} proposals")
        if sorted(set(ids)) != sorted(ids) or len(ids) != 4:
            raise _fail(name, f"proposed {len(ids)} archs ({len(set(ids))} distinct), not 4")
        driver.complete_all()
        if searcher.suggest("after_end") != Searcher.FINISHED:
            raise _fail(name, "suggest() after FINISHED did not return FINISHED again")


def check_survives_bad_results(name: str, spaces: Sequence[Space] | None = None, **kw: Any) -> None:
    """NaN, inf, None, a missing or non-numeric metric, ``error=True`` and failed statuses
    neither crash the searcher nor stop it proposing valid architectures; unknown and
    repeated trial ids are ignored."""
    for space in spaces if spaces is not None else [small_space(), continuous_space()]:
        searcher = _searcher_for(name, space, **kw)
        if searcher is None:
            continue
        driver = HandDriver(searcher, flaky_objective(), concurrency=3)
        archs = driver.run(40)
        for arch in archs:
            space.validate(arch)
        searcher.on_trial_complete("never_suggested", {METRIC: 1.0})
        searcher.on_trial_result("never_suggested", {METRIC: 1.0})
        if driver.in_flight:
            trial_id, _ = driver.in_flight[0]
            driver.complete_one()
            searcher.on_trial_complete(trial_id, {METRIC: 2.0})  # completed twice
        if len(archs) < 40 and not driver.finished:
            raise _fail(name, f"stopped after {len(archs)} proposals with bad results")
        if driver.step() is None and not driver.finished:
            raise _fail(name, "no proposal after the bad results")


def check_all_failed(name: str, **kwargs: Any) -> None:
    """A search where every trial fails keeps proposing distinct valid architectures."""
    space = small_space()
    driver = HandDriver(make_searcher(name, space, **kwargs), lambda a: None, concurrency=2)
    ids = _ids(space, driver.run(30))
    if len(ids) < 30 or len(set(ids)) != len(ids):
        raise _fail(
            name, f"with every trial failing: {len(ids)} proposals, {len(set(ids))} distinct"
        )


def check_concurrent(name: str, n_parallel: int = 8, **kwargs: Any) -> None:
    """Several suggestions before any completion are distinct and valid (at least one is a
    proposal), completing them in any order works, and the search goes on."""
    space = small_space()
    searcher = make_searcher(name, space, **kwargs)
    outs = [searcher.suggest(f"p{i}") for i in range(n_parallel)]
    archs = [(f"p{i}", o["arch"]) for i, o in enumerate(outs) if isinstance(o, dict)]
    if not archs:
        raise _fail(name, f"none of {n_parallel} suggestions before any completion was a proposal")
    ids = _ids(space, [a for _, a in archs])
    if len(set(ids)) != len(ids):
        raise _fail(name, "concurrent suggestions repeat an architecture")
    driver = HandDriver(searcher, hash_objective, concurrency=n_parallel, shuffle=True, seed=2)
    driver.in_flight = list(archs)
    more = driver.run(30)
    all_ids = ids + _ids(space, more)
    if len(more) < 30 or len(set(all_ids)) != len(all_ids):
        raise _fail(name, f"after concurrent start: {len(more)} proposals, duplicates or stall")


def check_constraints(name: str, n: int = 40, **kwargs: Any) -> None:
    """With a driver-side constraint check, every proposal satisfies it; refused candidates
    cost no trial, are counted with a few examples, and never come back; constraints that
    exclude the space raise :class:`InfeasibleSpaceError`; on a finite space with feasible
    members, the feasible ones and then ``FINISHED``."""
    space, check = small_space(), hash_check()
    searcher = make_searcher(name, space, **kwargs)
    searcher.set_constraint_check(check)
    driver = HandDriver(searcher, hash_objective, concurrency=3, shuffle=True)
    archs = driver.run(n)
    if len(archs) < n and not driver.finished:
        raise _fail(name, f"only {len(archs)} proposals with a constraint check")
    bad = [a for a in archs if check(a)]
    if bad:
        raise _fail(name, f"{len(bad)} proposals violate the constraint check, e.g. {bad[0]}")
    ids = _ids(space, archs)
    if len(set(ids)) != len(ids) or set(ids) & searcher.refused_ids:
        raise _fail(name, "a refused or repeated architecture was proposed")
    if len(searcher.history) + len(searcher.live) != len(archs):
        raise _fail(name, "refused candidates were counted as trials")
    examples = searcher.refused_examples
    if searcher.refused < 1 or not 1 <= len(examples) <= min(5, searcher.refused):
        raise _fail(name, f"refused {searcher.refused} with examples {examples}")
    if any(not check(e["arch"]) or e["violations"] != check(e["arch"]) for e in examples):
        raise _fail(name, f"refused_examples do not match the check: {examples}")
    never = make_searcher(name, space, **kwargs)
    never.set_constraint_check(lambda arch: ["never feasible"], max_tries=25)
    try:
        never.suggest("t0")
    except InfeasibleSpaceError as err:
        if "never feasible" not in str(err) or never.refused != 25:
            raise _fail(name, f"the infeasible-space error says too little: {err}") from err
    else:
        raise _fail(name, "constraints that exclude the space did not raise")
    tiny = tiny_space()
    half = make_searcher(name, tiny, **kwargs)
    half.set_constraint_check(lambda arch: ["a == 0"] if arch["a"] != 0 else [])
    tiny_driver = HandDriver(half, hash_objective, concurrency=1)
    got = tiny_driver.run(10)
    if not tiny_driver.finished or sorted(a["b"] for a in got) != ["x", "y"]:
        raise _fail(name, f"on a 4-member space with 2 feasible: proposed {got}, no FINISHED")
    if any(a["a"] != 0 for a in got):
        raise _fail(name, "an infeasible member of the 4-member space was proposed")
