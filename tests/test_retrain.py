"""``raynas retrain``: pick a searched trial, build the classify experiment, train it linked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import ray.tune.trainable.trainable as tune_trainable
import yaml

import raynas
from raynas.cli import main as cli_main
from raynas.experiment.config import ConfigError, trial_settings
from raynas.experiment.config_load import load_config
from raynas.experiment.retrain import (
    LINK_FILE,
    find_top,
    find_trial,
    retrain,
    retrain_config,
    seed_summary,
)
from tests.conftest import REPO, small_experiment
from trainables.classify import ClassifyTrainable
from trainables.data import load_dataset

SPACE = raynas.get_space("nb201", C=4, N=1)
GOOD = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SKIPS = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


def fake_search(tmp_path: Path, trials: list[dict[str, Any]], **sections: Any) -> Path:
    """An experiment folder as a one-shot search leaves it (no Ray needed)."""
    exp = load_config(small_experiment(tmp_path, name="search", trainable="darts", **sections))
    folder = tmp_path / "runs" / "search"
    folder.mkdir(parents=True)
    (folder / "raynas_experiment.yaml").write_text(yaml.safe_dump(exp.to_dict()))
    for i, t in enumerate(trials):
        tdir = folder / f"DartsTrainable_{t['id']}_{i + 1}_edge_0_1=none"
        tdir.mkdir()
        (tdir / "params.json").write_text(json.dumps({"arch": SPACE.sample(i)}))
        derived = SPACE.from_string(t["arch"])
        last = {
            "trial_id": t["id"],
            "val_acc": t["val_acc"],
            "epoch": 2,
            "done": True,
            "arch": derived,
            "derived_arch": json.dumps(derived),
        }
        (tdir / "result.json").write_text(json.dumps(last) + "\n")
        if t.get("file", True):
            (tdir / "derived_arch.json").write_text(json.dumps(derived))
    return folder


def test_find_trial_takes_the_best_derived_arch_or_the_named_trial(tmp_path: Path) -> None:
    folder = fake_search(
        tmp_path,
        [
            {"id": "aaaa0001", "arch": SKIPS, "val_acc": 0.4},
            {"id": "bbbb0002", "arch": GOOD, "val_acc": 0.9, "file": False},
        ],
    )
    best = find_trial(folder)
    assert best.trial_id == "bbbb0002" and best.derived and best.score == 0.9
    assert SPACE.to_string(best.arch) == GOOD  # from the result's derived_arch
    named = find_trial(folder, "aaaa0001")
    assert SPACE.to_string(named.arch) == SKIPS  # from derived_arch.json
    assert find_trial(folder, "DartsTrainable_aaaa").trial_id == "aaaa0001"
    with pytest.raises(
        ConfigError, match="--trial: no trial matches 'zzz'; trials: aaaa0001, bbbb0002"
    ):
        find_trial(folder, "zzz")
    with pytest.raises(ConfigError, match="--trial: more than one trial matches 'DartsTrainable'"):
        find_trial(folder, "DartsTrainable")
    with pytest.raises(ConfigError, match=r"dir: .* is not a raynas experiment"):
        find_trial(tmp_path / "nowhere")


def test_retrain_config_is_a_classify_experiment_of_the_same_space_and_data(tmp_path: Path) -> None:
    search = load_config(
        small_experiment(
            tmp_path,
            trainable="darts",
            trainable_args={"order": 1},
            objective={"metric": "arch_entropy", "mode": "min"},
            data={"name": "digits", "limit": 300},
        )
    ).to_dict()
    exp = retrain_config(
        search,
        name="s-retrain-x",
        storage=str(tmp_path),
        overrides=["train.epochs=7", "space_args.C=8"],
    )
    assert exp.trainable == "classify" and exp.trainable_args == {}
    assert exp.budget.trials == 1 and exp.strategy.name == "random"
    assert exp.objective.metric == "val_acc"  # classify does not report arch_entropy
    assert exp.train.epochs == 7 and exp.space_args == {"C": 8, "N": 1}
    assert exp.data.limit == 300 and exp.space == "nb201" and exp.name == "s-retrain-x"
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        retrain_config(search, name="x", storage=str(tmp_path), overrides=["train.epochs=0"])


def train_child(tmp_path: Path, **data: Any) -> tuple[list[dict[str, Any]], int]:
    """Two epochs of the ``classify`` trainable driven directly (no Ray): its results and the
    number of examples it trained on."""
    exp = load_config(small_experiment(tmp_path, data={"name": "digits", **data}))
    cfg = trial_settings(exp)
    cfg["arch"] = SPACE.from_string(GOOD)
    tune_trainable.DEFAULT_STORAGE_PATH = str(tmp_path / "scratch")
    trainable = ClassifyTrainable(config=cfg)
    results = [trainable.train() for _ in range(2)]
    trained_on = int(trainable.data.train_x.shape[0])
    trainable.stop()
    return results, trained_on


def test_classify_without_a_validation_split_trains_on_all_and_reports_test(
    tmp_path: Path,
) -> None:
    official = load_dataset("digits", val_fraction=0.0)
    assert official.val_x.shape[0] == 0 and official.test_x is not None
    results, trained_on = train_child(tmp_path, val_fraction=0)
    whole = 1797 - official.test_x.shape[0]  # scikit-learn's digits less the test holdout
    assert trained_on == official.train_x.shape[0] == whole  # the whole official training split
    for r in results:  # the official test split, every epoch; no validation metrics
        assert {"test_acc", "test_loss"} <= r.keys() and not {"val_acc", "val_loss"} & r.keys()
        assert r["status"] == "ok" and 0.0 <= r["test_acc"] <= 1.0
    assert results[-1]["test_acc"] > 0.3  # trained (chance is 0.1)

    # ordinary runs are unchanged: 20% held out for validation, the test split untouched
    results, trained_on = train_child(tmp_path / "default")
    assert trained_on == whole - load_dataset("digits").val_x.shape[0] < 0.81 * whole
    for r in results:
        assert {"val_acc", "val_loss"} <= r.keys() and not {"test_acc", "test_loss"} & r.keys()


def test_retrain_config_final_trains_on_everything_and_reports_test(tmp_path: Path) -> None:
    search = load_config(
        small_experiment(tmp_path, objective={"metric": "val_loss", "mode": "min"})
    ).to_dict()
    final = retrain_config(search, name="s-retrain-x-final", storage=str(tmp_path), final=True)
    assert final.data.val_fraction == 0
    assert (final.objective.metric, final.objective.mode) == ("test_loss", "min")
    plain = retrain_config(search, name="s-retrain-x", storage=str(tmp_path))
    assert plain.data.val_fraction == 0.2 and plain.objective.metric == "val_loss"
    # retraining a final training without --final brings the validation split back
    again = retrain_config(final.to_dict(), name="again", storage=str(tmp_path))
    assert again.data.val_fraction == 0.2 and again.objective.metric == "val_loss"
    with pytest.raises(ConfigError, match=r"data\.val_fraction: --final trains on the whole"):
        retrain_config(
            search, name="x", storage=str(tmp_path), final=True, overrides=["data.val_fraction=0.1"]
        )
    with pytest.raises(
        ConfigError, match=r"objective\.metric: .* does not report 'val_acc'; use 'test_acc'"
    ):
        retrain_config(
            search,
            name="x",
            storage=str(tmp_path),
            final=True,
            overrides=["objective.metric=val_acc"],
        )


def raynas_cli(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "raynas"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "raynas.cli"]
    return subprocess.run([*cmd, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_cli_retrain_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    helped = raynas_cli("retrain", "--help")
    assert helped.returncode == 0 and "--trial ID" in helped.stdout and "--final" in helped.stdout
    missing = raynas_cli("retrain", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "raynas: error: dir:" in missing.stderr and "Traceback" not in missing.stderr


def test_retrain_refuses_an_arch_outside_the_overridden_space(tmp_path: Path) -> None:
    folder = fake_search(tmp_path, [{"id": "aaaa0001", "arch": GOOD, "val_acc": 0.5}])
    with pytest.raises(ConfigError, match="space_args: the arch of trial aaaa0001 is invalid"):
        retrain(folder, overrides=["space_args.ops=[none, skip_connect]"], verbose=False)
    assert not (tmp_path / "runs" / "search-retrain-aaaa0001").exists()


@pytest.mark.slow
def test_search_then_retrain_the_derived_arch(tmp_path: Path, local_ray: None) -> None:
    search = raynas.run(
        small_experiment(
            tmp_path,
            name="oneshot",
            trainable="darts",
            trainable_args={"order": 1, "arch_lr": 0.01},
            data={"name": "digits", "limit": 200},
            train={"epochs": 1, "batch_size": 64},
            budget={"trials": 1, "concurrent": 1},
        ),
        verbose=False,
    )
    trial = search.trials.iloc[0]
    derived = json.loads(Path(trial["trial_dir"], "derived_arch.json").read_text())

    result = retrain(search.path, overrides=["train.epochs=2"], verbose=False)
    folder = tmp_path / "runs" / f"oneshot-retrain-{trial['trial_id']}"
    assert Path(result.path) == folder
    link = json.loads((folder / LINK_FILE).read_text())
    assert link["retrain_of"] == str(search.path) and link["trial_id"] == trial["trial_id"]
    assert link["final"] is False and link["evaluated_on"] == "val"
    assert link["arch"] == derived and link["method"] == "darts" and link["derived"] is True
    config = load_config(folder / "raynas_experiment.yaml")  # a valid, resumable config
    assert config.trainable == "classify" and config.train.epochs == 2
    assert len(result.trials) == 1
    row = result.trials.iloc[0]
    assert row["status"] == "completed" and row["arch"] == SPACE.to_string(derived)
    assert 0.0 <= row["val_acc"] <= 1.0 and row["epochs"] == 2

    # A retraining is an experiment like any other: resuming it once it finished is refused.
    with pytest.raises(ConfigError, match="is finished \\(1 trials ended"):
        raynas.resume(folder, verbose=False)

    again = raynas_cli("retrain", str(search.path))
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.slow
def test_cli_retrain_final_reports_the_test_split(
    tmp_path: Path, local_ray: None, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = fake_search(tmp_path, [{"id": "aaaa0001", "arch": GOOD, "val_acc": 0.5}])
    args = ["retrain", str(folder), "--final", "--quiet", "--set", "train.epochs=2"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert (
        "final: trained on the whole training split, evaluated on the official test split: test_acc="
        in out
    )
    final = tmp_path / "runs" / "search-retrain-aaaa0001-final"
    assert f"retraining folder: {final}" in out
    link = json.loads((final / LINK_FILE).read_text())
    assert link["final"] is True and link["evaluated_on"] == "test"
    assert link["trained_on"] == "the whole training split"
    config = load_config(final / "raynas_experiment.yaml")
    assert config.data.val_fraction == 0 and config.objective.metric == "test_acc"
    result = raynas.load(final)
    row = result.trials.iloc[0]
    assert row["status"] == "completed" and row["epochs"] == 2 and 0.0 <= row["test_acc"] <= 1.0
    assert f"test_acc={row['test_acc']:.4f}" in out
    curves = result.curves
    assert curves["test_acc"].notna().sum() == 2  # reported every epoch
    assert "val_acc" not in curves or curves["val_acc"].isna().all()


def test_find_top_ranks_distinct_archs_best_first(tmp_path: Path) -> None:
    folder = fake_search(
        tmp_path,
        [
            {"id": "aaaa0001", "arch": SKIPS, "val_acc": 0.4},
            {"id": "bbbb0002", "arch": GOOD, "val_acc": 0.9},
            {"id": "cccc0003", "arch": GOOD, "val_acc": 0.8},  # the same arch again
        ],
    )
    top = find_top(folder, 5)
    assert [t.trial_id for t in top] == ["bbbb0002", "aaaa0001"]
    with pytest.raises(ConfigError, match="--top: must be an integer >= 1"):
        retrain(folder, top=0, verbose=False)
    with pytest.raises(ConfigError, match="--seeds: give one or more distinct seeds"):
        retrain(folder, top=2, seeds=[1, 1], verbose=False)


@pytest.mark.slow
def test_cli_retrain_top_k_over_seeds_reports_mean_and_std(
    tmp_path: Path, local_ray: None, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = fake_search(
        tmp_path,
        [
            {"id": "aaaa0001", "arch": SKIPS, "val_acc": 0.4},
            {"id": "bbbb0002", "arch": GOOD, "val_acc": 0.9},
        ],
    )
    args = ["retrain", str(folder), "--top", "2", "--seeds", "0", "1", "--final", "--quiet"]
    assert cli_main([*args, "--set", "train.epochs=1"]) == 0
    out = capsys.readouterr().out
    done = tmp_path / "runs" / "search-retrain-top2x2-final"
    assert f"retraining folder: {done}" in out
    link = json.loads((done / LINK_FILE).read_text())
    assert [t["trial_id"] for t in link["top"]] == ["bbbb0002", "aaaa0001"]
    assert link["seeds"] == [0, 1]
    result = raynas.load(done)
    assert len(result.trials) == 4 and (result.trials["status"] == "completed").all()
    summary = seed_summary(result, "test_acc")
    assert {r["arch"] for r in summary} == {GOOD, SKIPS} and all(r["seeds"] == 2 for r in summary)
    for r in summary:
        values = result.trials.loc[result.trials["arch"] == r["arch"], "test_acc"]
        assert r["mean"] == pytest.approx(values.mean()) and r["std"] == pytest.approx(values.std())
        assert f"{r['mean']:.4f} +- {r['std']:.4f}  (n=2)  {r['arch']}" in out
    # two seeds train differently: not one run reported twice
    assert result.trials.groupby("arch")["test_acc"].nunique().max() == 2
