"""Real data, first class: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package.

The fast tests check the ``data.limit`` rule (schema and loader agree), and, where the real
files are installed, that they load compact (uint8), stratified and without the test split. The
slow one runs a 2-child, 1-epoch search on a subset of the real files through the CLI.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from raynas.cli import main
from raynas.experiment.config import ConfigError, DataConfig
from raynas.experiment.config_load import load_config
from raynas.experiment.config_rules import DATASET_CLASSES, limit_problem
from tests.conftest import REPO, raynas_run_argv
from trainables.data import clear_cache, load_dataset

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
EXAMPLE = REPO / "examples" / "fashion-mnist.yaml"
needs_files = pytest.mark.skipif(
    not (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"Fashion-MNIST is not installed in {FASHION_MNIST} "
    "(apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


# --- data.limit: one rule, schema and loader ---------------------------------------------
@pytest.mark.parametrize("name", ["digits", "wine", "breast_cancer"])
@pytest.mark.parametrize("limit", [None, 0, 1, 2, 3, 9, 10, 11])
def test_schema_and_loader_accept_the_same_limits(name: str, limit: int | None) -> None:
    accepted = limit_problem(name, limit) is None
    assert accepted == (limit is None or limit >= DATASET_CLASSES[name])
    try:
        DataConfig(name=name, limit=limit)
        schema = True
    except ValueError:
        schema = False
    try:
        load_dataset(name, limit=limit, val_fraction=0.0)
        loader = True
    except ValueError:
        loader = False
    assert schema == loader == accepted


def test_a_limit_below_the_classes_names_the_field_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"data": {"name": "fashion_mnist"}}, overrides=["data.limit=5"])
    assert info.value.errors == [
        "data.limit: must be at least 10, the number of classes of 'fashion_mnist', or null "
        "for no limit, got 5"
    ]
    assert load_config({"data": {"name": "fashion_mnist", "limit": 10}}).data.limit == 10
    # A dataset raynas does not know (a plugin trainable's): at least 2.
    assert load_config({"data": {"name": "mine", "limit": 2}}).data.limit == 2
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"data": {"name": "digits", "limit": 1}}))
    assert main(["validate", str(path)]) == 2


def test_the_example_config_is_valid() -> None:
    exp = load_config(EXAMPLE)
    assert exp.data.name == "fashion_mnist" and exp.data.root == str(FASHION_MNIST)
    assert exp.scheduler.name == "asha" and exp.strategy.name in ("evolution", "bo")
    assert exp.objective.metric.startswith("val_") and not exp.data.evaluate_test
    assert exp.data.limit is not None and exp.data.limit >= DATASET_CLASSES["fashion_mnist"]


# --- the real files ------------------------------------------------------------------------
@needs_files
def test_the_installed_files_load_compact_stratified_and_without_test() -> None:
    d = load_dataset("fashion_mnist", root=str(FASHION_MNIST), compact=True, load_test=False)
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10
    assert (len(d.train_y), len(d.val_y)) == (48_000, 12_000)
    assert d.train_x.dtype == torch.uint8 and d.test_x is None
    assert d.train_x.nbytes + d.val_x.nbytes == 60_000 * 784  # float32 would be 4x
    small = load_dataset(
        "fashion_mnist", root=str(FASHION_MNIST), limit=1000, compact=True, load_test=False
    )
    assert torch.bincount(small.train_y).tolist() == [80] * 10
    assert torch.bincount(small.val_y).tolist() == [20] * 10
    batch = small.as_inputs(small.train_x[:256])
    assert batch.dtype == torch.float32 and abs(float(batch.mean())) < 0.2


@pytest.mark.slow
@needs_files
def test_a_two_child_search_on_the_real_files(tmp_path: Path) -> None:
    sets = ["budget.trials=2", "train.epochs=1", "data.limit=1000", "train.batch_size=32"]
    sets.append("train.progress_s=0.05")  # so the short epoch prints its progress lines
    command = raynas_run_argv(EXAMPLE, tmp_path / "runs", "fm", sets)
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "top 2 by val_acc" in proc.stdout
    # Ray forwards each trial's progress lines to the driver's console.
    progress = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "[raynas] trial" in ln]
    assert progress and all(" epoch 1/1: batch " in ln for ln in progress)
    results = sorted((tmp_path / "runs" / "fm").glob("*/result.json"))
    assert len(results) == 2
    for path in results:
        lines = [json.loads(ln) for ln in path.read_text().splitlines()]
        assert len(lines) == 1  # one Tune result per epoch, progress lines are not results
        last = lines[0]
        assert last["status"] == "ok" and last["epoch"] == 1
        assert 0.0 <= last["val_acc"] <= 1.0 and "test_acc" not in last


# --- the shipped table ---------------------------------------------------------------------
FM_TABLE = REPO / "benchmarks" / "data" / "nb201-3ops-fmnist.parquet"
FM_BUILD = REPO / "examples" / "bench-nb201-fashion-mnist.yaml"


def test_the_shipped_table_holds_its_whole_space_for_both_seeds_as_its_config_says() -> None:
    """The table is what `raynas bench build` of its example config wrote: every cell of the
    space for each seed, the whole curve, the test column, and that config in its metadata."""
    import pandas as pd

    from raynas.bench.table import load_table, read_meta

    table = load_table(FM_TABLE)
    assert table.space.name == "nb201" and table.space.cardinality == 3**6
    frame = pd.read_parquet(FM_TABLE)
    exp = load_config(FM_BUILD)
    assert sorted(frame["seed"].unique()) == [0, 1]
    per_seed = frame.groupby("seed")["arch"].nunique()
    assert (per_seed == 3**6).all()
    assert sorted(frame["epoch"].unique()) == list(range(1, exp.train.epochs + 1))
    last = frame[frame["epoch"] == exp.train.epochs]
    assert last["test_acc"].notna().all() and frame["params"].notna().all()
    built = read_meta(FM_TABLE)["config"]
    assert built["data"] == exp.to_dict()["data"]
    assert built["train"] == exp.to_dict()["train"]
    assert built["space_args"] == exp.to_dict()["space_args"]
