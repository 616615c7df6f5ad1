"""A conformance suite that every search strategy passes; strategy authors reuse it in tests.

Like ``optuna/testing/pytest_samplers.py``, this module ships with the library. Each
``check_*`` function takes a registered strategy name (plus keyword arguments for its
constructor), drives the searcher by hand the way Ray Tune does (``suggest`` /
``on_trial_result`` / ``on_trial_complete``, no Ray runtime) and raises
:class:`AssertionError` naming the strategy and the property that broke.
:func:`run_strategy_conformance` runs them all; :class:`HandDriver` is the driver, also
useful for benchmarks and learning tests.

Ray ships no searcher conformance suite, but its in-tree tests (``test_searchers.py``,
``test_tune_restore_warm_start.py``) state the contract a Tune searcher keeps; the checks
that port it drive Tune's own wrappers (``ConcurrencyLimiter``, ``Repeater``) by hand:
:func:`check_late_callbacks`, :func:`check_add_evaluated` (``add_evaluated_point``,
``add_evaluated_trials``, ``warm_start``), :func:`check_restore_without_properties`,
:func:`check_save_restore` (Ray's 5 + restore + 5 = 10 trials), :func:`check_concurrency_limit`
and :func:`check_repeater`. What needs a real ``tune.Tuner`` run (NaN and inf through Tune,
checkpoint-time pickling, Tune's pending-trial count) is in ``tests/test_tune_contract.py``.

Example:
    >>> from raynas.testing.strategies import run_strategy_conformance
    >>> run_strategy_conformance("evolution", population_size=10)

In a pytest module, parametrise over the registry::

    @pytest.mark.parametrize("name", list_strategies())
    @pytest.mark.parametrize("check", STRATEGY_CHECKS)
    def test_conformance(name, check, tmp_path):
        check(name, tmp_path=tmp_path)
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune.search import ConcurrencyLimiter, Repeater, Searcher

from raynas.registry import STRATEGIES, get_space
from raynas.space import Arch, Choice, Float, InvalidArchitecture, Space
from raynas.strategies import NASSearcher, StrategyError, get_strategy
from raynas.strategies.base import InfeasibleSpaceError

__all__ = [
    "BAD_RESULTS",
    "METRIC",
    "STRATEGY_CHECKS",
    "HandDriver",
    "check_add_evaluated",
    "check_all_failed",
    "check_concurrency_limit",
    "check_concurrent",
    "check_constraints",
    "check_constructor",
    "check_failures_rank_last",
    "check_finishes",
    "check_late_callbacks",
    "check_mode",
    "check_no_duplicates",
    "check_proposals_valid",
    "check_repeater",
    "check_restore_without_properties",
    "check_save_restore",
    "check_save_restore_wiring",
    "check_seeded",
    "check_survives_bad_results",
    "check_sync_batch",
    "continuous_space",
    "default_spaces",
    "flaky_objective",
    "flat_config",
    "hash_objective",
    "make_searcher",
    "run_strategy_conformance",
    "small_space",
    "supports",
    "tiny_space",
]

METRIC = "score"
#: Result kinds a searcher must survive, cycled by :func:`check_survives_bad_results`.
BAD_RESULTS: tuple[tuple[str, Any], ...] = (
    ("nan", {METRIC: math.nan}),
    ("inf", {METRIC: math.inf}),
    ("-inf", {METRIC: -math.inf}),
    ("none", None),
    ("missing metric", {"other": 1.0}),
    ("string metric", {METRIC: "high"}),
    ("error", "error"),
    ("complete(None) after on_trial_result", "reported-only"),
    ("constraint_violated", {METRIC: 1.0, "status": "constraint_violated"}),
    ("diverged", {METRIC: 1.0, "status": "diverged"}),
)

Objective = Callable[[Arch], Any]


def hash_objective(arch: Arch) -> float:
    """A deterministic score in [0, 1) from the arch's canonical JSON (no structure)."""
    blob = json.dumps(arch, sort_keys=True, separators=(",", ":"))
    return int(hashlib.sha256(blob.encode()).hexdigest()[:8], 16) / 16**8


