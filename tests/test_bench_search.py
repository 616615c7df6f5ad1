"""Driving strategies by hand against a table; ``raynas bench search`` and ``convert``."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from raynas.bench.convert import ConvertError, api_to_frame, convert, open_api
from raynas.bench.search import (
    Asha,
    AshaRungs,
    evals_to_reach,
    mean_curve,
    run_search,
    run_search_via_tune,
    run_searches,
    summarize,
)
from raynas.bench.table import TableError, load_table
from raynas.cli import main
from raynas.registry import get_space
from raynas.strategies import list_strategies
from tests.test_bench_table import write_frame

SEARCH = {"metric": "val_acc", "report": "test_acc"}


@pytest.fixture()
def table_path(tmp_path: Path) -> Path:
    return write_frame(tmp_path / "t.parquet")


@pytest.fixture()
def table(table_path: Path) -> Any:
    return load_table(table_path)


def test_same_seed_same_search(table: Any) -> None:
    a = run_search(table, "evolution", budget=20, seed=3, **SEARCH)
    b = run_search(table, "evolution", budget=20, seed=3, **SEARCH)
    c = run_search(table, "evolution", budget=20, seed=4, **SEARCH)
    assert a.archs == b.archs and a.archs != c.archs
    np.testing.assert_array_equal(a.best_report, b.best_report)


def test_incumbent_is_best_by_metric_scored_by_report(table: Any) -> None:
    run = run_search(table, "random", budget=15, seed=0, **SEARCH)
    final = table.final()
    assert len(run.archs) == 15 and np.all(np.diff(run.best_metric) >= 0)
    ids = [table.space.arch_id(table.space.from_string(a)) for a in run.archs]
    for n in (1, 7, 15):
        best = final.loc[ids[:n], "val_acc"].idxmax()
        assert run.best_report[n - 1] == final.at[best, "test_acc"]
    assert np.all(run.regret >= 0)
    assert run.optimum == table.optimum("test_acc", "max")[1]


def test_exhausting_the_space_finds_the_optimum(table: Any) -> None:
    run = run_search(table, "random", budget=500, seed=1, metric="val_acc")
    assert len(run.archs) == 64  # FINISHED after every arch
    assert run.regret[-1] == 0 and run.evals_to_optimum is not None
    assert run.at(200, "regret") == 0


def test_min_mode_and_by_seed(table: Any) -> None:
    run = run_search(
        table,
        "random",
        budget=64,
        seed=0,
        metric="params",
        mode="min",
        report="test_acc",
        report_mode="max",
        seed_mode="by_seed",
    )
    assert run.best_metric[-1] == 1000  # the cheapest arch
    assert run.sim_time_s[-1] == pytest.approx(
        table.final(seed_mode="by_seed")["train_time_s"].sum()
    )


@pytest.mark.parametrize(
    "strategy", ["random", "grid", "evolution", "local_search", "bo", "reinforce", "tpe"]
)
def test_every_strategy_drives_by_hand(table: Any, strategy: str) -> None:
    if strategy not in list_strategies():
        pytest.skip(f"strategy {strategy!r} is not registered yet")
    runs = run_searches(table, strategy, seeds=[0, 1], budget=12, **SEARCH)
    assert [len(r.archs) for r in runs] == [12, 12]
    assert all(len(set(r.archs)) == 12 for r in runs)  # no arch evaluated twice


def test_summarize_and_curves(table: Any) -> None:
    runs = run_searches(table, "random", seeds=range(6), budget=10, **SEARCH)
    s = summarize(runs, budget=5)
    values = [r.best_report[4] for r in runs]
    assert s["budget"] == 5 and s["seeds"] == 6 and s["strategy"] == "random"
    assert s["mean"] == pytest.approx(np.mean(values))
    assert s["std"] == pytest.approx(np.std(values, ddof=1))
    assert s["median"] == pytest.approx(np.median(values))
    assert s["regret"] == pytest.approx(np.mean([r.regret[4] for r in runs]))
    curve = mean_curve(runs)
    assert len(curve) == 10 and np.all(np.diff(curve) <= 1e-12)
    assert evals_to_reach(curve, curve[6]) <= 7 and evals_to_reach(curve, -1.0) is None


def test_errors(table: Any) -> None:
    with pytest.raises(TableError, match=r"--metric: 'acc' is not a metric column"):
        run_search(table, "random", budget=3, metric="acc")
    with pytest.raises(TableError, match=r"--report: 'x' is not a metric column"):
        run_search(table, "random", budget=3, metric="val_acc", report="x")
    with pytest.raises(ValueError, match=r"has no argument 'colour'"):
        run_search(table, "random", budget=3, metric="val_acc", strategy_args={"colour": 1})


def test_arch_outside_the_table_is_named(tmp_path: Path) -> None:
    from tests.test_bench_table import make_frame

    df = make_frame()
    path = write_frame(tmp_path / "t.parquet", df[df["arch"] != df["arch"].iat[0]])
    with pytest.raises(TableError, match=r"is not in table .* records 63 of the 64"):
        run_search(load_table(path), "random", budget=64, seed=0, metric="val_acc")


# --- the CLI ------------------------------------------------------------------------
def test_cli_search_json_and_curve(
    table_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    curve = tmp_path / "curve.parquet"
    code = main(
        [
            "bench",
            "search",
            str(table_path),
            "--space",
            "nb201",
            "--strategy",
            "evolution",
            "--strategy-arg",
            "population_size=8",
            "--metric",
            "val_acc",
            "--report",
            "test_acc",
            "--budget",
            "12",
            "--seeds",
            "3",
            "--json",
            "--curve",
            str(curve),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert {"strategy", "budget", "seeds", "mean", "std", "median", "regret"} <= set(summary)
    assert summary["strategy"] == "evolution" and summary["seeds"] == 3
    df = pd.read_parquet(curve)
    assert len(df) == 36 and set(df["seed"]) == {0, 1, 2}
    assert curve.with_suffix(".png").stat().st_size > 1000


def test_cli_search_text(table_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "bench",
                "search",
                str(table_path),
                "--strategy",
                "random",
                "--metric",
                "val_acc",
                "--budget",
                "5",
                "--seeds",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "random on t.parquet (64 archs): 2 seeds x 5 evaluations" in out
    assert "mean regret" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--metric", "acc"], "--metric: 'acc' is not a metric column"),
        (["--metric", "val_acc", "--report", "top5"], "--report: 'top5' is not a metric"),
        (["--metric", "val_acc", "--strategy-arg", "colour=1"], "has no argument 'colour'"),
        (
            ["--metric", "val_acc", "--space-arg", "ops=[none, skip_connect]"],
            "column 'arch': .* is not in space",
        ),
    ],
)
def test_cli_search_user_errors_exit_2(
    table_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = main(
        [
            "bench",
            "search",
            str(table_path),
            "--strategy",
            "random",
            "--budget",
            "3",
            "--seeds",
            "1",
            *argv,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert pytest.importorskip("re").search(message, err), err


def test_cli_missing_table_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "bench",
            "search",
            str(tmp_path / "no.parquet"),
            "--strategy",
            "random",
            "--metric",
            "val_acc",
            "--budget",
            "3",
        ]
    )
    assert code == 2 and "does not exist" in capsys.readouterr().err


# --- convert (official API packages are an optional extra; a stand-in API here) ---------
class FakeMeta:
    def __init__(self, seeds: list[int], epochs: int) -> None:
        self.seeds, self.epochs = seeds, epochs

    def get_dataset_seeds(self, dataset: str) -> list[int]:
        return list(self.seeds)

    def get_total_epoch(self, dataset: str) -> int:
        return self.epochs


class FakeAPI:
    """The calls of NAS-Bench-201's API that convert uses, over the first archs of nb201."""

    def __init__(self, n: int = 5, epochs: int = 4) -> None:
        space = get_space("nb201")
        self.archs = [space.to_string(a) for a, _ in zip(space.enumerate(), range(n))]
        self.epochs = epochs

    def __len__(self) -> int:
        return len(self.archs)

    def arch(self, index: int) -> str:
        return self.archs[index]

    def query_meta_info_by_index(self, index: int, hp: str = "12") -> FakeMeta:
        if hp != "12":
            raise ValueError(f"only has hyper-parameters of ['12'] instead of {hp}")
        return FakeMeta([777, 888], self.epochs)

    def get_cost_info(self, index: int, dataset: str, hp: str = "12") -> dict[str, float]:
        return {"params": 0.1 + index, "flops": 10.0, "latency": 0.002}

    def get_more_info(
        self,
        index: int,
        dataset: str,
        iepoch: int | None = None,
        hp: str = "12",
        is_random: Any = True,
    ) -> dict[str, float]:
        e = self.epochs - 1 if iepoch is None else iepoch
        return {
            "train-loss": 1.0 / (e + 1),
            "train-accuracy": 50.0 + e,
            "valid-accuracy": 40.0 + e + index,
            "test-accuracy": 41.0 + e,
            "train-all-time": 2.0 * (e + 1),
        }


