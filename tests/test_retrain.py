"""``raynas retrain``: pick a searched trial, build the classify experiment, train it linked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import raynas
from raynas.config import ConfigError, load_config
from raynas.retrain import LINK_FILE, find_trial, retrain, retrain_config
from tests.conftest import REPO, small_experiment

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


def raynas_cli(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "raynas"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "raynas.cli"]
    return subprocess.run([*cmd, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_cli_retrain_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    helped = raynas_cli("retrain", "--help")
    assert helped.returncode == 0 and "--trial ID" in helped.stdout
    missing = raynas_cli("retrain", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "raynas: error: dir:" in missing.stderr and "Traceback" not in missing.stderr


def test_retrain_refuses_an_arch_outside_the_overridden_space(tmp_path: Path) -> None:
    folder = fake_search(tmp_path, [{"id": "aaaa0001", "arch": GOOD, "val_acc": 0.5}])
    with pytest.raises(ConfigError, match="space_args: the arch of trial aaaa0001 is invalid"):
        retrain(folder, overrides=["space_args.ops=[none, skip_connect]"], verbose=False)
    assert not (tmp_path / "runs" / "search-retrain-aaaa0001").exists()


@pytest.fixture
def local_ray(request: pytest.FixtureRequest) -> None:
    """The session's Ray runtime, started on this machine (never another user's cluster)."""
    import ray

    if not ray.is_initialized() and not os.environ.get("RAY_ADDRESS"):
        os.environ["RAY_ADDRESS"] = "local"
    request.getfixturevalue("ray_session")


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
    assert link["arch"] == derived and link["method"] == "darts" and link["derived"] is True
    config = load_config(folder / "raynas_experiment.yaml")  # a valid, resumable config
    assert config.trainable == "classify" and config.train.epochs == 2
    assert len(result.trials) == 1
    row = result.trials.iloc[0]
    assert row["status"] == "completed" and row["arch"] == SPACE.to_string(derived)
    assert 0.0 <= row["val_acc"] <= 1.0 and row["epochs"] == 2

    resumed = raynas.resume(folder, verbose=False)  # a retraining resumes like any experiment
    assert list(resumed.trials["trial_id"]) == [row["trial_id"]]

    again = raynas_cli("retrain", str(search.path))
    assert again.returncode == 2 and "already exists" in again.stderr
