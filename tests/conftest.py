"""Shared fixtures: one local Ray runtime per test session, small experiment configs."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart.yaml"
#: The folder of this interpreter's virtual environment's commands (``raynas``, ``ray``).
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One ``ray.init`` shared by every test that needs a Ray runtime."""
    import ray

    from raynas.experiment.ray_setup import init_ray

    # Ray workers inherit the driver's environment: let them import test plugins
    # (``plugins: [tests.faulty]``) from the repository.
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    init_ray(None)
    yield
    ray.shutdown()


@pytest.fixture
def local_ray(request: pytest.FixtureRequest) -> None:
    """The session's Ray runtime, started on this machine (never another user's cluster)."""
    import ray

    if not ray.is_initialized() and not os.environ.get("RAY_ADDRESS"):
        os.environ["RAY_ADDRESS"] = "local"
    request.getfixturevalue("ray_session")


def small_experiment(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """A fast experiment mapping: nb201 C=4 N=1 on digits, 1 epoch, 2 trials."""
    exp: dict[str, Any] = {
        "name": "t",
        "space": "nb201",
        "space_args": {"C": 4, "N": 1},
        "data": {"name": "digits"},
        "train": {"epochs": 1, "batch_size": 128, "lr": 0.1, "latency_repeats": 2},
        "strategy": {"name": "random"},
        "budget": {"trials": 2, "concurrent": 2},
        "storage": str(tmp_path / "runs"),
        "seed": 0,
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(exp.get(key), dict):
            exp[key] = {**exp[key], **value}
        else:
            exp[key] = value
    return exp


def raynas_run_argv(config: Path, storage: Path, name: str, sets: Sequence[str]) -> list[str]:
    """The command line ``raynas run CONFIG --storage STORAGE --name NAME --set S ...``."""
    argv = [str(VENV_BIN / "raynas"), "run", str(config), "--storage", str(storage), "--name", name]
    return argv + [arg for override in sets for arg in ("--set", override)]


def journaled_results(folder: Path) -> dict[str, list[str]]:
    """``{trial folder: result.json lines}`` of the trials raynas' journal shows ended.

    The journal (``raynas_journal.jsonl``) is fsynced as each trial ends, so these are kept,
    byte for byte, by any later ``raynas resume``. Crash tests compare them.
    """
    from raynas.experiment.journal import finished_trials

    done = finished_trials(folder)
    out = {}
    for res in folder.glob("*/result.json"):
        lines = res.read_text().splitlines()
        if lines and json.loads(lines[-1]).get("trial_id") in done:
            out[res.parent.name] = lines
    return out
