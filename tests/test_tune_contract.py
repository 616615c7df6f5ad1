"""Ray Tune's own searcher contract, in real ``tune.Tuner`` runs, for every raynas strategy.

Ray ships no searcher conformance suite; its in-tree tests state the contract
(``python/ray/tune/tests/test_searchers.py``: ``InvalidValuesTest``, ``AddEvaluatedPointTest``;
``test_tune_restore_warm_start.py``: ``AbstractWarmStartTest``). What can be driven by hand
is in :mod:`raynas.testing.strategies` (``check_late_callbacks``, ``check_add_evaluated``,
``check_restore_without_properties``, ``check_save_restore``, ``check_concurrency_limit``,
``check_repeater``); this module runs what needs Tune itself:

- NaN, inf and -inf objectives through Tune's result handling: the best trial is finite, the
  searcher scores them as failures, and no checkpoint of the experiment (Tune saves the
  searcher at every step here) warns about an object it could not pickle;
- ``max_concurrent_trials``: Tune's ``ConcurrencyLimiter`` hands the limit to the searcher,
  which gets exactly that many trials running at once;
- ``add_evaluated_trials`` from a real ``ResultGrid``, ``ExperimentAnalysis``, ``Trial`` list
  and results table, and ``warm_start`` from a finished experiment's trial folders;
- Ray's warm-start test: 5 trials, ``restore_from_dir`` of the experiment folder into a fresh
  searcher, 5 more: the configs of one 10-trial run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ray import cloudpickle, tune
from ray.tune.search import ConcurrencyLimiter, Searcher

from raynas.space import Choice, Space
from raynas.strategies import NASSearcher, StrategyError, get_strategy, list_strategies
from raynas.testing.strategies import METRIC, hash_objective, small_space

# Ray workers import trainables by module name; this test module is not importable there.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

#: Eight members: (a, b) picks inf, -inf, NaN or a finite value; c picks the finite one.
SPACE8 = Space({"a": Choice([0, 1]), "b": Choice(["x", "y"]), "c": Choice([0, 1])}, name="tiny8")
INVALID = {(0, "x"): math.inf, (0, "y"): -math.inf, (1, "x"): math.nan}
#: Small settings so the learning strategies leave their random start within a few trials.
FAST_ARGS: dict[str, dict[str, Any]] = {
    "bo": {"num_init": 3, "ensemble_size": 2, "fit_steps": 5, "num_candidates": 10},
    "tpe": {"n_initial_points": 3},
    "evolution": {"population_size": 3, "sample_size": 2},
    "moea": {"population_size": 3},
}
#: Log and warning texts of a searcher checkpoint gone wrong (Tune only warns, then the
#: searcher state is lost on resume).
CHECKPOINT_TROUBLE = re.compile(
    r"pickl|save not implemented|snapshotting failed|checkpointing failed", re.IGNORECASE
)
EPOCHS, EPOCH_S = 3, 0.4
#: The strategy whose real warm-start test runs by default (TPE: the most state, hyperopt's
#: trials and RNG); the others are slow-marked, the hand-driven check covers them all.
WARM_START_DEFAULT = "tpe"


def make(name: str, space: Space, *, anonymous: bool = False) -> NASSearcher:
    """The strategy with :data:`FAST_ARGS`; ``anonymous``: without metric and mode (Tune's
    ``set_search_properties`` brings them)."""
    given = {} if anonymous else {"metric": METRIC, "mode": "max"}
    return get_strategy(name, space, seed=0, **given, **FAST_ARGS.get(name, {}))


def invalid_objective(config: dict[str, Any]) -> None:
    arch = config["arch"]
    tune.report({METRIC: INVALID.get((arch["a"], arch["b"]), 0.25 + 0.5 * arch["c"])})


def timed_objective(config: dict[str, Any]) -> None:
    """``EPOCHS`` epochs of ``EPOCH_S`` seconds; reports when it started and stopped."""
    start, value = time.time(), hash_objective(config["arch"])
    for epoch in range(1, EPOCHS + 1):
        time.sleep(EPOCH_S)
        tune.report(
            {METRIC: value * epoch / EPOCHS, "epoch": epoch, "t_start": start, "t_end": time.time()}
        )


def hash_trainable(config: dict[str, Any]) -> None:
    tune.report({METRIC: hash_objective(config["arch"])})


def fit(
    search_alg: Searcher,
    trainable: Callable[[dict[str, Any]], None],
    storage: Path,
    name: str,
    *,
    samples: int,
    concurrent: int | None = None,
    param_space: dict[str, Any] | None = None,
) -> Any:
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 0.5}),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=search_alg,
            metric=METRIC,
            mode="max",
            num_samples=samples,
            max_concurrent_trials=concurrent,
            reuse_actors=True,  # a fresh actor per trial costs about a second each
        ),
        run_config=tune.RunConfig(storage_path=str(storage), name=name, verbose=0),
    )
    return tuner.fit()


def results(grid: Any) -> list[Any]:
    """The grid's results, in the order the trials were created."""
    return [grid[i] for i in range(len(grid))]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def checkpoint_trouble() -> Iterator[list[str]]:
    """The Ray log records (WARNING and up) and Python warnings of the block that say a
    checkpoint failed or something could not be pickled (filled in when the block ends)."""
    found: list[str] = []
    handler = _Collect()
    ray_logger = logging.getLogger("ray")
    ray_logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield found
    finally:
        ray_logger.removeHandler(handler)
    texts = [r.getMessage() for r in handler.records] + [str(w.message) for w in caught]
    found.extend(t for t in texts if CHECKPOINT_TROUBLE.search(t))


