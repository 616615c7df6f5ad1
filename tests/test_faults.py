"""Trial faults end their own trial with a clear status; the search goes on, told of each."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

import raynas
from tests.conftest import small_experiment


def faulty_experiment(tmp_path: Path, space_args: dict[str, Any], **sections: Any) -> dict:
    """``small_experiment`` on the ``tests.faulty`` plugin space with these ``space_args``:
    grid search, no constraints, no gradient clipping."""
    train = {"grad_clip": None, **sections.pop("train", {})}
    exp = small_experiment(
        tmp_path,
        plugins=["tests.faulty"],
        space="faulty",
        strategy={"name": "grid"},
        objective={"constraints": []},
        train=train,
        **sections,
    )
    exp["space_args"] = space_args  # in place of nb201's, not merged with them
    return exp


@pytest.mark.slow
def test_raise_diverge_and_oom_each_end_their_own_trial(tmp_path: Path, ray_session: None) -> None:
    exp = faulty_experiment(tmp_path, {}, name="faults", budget={"trials": 4, "concurrent": 2})
    result = raynas.run(exp, verbose=False)
    by_behaviour = {row["arch.behaviour"]: row for _, row in result.trials.iterrows()}
    assert set(by_behaviour) == {"ok", "raise", "nan", "oom"}
    assert by_behaviour["ok"]["status"] == "completed"
    assert by_behaviour["raise"]["status"] == "error"
    assert "deliberate failure" in by_behaviour["raise"]["error"]
    assert by_behaviour["nan"]["status"] == "diverged"
    assert by_behaviour["oom"]["status"] == "oom"

    state_files = sorted(result.path.glob("searcher-state-*.pkl"))
    assert state_files, "Tune saved no searcher state"
    with open(state_files[-1], "rb") as f:
        blob = pickle.load(f)
    state = blob if isinstance(blob, dict) and "history" in blob else None
    if state is None:  # Tune wraps the searcher's own state in its search-generator state
        state = _find_history(blob)
    scores = {arch["behaviour"]: score for arch, score in state["history"]}
    assert set(scores) == {"ok", "raise", "nan", "oom"}, "the searcher must be told of every trial"
    assert scores["ok"] is not None
    assert scores["raise"] is None and scores["nan"] is None and scores["oom"] is None


def _find_history(obj: object, depth: int = 0) -> dict:
    if isinstance(obj, dict):
        if "history" in obj:
            return obj
        for v in obj.values():
            found = _find_history(v, depth + 1)
            if found:
                return found
    if hasattr(obj, "__dict__") and depth < 5:
        return _find_history(vars(obj), depth + 1)
    return {}


def test_unknown_plugin_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from raynas.cli import main

    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(small_experiment(tmp_path, plugins=["no_such_module_xyz"])))
    assert main(["validate", str(path)]) == 2
    assert "plugins: plugin module 'no_such_module_xyz' cannot be imported" in (
        capsys.readouterr().err
    )


@pytest.mark.slow
def test_a_trial_retried_in_session_reports_each_epoch_once(
    tmp_path: Path, ray_session: None
) -> None:
    """A trial whose process dies mid-epoch 4 (after rows 1-3, checkpoint at 2) is retried from
    its epoch-2 checkpoint (``failure.max_retries``) and reports epoch 3 again: its files hold
    each epoch once, the retried session's row, not the dead one's beside it."""
    marker = tmp_path / "died"
    exp = faulty_experiment(
        tmp_path,
        {"behaviours": ["ok"], "die_after": 3, "marker": str(marker)},
        name="retried",
        budget={"trials": 1, "concurrent": 1},
        train={"epochs": 4, "batch_size": 4096},  # one batch per epoch
        checkpoint={"every": 2},
        failure={"max_retries": 1},
    )
    result = raynas.run(exp, verbose=False)
    assert marker.exists(), "the child's process was not killed"
    assert list(result.trials["status"]) == ["completed"], result.trials[["status", "error"]]
    trial_dir = Path(result.trials["trial_dir"].iloc[0])
    rows = [json.loads(x) for x in (trial_dir / "result.json").read_text().splitlines()]
    assert [r["training_iteration"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["pid"] != rows[-1]["pid"], "no retry: one process trained every epoch"
    assert rows[2]["pid"] == rows[3]["pid"], "epoch 3 kept from the dead process"
    csv_lines = (trial_dir / "progress.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 4, csv_lines
    assert list(result.curves["epoch"]) == [1, 2, 3, 4]
