"""Results a user acts on: what ranks, what a status says, one curve row per epoch, and the
notes a run prints about what raynas changed (concurrency clamp, selecting on test)."""

from __future__ import annotations

import json
import pickle
import subprocess
from pathlib import Path

import pytest

import raynas
from raynas.experiment.config_load import load_config
from raynas.experiment.constraints import ConstraintCheck
from raynas.experiment.run_notes import run_notes
from raynas.experiment.tune_setup import concurrency
from raynas.files import STOPS_FILE
from tests.conftest import QUICKSTART, VENV_BIN, small_experiment
from tests.test_analysis import write_experiment, write_state, write_trial


def test_a_running_trial_is_never_the_best(tmp_path: Path) -> None:
    folder = write_experiment(tmp_path / "exp")
    write_trial(folder, "c0", 1, [0.5, 0.7, 0.8])  # completed
    write_trial(folder, "c1", 2, [0.99])  # still running (or left so by a crash)
    write_state(folder, {"c0": "TERMINATED", "c1": "RUNNING"})
    result = raynas.load(folder)
    assert dict(zip(result.trials["trial_id"], result.trials["status"])) == {
        "c0": "completed",
        "c1": "running",
    }
    assert list(result.top(5)["trial_id"]) == ["c0"]
    assert result.best()["trial_id"] == "c0"
    assert list(result.top(5, include_running=True)["trial_id"]) == ["c1", "c0"]


def test_trials_cut_by_the_time_budget_are_timed_out_not_early_stopped(tmp_path: Path) -> None:
    folder = write_experiment(tmp_path / "exp")
    write_trial(folder, "d0", 1, [0.5, 0.6])  # stopped by a scheduler
    write_trial(folder, "d1", 2, [0.4])  # cut by budget.time_s
    write_state(folder, {"d0": "TERMINATED", "d1": "TERMINATED"})
    (folder / STOPS_FILE).write_text(json.dumps({"d1": "time_budget"}))
    result = raynas.load(folder)
    assert list(result.trials["status"]) == ["early_stopped", "timed_out"]
    assert result.status_counts() == {"early_stopped": 1, "timed_out": 1}


def _rewrite_results(tdir: Path, rows: list[dict]) -> None:
    (tdir / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_retried_trial_has_one_curve_row_per_epoch(tmp_path: Path) -> None:
    folder = write_experiment(tmp_path / "exp")
    tdir = write_trial(folder, "e0", 1, [0.5, 0.6, 0.7])
    rows = [json.loads(x) for x in (tdir / "result.json").read_text().splitlines()]
    # Failed after epoch 3, restored its epoch-1 checkpoint and reported 2 and 3 again.
    again = [{**rows[1], "val_acc": 0.65}, {**rows[2], "val_acc": 0.75}]
    _rewrite_results(tdir, [*rows, *again])
    curve = raynas.load(folder).curves
    assert list(curve["epoch"]) == [1, 2, 3]
    assert list(curve["val_acc"]) == [0.5, 0.65, 0.75]  # the latest report of each epoch
    assert set(curve["from_trial"]) == {"e0"}


def test_a_pbt_clone_curve_is_its_lineage_one_row_per_epoch(tmp_path: Path) -> None:
    folder = write_experiment(tmp_path / "exp", epochs=4)
    tdir = write_trial(folder, "f1", 1, [0.3, 0.4], epochs=4)
    own = [json.loads(x) for x in (tdir / "result.json").read_text().splitlines()]
    # At epoch 2 it cloned f0's epoch-3 checkpoint: it reports epoch 4 next (2 -> 4), with
    # the lineage's history up to that checkpoint.
    inherited = [
        {"epoch": e, "val_acc": a, "trial": t}
        for e, a, t in ((1, 0.6, "g"), (2, 0.7, "f0"), (3, 0.8, "f0"))
    ]
    clone = {
        **own[1],
        "epoch": 4,
        "val_acc": 0.85,
        "parent": "f0",
        "lineage_step": 3,
        "restored_history": json.dumps(inherited),
    }
    _rewrite_results(tdir, [*own, clone])
    curve = raynas.load(folder).curves
    assert list(curve["epoch"]) == [1, 2, 3, 4]
    assert list(curve["val_acc"]) == [0.6, 0.7, 0.8, 0.85]
    assert list(curve["from_trial"]) == ["g", "f0", "f0", "f1"]  # f0 itself had cloned g


def test_concurrency_above_the_budget_is_clamped_with_a_note() -> None:
    exp = load_config(QUICKSTART, overrides=["budget.trials=1"])  # concurrent: 2
    assert concurrency(exp) == 1
    out = subprocess.run(
        [str(VENV_BIN / "raynas"), "validate", str(QUICKSTART), "--set", "budget.trials=1"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "note: budget.concurrent: 2 is above budget.trials (1); running at most 1" in out.stdout


def test_selecting_on_the_test_split_warns() -> None:
    exp = load_config(QUICKSTART, overrides=["objective.metric=test_acc"])
    notes = run_notes(exp)
    assert len(notes) == 1 and notes[0].startswith("warning: objective metric 'test_acc'")
    assert run_notes(load_config(QUICKSTART)) == []


def test_driver_side_constraint_check_computes_params_and_flops() -> None:
    exp = load_config(QUICKSTART, overrides=["objective.constraints=['params <= 40000']"])
    check = ConstraintCheck.for_experiment(exp)
    assert check is not None
    space = raynas.get_space("nb201", C=8, N=1)
    small = space.from_string("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    big = space.from_string(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        "nor_conv_3x3~2|"
    )
    assert check(small) == []
    assert check(big) == ["params <= 40000"]
    again = pickle.loads(pickle.dumps(check))  # PBT saves its explorer with the scheduler
    assert again(big) == ["params <= 40000"]
    # Latency depends on where the child runs: not checked on the driver.
    latency = load_config(QUICKSTART, overrides=["objective.constraints=['latency_ms <= 1']"])
    assert ConstraintCheck.for_experiment(latency) is None


@pytest.mark.slow
def test_a_run_cut_by_budget_time_s_reports_timed_out(tmp_path: Path, ray_session: None) -> None:
    # Trials of 100,000 epochs cannot finish inside the budget on any machine; the budget
    # leaves the actors (which start inside it) time to report their first epochs.
    exp = small_experiment(
        tmp_path, train={"epochs": 100_000}, budget={"trials": 2, "concurrent": 2, "time_s": 30}
    )
    result = raynas.run(exp, verbose=False)
    assert set(result.trials["status"]) == {"timed_out"}, result.trials[["status", "epochs"]]
    assert (result.trials["epochs"] > 0).all()


@pytest.mark.slow
def test_constraint_violators_are_refused_on_the_driver_and_cost_no_trial(
    tmp_path: Path, ray_session: None
) -> None:
    result = raynas.run(
        QUICKSTART,
        overrides=[
            "budget.trials=4",
            "train.epochs=1",
            "objective.constraints=['params <= 40000']",
            f"storage={tmp_path}",
            "name=refuse",
        ],
        verbose=False,
    )
    assert len(result.trials) == 4  # the whole budget went to feasible children
    assert set(result.trials["status"]) == {"completed"}
    assert (result.trials["params"] <= 40000).all()
    refused = json.loads((tmp_path / "refuse" / "raynas_refused.json").read_text())
    assert refused["refused"] > 0
    assert all(e["violations"] == ["params <= 40000"] for e in refused["examples"])