def tiny_space() -> Space:
    """A space of exactly 4 members."""
    return Space({"a": Choice([0, 1]), "b": Choice(["x", "y"])}, name="tiny4")


def small_space() -> Space:
    """NAS-Bench-201 with 3 ops: 729 members."""
    return get_space("nb201", ops=["none", "skip_connect", "nor_conv_3x3"])  # type: ignore[no-any-return]


def continuous_space() -> Space:
    """A space with continuous decisions (``Float`` without a step)."""
    return Space(
        {"lr": Float(1e-4, 1e-1, log=True), "dropout": Float(0.0, 0.5), "act": Choice(["a", "b"])},
        name="continuous",
    )


def default_spaces() -> list[Space]:
    """The spaces :func:`run_strategy_conformance` uses: a cell, a macro chain, continuous."""
    return [small_space(), get_space("mobilenet"), continuous_space()]


def flaky_objective(clean_after: int = 12, every: int = 3) -> Objective:
    """:func:`hash_objective` whose first ``clean_after`` results and every ``every``-th one
    after are bad, cycling through :data:`BAD_RESULTS`."""
    calls = [0]

    def objective(arch: Arch) -> Any:
        calls[0] += 1
        i = calls[0]
        if i <= clean_after or i % every == 0:
            return BAD_RESULTS[i % len(BAD_RESULTS)][1]
        return hash_objective(arch)

    return objective


def _fail(name: str, what: str) -> AssertionError:
    return AssertionError(f"strategy {name!r}: {what}")


def make_searcher(
    name: str, space: Space, *, seed: int = 0, mode: str = "max", **kwargs: Any
) -> NASSearcher:
    """``get_strategy(name, space, metric="score", mode=mode, seed=seed, **kwargs)``."""
    kwargs.setdefault("metric", METRIC)
    return get_strategy(name, space, mode=mode, seed=seed, **kwargs)


def supports(name: str, space: Space) -> bool:
    """Whether strategy ``name`` can run on ``space`` (discrete-only ones need a discrete one)."""
    return space.is_discrete or not STRATEGIES.get(name).needs_discrete


def _searcher_for(name: str, space: Space, **kwargs: Any) -> NASSearcher | None:
    """The searcher, or None where the strategy refuses the space with a StrategyError
    (discrete-only strategies on continuous spaces, ``grid`` on huge ones)."""
    if not supports(name, space):
        return None
    try:
        return make_searcher(name, space, **kwargs)
    except StrategyError:
        if space.is_discrete and (space.cardinality or 0) <= 1_000_000:
            raise
        return None


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


def _ids(space: Space, archs: Sequence[Arch]) -> list[str]:
    return [space.arch_id(a) for a in archs]


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------


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
            driver_b = driver_a.clone_for(b)
            next_a = _ids(space, driver_a.run(20))
            next_b = _ids(space, driver_b.run(20))
        if next_a != next_b:
            first = _first_difference(next_a, next_b)
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


def failing_first(objective: Objective, first: int = 3, every: int = 4) -> Objective:
    """``objective`` whose first ``first`` results and every ``every``-th one after fail
    (``None`` and ``"error"`` in turn), by call count."""
    calls = [0]

    def wrapped(arch: Arch) -> Any:
        calls[0] += 1
        i = calls[0]
        if i <= first or i % every == 0:
            return None if i % 2 else "error"
        return objective(arch)

    return wrapped


