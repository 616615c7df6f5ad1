"""``raynas run --warm-start DIR``: a new search learns from an earlier experiment's trials."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import raynas
from raynas.cli import main
from tests.conftest import small_experiment


def _config(tmp_path: Path, name: str, **sections: object) -> Path:
    path = tmp_path / f"{name}.yaml"
    exp = small_experiment(tmp_path, name=name, **sections)
    exp["space_args"] = {"C": 4, "N": 1, "ops": ["none", "skip_connect", "nor_conv_1x1"]}
    path.write_text(yaml.safe_dump(exp))
    return path


def test_warm_start_feeds_the_earlier_trials_and_never_repeats_them(
    tmp_path: Path, ray_session: None, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _config(tmp_path, "first", budget={"trials": 3, "concurrent": 1})
    assert main(["run", str(first)]) == 0
    before = raynas.load(tmp_path / "runs" / "first").trials
    second = _config(tmp_path, "second", budget={"trials": 3, "concurrent": 1})
    capsys.readouterr()
    assert main(["run", str(second), "--warm-start", str(tmp_path / "runs" / "first")]) == 0
    assert f"warm start: 3 trial(s) of {tmp_path / 'runs' / 'first'} observed" in (
        capsys.readouterr().out
    )
    after = raynas.load(tmp_path / "runs" / "second").trials
    assert len(after) == 3, "warm-start trials do not count in budget.trials"
    # same seed, same strategy: without the warm start the second run would repeat the first
    assert not set(after["arch_id"]) & set(before["arch_id"])


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not_an_experiment", "is not a raynas experiment folder"),
        ("other_space", "warm-start from an experiment of the same space"),
    ],
)
def test_bad_warm_start_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, message: str
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    if case == "other_space":
        exp = small_experiment(tmp_path, space="mlp", space_args={})
        (source / "raynas_experiment.yaml").write_text(yaml.safe_dump(exp))
    cfg = _config(tmp_path, "new")
    assert main(["run", str(cfg), "--warm-start", str(source)]) == 2
    err = capsys.readouterr().err
    assert "--warm-start:" in err and message in err and "Traceback" not in err
    assert not (tmp_path / "runs" / "new").exists()
