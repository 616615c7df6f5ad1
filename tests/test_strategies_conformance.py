"""Every registered strategy passes ``raynas.testing.strategies``.

Grid and random included. Slow strategies run with smaller (but real) settings; the
defaults themselves are exercised by ``tests/test_strategies_learning.py``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from raynas.registry import get_space
from raynas.strategies import StrategyError, get_strategy, list_strategies
from raynas.testing import strategies as conformance

#: Constructor arguments that keep the suite fast without changing what a check exercises.
FAST_ARGS: dict[str, dict[str, Any]] = {
    "bo": {"num_init": 5, "ensemble_size": 3, "fit_steps": 10, "num_candidates": 30},
    "tpe": {"n_initial_points": 10},
    "evolution": {"population_size": 10, "sample_size": 3},
}


def _args(name: str) -> dict[str, Any]:
    return dict(FAST_ARGS.get(name, {}))


@pytest.mark.parametrize("check", conformance.STRATEGY_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", list_strategies())
def test_conformance(name: str, check: Callable[..., None], tmp_path: Path) -> None:
    if "tmp_path" in inspect.signature(check).parameters:
        check(name, tmp_path=tmp_path, **_args(name))
    else:
        check(name, **_args(name))


@pytest.mark.parametrize("name", list_strategies())
def test_discrete_only_strategies_refuse_continuous_spaces(name: str) -> None:
    space = conformance.continuous_space()
    if conformance.supports(name, space):
        searcher = get_strategy(name, space, metric="score", mode="max")
        assert isinstance(searcher.suggest("t0"), dict)
        return
    with pytest.raises(StrategyError, match="needs a discrete space"):
        get_strategy(name, space, metric="score", mode="max")


#: What each strategy learns from, by name: it grows by one per evaluation fed from outside.
MODEL_SIZE: dict[str, Callable[[Any], int]] = {
    "bo": lambda s: len(s.rows),
    "evolution": lambda s: len(s.population),
    "local_search": lambda s: len(s.index),
    "moea": lambda s: len(s.population),
    "reinforce": lambda s: s.off_policy,  # on-policy: an outside point is off-policy
    "tpe": lambda s: len(s._genomes),
}


@pytest.mark.parametrize("name", list_strategies())
def test_evaluations_added_from_outside_reach_the_strategys_model(name: str) -> None:
    space = conformance.small_space()
    searcher = conformance.make_searcher(name, space, **_args(name))
    size = MODEL_SIZE.get(name, lambda s: len(s.history))
    archs = [space.canonical(space.sample(i)) for i in range(4)]
    for i, arch in enumerate(archs):
        searcher.add_evaluated_point({"arch": arch}, 0.1 * i)
    assert size(searcher) == 4
    searcher.warm_start([({"arch": space.canonical(space.sample(9))}, {"score": 0.9})])
    assert size(searcher) == 5 and len(searcher.history) == 5
    assert isinstance(searcher.suggest("t0"), dict)


def test_tpe_learns_the_added_points_with_their_losses() -> None:
    space = conformance.small_space()
    searcher: Any = conformance.make_searcher("tpe", space, mode="min", **_args("tpe"))
    searcher.add_evaluated_point({"arch": space.canonical(space.sample(0))}, 0.25)
    searcher.add_evaluated_point({"arch": space.canonical(space.sample(1))}, 0.5, error=True)
    losses = list(searcher.losses())
    assert losses == [0.25, float("inf")]  # minus the score: the value itself in mode min


def test_a_results_table_with_lists_and_float_valued_integers() -> None:
    import pandas as pd

    space = get_space("mobilenet")
    arch = space.canonical(space.sample(3))
    searcher = conformance.make_searcher("random", space)
    row = {**conformance.flat_config(arch), "score": 0.5, "epoch": 1.0}
    row["config/arch/width_mult"] = float(arch["width_mult"])
    searcher.add_evaluated_trials(pd.DataFrame([row]), "score")
    assert searcher.history == [(arch, 0.5)]
    with pytest.raises(ValueError, match="no config column"):
        searcher.add_evaluated_trials(pd.DataFrame([{"score": 1.0}]), "score")
    with pytest.raises(ValueError, match="no metric column 'acc'"):
        searcher.add_evaluated_trials(pd.DataFrame([row]), "acc")
    with pytest.raises(TypeError, match="expects a Trial"):
        searcher.add_evaluated_trials({"arch": arch}, "score")
    assert len(searcher.history) == 1


def test_the_concurrency_limit_is_wiring_not_state(tmp_path: Path) -> None:
    space = conformance.small_space()
    a = conformance.make_searcher("random", space)
    assert a.set_max_concurrency(2) is True
    a.save(str(tmp_path / "s.pkl"))
    b = conformance.make_searcher("random", space)
    b.set_max_concurrency(5)
    b.restore(str(tmp_path / "s.pkl"))
    assert b.max_concurrent == 5
    with pytest.raises(StrategyError, match="max_concurrent must be an integer >= 1"):
        b.set_max_concurrency(0)
