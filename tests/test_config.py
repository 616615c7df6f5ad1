"""Experiment config: loading, overrides, and bad configs rejected before Ray starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from raynas.cli import main
from raynas.experiment.config import ConfigError, Experiment
from raynas.experiment.config_check import check_experiment
from raynas.experiment.config_load import apply_overrides, load_config
from raynas.experiment.config_rules import parse_constraint, violated_constraints
from tests.conftest import QUICKSTART, REPO, small_experiment


def write(tmp_path: Path, data: Any, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_quickstart_loads_and_validates() -> None:
    exp = load_config(QUICKSTART)
    check_experiment(exp)
    assert exp.space == "nb201"
    assert exp.objective.metric == "val_acc"


def test_overrides_parse_yaml_values() -> None:
    exp = load_config(
        QUICKSTART,
        overrides=["budget.trials=4", "train.lr=0.01", "strategy.name=grid", "data.limit=100"],
    )
    assert exp.budget.trials == 4
    assert exp.train.lr == 0.01
    assert exp.strategy.name == "grid"
    assert exp.data.limit == 100


def test_override_errors_name_the_flag() -> None:
    with pytest.raises(ConfigError, match="must be KEY=VALUE"):
        apply_overrides({}, ["budget.trials"])
    with pytest.raises(ConfigError, match="name is 'x', not a section"):
        apply_overrides({"name": "x"}, ["name.y=1"])


def test_constraints_parse_and_check() -> None:
    assert parse_constraint("params <= 1e6") == ("params", "<=", 1e6)
    assert violated_constraints(["params <= 10", "flops < 1e9"], {"params": 11, "flops": 5}) == [
        "params <= 10"
    ]
    exp = Experiment(objective={"constraints": {"params": 1e6, "latency_ms": "< 2"}})
    assert exp.objective.constraints == ["params <= 1000000.0", "latency_ms < 2"]


def test_strategy_and_scheduler_args_are_kept() -> None:
    exp = Experiment(strategy={"name": "random", "allow_repeats": True})
    assert exp.strategy.args == {"allow_repeats": True}
    assert exp.to_dict()["strategy"] == {"name": "random", "allow_repeats": True}


BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown space", {"space": "nb999"}, "space: unknown space 'nb999'; known spaces: ["),
    (
        "unknown space arg",
        {"space_args": {"C": 4, "width": 3}},
        "space_args: space 'nb201' has no argument 'width'",
    ),
    (
        "bad space arg value",
        {"space_args": {"C": -1}},
        "space_args: nb201 C must be an integer >= 1, got -1",
    ),
    (
        "unknown strategy",
        {"strategy": {"name": "genetic"}},
        "strategy: unknown strategy 'genetic'; known strategies",
    ),
    (
        "unknown strategy arg",
        {"strategy": {"name": "random", "population": 3}},
        "strategy: strategy 'random' has no argument 'population'",
    ),
    ("negative lr", {"train": {"lr": -1}}, "train.lr: input should be greater than 0, got -1"),
    (
        "zero epochs",
        {"train": {"epochs": 0}},
        "train.epochs: input should be greater than or equal to 1, got 0",
    ),
    (
        "wrong type",
        {"train": {"batch_size": "big"}},
        "train.batch_size: input should be a valid integer",
    ),
    (
        "unknown optimizer",
        {"train": {"optimizer": "rmsprop"}},
        "train.optimizer: input should be 'sgd' or 'adamw', got 'rmsprop'",
    ),
    ("unknown field", {"budget": {"trails": 3}}, "budget.trails: unknown field"),
    ("unknown section", {"resource": {"cpu": 1}}, "resource: unknown field"),
    (
        "missing data root",
        {"data": {"name": "cifar10"}},
        "data.root: dataset 'cifar10' loads from a local folder",
    ),
    (
        "data root absent",
        {"data": {"name": "cifar10", "root": "/nonexistent/cifar"}},
        "data.root: folder '/nonexistent/cifar' does not exist",
    ),
    ("unknown dataset", {"data": {"name": "mnist3d"}}, "data.name: unknown dataset 'mnist3d'"),
    (
        "gpu > available",
        {"resources": {"gpu": 8}},
        "resources.gpu: 8.0 GPU(s) per trial but this machine has",
    ),
    (
        "fractional gpu > 1",
        {"resources": {"gpu": 1.5}},
        "resources.gpu: must be a fraction <= 1 or a whole number",
    ),
    (
        "bad mode",
        {"objective": {"mode": "maximize"}},
        "objective.mode: input should be 'max' or 'min'",
    ),
    (
        "metric not reported",
        {"objective": {"metric": "bleu"}},
        "objective.metric: 'classify' does not report 'bleu'",
    ),
    (
        "bad constraint",
        {"objective": {"constraints": ["params << 3"]}},
        "objective.constraints: constraint 'params << 3' must look like 'params <= 1e6'",
    ),
    (
        "constraint on unknown metric",
        {"objective": {"constraints": ["depth <= 3"]}},
        "'depth' is not a cost metric",
    ),
    ("unknown trainable", {"trainable": "regress"}, "trainable: unknown trainable 'regress'"),
    ("bad scheduler", {"scheduler": {"name": "pb2"}}, "scheduler.name: input should be"),
    (
        "val_fraction out of range",
        {"data": {"val_fraction": 1.5}},
        "data.val_fraction: input should be less than 1",
    ),
    ("bad name", {"name": "../escape"}, "name: must be letters, digits"),
    (
        "asha grace period below 1",
        {"scheduler": {"name": "asha", "grace_period": -1}},
        "scheduler.grace_period: input should be greater than or equal to 1, got -1",
    ),
    (
        "asha reduction factor 1",
        {"scheduler": {"name": "asha", "reduction_factor": 1}},
        "scheduler.reduction_factor: input should be greater than 1, got 1",
    ),
    (
        "hyperband max_t 0",
        {"scheduler": {"name": "hyperband", "max_t": 0}},
        "scheduler.max_t: input should be greater than or equal to 1, got 0",
    ),
    (
        "median negative grace period",
        {"scheduler": {"name": "median", "grace_period": -2}},
        "scheduler.grace_period: input should be greater than or equal to 0, got -2",
    ),
    (
        "pbt mutation grace negative",
        {"scheduler": {"name": "pbt_evolution", "mutation_grace": -1}},
        "scheduler.mutation_grace: input should be greater than or equal to 0",
    ),
    ("negative seed", {"seed": -1}, "seed: input should be greater than or equal to 0, got -1"),
    (
        "more CPUs than the machine",
        {"resources": {"cpu": 4096}},
        "resources.cpu: 4096 CPUs per trial but this machine has",
    ),
    (
        "unknown trainable lists the lazy built-ins",
        {"trainable": "nope"},
        "trainable: unknown trainable 'nope'; known trainables: ['classify', 'darts'",
    ),
    (
        "negative trials",
        {"budget": {"trials": -3}},
        "budget.trials: input should be greater than or equal to 1",
    ),
]


@pytest.mark.parametrize("label,change,message", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config_exits_2_with_field_path(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    label: str,
    change: dict[str, Any],
    message: str,
) -> None:
    exp = small_experiment(tmp_path, **change)
    path = write(tmp_path, exp)
    code = main(["run", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists(), "a bad config must create no experiment folder"


def test_config_file_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = write(tmp_path, "name: [unclosed\n", "bad.yaml")
    assert main(["validate", str(bad)]) == 2
    assert "is not valid YAML" in capsys.readouterr().err
    lst = write(tmp_path, "- a\n- b\n", "list.yaml")
    assert main(["validate", str(lst)]) == 2
    assert "must hold a mapping" in capsys.readouterr().err


def test_yaml_space_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = {
        "layers": {
            "_type": "repeat",
            "min": 1,
            "max": 2,
            "node": {"width": {"_type": "choice", "options": [8, 16]}},
        },
        "activation": {"_type": "choice", "options": ["relu", "tanh"]},
        "dropout": 0.0,
    }
    write(tmp_path, space, "space.yaml")
    exp = small_experiment(tmp_path, space="space.yaml")
    exp["space_args"] = {}
    path = write(tmp_path, exp)
    # A YAML space has no model builder: classify would fail every trial, so validation says so.
    assert main(["validate", str(path)]) == 2
    assert "is a YAML space (decisions only, no model builder)" in capsys.readouterr().err
    write(tmp_path, {"x": {"_type": "choise", "options": [1]}}, "space.yaml")
    assert main(["validate", str(path)]) == 2
    assert "space: space.x._type: unknown type 'choise'" in capsys.readouterr().err


def test_existing_experiment_folder_is_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = small_experiment(tmp_path)
    folder = tmp_path / "runs" / "t"
    folder.mkdir(parents=True)
    (folder / "keep.txt").write_text("precious")
    code = main(["run", str(write(tmp_path, exp))])
    assert code == 2
    assert "already exists" in capsys.readouterr().err
    assert (folder / "keep.txt").read_text() == "precious"


def test_bad_config_through_the_real_cli_has_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, small_experiment(tmp_path, train={"lr": -1}))
    proc = subprocess.run(
        [sys.executable, "-m", "raynas.cli", "run", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "train.lr: input should be greater than 0, got -1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()
