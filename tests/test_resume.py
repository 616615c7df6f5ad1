"""A driver SIGKILLed again and again loses nothing and repeats nothing: after the last
`raynas resume` the experiment equals an uninterrupted run with the same seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raynas.experiment.journal import apply_journal, drop_stale_rows, read_journal
from raynas.testing.kill_loop import kill_loop, small_search


@pytest.mark.slow
@pytest.mark.parametrize(
    ("strategy", "scheduler", "trials", "epochs", "kills"),
    [
        ("evolution", "fifo", 6, 3, 2),
        ("bo", "asha", 6, 3, 2),
        ("random", "pbt_evolution", 4, 4, 3),
    ],
)
def test_kill_loop_loses_and_repeats_nothing(
    tmp_path: Path, strategy: str, scheduler: str, trials: int, epochs: int, kills: int
) -> None:
    """For PBT, the same lineage: epoch by epoch, each trial trains the architecture the
    uninterrupted run's trains, cloned from the same trial. (``benchmarks/kill_loop.py`` runs
    10 kills a pair; CI's few keep its time down.)"""
    cfg = small_search(strategy, scheduler, trials=trials, epochs=epochs)
    report = kill_loop(cfg, tmp_path, kills=kills, seed=1)
    print(json.dumps(report.to_dict()))
    assert report.kills >= kills - 1, report  # the run may end before the last kill
    assert report.rerun == 0 and report.lost == 0 and report.unreadable == 0, report
    assert report.gaps == 0, report
    assert report.not_reaped == 0, report
    assert report.same_sequence, report.differences


def test_a_journal_line_cut_by_a_kill_is_ignored_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = json.dumps({"trial_id": "a", "status": "TERMINATED", "config": {}, "result": {}})
    (tmp_path / "raynas_journal.jsonl").write_text(whole + "\n" + whole[:20])
    assert [e["trial_id"] for e in read_journal(tmp_path)] == ["a"]
    assert "line 2 is incomplete" in capsys.readouterr().err


def test_apply_journal_ends_the_trials_the_snapshot_still_runs(tmp_path: Path) -> None:
    def pair(trial_id: str, status: str) -> list[str]:
        return [
            json.dumps({"trial_id": trial_id, "status": status}),
            json.dumps({"last_result": {}}),
        ]

    state = {"trial_data": [pair("a", "RUNNING"), pair("b", "PENDING"), pair("c", "TERMINATED")]}
    (tmp_path / "experiment_state-2026.json").write_text(json.dumps(state))
    line = {"trial_id": "a", "status": "TERMINATED", "config": {}, "result": {"epoch": 3}}
    err = {"trial_id": "b", "status": "ERROR", "config": {}, "result": {}}
    (tmp_path / "raynas_journal.jsonl").write_text(json.dumps(line) + "\n" + json.dumps(err) + "\n")
    assert apply_journal(tmp_path) == 1
    after = json.loads((tmp_path / "experiment_state-2026.json").read_text())["trial_data"]
    assert [json.loads(t)["status"] for t, _ in after] == ["TERMINATED", "PENDING", "TERMINATED"]
    assert json.loads(after[0][1])["last_result"] == {"epoch": 3}


@pytest.mark.slow
def test_a_finished_search_extends_on_resume_as_if_it_had_asked_for_more(tmp_path: Path) -> None:
    """``raynas resume DIR --set budget.trials=5`` on a finished 3-trial evolution: the first
    three are kept, and the five are the five an uninterrupted 5-trial run trains."""
    import subprocess

    import yaml

    from raynas.testing.kill_loop import trial_sequence
    from tests.conftest import REPO, VENV_BIN

    cfg = small_search("evolution", "fifo", trials=3, epochs=1)
    cfg["storage"] = str(tmp_path)

    def raynas(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VENV_BIN / "raynas"), *argv], cwd=REPO, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip

    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump(cfg))
    first = raynas("run", str(config), "--name", "grown")
    assert first.returncode == 0, first.stderr[-3000:]
    before = trial_sequence(tmp_path / "grown")
    grown = raynas("resume", str(tmp_path / "grown"), "--set", "budget.trials=5")
    assert grown.returncode == 0, grown.stderr[-3000:]
    assert "[  4/5]" in grown.stdout and "[  1/5]" not in grown.stdout
    once = raynas("run", str(config), "--name", "once", "--set", "budget.trials=5")
    assert once.returncode == 0, once.stderr[-3000:]
    after = trial_sequence(tmp_path / "grown")
    assert after[:3] == before and len(after) == 5
    assert [a for a, _, _ in after] == [a for a, _, _ in trial_sequence(tmp_path / "once")]
    assert (
        yaml.safe_load((tmp_path / "grown" / "raynas_experiment.yaml").read_text())["budget"][
            "trials"
        ]
        == 5
    )