def test_api_to_frame_scales_and_curves() -> None:
    df = api_to_frame(FakeAPI(), dataset="cifar10-valid", hp="12")
    assert len(df) == 5 * 2 * 4 and sorted(set(df["seed"])) == [777, 888]
    row = df[(df["arch"] == FakeAPI().archs[1]) & (df["epoch"] == 4)].iloc[0]
    assert row["val_acc"] == pytest.approx(0.44) and row["test_acc"] == pytest.approx(0.44)
    assert row["params"] == pytest.approx(1.1e6) and row["latency_ms"] == pytest.approx(2.0)
    assert row["train_time_s"] == 8.0
    final = api_to_frame(FakeAPI(), dataset="cifar10-valid", hp="12", final_only=True, limit=2)
    assert len(final) == 2 * 2 and set(final["epoch"]) == {4}


def test_convert_writes_a_loadable_table(tmp_path: Path) -> None:
    out = tmp_path / "nb.parquet"
    report = convert("fake.pth", out, api=FakeAPI(), hp="12")
    assert report == {"out": str(out), "rows": 40, "archs": 5}
    table = load_table(out)
    assert table.space_name == "nb201" and table.space.cardinality == 15625
    with pytest.raises(ConvertError, match=r"--dataset/--hp: arch 0 has no 'cifar10-valid'"):
        convert("fake.pth", out, api=FakeAPI(), hp="200")
    with pytest.raises(ConvertError, match=r"--dataset: 'svhn' is not one of"):
        convert("fake.pth", out, api=FakeAPI(), dataset="svhn")


