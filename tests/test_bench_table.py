"""Tabular benchmark files: loading, validation errors naming row and column, replay views;
and (slow) a real, resumable ``raynas bench build`` of a 64-arch space."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from raynas.bench.table import ArchNotInTable, TableError, load_table, read_meta, write_table
from raynas.experiment.journal import finished_trials
from raynas.registry import get_space
from tests.conftest import REPO, VENV_BIN, journaled_results

SPACE_ARGS: dict[str, Any] = {"C": 4, "N": 1, "ops": ["none", "nor_conv_3x3"]}
META = {"space": "nb201", "space_args": SPACE_ARGS}


def make_frame(seeds: tuple[int, ...] = (0, 1), epochs: int = 3) -> pd.DataFrame:
    """A synthetic table over nb201 with 2 ops (64 archs): curves, seeds, cost, test at the end.

    The final val/test accuracy grows with the number of convolutions (ties broken by a
    deterministic per-arch term), each seed adds a little noise; train_time_s is cumulative.
    """
    space = get_space("nb201", **SPACE_ARGS)
    rows = []
    for k, arch in enumerate(space.enumerate()):
        convs = sum(op == "nor_conv_3x3" for op in arch["cell"].values())
        quality = 0.5 + 0.07 * convs + 0.001 * (k % 7)
        for seed in seeds:
            noise = 0.002 * ((k * 31 + seed * 17) % 5)
            for epoch in range(1, epochs + 1):
                val = quality * epoch / epochs + noise
                rows.append(
                    {
                        "arch": space.to_string(arch),
                        "seed": seed,
                        "epoch": epoch,
                        "val_acc": val,
                        "test_acc": val - 0.01 if epoch == epochs else np.nan,
                        "params": 1000 + 500 * convs,
                        "train_time_s": 1.5 * epoch * (1 + convs),
                    }
                )
    return pd.DataFrame(rows)


def write_frame(path: Path, df: pd.DataFrame | None = None) -> Path:
    """``make_frame()`` written with raynas metadata."""
    return write_table(make_frame() if df is None else df, path, meta=META)


@pytest.fixture()
def table_path(tmp_path: Path) -> Path:
    return write_frame(tmp_path / "t.parquet")


def test_load_parquet_reads_space_from_metadata(table_path: Path) -> None:
    table = load_table(table_path)
    assert table.space_name == "nb201" and table.space_args == SPACE_ARGS
    assert read_meta(table_path)["space"] == "nb201"
    assert len(table) == 64 and table.seeds == [0, 1] and table.has_curves
    assert table.metrics == ["val_acc", "test_acc", "params", "train_time_s"]
    assert table.summary()["rows"] == 64 * 2 * 3


def test_csv_with_json_archs_gives_the_same_ids(tmp_path: Path, table_path: Path) -> None:
    space = get_space("nb201", **SPACE_ARGS)
    df = make_frame()
    df["arch"] = [json.dumps(space.from_string(a)) for a in df["arch"]]
    csv = tmp_path / "t.csv"
    df.to_csv(csv, index=False)
    from_csv = load_table(csv, "nb201", space_args=SPACE_ARGS)
    assert sorted(from_csv.arch_ids) == sorted(load_table(table_path).arch_ids)
    assert from_csv.df["arch"].iat[0].startswith("|")  # normalised to the canonical string


def test_final_views_and_optimum(table_path: Path) -> None:
    table = load_table(table_path)
    mean = table.final(seed_mode="mean")
    s0, s1 = table.final(seed_mode="by_seed", seed=0), table.final(seed_mode="by_seed", seed=1)
    assert (mean["epoch"] == 3).all()
    np.testing.assert_allclose(mean["val_acc"], (s0["val_acc"] + s1["val_acc"]) / 2)
    assert table.final(seed_mode="by_seed", seed=2)["val_acc"].equals(s0["val_acc"])  # 2 % 2
    arch_id, best = table.optimum("test_acc", "max")
    assert best == pytest.approx(mean["test_acc"].max())
    assert table.arch(arch_id)["cell"] == {e: "nor_conv_3x3" for e in table.arch(arch_id)["cell"]}
    assert table.optimum("params", "min")[1] == 1000


def test_curve_by_seed_and_mean(table_path: Path) -> None:
    table = load_table(table_path)
    arch = table.arch(table.arch_ids[0])
    c0 = table.curve(arch, seed_mode="by_seed", seed=0)
    cm = table.curve(arch, seed_mode="mean")
    assert list(c0["epoch"]) == [1, 2, 3] and list(cm["epoch"]) == [1, 2, 3]
    assert np.isnan(c0["test_acc"].iat[0]) and not np.isnan(c0["test_acc"].iat[2])


def test_arch_missing_from_table_is_a_clear_error(tmp_path: Path) -> None:
    df = make_frame()
    some = df["arch"].iat[0]
    table = load_table(write_frame(tmp_path / "t.parquet", df[df["arch"] != some]))
    with pytest.raises(ArchNotInTable, match=r"is not in table .* records 63 of the 64 archs"):
        table.rows(get_space("nb201", **SPACE_ARGS).from_string(some))
    assert get_space("nb201", **SPACE_ARGS).from_string(some) not in table


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda df: df.drop(columns=["arch"]), r"column 'arch' is missing"),
        (
            lambda df: df.assign(arch=df["arch"].where(df.index != 5, "|conv~0|+|x~0|")),
            r"row 5, column 'arch': '\|conv~0\|\+\|x~0\|' is not in space 'nb201'",
        ),
        (
            lambda df: df.assign(
                arch=df["arch"].where(
                    df.index != 7, "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|none~2|"
                )
            ),
            r"row 7, column 'arch': .* is not in space",
        ),
        (
            lambda df: pd.concat([df, df.iloc[[4]]], ignore_index=True),
            r"rows 4 and 384: duplicate record of arch .* seed 1 epoch 2",
        ),
        (
            lambda df: df.assign(epoch=df["epoch"].where(df.index != 3, -1)),
            r"row 3, column 'epoch': -1 is not a whole number >= 0",
        ),
        (
            lambda df: df.assign(seed=df["seed"].astype(float).where(df.index != 9, np.nan)),
            r"row 9, column 'seed': nan is not a whole number",
        ),
        (
            lambda df: df.assign(arch=df["arch"].where(df.index != 2, None)),
            r"row 2, column 'arch': empty",
        ),
        (lambda df: df[["arch", "epoch"]].assign(note="x"), r"no numeric metric column"),
    ],
)
def test_validation_errors_name_row_and_column(tmp_path: Path, edit: Any, message: str) -> None:
    path = write_frame(tmp_path / "bad.parquet", edit(make_frame()))
    with pytest.raises(TableError, match=message):
        load_table(path)


def test_wanted_metrics_must_exist_and_be_numeric(table_path: Path, tmp_path: Path) -> None:
    with pytest.raises(TableError, match=r"column 'val_loss' is missing; the table has columns"):
        load_table(table_path, metrics=["val_acc", "val_loss"])
    path = write_frame(tmp_path / "s.parquet", make_frame().assign(note="x"))
    with pytest.raises(TableError, match=r"column 'note' must be numeric"):
        load_table(path, metrics=["note"])
    assert load_table(path).metrics == ["val_acc", "test_acc", "params", "train_time_s"]
    with pytest.raises(TableError, match=r"--metric: 'acc' is not a metric column"):
        load_table(table_path).require("acc", flag="--metric")


def test_space_file_and_format_errors(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    make_frame().to_csv(csv, index=False)
    with pytest.raises(TableError, match=r"does not say its space .* --space NAME"):
        load_table(csv)
    with pytest.raises(FileNotFoundError, match=r"does not exist"):
        load_table(tmp_path / "nope.parquet")
    (tmp_path / "t.json").write_text("{}")
    with pytest.raises(TableError, match=r"\.parquet or \.csv"):
        load_table(tmp_path / "t.json", "nb201")
    # A table of the 2-op space read as the full nb201 space is fine (a subset) ...
    assert len(load_table(csv, "nb201")) == 64
    # ... but the full space's archs are not in the 2-op space.
    full = make_frame()
    full.loc[0, "arch"] = "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    full.to_csv(csv, index=False)
    with pytest.raises(TableError, match=r"row 0, column 'arch'"):
        load_table(csv, "nb201", space_args=SPACE_ARGS)


def test_no_epoch_or_seed_column(tmp_path: Path) -> None:
    df = make_frame(seeds=(0,), epochs=1).drop(columns=["epoch", "seed"])
    table = load_table(write_frame(tmp_path / "t.parquet", df))
    assert not table.has_curves and table.seeds == [0]
    assert len(table.curve(table.arch(table.arch_ids[0]))) == 1


# --- bench build (slow: real training through Ray) -------------------------------------
@pytest.mark.slow
def test_bench_build_is_resumable(tmp_path: Path) -> None:
    config = tmp_path / "build.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "space": "nb201",
                "space_args": {"C": 2, "N": 1, "ops": ["none", "nor_conv_3x3"]},
                "data": {"name": "digits", "limit": 800, "evaluate_test": True},
                "train": {"epochs": 3, "batch_size": 64, "latency_repeats": 1},
                "strategy": {"name": "random"},  # replaced by grid
                "budget": {"trials": 5, "concurrent": 2},  # replaced by 64
                "checkpoint": {"every": 0},
                "storage": str(tmp_path / "runs"),
            }
        )
    )
    out = tmp_path / "tiny.parquet"
    cmd = [str(VENV_BIN / "raynas"), "bench", "build", str(config), "--out", str(out)]
    folder = tmp_path / "runs" / "tiny-seed0"
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.time() + 300
        # The kill comes when the journal records the 6th ended trial: a recorded event,
        # whatever the machine's speed.
        while len(finished_trials(folder)) < 6:
            assert proc.poll() is None, "the build ended before it could be interrupted"
            assert time.time() < deadline, "no 6 finished trials recorded in 300 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, as a crash would
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    ended = len(finished_trials(folder))
    # A trial journaled in the moment of the kill may have no row yet (the resume appends it).
    before = journaled_results(folder)
    print(f"journaled at the kill: {ended} of 64 ({len(before)} with rows)")
    assert 6 <= ended < 64 and not out.exists(), f"{ended} journaled at the kill"

    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resuming" in again.stdout and "(resume)" in again.stdout
    after = journaled_results(folder)
    for name, lines in before.items():
        # Ended trials were kept, not re-run: their rows stay as they were; a kill between
        # the journal line and Tune's logger leaves the last row for the resume to append
        # from the journal, never a second training.
        assert after[name][: len(lines)] == lines
        iterations = [json.loads(x)["training_iteration"] for x in after[name]]
        assert iterations == list(range(1, len(iterations) + 1)), name
    table = load_table(out)
    assert (
        len(table) == 64
        and table.seeds == [0]
        and table.space_args["ops"] == ["none", "nor_conv_3x3"]
    )
    for col in (
        "train_loss",
        "val_acc",
        "val_loss",
        "test_acc",
        "params",
        "flops",
        "latency_ms",
        "train_time_s",
    ):
        assert col in table.metrics

    third = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0 and "complete (64 archs), skipped" in third.stdout
