"""Proxies inside the search (``strategy.proxy``): validation, wiring, determinism, replay."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from raynas.bench.search import TableProxy, run_searches, summarize
from raynas.bench.table import load_table
from raynas.cli import main
from raynas.registry import RegistryError, get_space
from raynas.strategies import StrategyError, get_strategy, strategy_parameters
from raynas.strategies.proxy import KNOWN_PROXIES, BatchScorer, ProxyGuided
from raynas.testing import strategies as conformance
from tests.conftest import REPO

TABLE = REPO / "benchmarks" / "data" / "nb201-3ops-digits.parquet"
GUIDED = ("evolution", "random", "local_search", "bo")
FAST = {
    "bo": {"num_init": 5, "ensemble_size": 3, "fit_steps": 10, "num_candidates": 30},
    "evolution": {"population_size": 10, "sample_size": 3},
}


def fake_scorer(arch: Any) -> float:
    """Cheap, deterministic, independent of the conformance objective and constraint (both
    ``hash_objective``); NaN for some archs (they must rank last, not crash)."""
    blob = json.dumps(arch, sort_keys=True) + "proxy"
    value = int(hashlib.sha256(blob.encode()).hexdigest()[:8], 16) / 16**8
    return math.nan if value < 0.05 else value


def _proxy(**extra: Any) -> dict[str, Any]:
    return {"name": "fake", "scorer": fake_scorer, "warmup_pool": 30, "move_candidates": 5, **extra}


def _searcher(name: str = "evolution", **kwargs: Any) -> Any:
    space = conformance.small_space()
    return get_strategy(name, space, metric="score", mode="max", seed=0, **kwargs)


# --- validation --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("proxy", "match"),
    [
        ({"name": "synflw"}, r"strategy\.proxy\.name: proxy 'synflw' is unknown; choose one of "),
        ({"warmup_pool": 5}, r"strategy\.proxy\.name must be a proxy name"),
        ({"name": "synflow", "warmup_pool": 0}, r"strategy\.proxy\.warmup_pool must be an int"),
        ({"name": "synflow", "warmup_pool": True}, r"warmup_pool=True"),
        ({"name": "synflow", "move_candidates": 2.5}, r"strategy\.proxy\.move_candidates"),
        ({"name": "synflow", "pool": 3}, r"strategy\.proxy has no key 'pool'; its keys are"),
        ({"name": "x", "scorer": 3}, r"strategy\.proxy\.scorer must be callable"),
        ([1, 2], r"strategy\.proxy must be a mapping"),
    ],
)
def test_bad_proxy_arguments_name_the_field(proxy: Any, match: str) -> None:
    with pytest.raises(StrategyError, match=match):
        _searcher(proxy=proxy)


def test_unknown_name_lists_the_known_ones_which_are_raynas_proxies() -> None:
    from raynas.proxies import list_proxies

    assert list(KNOWN_PROXIES) == list_proxies()  # the strategies layer keeps its own copy
    with pytest.raises(StrategyError) as err:
        _searcher(proxy={"name": "nope"})
    assert "'synflow'" in str(err.value) and "'vote'" in str(err.value)


def test_a_plain_name_and_defaults() -> None:
    s = _searcher(proxy="synflow")
    assert (s.proxy.name, s.proxy.warmup_pool, s.proxy.move_candidates) == ("synflow", 100, 10)
    assert _searcher().proxy is None


def test_which_strategies_take_a_proxy() -> None:
    from raynas.registry import STRATEGIES

    for name in GUIDED:
        assert "proxy" in strategy_parameters(STRATEGIES.get(name))
    with pytest.raises(RegistryError, match="has no argument 'proxy'"):
        _searcher("tpe", proxy={"name": "synflow"})


def test_config_validation_names_strategy_proxy(tmp_path: Path) -> None:
    from raynas.experiment.config import ConfigError
    from raynas.experiment.config_check import check_experiment
    from raynas.experiment.config_load import load_config
    from tests.conftest import small_experiment

    exp = small_experiment(
        tmp_path, strategy={"name": "evolution", "proxy": {"name": "synflow", "warmup_pool": -1}}
    )
    with pytest.raises(ConfigError, match=r"strategy\.proxy\.warmup_pool"):
        check_experiment(load_config(exp))


def test_no_scorer_is_a_clear_error() -> None:
    s = _searcher(proxy={"name": "synflow"})
    with pytest.raises(StrategyError, match=r"has no scorer.*set_proxy_scorer"):
        s.suggest("t0")
    s.set_proxy_scorer(fake_scorer)
    assert isinstance(s.suggest("t0"), dict)


# --- conformance, determinism, stats -----------------------------------------------------
@pytest.mark.parametrize("name", GUIDED)
def test_conformance_with_a_proxy(name: str, tmp_path: Path) -> None:
    conformance.run_strategy_conformance(
        name, tmp_path=tmp_path, proxy=_proxy(), **FAST.get(name, {})
    )


@pytest.mark.parametrize("name", GUIDED)
def test_the_warmup_is_the_top_of_the_pool_and_costs_no_trial(name: str) -> None:
    s = _searcher(name, proxy=_proxy(warmup_pool=40), **FAST.get(name, {}))
    first = s.suggest("t0")["arch"]
    assert isinstance(s, ProxyGuided) and s.warmup is not None and len(s.warmup) == 40
    scores = s.proxy_scores(s.warmup)
    assert s.space.arch_id(first) == s.space.arch_id(s.warmup[0])
    assert scores[0] == np.nanmax(scores)
    finite = scores[~np.isnan(scores)]
    assert list(finite) == sorted(finite, reverse=True)  # NaN (invalid) ranked last
    assert s.proxy_stats["archs_scored"] == 40 and s.proxy_stats["seconds"] >= 0
    assert len(s.live) == 1 and not s.history  # scoring used no trial


def test_moves_are_best_of_k_and_scores_are_cached() -> None:
    calls: list[str] = []

    def counting(arch: Any) -> float:
        calls.append(json.dumps(arch, sort_keys=True))
        return conformance.hash_objective(arch)

    s = _searcher(proxy={"name": "c", "scorer": counting, "warmup_pool": 1, "move_candidates": 8})
    driver = conformance.HandDriver(s, conformance.hash_objective)
    driver.run(60)
    assert len(calls) == len(set(calls)) == s.proxy_stats["archs_scored"]  # each arch once
    assert s.proxy_stats["lookups"] > s.proxy_stats["archs_scored"]
    plain = _searcher(
        proxy={"name": "c", "scorer": counting, "warmup_pool": 1, "move_candidates": 1}
    )
    conformance.HandDriver(plain, conformance.hash_objective).run(25)
    assert plain.proxy_stats["archs_scored"] == 0  # both uses off: never scored


def test_off_by_one_settings_change_nothing_but_proxy_none_is_the_old_search() -> None:
    def run(**kw: Any) -> list[str]:
        s = _searcher(**kw)
        archs = conformance.HandDriver(s, conformance.hash_objective).run(40)
        return [s.space.arch_id(a) for a in archs]

    off = _proxy(warmup_pool=1, move_candidates=1)
    assert run(population_size=10) == run(population_size=10, proxy=off)
    assert run(population_size=10) != run(population_size=10, proxy=_proxy())


def test_save_restore_keeps_cache_and_pool_and_drops_the_scorer(tmp_path: Path) -> None:
    a = _searcher(proxy=_proxy(scorer=lambda arch: fake_scorer(arch)), population_size=10)
    driver = conformance.HandDriver(a, conformance.hash_objective, concurrency=3)
    driver.run(15)
    path = str(tmp_path / "s.pkl")
    a.save(path)
    b = _searcher(proxy=_proxy(scorer=lambda arch: fake_scorer(arch)), population_size=10)
    b.restore(path)
    assert b.proxy_cache.keys() == a.proxy_cache.keys() and b.warmup == a.warmup
    keys = list(a.proxy_cache)
    same = [a.proxy_cache[k] for k in keys], [b.proxy_cache[k] for k in keys]
    assert np.array_equal(*same, equal_nan=True)
    assert b.proxy_stats["archs_scored"] == a.proxy_stats["archs_scored"]
    driver_b = driver.clone_for(b)
    ids = [a.space.arch_id(x) for x in driver.run(20)]
    assert ids == [b.space.arch_id(x) for x in driver_b.run(20)]


def test_a_batch_scorer_gets_the_pool_in_one_call() -> None:
    sizes: list[int] = []

    def many(archs: list[Any]) -> list[float]:
        sizes.append(len(archs))
        return [fake_scorer(a) for a in archs]

    s = _searcher("random", proxy={"name": "b", "scorer": BatchScorer(many), "warmup_pool": 25})
    s.suggest("t0")
    assert sizes == [25]


def test_a_real_synflow_scorer_over_raynas_proxies_scoring() -> None:
    """The wiring a run uses: one data-free ScoreJob, the pool scored in one call."""
    from raynas.proxies.scoring import ScoreJob, run_scoring

    args = {"C": 4, "N": 1, "ops": ["none", "skip_connect", "nor_conv_3x3"]}
    job = ScoreJob("nb201", args, ("synflow",), input_shape=(1, 8, 8), num_classes=10)

    def many(archs: list[Any]) -> list[float]:
        texts = [json.dumps(a, sort_keys=True) for a in archs]
        table = run_scoring(job, texts, out=None, use_ray=False, log=lambda _: None)
        return [float(v) for v in table["synflow"]]

    space = get_space("nb201", **args)
    s = get_strategy(
        "evolution",
        space,
        metric="val_acc",
        mode="max",
        seed=0,
        proxy={"name": "synflow", "scorer": BatchScorer(many), "warmup_pool": 6},
    )
    s.suggest("t0")
    assert isinstance(s, ProxyGuided) and s.warmup is not None
    assert s.proxy_stats["archs_scored"] == 6 and s.proxy_stats["seconds"] > 0
    assert np.isfinite(s.proxy_scores(s.warmup)).sum() >= 1


# --- tabular replay ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def table() -> Any:
    return load_table(TABLE)


def test_an_oracle_proxy_beats_plain_evolution(table: Any) -> None:
    """The wiring, not a claim about proxies: the table's own test_acc as the proxy."""
    oracle = TableProxy.from_column(table, "test_acc")
    kw: dict[str, Any] = {"metric": "val_acc", "report": "test_acc", "budget": 20}
    plain = run_searches(table, "evolution", seeds=range(10), **kw)
    proxy = {"name": "test_acc", "scorer": oracle, "warmup_pool": 200, "move_candidates": 10}
    guided = run_searches(table, "evolution", seeds=range(10), strategy_args={"proxy": proxy}, **kw)
    assert summarize(guided)["mean"] > summarize(plain)["mean"]
    assert summarize(guided)["proxy"]["proxy"] == "test_acc"
    assert "proxy" not in summarize(plain)
    assert all(len(r.archs) == 20 for r in guided)  # the proxy took no evaluation