@pytest.fixture(scope="module")
def ray_local(ray_session: None) -> None:
    """The session's local Ray (``tests/conftest.py``), one ``ray.init`` for the module."""
    import ray

    assert ray.cluster_resources().get("CPU", 0) >= 1


# --- invalid values -----------------------------------------------------------------------
@pytest.mark.parametrize("name", list_strategies())
def test_invalid_values_in_a_real_run(name: str, ray_local: None, tmp_path: Path) -> None:
    """Ray's ``InvalidValuesTest``: a searcher built without metric and mode, a
    ``param_space`` of constants (Tune then calls ``set_search_properties``)."""
    searcher = make(name, SPACE8, anonymous=True)
    constants = {"train": {"epochs": 1}}
    with checkpoint_trouble() as trouble:
        grid = fit(
            searcher,
            invalid_objective,
            tmp_path,
            name,
            samples=10,
            concurrent=2,
            param_space=constants,
        )
    assert not trouble, trouble
    assert (searcher.metric, searcher.mode, searcher.max_fidelity) == (METRIC, "max", 1)
    assert len(grid) == 8 and grid.num_errors == 0  # every member once, then FINISHED
    best = grid.get_best_result()
    assert best.metrics[METRIC] == 0.75 and best.config["arch"]["b"] == "y"
    scores = [score for _, score in searcher.history]
    assert len(scores) == 8 and sorted(s for s in scores if s is not None) == [0.25, 0.75]
    assert searcher.max_concurrent == 2  # handed over by Tune's ConcurrencyLimiter
    assert best.config["train"] == constants["train"]
    restored = make(name, SPACE8, anonymous=True)
    restored.restore_from_dir(grid.experiment_path)  # Tune saved the searcher as it ran
    assert len(restored.history) == 8 and (restored.metric, restored.mode) == (METRIC, "max")


def test_without_metric_or_param_space_the_run_stops_with_the_fix(
    ray_local: None, tmp_path: Path
) -> None:
    """With an empty ``param_space`` Tune never calls ``set_search_properties``: a searcher
    without a metric says so instead of scoring every trial as failed."""
    with pytest.raises(Exception, match="needs the metric and mode"):
        fit(make("random", SPACE8, anonymous=True), invalid_objective, tmp_path, "bare", samples=2)