def test_a_resume_may_change_only_the_trial_budget() -> None:
    from raynas.experiment.config import ConfigError
    from raynas.experiment.config_load import load_config
    from raynas.experiment.runner import _extended

    exp = load_config("examples/quickstart.yaml")
    grown = _extended(exp, [f"budget.trials={exp.budget.trials + 2}"])
    assert grown.budget.trials == exp.budget.trials + 2
    assert _extended(exp, [f"train.lr={exp.train.lr}"]).train.lr == exp.train.lr  # unchanged
    with pytest.raises(ConfigError) as err:
        _extended(exp, ["train.lr=0.5", "seed=7"])
    text = str(err.value)
    assert "--set seed: a resume can change only budget.trials" in text
    assert "--set train.lr:" in text
    with pytest.raises(ConfigError, match="below the experiment's"):
        _extended(exp, ["budget.trials=1"])


def test_the_result_row_a_kill_cut_is_completed_for_raynas_and_tune_folder_names(
    tmp_path: Path,
) -> None:
    """apply_journal finds each finished trial's folder (both name forms, one listing) and
    appends its journaled last row when result.json lacks it."""
    ours = tmp_path / "trial00001-3f2a9c1d-aaaa1111"
    tunes = tmp_path / "ClassifyTrainable_bbbb_00002_2_edge=none_2026-12-02"
    for folder in (ours, tunes):
        folder.mkdir()
        (folder / "result.json").write_text(json.dumps({"training_iteration": 1}) + "\n")
    lines = [
        {"trial_id": "aaaa1111", "status": "TERMINATED", "config": {}, "result": {"training_iteration": 2}},
        {"trial_id": "bbbb_00002", "status": "TERMINATED", "config": {}, "result": {"training_iteration": 1}},
    ]  # fmt: skip
    (tmp_path / "raynas_journal.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    apply_journal(tmp_path)
    rows = [json.loads(x) for x in (ours / "result.json").read_text().splitlines()]
    assert [r["training_iteration"] for r in rows] == [1, 2]
    assert len((tunes / "result.json").read_text().splitlines()) == 1  # already there


def _row(i: int) -> str:
    return json.dumps({"training_iteration": i, "val_acc": i / 10}) + "\n"


def test_a_resumed_trial_loses_the_rows_its_older_checkpoint_trains_again(tmp_path: Path) -> None:
    """Killed after reporting epoch 2 but before Tune recorded its epoch-2 checkpoint, a trial
    resumes from epoch 1 and reports epoch 2 again: its files keep one row per epoch. The cut
    is made in place, so the logger's open append handle writes after the kept rows."""
    result, progress = tmp_path / "result.json", tmp_path / "progress.csv"
    result.write_text(_row(1) + _row(2) + '{"training_iteration": 3, "val')  # last line cut
    progress.write_text(
        'training_iteration,arch_str,val_acc\n1,"a,b",0.1\n2,"a,b",0.2\n3,"a,b",0.3\n'
    )
    with open(result, "a") as logger:  # Tune's JsonLoggerCallback holds the file open so
        assert drop_stale_rows(tmp_path, 2) == 2 + 2  # result: 2 and the cut row; csv: 2, 3
        logger.write(_row(2))
        logger.flush()
    assert [json.loads(x)["training_iteration"] for x in result.read_text().splitlines()] == [1, 2]
    assert progress.read_text() == 'training_iteration,arch_str,val_acc\n1,"a,b",0.1\n'
    assert drop_stale_rows(tmp_path, 9) == 0  # nothing at or after epoch 9
    assert drop_stale_rows(tmp_path, None) == 0  # a result without an iteration: untouched
    assert drop_stale_rows(tmp_path / "missing", 1) == 0


def test_a_cut_row_the_logger_ended_with_a_newline_is_cut_too(tmp_path: Path) -> None:
    """The logger ends a cut last line when it opens the file again (before the first
    result): that line is in the tail the resume cuts, not kept as a row."""
    path = tmp_path / "result.json"
    path.write_text(_row(1) + _row(2) + '{"training_iteration": 3, "va\n')
    assert drop_stale_rows(tmp_path, 3) == 1
    assert path.read_text() == _row(1) + _row(2)


def test_a_progress_file_it_cannot_read_row_by_row_is_left_alone(tmp_path: Path) -> None:
    text = 'training_iteration,note\n1,"two\nlines"\n2,x\n'
    (tmp_path / "progress.csv").write_text(text)
    assert drop_stale_rows(tmp_path, 2) == 0
    assert (tmp_path / "progress.csv").read_text() == text


def test_only_the_tail_is_cut_so_a_pbt_clone_s_jump_back_stays(tmp_path: Path) -> None:
    """Rows 1-4, then a clone of a peer's epoch-1 checkpoint (rows 2, 3): resumed at epoch 3,
    only the last row goes; the trial's own epochs 3 and 4 before the clone stay."""
    path = tmp_path / "result.json"
    path.write_text("".join(_row(i) for i in (1, 2, 3, 4, 2, 3)))
    assert drop_stale_rows(tmp_path, 3) == 1
    assert [json.loads(x)["training_iteration"] for x in path.read_text().splitlines()] == [
        1, 2, 3, 4, 2,
    ]  # fmt: skip
