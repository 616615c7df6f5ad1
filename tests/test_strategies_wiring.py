"""Driver-side constraints (``set_constraint_check``) and synchronous batches
(``set_sync_batch``) on ``NASSearcher``: the mechanics behind the conformance checks."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ray.tune.search import Searcher

from raynas.strategies import StrategyError, get_strategy
from raynas.strategies.base import REFUSED_EXAMPLES, InfeasibleSpaceError, NASSearcher
from raynas.testing.strategies import (
    HandDriver,
    hash_check,
    hash_objective,
    small_space,
    tiny_space,
)

SPACE = small_space()


def make(name: str = "random", space: Any = SPACE, **kwargs: Any) -> NASSearcher:
    return get_strategy(name, space, metric="score", mode="max", seed=0, **kwargs)


# --- constraints -----------------------------------------------------------------------
def test_refusals_are_counted_with_a_few_examples_and_cost_no_trial() -> None:
    s = make()
    checked: list[str] = []

    def check(arch: Any) -> list[str]:
        checked.append(SPACE.arch_id(arch))
        return ["params <= 1e3", "flops <= 1e6"] if len(checked) % 4 else []

    s.set_constraint_check(check)
    archs = HandDriver(s, hash_objective, concurrency=2).run(5)
    assert len(archs) == 5 and len(s.history) + len(s.live) == 5
    assert s.refused == 15 and len(checked) == 20
    assert len(s.refused_examples) == REFUSED_EXAMPLES
    assert s.refused_examples[0]["violations"] == ["params <= 1e3", "flops <= 1e6"]
    assert len(s.refused_ids) == 15 and s.refused_ids <= s.seen
    assert s.refusal_streak == 0


def test_too_many_refusals_in_a_row_raise_naming_the_constraints() -> None:
    s = make()
    calls = [0]

    def check(arch: Any) -> list[str]:
        calls[0] += 1
        return [] if calls[0] == 1 else ["params <= 10"]

    s.set_constraint_check(check, max_tries=7)
    assert isinstance(s.suggest("t0"), dict)
    with pytest.raises(InfeasibleSpaceError, match=r"7 candidates in a row.*params <= 10"):
        s.suggest("t1")
    assert isinstance(InfeasibleSpaceError("x"), StrategyError)


def test_a_finite_space_with_no_feasible_member_raises_and_one_with_some_finishes() -> None:
    none = make(space=tiny_space())
    none.set_constraint_check(lambda arch: ["latency_ms <= 1"])
    with pytest.raises(InfeasibleSpaceError, match="every member of the space violates"):
        none.suggest("t0")
    assert none.refused == 4
    some = make(space=tiny_space())
    some.set_constraint_check(lambda arch: [] if arch == {"a": 1, "b": "y"} else ["x"])
    assert some.suggest("t0") == {"arch": {"a": 1, "b": "y"}}
    assert some.suggest("t1") == Searcher.FINISHED


def test_set_constraint_check_validates_its_arguments() -> None:
    with pytest.raises(StrategyError, match="max_tries must be an integer >= 1"):
        make().set_constraint_check(lambda a: [], max_tries=0)
    with pytest.raises(StrategyError, match="check must be callable"):
        make().set_constraint_check("params <= 1e6")  # type: ignore[arg-type]
    s = make()
    s.set_constraint_check(lambda a: ["x"])
    s.set_constraint_check(None)
    assert isinstance(s.suggest("t0"), dict) and s.refused == 0


def test_the_check_is_wiring_not_state(tmp_path: Path) -> None:
    s = make()
    s.set_constraint_check(lambda arch: ["x"] if hash_objective(arch) < 0.5 else [], max_tries=9)
    HandDriver(s, hash_objective).run(5)
    state = s.get_state()
    assert "_constraint_check" not in state and "_max_refusals" not in state
    pickle.dumps(state)  # a lambda check would not pickle
    s.save(str(tmp_path / "s.pkl"))
    after = make()
    after.restore(str(tmp_path / "s.pkl"))  # restore first, wire after: also fine
    assert after._constraint_check is None and after.refused == s.refused
    keep = make()
    keep.set_constraint_check(hash_check(), max_tries=3)
    keep.restore(str(tmp_path / "s.pkl"))
    assert keep._constraint_check is not None and keep._max_refusals == 3


def test_tpe_never_learns_a_refused_suggestion() -> None:
    s = make("tpe", n_initial_points=3)
    s.set_constraint_check(hash_check(0.5))
    HandDriver(s, hash_objective).run(8)
    assert s.refused > 0 and len(s._genomes) == len(s.history) == 8 - 1  # one in flight
    refused = {SPACE.arch_id(a) for a, _ in s.history} & s.refused_ids
    assert not refused


def refuse_nth(n: int, checked: list[str]) -> Callable[[Any], list[str]]:
    """A constraint check that adds each arch's id to ``checked`` and refuses the ``n``-th."""

    def check(arch: Any) -> list[str]:
        checked.append(SPACE.arch_id(arch))
        return ["refused"] if len(checked) == n else []

    return check