# --- concurrency, and a finished run to warm-start from -------------------------------------
@pytest.fixture(scope="module")
def timed_run(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Six ``timed_objective`` trials of ``random``, two at a time (four would fit)."""
    searcher = make("random", small_space())
    grid = fit(
        searcher,
        timed_objective,
        tmp_path_factory.mktemp("timed"),
        "timed",
        samples=6,
        concurrent=2,
    )
    assert len(grid) == 6 and grid.num_errors == 0
    return grid


def test_a_limit_of_two_runs_two_trials_at_once(timed_run: Any) -> None:
    spans = [(r.metrics["t_start"], r.metrics["t_end"]) for r in results(timed_run)]
    peak = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert peak == 2, spans


def _arch_ids(space: Space, archs: list[Any]) -> list[str]:
    return sorted(space.arch_id(a) for a in archs)


@pytest.mark.parametrize("name", list_strategies())
def test_add_evaluated_trials_from_a_real_run(name: str, timed_run: Any) -> None:
    from ray.tune import ExperimentAnalysis

    space = small_space()
    ran = [r.config["arch"] for r in results(timed_run)]
    analysis = ExperimentAnalysis(timed_run.experiment_path)
    inputs = {
        "ResultGrid": timed_run,
        "ExperimentAnalysis": analysis,
        "list of Trials": list(analysis.trials),
        "results table": timed_run.get_dataframe(),
    }
    for kind, given in inputs.items():
        searcher = make(name, space)
        searcher.max_fidelity = EPOCHS
        searcher.add_evaluated_trials(given, METRIC)
        assert _arch_ids(space, [a for a, _ in searcher.history]) == _arch_ids(space, ran), kind
        assert [s for _, s in searcher.history] == [hash_objective(a) for a, _ in searcher.history]
        assert all(f is None for f in searcher.fidelities), kind  # each ran its full budget
        if kind == "ResultGrid":  # the curves came along: they link the rungs
            assert {e: len(p) for e, p in searcher.rung_pairs.items()} == {1.0: 6, 2.0: 6}
        out = searcher.suggest("next")
        assert isinstance(out, dict) and space.arch_id(out["arch"]) not in _arch_ids(space, ran)
    one = make(name, space)
    one.add_evaluated_trials(analysis.trials[0], METRIC)
    assert len(one.history) == 1
    with pytest.warns(UserWarning, match="no trial reported the metric 'nope'"):
        make(name, space).add_evaluated_trials(timed_run, "nope")


def trial_records(grid: Any) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``(config, results)`` of each trial folder of a finished experiment, as a driver
    reads them: ``params.json`` and the lines of ``result.json``."""
    out = []
    for r in results(grid):
        folder = Path(r.path)
        config = json.loads((folder / "params.json").read_text())
        lines = (folder / "result.json").read_text().splitlines()
        out.append((config, [json.loads(line) for line in lines]))
    return out


@pytest.mark.parametrize("name", list_strategies())
def test_warm_start_from_a_previous_experiment(name: str, timed_run: Any) -> None:
    space = small_space()
    records = trial_records(timed_run)
    config, steps = records[0]
    records[0] = (config, steps[:1])  # stopped after its first epoch (a scheduler's rung)
    searcher = make(name, space)
    searcher.max_fidelity = EPOCHS
    assert searcher.warm_start(records) == 6
    assert searcher.fidelities == [1.0, None, None, None, None, None]
    assert {e: len(p) for e, p in searcher.rung_pairs.items()} == {1.0: 5, 2.0: 5}
    assert searcher.history[0][1] == pytest.approx(hash_objective(config["arch"]) / EPOCHS)
    assert all(searcher.is_seen(c["arch"]) for c, _ in records)
    assert isinstance(searcher.suggest("next"), dict)
    assert make(name, space).warm_start([]) == 0
    failed = make(name, space)
    assert failed.warm_start([(config, None)]) == 1 and failed.history[0][1] is None
    with pytest.raises(StrategyError, match=r"record 1: config\['arch'\].*arch\.cell"):
        make(name, space).warm_start([(config, None), ({"arch": {"cell": {}}}, None)])
    with pytest.raises(StrategyError, match=r"record 0 must be a \(config, result\) pair"):
        make(name, space).warm_start([config])  # type: ignore[list-item]


# --- Ray's warm-start test ------------------------------------------------------------------
def _warm_start_params() -> list[Any]:
    return [
        name if name == WARM_START_DEFAULT else pytest.param(name, marks=pytest.mark.slow)
        for name in list_strategies()
    ]


@pytest.mark.parametrize("name", _warm_start_params())
def test_restore_from_the_experiment_folder_continues_the_same_search(
    name: str, ray_local: None, tmp_path: Path
) -> None:
    space = small_space()

    def limited() -> ConcurrencyLimiter:
        return ConcurrencyLimiter(make(name, space), 1)

    def configs(grid: Any) -> list[str]:
        return [space.arch_id(r.config["arch"]) for r in results(grid)]

    whole = fit(limited(), hash_trainable, tmp_path, "whole", samples=10)
    part = fit(limited(), hash_trainable, tmp_path, "part", samples=5)
    restored = limited()
    restored.restore_from_dir(part.experiment_path)
    rest = fit(restored, hash_trainable, tmp_path, "rest", samples=5)
    assert configs(part) + configs(rest) == configs(whole)