def test_convert_without_package_or_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConvertError, match=r"source: .* does not exist"):
        open_api(tmp_path / "NAS-Bench-201-v1_1-096897.pth")
    fake = tmp_path / "bench.pth"
    fake.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "nas_201_api", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "nats_bench", None)
    with pytest.raises(ConvertError, match=r"pip install 'raynas\[nasbench\]'"):
        open_api(fake, "nb201")
    code = main(
        [
            "bench",
            "convert",
            str(fake),
            "--benchmark",
            "nats-tss",
            "--out",
            str(tmp_path / "o.parquet"),
        ]
    )
    assert code == 2 and "raynas[nasbench]" in capsys.readouterr().err


# --- the same search through Tune (slow: a real Ray experiment per seed) ----------------
@pytest.mark.slow
@pytest.mark.parametrize(
    ("strategy", "seed"), [("evolution", 0), ("evolution", 1), ("local_search", 0)]
)
def test_via_tune_gives_the_same_trajectory(
    ray_session: None, table: Any, tmp_path: Path, strategy: str, seed: int
) -> None:
    kwargs: dict[str, Any] = {"budget": 8, "seed_mode": "by_seed", "seed": seed, **SEARCH}
    if strategy == "evolution":
        kwargs["strategy_args"] = {"population_size": 3, "sample_size": 2}
    direct = run_search(table, strategy, **kwargs)
    tuned = run_search_via_tune(table, strategy, storage=tmp_path, **kwargs)
    assert tuned.archs == direct.archs
    np.testing.assert_array_equal(tuned.best_report, direct.best_report)
    np.testing.assert_array_equal(tuned.sim_time_s, direct.sim_time_s)


