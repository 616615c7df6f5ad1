"""``moea``: NSGA-II sorting and crowding, objectives from results, failures dominated,
state round trip, the Pareto benchmark on a synthetic table, and the brute-force front."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from raynas.registry import get_space
from raynas.results.analysis import non_dominated
from raynas.strategies import StrategyError, get_strategy
from raynas.strategies.moea import MOEA, crowding_distance, dominates, non_dominated_sort
from raynas.testing.strategies import HandDriver, run_strategy_conformance
from tests.conftest import REPO

OPS = ["none", "skip_connect", "nor_conv_3x3"]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_pareto", REPO / "benchmarks" / "pareto.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synthetic_table(path: Path, seeds: int = 2) -> Path:
    """A NAS-Bench-201-like table over 3 ops: a cell without a path from input to output
    scores at chance, each conv on a live path adds accuracy, every conv adds parameters (so
    the front trades them), a hash of the arch adds noise."""
    space = get_space("nb201", C=4, N=1, ops=OPS)
    rows = []
    for arch in space.enumerate():
        cell = arch["cell"]
        edges = {(int(k[5]), int(k[7])): op for k, op in cell.items()}  # edge_i_j
        fwd, bwd = {0}, {3}
        for j in (1, 2, 3):
            if any(op != "none" and i in fwd for (i, jj), op in edges.items() if jj == j):
                fwd.add(j)
        for i in (2, 1, 0):
            if any(op != "none" and j in bwd for (ii, j), op in edges.items() if ii == i):
                bwd.add(i)
        convs = sum(op == "nor_conv_3x3" for op in edges.values())
        live = sum(op == "nor_conv_3x3" and i in fwd and j in bwd for (i, j), op in edges.items())
        text = space.to_string(arch)
        for seed in range(seeds):
            noise = int(hashlib.sha256(f"{text}{seed}".encode()).hexdigest()[:6], 16) / 16**6
            acc = 0.1 if 3 not in fwd else 0.35 + 0.09 * live + 0.15 * noise
            for epoch in (1, 2, 3):
                rows.append(
                    {
                        "arch": text,
                        "seed": seed,
                        "epoch": epoch,
                        "val_acc": acc * epoch / 3,
                        "params": 900 + 392 * convs,
                    }
                )
    pd.DataFrame(rows).to_parquet(path)
    return path


# --- NSGA-II pieces ---------------------------------------------------------------------
def brute_force_fronts(points: np.ndarray) -> list[set[int]]:
    remaining, fronts = set(range(len(points))), []
    while remaining:
        front = {
            i
            for i in remaining
            if not any(dominates(points[j], points[i]) for j in remaining if j != i)
        }
        fronts.append(front)
        remaining -= front
    return fronts


@pytest.mark.parametrize("seed", range(5))
def test_non_dominated_sort_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = rng.integers(0, 6, size=(40, 2 + seed % 3)).astype(float)  # ties included
    fronts = non_dominated_sort(points)
    assert [set(f) for f in fronts] == brute_force_fronts(points)
    assert sorted(i for f in fronts for i in f) == list(range(len(points)))


@pytest.mark.parametrize("seed", range(5))
def test_analysis_non_dominated_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    points = rng.integers(0, 5, size=(30, 2 + seed % 3)).astype(float)
    mask = non_dominated(points)  # minimisation
    expected = [not any(dominates(-points[j], -points[i]) for j in range(30)) for i in range(30)]
    assert mask.tolist() == expected


def test_crowding_distance_boundaries_and_interior() -> None:
    points = np.array([[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]])
    dist = crowding_distance(points)
    assert math.isinf(dist[0]) and math.isinf(dist[3])
    assert dist[1] == pytest.approx(3 / 4 + 3 / 4)
    assert dist[2] == pytest.approx(3 / 4 + 3 / 4)
    # a constant or missing (-inf) objective adds nothing and breaks nothing
    flat = np.array([[0.0, -math.inf], [1.0, -math.inf], [2.0, -math.inf]])
    assert np.isfinite(crowding_distance(flat)[1])


# --- the strategy -------------------------------------------------------------------------
def test_moea_passes_the_strategy_conformance_suite(tmp_path: Path) -> None:
    run_strategy_conformance("moea", tmp_path=tmp_path, population_size=8)


def test_objectives_default_to_metric_plus_params() -> None:
    space = get_space("nb201", C=4, N=1, ops=OPS)
    s = get_strategy("moea", space, metric="val_acc", mode="max")
    assert s.active_objectives() == [("val_acc", "max"), ("params", "min")]
    given = get_strategy(
        "moea",
        space,
        metric="val_acc",
        mode="max",
        objectives=[{"metric": "val_acc", "mode": "max"}, ["latency_ms", "min"]],
    )
    assert given.active_objectives() == [("val_acc", "max"), ("latency_ms", "min")]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"objectives": "val_acc"}, "list of \\(metric, mode\\) pairs"),
        ({"objectives": [("val_acc", "up")]}, "mode of 'val_acc' must be 'max' or 'min'"),
        ({"objectives": [("a", "max"), ("a", "min")]}, "name a metric twice"),
        ({"objectives": []}, "at least one"),
        ({"population_size": 1}, "population_size must be an integer >= 2"),
        ({"tournament_size": 0}, "tournament_size must be an integer >= 1"),
        ({"crossover_prob": 2.0}, "crossover_prob must be in \\[0, 1\\]"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        get_strategy("moea", get_space("nb201", C=4, N=1, ops=OPS), metric="val_acc", **kwargs)


def test_failures_are_dominated_by_everything_and_leave_first() -> None:
    space = get_space("nb201", C=4, N=1, ops=OPS)
    s = MOEA(space, metric="val_acc", mode="max", population_size=3, seed=0)
    archs = [space.sample(i) for i in range(4)]
    s.observe(archs[0], None, {"status": "constraint_violated", "params": 10})
    s.observe(archs[1], 0.2, {"val_acc": 0.2, "params": 5000})  # worst valid point
    s.observe(archs[2], 0.9, {"val_acc": 0.9, "params": 100})
    assert s.keys[0][0] == math.inf and s.keys[1][0] == 1 and s.keys[2][0] == 0
    s.observe(archs[3], 0.5, {"val_acc": 0.5, "params": 50})
    assert [a for a, _ in s.population] == archs[1:], "the failed member must leave first"
    assert {space.arch_id(a) for a, _ in s.front()} == {
        space.arch_id(archs[2]),
        space.arch_id(archs[3]),
    }


def test_objectives_come_from_the_result_with_their_modes() -> None:
    space = get_space("nb201", C=4, N=1, ops=OPS)
    s = MOEA(
        space,
        metric="val_loss",
        mode="min",
        objectives=[("val_loss", "min"), ("latency_ms", "min"), ("val_acc", "max")],
    )
    vec = s.objective_vector(-0.5, {"val_loss": 0.5, "latency_ms": 2.0, "val_acc": 0.8})
    assert vec == [-0.5, -2.0, 0.8]
    assert s.objective_vector(-0.5, {"val_loss": 0.5, "val_acc": 0.8}) == [-0.5, -math.inf, 0.8]
    assert s.objective_vector(None, {"val_loss": math.nan}) is None


def test_moea_finds_a_better_front_than_random_on_a_synthetic_table(tmp_path: Path) -> None:
    bench = _bench()
    table = synthetic_table(tmp_path / "t.parquet")
    figures = bench.run(table, budget=100, seeds=6, population=12, verbose=False)
    assert 0 < figures["random_hv_mean"] < figures["true_front_hv"] <= 1
    assert figures["moea_hv_mean"] > figures["random_hv_mean"]
    assert figures["moea_hv_mean"] <= figures["true_front_hv"] + 1e-12


def test_benchmark_cli_errors_name_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _bench()
    assert bench.main(["--table", str(tmp_path / "none.parquet")]) == 2
    assert "--table" in capsys.readouterr().err
    pd.DataFrame({"arch": ["x"], "val_acc": [0.5]}).to_parquet(tmp_path / "bad.parquet")
    assert bench.main(["--table", str(tmp_path / "bad.parquet")]) == 2
    assert "lacks the columns ['params']" in capsys.readouterr().err


def test_hypervolume_2d_against_a_grid_estimate() -> None:
    bench = _bench()
    rng = np.random.default_rng(0)
    pts = rng.random((12, 2))
    exact = bench.hypervolume_2d(pts, (1.0, 1.0))
    xs = (np.arange(400) + 0.5) / 400
    gx, gy = np.meshgrid(xs, xs)
    covered = np.zeros_like(gx, dtype=bool)
    for x, y in pts:
        covered |= (gx >= x) & (gy >= y)
    assert exact == pytest.approx(covered.mean(), abs=5e-3)
    assert bench.hypervolume_2d(np.array([[0.0, 0.0]]), (1.0, 1.0)) == 1.0
    assert bench.hypervolume_2d(np.empty((0, 2)), (1.0, 1.0)) == 0.0


def test_hand_driven_moea_front_is_non_dominated() -> None:
    space = get_space("nb201", C=4, N=1, ops=OPS)
    s = get_strategy("moea", space, metric="val_acc", mode="max", population_size=10, seed=1)

    def objective(arch: dict[str, Any]) -> dict[str, float]:
        convs = sum(op == "nor_conv_3x3" for op in arch["cell"].values())
        return {
            "val_acc": 0.5 + 0.05 * convs - 0.01 * (arch["cell"]["edge_0_3"] == "none"),
            "params": 900.0 + 392 * convs,
        }

    HandDriver(s, objective, concurrency=3).run(60)
    front = np.array([vec for _, vec in s.front()])
    for a, b in itertools.permutations(range(len(front)), 2):
        assert not dominates(front[a], front[b])


# --- through Ray Tune (slow) ----------------------------------------------------------------
@pytest.mark.slow
def test_moea_in_a_real_run_uses_the_configs_objectives(tmp_path: Path, ray_session: None) -> None:
    from raynas import run
    from tests.conftest import small_experiment

    exp = small_experiment(
        tmp_path,
        name="moea",
        strategy={"name": "moea", "population_size": 2},
        budget={"trials": 4, "concurrent": 2},
        objective={"also": [{"metric": "latency_ms", "mode": "min"}, {"metric": "params"}]},
    )
    result = run(exp, verbose=False)
    assert result.objectives == [("val_acc", "max"), ("latency_ms", "min"), ("params", "min")]
    assert len(result.trials) == 4 and result.trials["arch_id"].is_unique
    front = result.pareto()
    assert 1 <= len(front) <= 4
    assert set(front["trial_id"]) <= set(result.top(4)["trial_id"])


@pytest.mark.slow
def test_scalarised_objective_in_a_real_run(tmp_path: Path, ray_session: None) -> None:
    from raynas import run
    from tests.conftest import small_experiment

    exp = small_experiment(
        tmp_path,
        name="scalar",
        budget={"trials": 3, "concurrent": 2},
        objective={
            "metric": "objective",
            "mode": "max",
            "scalarize": {"val_acc": 1.0, "latency_ms": -0.01},
        },
    )
    result = run(exp, verbose=False)
    t = result.trials
    assert np.allclose(t["objective"], t["val_acc"] - 0.01 * t["latency_ms"])
    assert t.loc[result.top(1).index[0], "objective"] == t["objective"].max()
    assert (t["best_objective"] >= t["objective"] - 1e-12).all()