def test_local_search_skips_a_refused_neighbour_and_restarts_after_a_refused_start() -> None:
    s = make("local_search")
    checked: list[str] = []
    s.set_constraint_check(refuse_nth(2, checked))
    s.suggest("t0")  # the start
    s.suggest("t1")  # its first neighbour is refused, the next one proposed
    assert checked[1] not in s.neighbourhood and s.center_id == checked[0]
    assert s.center is not None
    assert len(s.neighbourhood) == len(list(SPACE.neighbours(s.center))) - 1
    restart = make("local_search")
    calls: list[str] = []
    restart.set_constraint_check(refuse_nth(1, calls))
    out = restart.suggest("t0")
    assert isinstance(out, dict) and restart.restarts == 2
    assert restart.center_id == SPACE.arch_id(out["arch"]) != calls[0]


# --- synchronous batches ------------------------------------------------------------------
def test_a_batch_is_observed_in_suggestion_order_after_it_completes() -> None:
    s = make("evolution", population_size=4, sample_size=2)
    s.set_sync_batch(3)
    outs = [s.suggest(f"t{i}") for i in range(3)]
    assert all(isinstance(o, dict) for o in outs)
    assert s.suggest("t3") is None  # the batch is full: wait
    s.on_trial_complete("t2", {"score": 0.3})
    s.on_trial_complete("t0", {"score": 0.1})
    assert s.history == [] and s.suggest("t3") is None
    s.on_trial_complete("t1", {"score": 0.2})
    assert [score for _, score in s.history] == [0.1, 0.2, 0.3]
    assert s.batches_done == 1 and isinstance(s.suggest("t3"), dict)


def test_a_batch_closes_early_when_the_strategy_waits_or_the_space_ends() -> None:
    s = make(space=tiny_space())
    s.set_sync_batch(3)
    for i in range(3):
        s.suggest(f"t{i}")
        s.on_trial_complete(f"t{i}", {"score": i})
    assert len(s.history) == 3
    assert isinstance(s.suggest("t3"), dict)
    assert s.suggest("t4") == Searcher.FINISHED  # closes the batch of one
    assert len(s.history) == 3
    s.on_trial_complete("t3", {"score": 3})
    assert len(s.history) == 4 and s.suggest("t5") == Searcher.FINISHED


def test_without_sync_batches_completion_order_changes_the_search() -> None:
    """The problem ``set_sync_batch`` solves (``check_sync_batch`` shows the fix)."""

    def proposals(sync: int | None, concurrency: int, seed: int) -> list[str]:
        s = make("evolution", population_size=6, sample_size=3)
        s.set_sync_batch(sync)
        d = HandDriver(s, hash_objective, concurrency=concurrency, shuffle=True, seed=seed)
        return [SPACE.arch_id(a) for a in d.run(30)]

    assert proposals(None, 2, 0) != proposals(None, 2, 1)
    assert proposals(2, 2, 0) == proposals(2, 2, 1) == proposals(2, 1, 5)


def test_set_sync_batch_validates_its_size() -> None:
    with pytest.raises(StrategyError, match="n must be an integer >= 1"):
        make().set_sync_batch(0)


class Scripted(NASSearcher):
    """Proposes the members of a list in order, then waits (None)."""

    def __init__(self, space: Any, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        self.script = list(space.enumerate())[:6]

    def propose(self) -> Any:
        return self.script.pop(0) if self.script else None


def test_a_refusal_streak_survives_save_and_restore(tmp_path: Path) -> None:
    """Saved mid-refusal (the strategy waited after two refusals in a row): the restored
    searcher continues the same streak towards ``max_tries``."""
    space = small_space()
    members = list(space.enumerate())[:6]

    def check(arch: Any) -> list[str]:
        return ["x"] if arch in members[1:] else []

    a = Scripted(space, metric="score", mode="max")
    a.set_constraint_check(check, max_tries=4)
    assert a.suggest("t0") == {"arch": members[0]}
    a.script = a.script[:2]  # two refusals, then the strategy waits
    assert a.suggest("t1") is None and a.refusal_streak == 2
    a.script = members[3:5]
    a.save(str(tmp_path / "s.pkl"))
    b = Scripted(space, metric="score", mode="max")
    b.set_constraint_check(check, max_tries=4)
    b.restore(str(tmp_path / "s.pkl"))
    assert (b.refused, b.refusal_streak, b.script) == (2, 2, members[3:5])
    for s in (a, b):
        with pytest.raises(InfeasibleSpaceError, match="4 candidates in a row"):
            s.suggest("t2")