def check_failures_rank_last(name: str, n: int = 30, **kwargs: Any) -> None:
    """Failures rank below every valid result whatever the metric's sign and mode, also when
    they come before any valid result: ``mode="min"`` on a loss ``3 - f`` (scores ``f - 3``,
    all negative) searches exactly like ``mode="max"`` on ``f`` in [0, 1), with the same
    failures (the first three trials and every fourth). A failure scored 0 (v0.1) would be
    the best result of the first search and the worst of the second."""
    space = small_space()

    def loss(arch: Arch) -> float:
        return 3.0 - hash_objective(arch)

    maxed = HandDriver(
        make_searcher(name, space, mode="max", **kwargs), failing_first(hash_objective)
    )
    mined = HandDriver(make_searcher(name, space, mode="min", **kwargs), failing_first(loss))
    seq_max, seq_min = _ids(space, maxed.run(n)), _ids(space, mined.run(n))
    if seq_max != seq_min:
        first = next(i for i, (x, y) in enumerate(zip(seq_max, seq_min)) if x != y)
        raise _fail(
            name,
            f"with failures, mode='min' on 3 - f (negative scores) and mode='max' on f "
            f"diverge at proposal {first} of {n}: failures do not rank below every valid result",
        )
    searcher = mined.searcher
    assert isinstance(searcher, NASSearcher)
    worst, valid = searcher.worst_score(), searcher.observed_scores
    if worst is None or not valid or not worst < min(valid):
        raise _fail(name, f"worst_score() {worst} is not below every valid score {valid}")


def hash_check(threshold: float = 0.4) -> Callable[[Arch], list[str]]:
    """A constraint check refusing every arch whose :func:`hash_objective` is below
    ``threshold`` (about that share of the space)."""

    def check(arch: Arch) -> list[str]:
        return [f"hash >= {threshold}"] if hash_objective(arch) < threshold else []

    return check


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
        driver_b = driver_a.clone_for(b)
        next_a = _ids(space, driver_a.run(20))
        next_b = _ids(space, driver_b.run(20))
    if next_a != next_b:
        first = _first_difference(next_a, next_b)
        raise _fail(
            name, f"restored mid-batch after refusals, the searcher diverges at proposal {first}"
        )


def _observed_state(searcher: NASSearcher) -> Any:
    """A copy of what a searcher observed: history, held-back results, curves, last results."""
    return copy.deepcopy(
        (searcher.history, searcher.batch_done, searcher.curves, searcher.last_results)
    )


def check_late_callbacks(name: str, **kwargs: Any) -> None:
    """``on_trial_result`` after ``on_trial_complete``, and a second ``on_trial_complete``
    (with another result, with ``None``, with ``error=True``) for the same trial neither
    raise nor change what was observed; also while a synchronous batch holds it back."""
    for batch in (None, 2):
        space = small_space()
        searcher = make_searcher(name, space, **kwargs)
        searcher.set_sync_batch(batch)
        ids = [t for t in ("t0", "t1") if isinstance(searcher.suggest(t), dict)]
        if not ids:
            raise _fail(name, "no proposal to complete (test setup)")
        searcher.on_trial_result("t0", {METRIC: 0.5})
        searcher.on_trial_complete("t0", {METRIC: 0.5})

        before = _observed_state(searcher)
        searcher.on_trial_result("t0", {METRIC: 0.9, "epoch": 1})
        searcher.on_trial_complete("t0", {METRIC: 0.9})
        searcher.on_trial_complete("t0", None)
        searcher.on_trial_complete("t0", None, error=True)
        if _observed_state(searcher) != before:
            raise _fail(name, f"late callbacks for a completed trial changed it ({batch=})")
        for trial_id in ids[1:]:
            searcher.on_trial_complete(trial_id, {METRIC: 0.25})
        searcher.on_trial_complete("t0", {METRIC: 0.9})
        scores = [score for _, score in searcher.history]
        if batch is not None and len(ids) < batch and not searcher.history:
            continue  # the batch is still open: nothing observed yet, nothing to compare
        if not scores or scores[0] != 0.5 or len(scores) != len(ids):
            raise _fail(name, f"observed {scores} for completions [0.5, 0.25][:{len(ids)}]")
        if searcher.suggest("t2") is None and not searcher.live:
            raise _fail(name, "suggest() waits with nothing in flight after late callbacks")


