"""The ``tabular`` trainable: replays a table's curves per Tune step, checks its config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import raynas
from raynas.bench.table import ArchNotInTable, load_table
from raynas.experiment.config import ConfigError, trial_settings
from raynas.experiment.config_check import check_experiment
from raynas.experiment.config_load import load_config
from raynas.experiment.tune_setup import with_settings
from raynas.registry import TRAINABLES, RegistryError, get_space, register_trainable
from tests.test_bench_table import SPACE_ARGS, make_frame, write_frame
from trainables.tabular import TabularTrainable

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def table_path(tmp_path: Path) -> Path:
    return write_frame(tmp_path / "t.parquet")


def experiment(table: Path | str, tmp_path: Path, **sections: Any) -> dict[str, Any]:
    exp: dict[str, Any] = {
        "name": "tab",
        "space": "nb201",
        "space_args": SPACE_ARGS,
        "trainable": "tabular",
        "trainable_args": {"table": str(table)},
        "strategy": {"name": "random"},
        "budget": {"trials": 4, "concurrent": 2},
        "checkpoint": {"every": 0},
        "storage": str(tmp_path / "runs"),
    }
    exp.update(sections)
    return exp


def trainable(table: Path, tmp_path: Path, arch: Any, **args: Any) -> TabularTrainable:
    exp = load_config(experiment(table, tmp_path, trainable_args={"table": str(table), **args}))
    return TabularTrainable(config={**trial_settings(exp), "arch": arch})


def test_registered() -> None:
    assert TRAINABLES.get("tabular") is TabularTrainable
    assert {"classify", "tabular", "darts", "enas", "gdas"} <= set(TRAINABLES.names())
    for name in ("tabular", "gdas"):  # built-ins are registered by name before any import
        with pytest.raises(RegistryError, match=f"trainable '{name}' is already registered"):
            TRAINABLES.register_lazy(name, "trainables.tabular:TabularTrainable", description="")
        with pytest.raises(RegistryError, match=f"trainable '{name}' is already registered"):
            register_trainable(name)(TabularTrainable)


def test_a_tabular_driver_never_imports_torch(table_path: Path, tmp_path: Path) -> None:
    """Checking and searching a tabular experiment needs no torch (seconds of driver start)."""
    code = (
        "import json, sys\n"
        "from raynas.experiment.config_check import check_experiment\n"
        "from raynas.experiment.config_load import load_config\n"
        "from raynas.experiment.tune_setup import make_searcher\n"
        "exp = load_config(json.loads(sys.argv[1]))\n"
        "check_experiment(exp)\n"
        "make_searcher(exp).suggest('t1')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n"
    )
    exp = json.dumps(experiment(table_path, tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", code, exp], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_replays_one_recorded_epoch_per_step(table_path: Path, tmp_path: Path) -> None:
    table = load_table(table_path)
    arch = table.arch(table.arch_ids[5])
    t = trainable(table_path, tmp_path, arch, seed_mode="by_seed")
    curve = table.curve(arch, seed_mode="by_seed", seed=0)
    results = [t.train() for _ in range(3)]
    assert [r["epoch"] for r in results] == [1, 2, 3]
    assert [r["done"] for r in results] == [False, False, True]
    np.testing.assert_allclose([r["val_acc"] for r in results], curve["val_acc"])
    assert "test_acc" not in results[0] and results[2]["test_acc"] == curve["test_acc"].iat[2]
    assert [r["sim_time_s"] for r in results] == list(curve["train_time_s"])
    assert results[0]["params"] == curve["params"].iat[0]
    assert results[0]["arch_str"] == table.space.to_string(arch)
    t.stop()


def test_seed_modes(table_path: Path, tmp_path: Path) -> None:
    table = load_table(table_path)
    arch = table.arch(table.arch_ids[9])
    exp = load_config(
        experiment(
            table_path,
            tmp_path,
            seed=1,
            trainable_args={"table": str(table_path), "seed_mode": "by_seed"},
        )
    )
    by_seed = TabularTrainable(config={**trial_settings(exp), "arch": arch})
    mean = trainable(table_path, tmp_path, arch, seed_mode="mean")
    v1, vm = by_seed.train()["val_acc"], mean.train()["val_acc"]
    assert v1 == table.curve(arch, seed_mode="by_seed", seed=1)["val_acc"].iat[0]
    assert vm == pytest.approx(table.curve(arch, seed_mode="mean")["val_acc"].iat[0])


def test_no_time_column_counts_epochs(tmp_path: Path) -> None:
    path = write_frame(tmp_path / "t.parquet", make_frame().drop(columns=["train_time_s"]))
    table = load_table(path)
    t = trainable(path, tmp_path, table.arch(table.arch_ids[0]))
    assert [t.train()["sim_time_s"] for _ in range(3)] == [1.0, 2.0, 3.0]


def test_arch_missing_from_table_fails_clearly(tmp_path: Path) -> None:
    df = make_frame()
    missing = df["arch"].iat[0]
    path = write_frame(tmp_path / "t.parquet", df[df["arch"] != missing])
    arch = get_space("nb201", **SPACE_ARGS).from_string(missing)
    with pytest.raises(ArchNotInTable, match=r"is not in table .*t\.parquet"):
        trainable(path, tmp_path, arch).train()


def test_checkpoint_and_reset(table_path: Path, tmp_path: Path) -> None:
    table = load_table(table_path)
    a, b = (table.arch(i) for i in table.arch_ids[:2])
    t = trainable(table_path, tmp_path, a)
    t.train()
    state = t.save_checkpoint(str(tmp_path))
    t.train()
    t.load_checkpoint(state)
    assert t.train()["epoch"] == 2
    assert t.reset_config({**t.config, "arch": b})
    first = t.train()
    assert first["epoch"] == 1 and first["arch_id"] == table.space.arch_id(b)


def test_shared_settings_reach_every_trial(table_path: Path, tmp_path: Path) -> None:
    """The class Tune runs carries the shared settings; a trial's config is only its own part."""
    table = load_table(table_path)
    a, b = (table.arch(i) for i in table.arch_ids[:2])
    exp = load_config(experiment(table_path, tmp_path))
    cls = with_settings(TabularTrainable, trial_settings(exp))
    assert cls.__name__ == "TabularTrainable" and issubclass(cls, TabularTrainable)
    t = cls(config={"arch": a})
    assert t.config == {**trial_settings(exp), "arch": a}
    assert t.train()["arch_id"] == table.space.arch_id(a)
    t.config["trainable_args"]["seed_mode"] = "by_seed"  # a trial's edits stay its own
    assert t.reset_config({"arch": b, "seed": 7})
    assert t.config["seed"] == 7 and "seed_mode" not in t.config["trainable_args"]
    assert t.train()["arch_id"] == table.space.arch_id(b)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"trainable_args": {}}, r"trainable_args.table: required"),
        (
            {"trainable_args": {"table": "nope.parquet"}},
            r"trainable_args.table: file .* does not exist",
        ),
        (
            {"trainable_args": {"table": "{t}", "seed_mode": "median"}},
            r"trainable_args.seed_mode: must be one of \['by_seed', 'mean'\]",
        ),
        (
            {"trainable_args": {"table": "{t}", "colour": 1}},
            r"trainable_args.colour: unknown argument of 'tabular'",
        ),
        (
            {"trainable_args": {"table": "{t}", "time_column": "clock"}},
            r"trainable_args.time_column: 'clock' is not a metric column",
        ),
        (
            {"trainable_args": {"table": "{t}", "metric_columns": ["val_acc", "top5"]}},
            r"trainable_args.table: column 'top5' is missing",
        ),
        (
            {"objective": {"metric": "val_loss"}},
            r"objective.metric: the table has no column 'val_loss'; its metrics are",
        ),
        (
            {"space_args": {"C": 4, "N": 1, "ops": ["none", "skip_connect"]}},
            r"trainable_args.table: row 6, column 'arch': .* is not in space 'nb201'",
        ),
    ],
)
def test_check_config_names_the_field(
    table_path: Path, tmp_path: Path, change: dict, message: str
) -> None:
    exp = experiment(table_path, tmp_path)
    for key, value in change.items():
        if key == "trainable_args":
            value = {k: (str(table_path) if v == "{t}" else v) for k, v in value.items()}
        exp[key] = value
    with pytest.raises(ConfigError, match=message):
        check_experiment(load_config(exp))


