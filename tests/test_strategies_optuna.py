"""The ``optuna`` strategy: Optuna's samplers by ask/tell inside a NASSearcher.

The conformance suite (``tests/test_strategies_conformance.py``) runs its default sampler
(TPE); these tests drive every sampler, the Optuna study it keeps, and a real Tune run.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from optuna.trial import TrialState

import raynas
from raynas.experiment.config import ConfigError
from raynas.experiment.config_check import check_experiment
from raynas.experiment.config_load import experiment_from_dict
from raynas.registry import get_space, list_spaces
from raynas.space import Space
from raynas.strategies import StrategyError, get_strategy
from raynas.strategies.optuna_search import SAMPLERS, OptunaSearch
from raynas.testing.strategies import (
    METRIC,
    HandDriver,
    hash_check,
    hash_objective,
    small_space,
)

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart.yaml"

#: Arguments that keep the model-based samplers fast (their model starts after 5 results).
FAST: dict[str, dict[str, Any]] = {
    "tpe": {"n_startup_trials": 5},
    "gp": {"n_startup_trials": 5},
    "cmaes": {"n_startup_trials": 5},
    "nsga2": {"population_size": 6},
    "qmc": {},
    "random": {},
}
HAS_CMAES = importlib.util.find_spec("cmaes") is not None
needs_cmaes = pytest.mark.skipif(not HAS_CMAES, reason="sampler cmaes needs `pip install cmaes`")
OBJECTIVES = [(METRIC, "max"), ("size", "min")]
#: Proposals per test: GP's asks cost seconds (tens on mobilenet's 66 genes), so it makes
#: few beyond its 5 random ones.
N_PROPOSALS = {"gp": 7}


def sampler_params(samplers: tuple[str, ...] = tuple(SAMPLERS)) -> list[Any]:
    """One pytest param per sampler; cmaes skipped without its package, gp marked slow."""
    out = []
    for name in samplers:
        marks = [needs_cmaes] if name == "cmaes" else []
        if name == "gp":
            marks.append(pytest.mark.slow)
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def make(space: Space, sampler: str, *, seed: int = 0, **kwargs: Any) -> OptunaSearch:
    if sampler == "nsga2":
        kwargs.setdefault("objectives", OBJECTIVES)
    searcher = get_strategy(
        "optuna",
        space,
        metric=METRIC,
        mode="max",
        seed=seed,
        sampler=sampler,
        sampler_args=FAST[sampler],
        **kwargs,
    )
    assert isinstance(searcher, OptunaSearch)
    return searcher


def two_objectives(arch: dict[str, Any]) -> dict[str, float]:
    """A score and a size (the arch's JSON length): two objectives that disagree."""
    return {METRIC: hash_objective(arch), "size": float(len(json.dumps(arch, sort_keys=True)))}


def objective_for(sampler: str) -> Any:
    return two_objectives if sampler == "nsga2" else hash_objective


def ids(space: Space, archs: list[dict[str, Any]]) -> list[str]:
    return [space.arch_id(a) for a in archs]


# --- samplers on the built-in spaces ---------------------------------------------------------


@pytest.mark.parametrize("space_name", ["nb201", "mobilenet"])
@pytest.mark.parametrize("sampler", sampler_params())
def test_each_sampler_proposes_valid_distinct_archs(sampler: str, space_name: str) -> None:
    space = get_space(space_name)
    searcher = make(space, sampler)
    n = N_PROPOSALS.get(sampler, 12)
    archs = HandDriver(searcher, objective_for(sampler), concurrency=2).run(n)
    assert len(archs) == n
    for arch in archs:
        space.validate(arch)
    assert len(set(ids(space, archs))) == n
    told = [t for t in searcher.study.trials if t.state == TrialState.COMPLETE]
    assert len(told) == len(searcher.history) >= n - 2  # every result reached the study
    assert searcher.sampler_name == sampler
    assert type(searcher.study.sampler).__name__ == SAMPLERS[sampler]


def test_every_registered_space_maps_to_optuna_distributions() -> None:
    for name in list_spaces():
        space = get_space(name)
        searcher = make(space, "tpe")
        assert len(searcher._distributions) == len(space.genes)
        n = min(8, space.cardinality or 8)  # a test plugin may register a 4-member space
        archs = HandDriver(searcher, hash_objective).run(n)
        assert len(archs) == n, name
        for arch in archs:
            space.validate(arch)


def test_nsga2_is_the_default_with_several_objectives_and_tells_each_value() -> None:
    space = small_space()
    searcher = get_strategy(
        "optuna", space, metric=METRIC, mode="max", objectives=OBJECTIVES, seed=0
    )
    assert isinstance(searcher, OptunaSearch) and searcher.sampler_name == "nsga2"
    HandDriver(searcher, two_objectives).run(10)
    complete = [t for t in searcher.study.trials if t.state == TrialState.COMPLETE]
    assert complete, "no multi-objective result reached the study"
    for trial in complete:
        arch = searcher._arch(trial.params)
        want = two_objectives(arch)
        # Told as "higher is better": the size (mode min) with its sign flipped.
        assert trial.values == [want[METRIC], -want["size"]]
    assert len(searcher.study.directions) == 2


def test_a_result_without_a_secondary_objective_is_no_complete_trial() -> None:
    space = small_space()
    searcher = make(space, "nsga2")
    HandDriver(searcher, hash_objective).run(6)  # reports the score only, never "size"
    states = {t.state for t in searcher.study.trials}
    assert TrialState.COMPLETE not in states


# --- seeding and save / restore ---------------------------------------------------------------


@pytest.mark.parametrize("sampler", sampler_params())
def test_same_seed_same_search_another_seed_another(sampler: str) -> None:
    space = small_space()

    def run(seed: int) -> list[str]:
        driver = HandDriver(make(space, sampler, seed=seed), objective_for(sampler), concurrency=2)
        return ids(space, driver.run(N_PROPOSALS.get(sampler, 14)))

    first = run(3)
    assert run(3) == first
    assert run(4) != first


@pytest.mark.parametrize("sampler", sampler_params())
def test_save_and_restore_mid_search_continue_identically(sampler: str, tmp_path: Path) -> None:
    space = small_space() if sampler == "gp" else get_space("mobilenet")
    a = make(space, sampler, seed=7)
    driver_a = HandDriver(a, objective_for(sampler), concurrency=3, shuffle=True, seed=1)
    driver_a.run(6 if sampler == "gp" else 10)
    assert driver_a.in_flight, "test setup: the checkpoint must have trials in flight"
    a.save(str(tmp_path / "searcher.pkl"))
    b = make(space, sampler, seed=7)
    b.restore(str(tmp_path / "searcher.pkl"))
    assert len(b.study.trials) == len(a.study.trials)
    driver_b = driver_a.clone_for(b)
    more = 3 if sampler == "gp" else 8
    assert ids(space, driver_b.run(more)) == ids(space, driver_a.run(more))
    assert [t.values for t in b.study.trials] == [t.values for t in a.study.trials]


@pytest.mark.parametrize("sampler", sampler_params(("tpe", "nsga2")))
def test_get_state_is_independent_and_the_searcher_pickles(sampler: str) -> None:
    # NSGA-II's sampler holds a lock in Optuna 5 (not picklable): dropped, made afresh.
    import copy
    import pickle

    space = small_space()
    objective = objective_for(sampler)
    a = make(space, sampler)
    HandDriver(a, objective).run(6)
    state = a.get_state()
    n = len(a.study.trials)
    HandDriver(a, objective).run(3)
    fresh = make(space, sampler)
    fresh.set_state(state)
    assert len(fresh.study.trials) == n < len(a.study.trials)
    for clone in (copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
        assert len(clone.study.trials) == len(a.study.trials)
        assert ids(space, HandDriver(clone, objective).run(4)) == ids(
            space, HandDriver(copy.deepcopy(a), objective).run(4)
        )
    assert vars(a._sampler).keys() == vars(fresh._sampler).keys()


# --- failures, early stopping, constraints ----------------------------------------------------


def test_failures_and_nan_are_pruned_without_values_and_early_stops_keep_their_rung() -> None:
    space = small_space()
    searcher = make(space, "tpe")
    searcher.max_fidelity = 10
    outcomes = iter(
        [
            "error",
            {METRIC: math.nan},
            None,
            {METRIC: 0.4, "epoch": 3},  # early-stopped at epoch 3 of 10
            {METRIC: 0.7, "epoch": 10},
        ]
    )
    driver = HandDriver(searcher, lambda arch: next(outcomes))
    driver.run(5)
    driver.complete_all()
    observed = {t.state for t in searcher.study.trials}
    assert observed <= {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}
    by_arch = {
        space.arch_id(searcher._arch(t.params)): t
        for t in searcher.study.trials
        if t.state != TrialState.FAIL
    }
    scored = [by_arch[space.arch_id(arch)] for arch, _ in searcher.history]
    assert [t.state for t in scored] == [TrialState.PRUNED] * 4 + [TrialState.COMPLETE]
    assert [t.intermediate_values for t in scored[:3]] == [{}, {}, {}]  # failures: no rung
    assert scored[3].intermediate_values == {3: 0.4}
    assert scored[4].values == [0.7]
    assert [s for _, s in searcher.history][:3] == [None, None, None]


def test_mode_min_tells_the_negated_loss() -> None:
    space = small_space()
    searcher = get_strategy("optuna", space, metric=METRIC, mode="min", seed=0)
    driver = HandDriver(searcher, lambda arch: 2.5)
    driver.run(2)
    driver.complete_all()
    values = [t.values for t in searcher.study.trials if t.state == TrialState.COMPLETE]
    assert values and all(v == [-2.5] for v in values)


@pytest.mark.parametrize("sampler", sampler_params(("tpe", "random", "qmc", "cmaes", "nsga2")))
def test_constraints_hold_and_refusals_never_reach_the_model(sampler: str) -> None:
    space = small_space()
    check = hash_check(0.5)
    searcher = make(space, sampler)
    searcher.set_constraint_check(check)
    archs = HandDriver(searcher, objective_for(sampler), concurrency=2).run(20)
    assert len(archs) == 20 and not [a for a in archs if check(a)]
    assert searcher.refused > 0
    told = {
        space.arch_id(searcher._arch(t.params))
        for t in searcher.study.trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    }
    assert told and not told & searcher.refused_ids
    assert not searcher.asked or set(searcher.asked) <= set(ids(space, archs))


def test_outside_evaluations_are_added_to_the_study() -> None:
    space = small_space()
    searcher = make(space, "tpe")
    arch = space.canonical(space.sample(1))
    searcher.add_evaluated_point({"arch": arch}, 0.75)
    (trial,) = searcher.study.trials
    assert trial.state == TrialState.COMPLETE and trial.values == [0.75]
    assert space.arch_id(searcher._arch(trial.params)) == space.arch_id(arch)


# --- argument errors ----------------------------------------------------------------------------


def test_an_unknown_sampler_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(StrategyError, match=r"sampler must be one of \['cmaes', 'gp'.*'bogus'"):
        get_strategy("optuna", small_space(), sampler="bogus")


def test_an_unknown_sampler_argument_names_the_field_and_lists_the_valid_ones() -> None:
    with pytest.raises(StrategyError) as err:
        get_strategy("optuna", small_space(), sampler="tpe", sampler_args={"n_startup": 3})
    text = str(err.value)
    assert "sampler_args.n_startup" in text and "'n_startup_trials'" in text
    with pytest.raises(StrategyError, match=r"sampler_args\.seed is set from the experiment"):
        get_strategy("optuna", small_space(), sampler_args={"seed": 1})
    with pytest.raises(StrategyError, match=r"sampler_args .* for sampler 'nsga2'"):
        get_strategy("optuna", small_space(), sampler="nsga2", sampler_args={"mutation_prob": 7})


@needs_cmaes
def test_a_single_objective_sampler_refuses_several_objectives() -> None:
    with pytest.raises(StrategyError, match="'cmaes' optimises one objective"):
        get_strategy("optuna", small_space(), sampler="cmaes", objectives=OBJECTIVES)


def test_a_config_with_a_bad_sampler_argument_fails_validation_naming_it(tmp_path: Path) -> None:
    data = yaml.safe_load(QUICKSTART.read_text())
    data["strategy"] = {"name": "optuna", "sampler": "tpe", "sampler_args": {"gama": 0.1}}
    data["storage"] = str(tmp_path / "runs")
    with pytest.raises(ConfigError) as err:
        check_experiment(experiment_from_dict(data))
    assert "sampler_args.gama" in str(err.value) and "'gamma'" in str(err.value)


def test_without_optuna_a_config_naming_it_says_how_to_install(tmp_path: Path) -> None:
    data = yaml.safe_load(QUICKSTART.read_text())
    data["strategy"] = {"name": "optuna"}
    data["storage"] = str(tmp_path / "runs")
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump(data))
    # A Python in which `import optuna` fails, as where it is not installed.
    code = (
        "import sys; sys.modules['optuna'] = None; "
        "import raynas.strategies; from raynas.cli import main; "
        f"sys.exit(main(['validate', {str(config)!r}]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "pip install 'raynas[optuna]'" in proc.stdout + proc.stderr


# --- a real run ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_real_quickstart_run_with_optuna(tmp_path: Path, ray_session: None) -> None:
    data = yaml.safe_load(QUICKSTART.read_text())
    data["strategy"] = {"name": "optuna", "sampler": "tpe", "sampler_args": {"n_startup_trials": 2}}
    data["train"] = {**data["train"], "epochs": 1}
    data["budget"] = {"trials": 4, "concurrent": 2}
    data["storage"] = str(tmp_path / "runs")
    result = raynas.run(data, verbose=False)
    trials = result.trials
    assert len(trials) == 4
    assert set(trials["status"]) <= {"completed", "constraint_violated"}
    assert trials["val_acc"].notna().any()
    archs = {json.dumps(result.trial_config(t)["arch"], sort_keys=True) for t in trials["trial_id"]}
    assert len(archs) == 4  # no architecture trained twice


def test_several_objectives_refuse_tunes_repeater_and_one_runs_under_it() -> None:
    from ray.tune.search import Repeater

    space = small_space()
    with pytest.raises(StrategyError, match="Repeater"):
        Repeater(make(space, "nsga2"), repeat=2).suggest("r0")
    single = make(space, "tpe")
    repeater = Repeater(single, repeat=2)
    for k in range(2):
        out = repeater.suggest(f"r_{k}")
        assert isinstance(out, dict)
        repeater.on_trial_complete(f"r_{k}", {METRIC: 0.25 + 0.5 * k})
    assert [score for _, score in single.history] == [0.5]