def _proxy_table(table: Any, path: Path) -> Path:
    view = table.final()
    df = pd.DataFrame({"arch_id": view.index, "synflow": view["params"].to_numpy()})
    df.loc[::7, "synflow"] = math.nan
    df.to_parquet(path, index=False)
    return path


def test_cli_bench_search_with_a_proxy_table(
    table: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _proxy_table(table, tmp_path / "proxies.parquet")
    base = [
        "bench", "search", str(TABLE), "--strategy", "evolution", "--metric", "val_acc",
        "--report", "test_acc", "--budget", "15", "--seeds", "3",
    ]  # fmt: skip
    flags = ["--proxy-table", str(path), "--proxy", "synflow", "--warmup-pool", "50"]
    assert main([*base, *flags, "--move-candidates", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["budget"] == 15 and out["proxy"]["proxy"] == "synflow"
    assert (out["proxy"]["warmup_pool"], out["proxy"]["move_candidates"]) == (50, 4)
    assert out["proxy"]["archs_scored_mean"] >= 50
    assert main([*base, *flags]) == 0
    text = capsys.readouterr().out
    assert "test_acc of the best-by-val_acc arch at 15" in text
    assert "proxy synflow (warmup_pool 50, move_candidates 10)" in text
    assert main([*base, "--proxy-column", "params"]) == 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--proxy", "synflow"], "--proxy: needs a proxy source"),
        (["--warmup-pool", "5"], "--warmup-pool: needs a proxy source"),
        (["--proxy-table", "P"], "--proxy-table: name the proxy column with --proxy"),
        (["--proxy-table", "P", "--proxy", "nope"], "has no column 'nope'"),
        (["--proxy-table", "missing.parquet", "--proxy", "synflow"], "does not exist"),
        (["--proxy-column", "nope"], "nope"),
        (["--proxy-column", "params", "--strategy", "tpe"], "'tpe' takes no proxy"),
        (["--proxy-column", "params", "--proxy-table", "P"], "give one proxy source"),
    ],
)
def test_cli_proxy_flag_errors_exit_2(
    table: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    path = _proxy_table(table, tmp_path / "proxies.parquet")
    flags = [str(path) if f == "P" else f for f in flags]
    args = ["bench", "search", str(TABLE), "--metric", "val_acc", "--budget", "5", "--seeds", "1"]
    if "--strategy" not in flags:
        args += ["--strategy", "evolution"]
    assert main([*args, *flags]) == 2
    assert message in capsys.readouterr().err


# --- the proxy as a surrogate feature (bo) -----------------------------------------------
def test_proxy_feature_needs_a_proxy_and_a_bool() -> None:
    with pytest.raises(StrategyError, match=r"proxy_feature: true needs strategy\.proxy"):
        _searcher("bo", proxy_feature=True)
    with pytest.raises(StrategyError, match=r"proxy_feature must be true or false, got 'yes'"):
        _searcher("bo", proxy=_proxy(), proxy_feature="yes")


def test_conformance_with_the_proxy_as_a_feature(tmp_path: Path) -> None:
    conformance.run_strategy_conformance(
        "bo", tmp_path=tmp_path, proxy=_proxy(warmup_pool=1, move_candidates=1),
        proxy_feature=True, **FAST["bo"],
    )  # fmt: skip


def test_the_surrogate_takes_the_proxy_quantile_as_one_more_input() -> None:
    s = _searcher("bo", proxy=_proxy(warmup_pool=1, move_candidates=1), proxy_feature=True,
                  **FAST["bo"])  # fmt: skip
    conformance.HandDriver(s, conformance.hash_objective).run(FAST["bo"]["num_init"] + 2)
    assert s.model is not None
    assert s.model.inputs == len(s.encode(s.history[0][0])) + 1
    archs = [a for a, _ in s.history]
    column = s._proxy_column(archs)[:, 0]
    raw = s.proxy_scores(archs)
    assert np.all(column[np.isnan(raw)] == -0.25)
    valid = ~np.isnan(raw)
    assert np.all((column[valid] > 0) & (column[valid] <= 1))
    order = np.argsort(raw[valid])  # the quantile keeps the proxy's order
    assert np.all(np.diff(column[valid][order]) >= 0)


def test_the_surrogate_learns_from_the_proxy_feature() -> None:
    """The wiring, not a claim about proxies: with the objective itself (a hash the space's
    own features cannot explain) as the proxy, the fitted surrogate ranks fresh candidates as
    the objective does; without the feature it cannot."""
    from scipy.stats import spearmanr

    def rank_correlation(feature: bool) -> float:
        oracle = {"name": "oracle", "scorer": conformance.hash_objective}
        s = _searcher("bo", proxy={**oracle, "warmup_pool": 1, "move_candidates": 1},
                      proxy_feature=feature, **FAST["bo"])  # fmt: skip
        conformance.HandDriver(s, conformance.hash_objective).run(30)
        s._fit()  # on all 30 results
        candidates = s._candidates()
        x = np.stack([vec for _, _, vec in candidates])
        if feature:
            x = np.hstack([x, s._proxy_column([arch for arch, _, _ in candidates])])
        mean, _ = s.predict(x)
        truth = [conformance.hash_objective(arch) for arch, _, _ in candidates]
        return float(spearmanr(mean, truth).statistic)

    assert rank_correlation(True) > 0.5 > abs(rank_correlation(False))
