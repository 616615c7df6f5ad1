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
