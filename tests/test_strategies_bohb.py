"""``bohb``: seeded, restorable, fitted on the largest budget with enough observations, fed at
every epoch a trial reached (also while it runs), better than random, and through Ray under
ASHA. The conformance suite (``tests/test_strategies_conformance.py``) covers the rest."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

import raynas
from raynas.bench.search import Asha, run_search
from raynas.bench.table import load_table
from raynas.experiment.config_load import load_config
from raynas.space import Arch
from raynas.strategies import get_strategy
from raynas.strategies.bohb import BOHB
from raynas.testing.strategies import hash_objective, small_space
from tests.conftest import QUICKSTART, REPO
from tests.test_strategies_learning import SEEDS, best_found, random_baseline

TABLE = REPO / "benchmarks" / "data" / "nb201-3ops-digits.parquet"


def make(seed: int = 0, **kwargs: Any) -> BOHB:
    searcher = get_strategy("bohb", small_space(), metric="score", mode="max", seed=seed, **kwargs)
    assert isinstance(searcher, BOHB)
    return searcher


def epochs_of(arch: Arch, index: int) -> int:
    """A fixed stopping rule for hand-driven trials: every third trial trains 3 epochs."""
    return 3 if index % 3 == 0 else 1


def curve(arch: Arch, epochs: int) -> list[dict[str, Any]]:
    """Per-epoch results of a trial: the score grows towards ``hash_objective(arch)``."""
    final = hash_objective(arch)
    return [{"score": final * e / 3, "epoch": e} for e in range(1, epochs + 1)]


class Driver:
    """Trials one after another, each reporting its epochs; ``hold`` trials stay running
    with one epoch reported (the live trials of a checkpoint)."""

    def __init__(self, searcher: BOHB) -> None:
        self.searcher, self.count = searcher, 0
        self.running: list[tuple[str, list[dict[str, Any]]]] = []

    def run(self, n: int, hold: int = 0) -> list[str]:
        out = []
        for _ in range(n):
            trial_id = f"t{self.count:04d}"
            suggestion = self.searcher.suggest(trial_id)
            assert isinstance(suggestion, dict)
            arch = suggestion["arch"]
            out.append(self.searcher.space.arch_id(arch))
            results = curve(arch, epochs_of(arch, self.count))
            self.count += 1
            self.searcher.on_trial_result(trial_id, results[0])
            self.running.append((trial_id, results))
            if len(self.running) > hold:
                self._finish(*self.running.pop(0))
        return out

    def _finish(self, trial_id: str, results: list[dict[str, Any]]) -> None:
        for result in results[1:-1]:
            self.searcher.on_trial_result(trial_id, result)
        last = dict(results[-1])
        if last["epoch"] < 3:
            last.update(censored=True, fidelity=last["epoch"])
        self.searcher.on_trial_complete(trial_id, last)


def test_same_seed_same_search_under_the_asha_replay() -> None:
    table = load_table(TABLE)

    def archs(seed: int) -> list[str]:
        run = run_search(
            table, "bohb", metric="val_acc", budget=40, seed=seed, scheduler=Asha(1, 3)
        )
        assert run.stopped > 0  # ASHA stopped some: the model saw several budgets
        return run.archs

    assert archs(3) == archs(3)
    assert archs(3) != archs(4)


def test_save_restore_with_live_trials_continues_identically(tmp_path: Path) -> None:
    a = make(seed=5, min_points_in_model=4)
    driver_a = Driver(a)
    driver_a.run(20, hold=2)
    assert a.model_budget() == 3.0 and len(a.live) == 2  # the model runs, trials in flight
    a.save(str(tmp_path / "bohb.pkl"))
    b = make(seed=5, min_points_in_model=4)
    b.restore(str(tmp_path / "bohb.pkl"))
    driver_b = Driver(b)
    driver_b.count, driver_b.running = driver_a.count, list(driver_a.running)
    assert driver_a.run(20, hold=2) == driver_b.run(20, hold=2)
    assert a.observations == b.observations and a.proposal_kinds["model"] > 0
    state = a.get_state()
    assert "observations" in state and "failures" in state
    assert "_genome_cache" not in state and "_closing" not in state  # caches are not state


def _evaluated(searcher: BOHB, arch: Arch, scores: list[float]) -> None:
    """A finished trial with one result per epoch (``len(scores)`` epochs)."""
    results = [{"score": s, "epoch": e} for e, s in enumerate(scores, start=1)]
    searcher.warm_start([({"arch": arch}, results)])


def test_the_model_is_fitted_on_the_largest_budget_with_enough_points() -> None:
    """The first gene decides: at 1 epoch its first option scores best, at 3 epochs its
    last one. The proposals follow budget 1 until budget 3 has ``min_points_in_model``."""
    space = small_space()
    searcher = make(min_points_in_model=19, random_fraction=0.0)
    edge = space.genes[0].path.split(".")[-1]
    archs = [space.canonical(a) for a in space.enumerate()]
    np.random.default_rng(0).shuffle(archs)  # type: ignore[arg-type]
    low, mid, high = sorted({a["cell"][edge] for a in archs})
    group = {o: [a for a in archs if a["cell"][edge] == o] for o in (low, mid, high)}
    for arch in group[low][:12]:
        _evaluated(searcher, arch, [0.9])  # stopped after 1 epoch, good there
    for arch in group[mid][:12]:
        _evaluated(searcher, arch, [0.3])
    for arch in group[high][:6]:
        _evaluated(searcher, arch, [0.1, 0.5, 0.95])  # poor at 1 epoch, best at 3
    for arch in group[low][12:18]:
        _evaluated(searcher, arch, [0.85, 0.4, 0.2])
    for arch in group[mid][12:18]:
        _evaluated(searcher, arch, [0.2, 0.3, 0.3])
    assert searcher.budget_counts() == {1.0: 42, 2.0: 18, 3.0: 18}
    assert searcher.model_budget() == 1.0  # budget 3 has 18 < 19 points
    early = [searcher.suggest(f"a{i}")["arch"]["cell"][edge] for i in range(10)]  # type: ignore[index]
    for i in range(10):
        searcher.on_trial_complete(f"a{i}", None, error=True)  # failures: bad everywhere
    _evaluated(searcher, group[high][6], [0.1, 0.5, 0.95])
    assert searcher.model_budget() == 3.0  # 19 points at budget 3 now: the largest wins
    points = searcher.budget_points(3.0)
    assert len(points) == 29 and sum(s == -np.inf for _, s in points) == 10
    late = [searcher.suggest(f"b{i}")["arch"]["cell"][edge] for i in range(10)]  # type: ignore[index]
    assert early.count(low) >= 7, early
    assert late.count(high) >= 7, late


def test_a_running_trial_teaches_the_model_at_each_epoch_it_reports() -> None:
    searcher = make(min_points_in_model=3)
    ids = [f"t{i}" for i in range(3)]
    for trial_id in ids:
        assert isinstance(searcher.suggest(trial_id), dict)
    assert searcher.model_budget() is None
    for trial_id in ids:
        searcher.on_trial_result(trial_id, {"score": 0.5, "epoch": 1})
    assert searcher.budget_counts() == {1.0: 3} and searcher.model_budget() == 1.0
    assert not searcher.history  # nothing completed: the rung results alone count
    searcher.on_trial_complete("t0", {"score": 0.6, "epoch": 1, "censored": True, "fidelity": 1})
    assert searcher.budget_counts() == {1.0: 3}  # completing does not count it twice


def test_min_points_default_warm_up_warning_and_bad_arguments() -> None:
    assert make().min_points_in_model == len(small_space().genes) + 1
    with pytest.warns(UserWarning, match="min_points_in_model=7 is not below num_samples=5"):
        make().set_search_properties("score", "max", {"arch": {}}, num_samples=5)
    with pytest.raises(ValueError, match="random_fraction must be in"):
        make(random_fraction=1.5)
    with pytest.raises(ValueError, match="top_n_percent must be in"):
        make(top_n_percent=0)
    with pytest.raises(ValueError, match="min_points_in_model must be an integer >= 1"):
        make(min_points_in_model=0)


def test_beats_random_on_the_learning_objective() -> None:
    """tests/test_strategies_learning.py's objective and protocol (20 seeds, one-sided
    Mann-Whitney U at p < 0.05), at TPE's budget there."""
    budget = 50
    found = np.asarray([best_found("bohb", seed, budget, {}) for seed in SEEDS])
    baseline = np.asarray(random_baseline(budget))
    p = mannwhitneyu(found, baseline, alternative="greater").pvalue
    summary = f"bohb {found.mean():.3f} ± {found.std():.3f}, random {baseline.mean():.3f}, {p=:.2g}"
    assert found.mean() > baseline.mean(), summary
    assert p < 0.05, summary


