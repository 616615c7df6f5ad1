"""``raynas.load`` / ``raynas analyze``: folders Tune wrote (real runs, marked slow) and folders
written by hand in Tune's layout (fast): every status, half-written files, zero trials, the
stable schema, top-k, Pareto fronts against brute force, lineage."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import raynas
from raynas.cli import main as cli_main
from raynas.results.analysis import CURVE_COLUMNS, STATUSES, TRIAL_COLUMNS, load
from tests.conftest import QUICKSTART, REPO, raynas_run_argv, small_experiment

ARCH = {
    "cell": {
        "edge_0_1": "nor_conv_3x3",
        "edge_0_2": "skip_connect",
        "edge_1_2": "none",
        "edge_0_3": "skip_connect",
        "edge_1_3": "nor_conv_3x3",
        "edge_2_3": "none",
    }
}


# --- folders in Tune's layout, written by hand ----------------------------------------------
def write_experiment(folder: Path, *, epochs: int = 3, also: Sequence[dict[str, str]] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "name": folder.name,
        "train": {"epochs": epochs},
        "objective": {"metric": "val_acc", "mode": "max", "also": list(also)},
    }
    (folder / "raynas_experiment.yaml").write_text(json.dumps(cfg))
    return folder


def write_trial(
    folder: Path,
    trial_id: str,
    index: int,
    accs: Sequence[float],
    *,
    status: str = "ok",
    epochs: int = 3,
    error: str | None = None,
    params: int = 1000,
    extra: dict[str, Any] | None = None,
    arch: dict[str, Any] | None = None,
) -> Path:
    """A trial folder: params.json, one result line per epoch (``accs``), maybe error.txt."""
    tdir = folder / f"ClassifyTrainable_{trial_id}_{index}_edge=x_2026-01-01_00-00-00"
    tdir.mkdir(parents=True)
    config = {"train": {"epochs": epochs}, "arch": arch or ARCH, "space": {"name": "nb201"}}
    (tdir / "params.json").write_text(json.dumps(config))
    lines = []
    for e, acc in enumerate(accs, start=1):
        lines.append(
            {
                "trial_id": trial_id,
                "epoch": e,
                "val_acc": acc,
                "val_loss": 1 - acc,
                "train_loss": 2 - acc,
                "status": status if e == len(accs) else "ok",
                "params": params,
                "flops": 10 * params,
                "latency_ms": 1.5,
                "arch_id": f"id-{trial_id}",
                "arch_str": f"arch-{trial_id}",
                "timestamp": 1000 + 10 * index + e,
                "time_total_s": float(e),
                "done": e == len(accs),
                **(extra or {}),
            }
        )
    if status == "constraint_violated":
        lines = [
            {
                "trial_id": trial_id,
                "epoch": 0,
                "status": status,
                "params": params,
                "violations": "params <= 10",
                "done": True,
                "timestamp": 1000 + 10 * index,
            }
        ]
    (tdir / "result.json").write_text("".join(json.dumps(r) + "\n" for r in lines))
    if error is not None:
        (tdir / "error.txt").write_text(f"Traceback (most recent call last):\n  ...\n{error}\n")
    return tdir


def write_state(folder: Path, statuses: dict[str, str]) -> None:
    trial_data = [
        [
            json.dumps({"trial_id": t, "status": s, "relative_logdir": None}),
            json.dumps({"start_time": 1000.0}),
        ]
        for t, s in statuses.items()
    ]
    (folder / "experiment_state-2026-01-01_00-00-00.json").write_text(
        json.dumps({"trial_data": trial_data})
    )


@pytest.fixture
def every_status(tmp_path: Path) -> Path:
    folder = write_experiment(tmp_path / "exp")
    write_trial(folder, "a0", 1, [0.5, 0.7, 0.8])  # completed
    write_trial(folder, "a1", 2, [0.3])  # early stopped
    write_trial(folder, "a2", 3, [], error="RuntimeError: boom at setup")  # error
    write_trial(folder, "a3", 4, [0.2, 0.6, 0.9], error="OSError: node lost")  # retried, done
    write_trial(folder, "a4", 5, [0.4, float("nan")], status="diverged")
    write_trial(folder, "a5", 6, [], status="constraint_violated", params=99999)
    write_trial(folder, "a6", 7, [0.45], status="oom", extra={"error": "MemoryError: big"})
    write_trial(folder, "a7", 8, [0.1, 0.2])  # running
    write_state(
        folder,
        {
            "a0": "TERMINATED",
            "a1": "TERMINATED",
            "a2": "ERROR",
            "a3": "TERMINATED",
            "a4": "TERMINATED",
            "a5": "TERMINATED",
            "a6": "TERMINATED",
            "a7": "RUNNING",
        },
    )
    return folder


def test_every_status_from_the_files(every_status: Path) -> None:
    result = load(every_status)
    status = dict(zip(result.trials["trial_id"], result.trials["status"]))
    assert status == {
        "a0": "completed",
        "a1": "early_stopped",
        "a2": "error",
        "a3": "completed",
        "a4": "diverged",
        "a5": "constraint_violated",
        "a6": "oom",
        "a7": "running",
    }
    assert set(status.values()) <= set(STATUSES)
    assert not result.finished
    row = result.trials.set_index("trial_id")
    assert row.loc["a2", "error"] == "RuntimeError: boom at setup"
    assert row.loc["a6", "error"] == "MemoryError: big"
    assert row.loc["a5", "violations"] == "params <= 10"
    assert row.loc["a0", "best_val_acc"] == 0.8 and row.loc["a0", "best_epoch"] == 3
    assert row.loc["a3", "epochs"] == 3 and row.loc["a1", "epochs"] == 1
    assert row.loc["a0", "arch.cell.edge_0_1"] == "nor_conv_3x3"
    assert list(result.trials["trial_index"]) == list(range(1, 9))
    assert result.status_counts() == {
        "completed": 2,
        "early_stopped": 1,
        "error": 1,
        "diverged": 1,
        "constraint_violated": 1,
        "oom": 1,
        "running": 1,
    }
    # curves: long form, trained epochs only, every reported metric
    assert len(result.curves) == 3 + 1 + 3 + 2 + 1 + 2
    assert list(result.curves.columns[: len(CURVE_COLUMNS)]) == list(CURVE_COLUMNS)
    assert {"params", "flops", "latency_ms"} <= set(result.curves.columns)
    # top: failures and divergences excluded; running trials ranked on their latest result
    assert list(result.top(3)["trial_id"]) == ["a3", "a0", "a1"]
    assert list(result.top(2, "val_loss")["trial_id"]) == ["a3", "a0"]  # min for losses


def test_experiment_over_means_unfinished_trials_were_stopped(tmp_path: Path) -> None:
    folder = write_experiment(tmp_path / "exp")
    write_trial(folder, "b0", 1, [0.5, 0.6, 0.7])
    write_trial(folder, "b1", 2, [0.3, 0.4])
    write_state(folder, {"b0": "TERMINATED", "b1": "TERMINATED"})
    result = load(folder)
    assert result.finished
    assert list(result.trials["status"]) == ["completed", "early_stopped"]


def test_half_written_and_missing_files_do_not_crash(tmp_path: Path) -> None:
    folder = write_experiment(tmp_path / "exp")
    tdir = write_trial(folder, "c0", 1, [0.5, 0.6])
    with open(tdir / "result.json", "a") as f:
        f.write('{"trial_id": "c0", "epoch": 3, "val_a')  # killed mid-write
    bare = write_trial(folder, "c1", 2, [0.4])
    (bare / "params.json").unlink()
    empty = write_trial(folder, "c2", 3, [])
    (empty / "params.json").write_text("{not json")
    (folder / "experiment_state-2026-01-01_00-00-00.json").write_text("{truncated")
    result = load(folder)
    assert list(result.trials["trial_id"]) == ["c0", "c1", "c2"]
    assert list(result.trials["epochs"]) == [2, 1, 0]
    assert list(result.trials["status"]) == ["running", "running", "running"]
    assert pd.isna(result.trials.loc[1, "arch.cell.edge_0_1"])  # no params.json: no arch


def test_zero_trials_keep_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = load(empty)
    assert list(result.trials.columns) == list(TRIAL_COLUMNS)
    assert list(result.curves.columns) == list(CURVE_COLUMNS)
    assert result.top(5).empty and result.pareto().empty and result.status_counts() == {}
    assert result.best() is None and not result.finished
    assert "no completed trial reported 'val_acc'" in result.format_top()
    for path in result.to_parquet(tmp_path / "pq"):
        assert list(pd.read_parquet(path).columns) == list(
            TRIAL_COLUMNS if path.stem == "trials" else CURVE_COLUMNS
        )
    # A run that has only written its config yet: an experiment with zero trials.
    (empty / "raynas_experiment.yaml").write_text("name: empty\n")
    assert cli_main(["analyze", str(empty), "--plots", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert "trials: 0 ()" in out and "no plot" in out


def test_schema_is_stable_and_survives_parquet(every_status: Path, tmp_path: Path) -> None:
    result = load(every_status)
    fixed = result.trials[list(TRIAL_COLUMNS)]
    assert {c: str(t) for c, t in fixed.dtypes.items()} == TRIAL_COLUMNS
    curves = result.curves[list(CURVE_COLUMNS)]
    assert {c: str(t) for c, t in curves.dtypes.items()} == CURVE_COLUMNS
    paths = result.to_parquet(tmp_path / "pq")
    assert [p.name for p in paths] == ["trials.parquet", "curves.parquet"]
    back = pd.read_parquet(paths[0])
    pd.testing.assert_frame_equal(back, result.trials)
    pd.testing.assert_frame_equal(pd.read_parquet(paths[1]), result.curves)
    import pyarrow.parquet as pq

    assert pq.read_schema(paths[0]).metadata[b"raynas_schema"] == b"1"


def test_lineage_follows_parents(tmp_path: Path) -> None:
    folder = write_experiment(tmp_path / "exp")
    write_trial(folder, "p0", 1, [0.5, 0.6, 0.7])
    write_trial(folder, "p1", 2, [0.5, 0.6, 0.8], extra={"parent": "p0", "mutation": "edge_0_1"})
    write_trial(folder, "p2", 3, [0.5, 0.6, 0.9], extra={"parent": "p1"})
    t = load(folder).trials.set_index("trial_id")
    assert t.loc["p2", "lineage"] == "p0 > p1 > p2"
    assert t.loc["p1", "mutation"] == "edge_0_1" and pd.isna(t.loc["p0", "lineage"])


# --- Pareto fronts --------------------------------------------------------------------------
def brute_force_front(df: pd.DataFrame, objectives: Sequence[tuple[str, str]]) -> set[str]:
    def better_or_equal(a: pd.Series, b: pd.Series, m: str, mode: str) -> bool:
        return a[m] >= b[m] if mode == "max" else a[m] <= b[m]

    front = set()
    rows = [r for _, r in df.iterrows()]
    for r in rows:
        dominated = any(
            all(better_or_equal(o, r, m, mode) for m, mode in objectives)
            and any(o[m] != r[m] for m, _ in objectives)
            for o in rows
        )
        if not dominated:
            front.add(r["trial_id"])
    return front


@pytest.mark.parametrize("n_objectives", [2, 3, 4])
def test_pareto_matches_brute_force(tmp_path: Path, n_objectives: int) -> None:
    rng = np.random.default_rng(n_objectives)
    folder = write_experiment(tmp_path / "exp")
    for i in range(40):
        write_trial(
            folder,
            f"t{i:02d}",
            i,
            [float(rng.integers(1, 6)) / 10],
            params=int(rng.integers(1, 6)) * 100,
            epochs=1,
            extra={"latency_ms": float(rng.integers(1, 4)), "energy": float(rng.integers(1, 4))},
        )
    write_trial(folder, "bad", 99, [], status="constraint_violated", params=1)
    result = load(folder)
    objectives = [("val_acc", "max"), ("params", "min"), ("latency_ms", "min"), ("energy", "max")][
        :n_objectives
    ]
    front = result.pareto(objectives)
    ok = result.trials[result.trials["status"] == "completed"]
    assert set(front["trial_id"]) == brute_force_front(ok, objectives)
    assert "bad" not in set(front["trial_id"])
    assert list(front["val_acc"]) == sorted(front["val_acc"], reverse=True)
    assert set(result.pareto(dict(objectives))["trial_id"]) == set(front["trial_id"])


def test_pareto_defaults_and_errors(every_status: Path) -> None:
    result = load(every_status)
    assert result.default_objectives() == [("val_acc", "max"), ("params", "min")]
    assert set(result.pareto()["trial_id"]) <= set(result.top(10)["trial_id"])
    with pytest.raises(ValueError, match="mode of 'params' must be 'max' or 'min'"):
        result.pareto({"val_acc": "max", "params": "smallest"})
    with pytest.raises(ValueError, match="no column 'watts'"):
        result.pareto({"val_acc": "max", "watts": "min"})


def test_objectives_from_the_config(tmp_path: Path) -> None:
    folder = write_experiment(tmp_path / "exp", also=[{"metric": "latency_ms", "mode": "min"}])
    write_trial(folder, "o0", 1, [0.5, 0.6, 0.7])
    result = load(folder)
    assert result.objectives == [("val_acc", "max"), ("latency_ms", "min")]
    assert result.default_objectives() == result.objectives
    assert result.mode_of("latency_ms") == "min" and result.mode_of("best_val_acc") == "max"


# --- the CLI ---------------------------------------------------------------------------------
def test_analyze_cli_prints_counts_and_writes_tables(
    every_status: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(["analyze", str(every_status), "--top", "2", "--parquet", str(tmp_path / "pq")])
    out = capsys.readouterr().out
    assert code == 0
    assert "trials: 8 (completed=2, early_stopped=1, error=1, diverged=1" in out
    assert "top 2 by val_acc (max)" in out and "arch-a3" in out
    assert (tmp_path / "pq" / "curves.parquet").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyze", "/no/such/folder"], "does not exist"),
        (["analyze", ".", "--top", "0"], "--top: must be >= 1"),
    ],
)
def test_analyze_cli_user_errors_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# --- real experiment folders (Ray; slow) -------------------------------------------------------
def real_experiment(factory: pytest.TempPathFactory, name: str) -> Path:
    """A real experiment folder, run once per test session (shared by the test modules)."""
    base = factory.getbasetemp() / "raynas-experiments"
    folder = base / "runs" / name
    if (folder / "done").is_file():
        return folder
    exp = REAL[name](base)
    raynas.run(exp, verbose=False)
    (folder / "done").write_text("")
    return folder


def _mixed(base: Path) -> dict[str, Any]:
    """ASHA (grace 1, factor 2) over 3 epochs, and a params bound some children break (the
    driver refuses those before they become trials)."""
    return small_experiment(
        base,
        name="mixed",
        train={"epochs": 3},
        scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 2},
        # One trial at a time: ASHA's rung decisions then do not depend on timing.
        budget={"trials": 8, "concurrent": 1},
        objective={"constraints": ["params <= 9000"]},
    )


def _error(base: Path) -> dict[str, Any]:
    """Children whose builder raises: the trial fails at setup, before any result."""
    exp = small_experiment(
        base, name="error", plugins=["tests.faulty"], space="faulty", budget={"trials": 1}
    )
    exp["space_args"] = {"behaviours": ["raise"]}
    return exp


REAL = {"mixed": _mixed, "error": _error}


@pytest.mark.slow
def test_real_run_with_early_stops_and_constraint_violations(
    tmp_path_factory: pytest.TempPathFactory, ray_session: None, tmp_path: Path
) -> None:
    result = load(real_experiment(tmp_path_factory, "mixed"))
    t = result.trials
    assert len(t) == 8 and result.finished
    # Children breaking the params bound are refused on the driver: none becomes a trial.
    assert set(t["status"]) == {"completed", "early_stopped"}
    assert (t["params"] <= 9000).all()
    refused = json.loads((result.path / "raynas_refused.json").read_text())
    assert refused["refused"] > 0 and refused["examples"][0]["violations"] == ["params <= 9000"]
    assert (t.loc[t["status"] == "completed", "epochs"] == 3).all()
    assert (t.loc[t["status"] == "early_stopped", "epochs"] < 3).all()
    assert t["arch_id"].is_unique and t["arch"].str.startswith("|").all()
    assert {f"arch.cell.edge_{i}_{j}" for i, j in itertools.combinations(range(4), 2)} <= set(t)
    trained = t[t["status"] != "constraint_violated"]
    assert len(result.curves) == int(trained["epochs"].sum())
    assert (trained["best_val_acc"] >= trained["val_acc"]).all()
    # Tune's result "timestamp" (end_time) is whole seconds; start_time is not.
    assert (trained["wall_time_s"] > 0).all() and (
        trained["end_time"] >= trained["start_time"] - 1.0
    ).all()
    assert result.top(3)["status"].isin(["completed", "early_stopped"]).all()
    for path in result.to_parquet(tmp_path / "pq"):
        assert len(pd.read_parquet(path)) in (len(t), len(result.curves))


@pytest.mark.slow
def test_real_run_whose_trials_raise(
    tmp_path_factory: pytest.TempPathFactory, ray_session: None
) -> None:
    result = load(real_experiment(tmp_path_factory, "error"))
    assert list(result.trials["status"]) == ["error"]
    assert result.trials["error"].str.contains("deliberate failure").all()
    assert set(result.trials["arch.behaviour"]) == {"raise"}  # from Tune's state: no params.json
    assert result.curves.empty and result.top(5).empty


@pytest.mark.slow
def test_folder_of_a_killed_run(tmp_path: Path) -> None:
    sets = ["budget.trials=4", "train.epochs=3", "space_args={C: 4, N: 1}"]
    cmd = raynas_run_argv(QUICKSTART, tmp_path, "k", sets)
    folder = tmp_path / "k"
    env = {**os.environ, "RAY_ADDRESS": "local"}
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    try:
        deadline = time.time() + 400
        while not (folder.is_dir() and (load(folder).trials["status"] == "completed").any()):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, "no trial finished in 400 s"
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
        proc.wait(timeout=30)
    result = load(folder)
    assert not result.finished
    assert (result.trials["status"] == "completed").sum() >= 1
    assert set(result.trials["status"]) <= {"completed", "running"}
    assert cli_main(["analyze", str(folder), "--plots", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "best_so_far_trials.png").stat().st_size > 0