def _official_api_dict(n: int = 3, epochs: int = 2) -> dict[str, Any]:
    """A tiny benchmark in NAS-Bench-201's own format, made with its own result classes."""
    from nas_201_api import ArchResults, ResultsCount

    space = get_space("nb201")
    archs = [space.to_string(a) for a, _ in zip(space.enumerate(), range(n))]
    arch2infos = {}
    for index, arch in enumerate(archs):
        infos = {}
        for hp, total in (("less", epochs), ("full", epochs + 1)):
            res = ArchResults(index, arch)
            for seed in (777, 888):
                rc = ResultsCount(
                    "cifar10-valid",
                    None,
                    [50.0 + e for e in range(total)],
                    [1.0 / (e + 1) for e in range(total)],
                    0.5 + index,
                    20.0,
                    {"arch_str": arch},
                    seed,
                    total,
                    [0.004],
                )
                rc.update_train_info(
                    [50.0 + e for e in range(total)],
                    None,
                    [1.0 / (e + 1) for e in range(total)],
                    {e: 3.0 for e in range(total)},
                )
                keys = [f"{name}@{e}" for name in ("x-valid", "ori-test") for e in range(total)]
                accs = {k: 60.0 + index + int(k.split("@")[1]) + (seed == 888) for k in keys}
                rc.update_eval(accs, {k: 0.5 for k in keys}, {k: 1.0 for k in keys})
                res.update("cifar10-valid", seed, rc)
            infos[hp] = res.state_dict()
        arch2infos[index] = infos
    return {"meta_archs": archs, "arch2infos": arch2infos, "evaluated_indexes": list(range(n))}


def test_convert_through_the_official_nas_bench_201_api(tmp_path: Path) -> None:
    """Runs where the optional extra is installed (pip install 'raynas[nasbench]')."""
    api_mod = pytest.importorskip("nas_201_api")
    api = api_mod.NASBench201API(_official_api_dict(), verbose=False)
    out = tmp_path / "nb.parquet"
    assert convert("in-memory", out, api=api, hp="12")["rows"] == 3 * 2 * 2
    table = load_table(out)
    final = table.final(seed_mode="by_seed", seed=1)  # seeds [777, 888]: 888
    first = table.space.arch_id(table.space.from_string(api.arch(0)))
    assert final.at[first, "val_acc"] == pytest.approx(0.62)  # 60 + epoch 1 + seed 888
    assert final.at[first, "train_time_s"] == pytest.approx(6.0)  # cumulative
    assert final.at[first, "params"] == pytest.approx(0.5e6)
    assert convert("in-memory", out, api=api, hp="200", final_only=True)["rows"] == 3 * 2
    assert set(load_table(out).df["epoch"]) == {3}  # the 200-epoch stand-in has 3 epochs


# --- ASHA replayed on the curves ------------------------------------------------------------
@pytest.fixture()
def table9(tmp_path: Path) -> Any:
    """The synthetic 64-arch table with 9-epoch curves (ASHA rungs at 1, 3 and 9)."""
    from tests.test_bench_table import make_frame

    return load_table(write_frame(tmp_path / "t9.parquet", make_frame(epochs=9)))


@pytest.mark.parametrize(
    ("grace", "eta", "max_t", "expected"),
    [(1, 3, 9, [1, 3, 9]), (1, 3, 3, [1, 3]), (1, 2, 3, [1, 2]), (2, 2, 16, [2, 4, 8, 16])],
)
def test_asha_rungs_follow_tunes_formula(grace: int, eta: int, max_t: int, expected: list) -> None:
    from ray.tune.schedulers.async_hyperband import _Bracket

    assert Asha(grace, eta).milestones(max_t) == expected
    tune_rungs = sorted(m for m, _ in _Bracket(grace, max_t, eta, 0)._rungs)
    assert tune_rungs == expected