def _searcher_state(folder: Path) -> dict[str, Any]:
    """The searcher's own state in Tune's last experiment snapshot."""
    files = sorted(folder.glob("searcher-state-*.pkl"))
    assert files, "Tune saved no searcher state"
    with open(files[-1], "rb") as f:
        blob = pickle.load(f)
    stack = [blob]
    while stack:
        obj = stack.pop()
        if isinstance(obj, dict) and "observations" in obj and "history" in obj:
            return obj
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif hasattr(obj, "__dict__"):
            stack.append(vars(obj))
    raise AssertionError("no bohb state in the searcher snapshot")


@pytest.mark.slow
def test_a_real_run_under_asha_feeds_the_model_at_every_rung(
    tmp_path: Path, ray_session: None
) -> None:
    exp = load_config(
        QUICKSTART,
        overrides=[
            "strategy.name=bohb",
            "strategy.min_points_in_model=3",
            "scheduler.name=asha",
            "scheduler.grace_period=1",
            "scheduler.reduction_factor=2",
            "train.epochs=4",
            "budget.trials=8",
            "space_args.C=4",
            f"storage={tmp_path / 'runs'}",
        ],
    )
    result = raynas.run(exp, verbose=False)
    trials = result.trials
    assert len(trials) == 8
    assert (trials["status"] == "early_stopped").any(), trials[["status", "epochs"]]
    state = _searcher_state(result.path)
    assert len(state["history"]) == 8
    budgets = {b: len(points) for b, points in state["observations"].items()}
    assert budgets[1.0] == 8  # every trial reached the first rung and was observed there
    assert budgets.get(4.0, 0) >= 1 and budgets[4.0] < 8  # the promoted ones, at full budget
    assert sum(state["proposal_kinds"].values()) >= 8
