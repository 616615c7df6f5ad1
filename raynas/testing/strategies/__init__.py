"""A conformance suite that every search strategy passes; strategy authors reuse it in tests.

Like ``optuna/testing/pytest_samplers.py``, this package ships with the library. Each
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

The checks live in modules by property family, all re-exported here (import them from
``raynas.testing.strategies``): ``contract`` (the searcher contract: proposals,
``FINISHED``, bad results, concurrency, constraints), ``reproducibility`` (seeds, mode,
synchronous batches, concurrency limits), ``state`` (save / restore), ``learning`` (what a
searcher observes) and ``driver`` (:class:`HandDriver`); ``_common`` holds the shared
metric, spaces, objectives and helpers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raynas.testing.strategies._common import (
    BAD_RESULTS,
    METRIC,
    Objective,
    continuous_space,
    default_spaces,
    flaky_objective,
    hash_check,
    hash_objective,
    make_searcher,
    small_space,
    supports,
    tiny_space,
)
from raynas.testing.strategies.contract import (
    check_all_failed,
    check_concurrent,
    check_constraints,
    check_constructor,
    check_finishes,
    check_no_duplicates,
    check_proposals_valid,
    check_survives_bad_results,
)
from raynas.testing.strategies.driver import HandDriver
from raynas.testing.strategies.learning import (
    check_add_evaluated,
    check_failures_rank_last,
    check_late_callbacks,
    check_repeater,
    failing_first,
    flat_config,
)
from raynas.testing.strategies.reproducibility import (
    check_concurrency_limit,
    check_mode,
    check_seeded,
    check_sync_batch,
)
from raynas.testing.strategies.state import (
    check_restore_without_properties,
    check_save_restore,
    check_save_restore_wiring,
)

__all__ = [
    "BAD_RESULTS",
    "METRIC",
    "STRATEGY_CHECKS",
    "HandDriver",
    "Objective",
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
    "failing_first",
    "flaky_objective",
    "flat_config",
    "hash_check",
    "hash_objective",
    "make_searcher",
    "run_strategy_conformance",
    "small_space",
    "supports",
    "tiny_space",
]


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
    """Run every check of this package on strategy ``name``.

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
