"""What ``raynas run`` prints: a live status line on a terminal only, ``--quiet``, ``--epochs``,
status words that say why a trial ended, and a resumed run that counts on."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from raynas.experiment.config import Experiment
from raynas.experiment.progress import TrialPrinter, output_level
from raynas.results.analysis import load, short_arch
from tests.conftest import REPO, VENV_BIN, small_experiment


def _config(tmp_path: Path, name: str, **sections: object) -> Path:
    path = tmp_path / f"{name}.yaml"
    exp = small_experiment(tmp_path, name=name, budget={"trials": 3, "concurrent": 1}, **sections)
    path.write_text(json.dumps(exp))
    return path


def _run_in_a_terminal(argv: list[str]) -> tuple[int, str]:
    """Run ``argv`` with its standard output on a pseudo-terminal; (exit code, output)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, cwd=REPO, stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    proc.wait(timeout=300)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_a_terminal_gets_the_live_line_and_a_pipe_never_does(tmp_path: Path) -> None:
    cli = str(VENV_BIN / "raynas")
    code, shown = _run_in_a_terminal([cli, "run", str(_config(tmp_path, "tty"))])
    assert code == 0, shown[-3000:]
    assert "\r\x1b[K" in shown
    assert "3/3 done | 0 running | 0 pending" in shown or "2/3 done" in shown
    assert "elapsed" in shown and "best val_acc=" in shown
    assert "[  3/3] completed" in shown.replace("\r\x1b[K", "\n")

    piped = subprocess.run(
        [cli, "run", str(_config(tmp_path, "pipe")), "--epochs"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr[-3000:]
    assert "\r" not in piped.stdout and "\x1b" not in piped.stdout
    assert "Token authentication" not in piped.stderr  # Ray's notice on every start
    lines = piped.stdout.splitlines()
    assert sum(ln.startswith("[") and "] completed" in ln for ln in lines) == 3
    assert sum(" epoch 1/1 val_acc=" in ln for ln in lines) == 3  # one per epoch of each trial
    # Trial folders are named by trial id and arch id, not by 150 characters of config.
    result = load(tmp_path / "runs" / "pipe")
    for _, row in result.trials.iterrows():
        name = Path(str(row["trial_dir"])).name
        assert re.fullmatch(r"trial\d{5}-[0-9a-f]{8}-[0-9a-f_]+", name), name
        assert name.split("-")[1] == str(row["arch_id"])[:8]
        assert name.endswith(f"-{row['trial_id']}") and row["trial_index"] >= 0

    quiet = subprocess.run(
        [cli, "run", str(_config(tmp_path, "quiet")), "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert not [ln for ln in quiet.stdout.splitlines() if ln.startswith("[")]
    assert "experiment folder:" in quiet.stdout and "status: completed=3" in quiet.stdout


def _printer(tmp_path: Path, **sections: object) -> tuple[TrialPrinter, io.StringIO]:
    exp = Experiment.model_validate(small_experiment(tmp_path, **sections))
    out = io.StringIO()
    return TrialPrinter(exp, stream=out), out


def _trial(tune_status: str, **result: object) -> SimpleNamespace:
    return SimpleNamespace(trial_id="t1", status=tune_status, last_result=result, error_file=None)


def test_the_status_word_says_who_ended_a_trial(tmp_path: Path) -> None:
    printer, out = _printer(tmp_path, scheduler={"name": "asha"}, train={"epochs": 4})
    # Tune marks the last result of a trial the scheduler stopped done, too
    printer.on_trial_complete(0, [], _trial("TERMINATED", epoch=1, val_acc=0.5, done=True))
    printer.on_trial_complete(0, [], _trial("TERMINATED", epoch=4, val_acc=0.7, status="ok"))
    printer.on_trial_complete(0, [], _trial("TERMINATED", epoch=4, status="constraint_violated"))
    words = [ln.split("]", 1)[1].split()[0:3] for ln in out.getvalue().splitlines()]
    assert words[0][:3] == ["stopped", "by", "asha"]
    assert words[1][0] == "completed" and words[2][0] == "constraint_violated"


def test_a_resumed_run_counts_on_from_the_trials_it_has(tmp_path: Path) -> None:
    printer, out = _printer(tmp_path, budget={"trials": 8})
    restored = [_trial("TERMINATED", epoch=1, val_acc=0.4) for _ in range(5)]
    restored += [_trial("PENDING")]
    printer.setup()
    printer.on_step_begin(0, restored)
    printer.on_trial_complete(0, restored, _trial("TERMINATED", epoch=1, val_acc=0.9))
    assert out.getvalue().startswith("[  6/8] completed")
    assert printer.best == 0.9
    assert "\r" not in out.getvalue()  # a StringIO is no terminal: no live line


def test_the_live_line_is_drawn_over_and_taken_away(tmp_path: Path) -> None:
    exp = Experiment.model_validate(small_experiment(tmp_path, budget={"trials": 4}))
    out = io.StringIO()
    printer = TrialPrinter(exp, stream=out, live=True)
    printer.setup()
    running = [_trial("RUNNING"), _trial("RUNNING")]
    printer.on_step_begin(0, running)
    assert out.getvalue().startswith("\r\x1b[K0/4 done | 2 running | 2 pending")
    printer.on_trial_complete(0, running, _trial("TERMINATED", epoch=1, val_acc=0.8))
    text = out.getvalue()
    assert "\r\x1b[K[  1/4] completed" in text and "best val_acc=0.8000" in text
    assert "left" in text.rsplit("\r\x1b[K", 1)[1]  # one trial done: an estimate
    printer.on_experiment_end([])
    assert out.getvalue().endswith("\r\x1b[K")


def test_levels_and_long_archs() -> None:
    assert output_level(True) == "trials" and output_level(False) == "quiet"
    assert output_level("epochs") == "epochs"
    with pytest.raises(ValueError, match="verbose: 'loud'"):
        output_level("loud")
    assert short_arch(None) == "?"
    long = {"layers": [{"width": 512, "activation": "relu"}] * 20}
    assert len(short_arch(long)) == 100 and short_arch(long).endswith("...")
    assert short_arch("|nor_conv_3x3~0|") == "|nor_conv_3x3~0|"


def test_trial_folder_names_parse_back() -> None:
    from raynas.files import parse_trial_dir_name, trial_dir_name

    assert trial_dir_name(3, "dad2bb44", "3f2a9c1d00112233") == "trial00003-3f2a9c1d-dad2bb44"
    assert parse_trial_dir_name("trial00003-3f2a9c1d-dad2bb44") == (3, "dad2bb44")
    assert parse_trial_dir_name(trial_dir_name(12, "4cf96_00012", None)) == (12, "4cf96_00012")
    # Tune's default form, as older experiments have it
    assert parse_trial_dir_name("ClassifyTrainable_dad2bb44_2_edge_0_1=none_2026") == (
        2,
        "dad2bb44",
    )


def test_a_trial_id_gives_its_index() -> None:
    from raynas.files import trial_index

    assert trial_index("e6d7f_00002") == 2
    for not_an_id in (None, "", "dad2bb44", "e6d7f_x2"):
        assert trial_index(not_an_id) is None


def test_budgets_a_strategy_or_space_cannot_use_are_warned(capsys) -> None:  # type: ignore[no-untyped-def]
    from raynas.cli import main

    quickstart = str(REPO / "examples" / "quickstart.yaml")
    assert (
        main(["validate", quickstart, "--set", "strategy.name=bo", "--set", "budget.trials=4"]) == 0
    )
    out = capsys.readouterr().out
    assert "warning: strategy.num_init: 10 is not below budget.trials (4)" in out
    assert main(["validate", quickstart, "--set", "strategy.name=evolution"]) == 0
    assert "population_size: 20 is not below budget.trials (20)" in capsys.readouterr().out
    argv = ["validate", quickstart, "--set", "strategy.name=grid", "--set", "budget.trials=20000"]
    assert main(argv) == 0
    assert "above the 15,625 architectures of the space" in capsys.readouterr().out
    assert main(["validate", quickstart]) == 0
    assert "warning" not in capsys.readouterr().out


def test_a_target_is_met_by_every_metric_in_its_direction() -> None:
    from raynas.experiment.progress import TargetStop, target_met

    modes = {"val_acc": "max", "params": "min"}
    assert target_met({"val_acc": 0.9, "params": 10}, {"val_acc": 0.9, "params": 10}, modes)
    assert not target_met({"val_acc": 0.95, "params": 11}, {"val_acc": 0.9, "params": 10}, modes)
    assert not target_met({"params": 1}, {"val_acc": 0.9}, modes)  # not reported: not met
    assert not target_met({"val_acc": float("nan")}, {"val_acc": 0.9}, modes)
    stop = TargetStop({"val_acc": 0.9}, modes)
    assert stop("t1", {"val_acc": 0.5}) is False and not stop.stop_all()
    assert stop("t1", {"val_acc": 0.91}) is False and stop.stop_all()


@pytest.mark.slow
def test_budget_stop_ends_the_search_at_the_target(tmp_path: Path) -> None:
    config = tmp_path / "stop.yaml"
    exp = small_experiment(
        tmp_path, name="stop", train={"epochs": 3}, budget={"trials": 8, "concurrent": 1,
        "stop": {"val_acc": 0.5}},
    )  # fmt: skip
    config.write_text(json.dumps(exp))
    proc = subprocess.run(
        [str(VENV_BIN / "raynas"), "run", str(config)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = load(tmp_path / "runs" / "stop")
    reached = result.curves[result.curves["val_acc"] >= 0.5]
    assert not reached.empty and len(result.trials) < 8
    first = reached.iloc[0]
    # no trial started after the one that met the target, and that one trained no further
    assert result.trials["trial_index"].max() == int(
        result.trials.set_index("trial_id").loc[first["trial_id"], "trial_index"]
    )
    row = result.trials.set_index("trial_id").loc[first["trial_id"]]
    if int(first["epoch"]) < 3:
        assert row["status"] == "stopped_at_target" and row["epochs"] == first["epoch"]
        assert "budget.stop ({'val_acc': 0.5}) was met" in proc.stdout
    assert "Failed to fetch metrics" not in proc.stderr


@pytest.mark.slow
def test_a_run_whose_every_trial_violated_the_constraints_says_so(tmp_path: Path) -> None:
    config = tmp_path / "tight.yaml"
    exp = small_experiment(
        tmp_path, name="tight", objective={"constraints": ["latency_ms <= 0.000001"]}
    )  # latency is measured where the child runs: every trial breaks it there
    config.write_text(json.dumps(exp))
    proc = subprocess.run(
        [str(VENV_BIN / "raynas"), "run", str(config)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert "status: constraint_violated=2" in proc.stdout, proc.stdout[-2000:]
    assert "warning: every trial violated objective.constraints (latency_ms <= " in proc.stdout
    assert proc.returncode == 1  # no trial succeeded
