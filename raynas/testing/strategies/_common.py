"""What the strategy checks share: the metric, test spaces and objectives, searcher factories."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from raynas.registry import STRATEGIES, get_space
from raynas.space import Arch, Choice, Float, Space
from raynas.strategies import NASSearcher, StrategyError, get_strategy

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


def _ids(space: Space, archs: Sequence[Arch]) -> list[str]:
    return [space.arch_id(a) for a in archs]


def hash_check(threshold: float = 0.4) -> Callable[[Arch], list[str]]:
    """A constraint check refusing every arch whose :func:`hash_objective` is below
    ``threshold`` (about that share of the space)."""

    def check(arch: Arch) -> list[str]:
        return [f"hash >= {threshold}"] if hash_objective(arch) < threshold else []

    return check


def _first_difference(a: list[str], b: list[str]) -> int:
    """The first index where two proposal sequences differ (their common length if none)."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