@pytest.mark.parametrize("seed", range(3))
def test_asha_rungs_decide_like_tunes_async_hyperband(seed: int) -> None:
    from types import SimpleNamespace

    from ray.tune.schedulers import AsyncHyperBandScheduler

    rng = np.random.default_rng(seed)
    tune = AsyncHyperBandScheduler(
        time_attr="epoch", metric="v", mode="min", max_t=9, grace_period=1, reduction_factor=3
    )
    ours = AshaRungs(Asha(1, 3), 9)
    trials = {f"t{i}": SimpleNamespace(trial_id=f"t{i}") for i in range(40)}
    epoch = dict.fromkeys(trials, 0)
    for trial in trials.values():
        tune.on_trial_add(None, trial)  # type: ignore[arg-type]
    decisions = 0
    while epoch:
        tid = list(epoch)[int(rng.integers(min(len(epoch), 5)))]  # a few run at once
        epoch[tid] += 1
        value = float(rng.normal()) if rng.random() > 0.05 else math.nan
        result = {"epoch": epoch[tid], "v": value}
        stop = tune.on_trial_result(None, trials[tid], result) == "STOP"  # type: ignore[arg-type]
        assert ours.on_result(tid, epoch[tid], -value) is stop, (tid, result)
        decisions += 1
        if stop:
            tune.on_trial_complete(None, trials[tid], result)  # type: ignore[arg-type]
            ours.on_complete(tid, epoch[tid], -value)
            del epoch[tid]
    assert decisions > 40


def test_asha_replay_stops_trials_and_keeps_only_full_ones_as_incumbents(table9: Any) -> None:
    run = run_search(table9, "random", budget=30, seed=0, scheduler=Asha(1, 3), **SEARCH)
    full = run_search(table9, "random", budget=30, seed=0, **SEARCH)
    assert sorted(run.archs) == sorted(full.archs)  # random: the same proposals
    assert 0 < run.stopped < 30 and run.epochs < full.epochs == 30 * 9
    final = table9.final()
    ids = [table9.space.arch_id(table9.space.from_string(a)) for a in run.archs]
    assert run.metric_values[0] == pytest.approx(final.at[ids[0], "val_acc"])  # first: full
    done = [i for i, v in enumerate(run.metric_values) if v == final.at[ids[i], "val_acc"]]
    best = max(done, key=lambda i: final.at[ids[i], "val_acc"])
    assert run.best_report[-1] == final.at[ids[best], "test_acc"]
    assert run.sim_time_s[-1] < full.sim_time_s[-1]


def test_asha_replay_feeds_every_continued_epoch_to_the_searcher(table9: Any) -> None:
    from raynas.bench.search import _Replay
    from raynas.strategies import get_strategy

    searcher = get_strategy("evolution", table9.space, metric="val_acc", mode="max", seed=0)
    results: list[tuple[str, int]] = []
    on_result = searcher.on_trial_result
    searcher.on_trial_result = lambda t, r: results.append((t, r["epoch"])) or on_result(t, r)  # type: ignore[method-assign]
    records = _Replay(table9, searcher, seed_mode="mean", seed=0, time_column=None).run(
        20, Asha(1, 3), 1, "max"
    )
    assert len(records) == 20 == len(searcher.history)
    stopped = [f for f in searcher.fidelities if f is not None]
    assert stopped and set(stopped) <= {1.0, 3.0}
    assert all(r.get("censored") for r in records if r["epoch"] < 9)
    assert ("t000000", 8) in results and ("t000000", 9) not in results  # Tune: not the last
    epochs_seen = {e for t, e in results if t == "t000000"}
    assert epochs_seen == set(range(1, 9))  # the first trial always runs its full budget
    assert set(searcher.rung_pairs) == set(map(float, range(1, 9)))  # its curve links rungs


def test_asha_replay_with_a_shorter_budget_and_concurrency(table9: Any) -> None:
    short = run_search(
        table9, "random", budget=20, seed=1, scheduler=Asha(1, 3, max_t=3), concurrency=4, **SEARCH
    )
    assert short.epochs <= 20 * 3 and short.stopped > 0
    again = run_search(
        table9, "random", budget=20, seed=1, scheduler=Asha(1, 3, max_t=3), concurrency=4, **SEARCH
    )
    assert again.archs == short.archs
    np.testing.assert_array_equal(again.best_report, short.best_report)
    parallel = run_search(table9, "random", budget=20, seed=1, concurrency=4, **SEARCH)
    serial = run_search(table9, "random", budget=20, seed=1, **SEARCH)
    assert sorted(parallel.archs) == sorted(serial.archs) and parallel.stopped == 0
    with pytest.raises(TableError, match="concurrency must be an integer >= 1"):
        run_search(table9, "random", budget=2, concurrency=0, **SEARCH)
    with pytest.raises(TableError, match="reduction_factor > 1"):
        Asha(1, 1)
