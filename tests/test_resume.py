"""A driver SIGKILLed again and again loses nothing and repeats nothing: after the last
`raynas resume` the experiment equals an uninterrupted run with the same seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raynas.journal import apply_journal, read_journal
from raynas.testing.kill_loop import kill_loop, small_search


@pytest.mark.slow
@pytest.mark.parametrize(("strategy", "scheduler"), [("evolution", "fifo"), ("bo", "asha")])
def test_kill_loop_loses_and_repeats_nothing(tmp_path: Path, strategy: str, scheduler: str) -> None:
    cfg = small_search(strategy, scheduler, trials=8, epochs=3)
    report = kill_loop(cfg, tmp_path, kills=3, seed=1)
    print(json.dumps(report.to_dict()))
    assert report.kills >= 2, report
    assert report.rerun == 0 and report.lost == 0 and report.unreadable == 0, report
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