def test_good_config_passes(table_path: Path, tmp_path: Path) -> None:
    exp = experiment(table_path, tmp_path, objective={"metric": "test_acc", "mode": "max"})
    check_experiment(load_config(exp))


@pytest.mark.slow  # a real Tune run: ~20 s on an idle 2-CPU machine, minutes when shared
def test_runs_in_tune_with_asha(ray_session: None, table_path: Path, tmp_path: Path) -> None:
    exp = experiment(
        table_path,
        tmp_path,
        scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 2},
        budget={"trials": 6, "concurrent": 2},
    )
    result = raynas.run(exp, verbose=False)
    trials = result.trials
    assert len(trials) == 6 and set(trials["status"]) <= {"completed", "early_stopped"}
    assert (trials["epochs"] < 3).any(), "ASHA stopped no trial early"
    # the replay's own length (3 recorded epochs, not train.epochs) tells the two apart
    assert ((trials["epochs"] == 3) == (trials["status"] == "completed")).all(), trials
    table = load_table(table_path)
    for _, row in trials.iterrows():
        arch = table.space.from_string(row["arch"])
        expected = table.curve(arch)["val_acc"].iat[int(row["epochs"]) - 1]
        assert row["val_acc"] == pytest.approx(expected)
    # Both actors served trials: replays are far shorter than an actor's start, and without
    # meet_peers the first actor up takes every trial while Tune cancels the other.
    pids = {
        json.loads(line)["pid"]
        for tdir in trials["trial_dir"]
        for line in (Path(tdir) / "result.json").read_text().splitlines()
    }
    assert len(pids) == 2, pids
    # Tune carries only each trial's own part; the analysis rebuilds the whole config.
    first = trials.iloc[0]
    own = json.loads((Path(first["trial_dir"]) / "params.json").read_text())
    assert set(own) == {"arch"}
    whole = result.trial_config(first["trial_id"])
    assert whole == {**trial_settings(load_config(exp)), "arch": own["arch"]}