def flat_config(arch: Arch, prefix: str = "config/arch") -> dict[str, Any]:
    """``{"config/arch/<path>": value}``: an arch as Tune's results table flattens it
    (nested dicts joined with ``/``; lists kept whole)."""
    out: dict[str, Any] = {}
    for key, value in arch.items():
        if isinstance(value, dict):
            out.update(flat_config(value, f"{prefix}/{key}"))
        else:
            out[f"{prefix}/{key}"] = value
    return out


def _distinct(space: Space, n: int, seed: int) -> list[Arch]:
    rng = np.random.default_rng(seed)
    out: dict[str, Arch] = {}
    while len(out) < n:
        arch = space.canonical(space.sample(rng))
        out.setdefault(space.arch_id(arch), arch)
    return list(out.values())


def check_add_evaluated(name: str, **kwargs: Any) -> None:
    """Tune's ``add_evaluated_point`` (plain, with intermediate values, pruned, failed, NaN)
    and ``add_evaluated_trials`` (DataFrames in Tune's ``config/arch/...`` form and with an
    ``arch`` column), and ``warm_start``: each is one observation through ``observe``, in the
    user's mode, marked seen and never proposed afterwards; ``suggest`` goes on; configs
    outside the space are refused with a ValueError naming the key, observing nothing; the
    searcher still deep-copies (Ray's own tests copy searchers)."""
    import pandas as pd

    space = small_space()
    archs = _distinct(space, 8, seed=11)
    searcher = make_searcher(name, space, **kwargs)
    calls: list[float | None] = []
    observe = type(searcher).observe

    def spy(self: NASSearcher, arch: Arch, score: float | None, result: Any) -> None:
        calls.append(score)
        observe(self, arch, score, result)

    searcher.observe = spy.__get__(searcher)  # type: ignore[method-assign]
    try:
        searcher.add_evaluated_point({"arch": archs[0]}, 0.7)
        searcher.add_evaluated_point({"arch": archs[1]}, 0.2, intermediate_values=[0.1, 0.15])
        searcher.add_evaluated_point(
            {"arch": archs[2]}, 0.9, pruned=True, intermediate_values=[0.3]
        )
        searcher.add_evaluated_point({"arch": archs[3]}, 0.5, error=True)
        searcher.add_evaluated_point({"arch": archs[4]}, math.nan)
        searcher.add_evaluated_trials(
            pd.DataFrame([{METRIC: 0.4, **flat_config(archs[5])}]), METRIC
        )
        searcher.add_evaluated_trials(pd.DataFrame([{"arch": archs[6], "other": 0.6}]), "other")
        fed = searcher.warm_start(
            [({"arch": archs[7]}, [{METRIC: 0.1, "epoch": 1}, {METRIC: 0.3}])]
        )
    finally:
        del searcher.observe
    scores = [score for _, score in searcher.history]
    expected = [0.7, 0.2, 0.9, None, None, 0.4, 0.6, 0.3]
    if fed != 1 or scores != expected or calls != expected:
        raise _fail(name, f"evaluations added from outside observed as {scores}, not {expected}")
    if _ids(space, [a for a, _ in searcher.history]) != _ids(space, archs):
        raise _fail(name, "evaluations added from outside are observed under other archs")
    if not all(searcher.is_seen(a) for a in archs) or searcher.live:
        raise _fail(name, "added evaluations are not marked seen, or left a trial in flight")
    if searcher.fidelities[2] != 1.0 or searcher.fidelities[0] is not None:
        raise _fail(name, f"a pruned point is not compared within its rung: {searcher.fidelities}")
    for bad, key in (
        ({"x": 1}, "'arch'"),
        ({"arch": {"cell": "conv"}}, "arch.cell"),
        ("a", "arch"),
    ):
        try:
            searcher.add_evaluated_point(bad, 0.5)  # type: ignore[arg-type]
        except ValueError as err:
            if key not in str(err):
                raise _fail(
                    name, f"the error for config {bad!r} does not name {key}: {err}"
                ) from err
        else:
            raise _fail(name, f"add_evaluated_point accepted the config {bad!r}")
    if len(searcher.history) != len(archs):
        raise _fail(name, "a refused config was observed")
    mined = make_searcher(name, space, mode="min", **kwargs)
    mined.add_evaluated_point({"arch": archs[0]}, 0.7)
    if mined.history[-1][1] != -0.7:
        raise _fail(name, f"mode='min': a value 0.7 was scored {mined.history[-1][1]}, not -0.7")
    more = HandDriver(copy.deepcopy(searcher), hash_objective, concurrency=2).run(30)
    if len(more) < 30 or set(_ids(space, more)) & set(_ids(space, archs)):
        raise _fail(name, f"after added evaluations: {len(more)} proposals, or one repeats them")


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


def check_repeater(name: str, repeat: int = 2, n: int = 5, **kwargs: Any) -> None:
    """Tune's ``Repeater`` hands the inner searcher only the mean of one metric: a strategy
    with one objective (a scalarised objective is one metric) runs under it and observes
    each group's mean once; a strategy with several objectives (``moea``) refuses it with a
    StrategyError naming the Repeater (its other objectives would be lost), and runs under
    it once given a single objective."""
    space = small_space()
    searcher = make_searcher(name, space, **kwargs)
    objectives = getattr(searcher, "active_objectives", None)
    if callable(objectives) and len(objectives()) > 1:
        try:
            Repeater(searcher, repeat=repeat).suggest("r0")
        except StrategyError as err:
            if "Repeater" not in str(err):
                raise _fail(name, f"the refusal does not name the Repeater: {err}") from err
        else:
            raise _fail(name, "a multi-objective searcher ran inside a Repeater")
        searcher = make_searcher(name, space, **{**kwargs, "objectives": [(METRIC, "max")]})
    repeater = Repeater(searcher, repeat=repeat)
    means = []
    for group in range(n):
        values = []
        for k in range(repeat):
            trial_id = f"r{group}_{k}"
            out = repeater.suggest(trial_id)
            if not isinstance(out, dict) or "arch" not in out:
                raise _fail(name, f"under a Repeater, suggest() returned {out!r}")
            values.append(hash_objective(out["arch"]) + 0.1 * k)
            repeater.on_trial_complete(trial_id, {METRIC: values[-1]})
        means.append(float(np.mean(values)))
    got = [score for _, score in searcher.history]
    if len(got) != n or not np.allclose(np.asarray(got, dtype=float), means):
        raise _fail(name, f"under a Repeater observed {got}, not the group means {means}")


#: Every check, in the order :func:`run_strategy_conformance` runs them.
STRATEGY_CHECKS: tuple[Callable[..., None], ...] = (
    check_constructor,
    check_proposals_valid,
    check_no_duplicates,
    check_finishes,
    check_survives_bad_results,
    check_all_failed,
    check_save_restore,
    check_seeded,
    check_mode,
    check_concurrent,
    check_failures_rank_last,
    check_constraints,
    check_sync_batch,
    check_save_restore_wiring,
    check_late_callbacks,
    check_add_evaluated,
    check_restore_without_properties,
    check_concurrency_limit,
    check_repeater,
)


def run_strategy_conformance(name: str, *, tmp_path: Path | None = None, **kwargs: Any) -> None:
    """Run every check of this module on strategy ``name``.

    Args:
        name: A registered strategy.
        tmp_path: Folder for checkpoint files (a temporary one by default).
        **kwargs: Constructor arguments for the strategy (e.g. a smaller budget).

    Raises:
        AssertionError: The first property that does not hold.
    """
    for check in STRATEGY_CHECKS:
        if "tmp_path" in inspect.signature(check).parameters:
            check(name, tmp_path=tmp_path, **kwargs)
        else:
            check(name, **kwargs)


def _first_difference(a: list[str], b: list[str]) -> int:
    """The first index where two proposal sequences differ (their common length if none)."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
