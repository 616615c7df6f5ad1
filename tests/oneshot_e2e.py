"""End-to-end one-shot searches: the ``local_ray`` fixture and a tiny search through ``raynas.run``.

A test module uses the fixture with ``pytest_plugins = ["tests.oneshot_e2e"]``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import raynas
from tests.conftest import small_experiment


@pytest.fixture
def local_ray(request: pytest.FixtureRequest) -> None:
    """The session's Ray runtime, started on this machine (never another user's cluster)."""
    import ray

    if not ray.is_initialized() and not os.environ.get("RAY_ADDRESS"):
        os.environ["RAY_ADDRESS"] = "local"
    request.getfixturevalue("ray_session")


def run_oneshot(
    tmp_path: Path, trainable: str, trainable_args: dict[str, Any]
) -> tuple[Any, list[tuple[str, dict[str, Any]]]]:
    """Search nb201 (C=4, N=1) on 200 digits for 2 epochs with a one-shot ``trainable``.

    Asserts every trial completed.

    Returns:
        The :class:`raynas.Result` and, per trial, its directory and last result row.
    """
    exp = small_experiment(
        tmp_path,
        name=trainable,
        trainable=trainable,
        trainable_args=trainable_args,
        data={"name": "digits", "limit": 200},
        train={"epochs": 2, "batch_size": 64},
    )
    result = raynas.run(exp, verbose=False)
    assert set(result.trials["status"]) == {"completed"}
    lasts = [
        (tdir, json.loads(Path(tdir, "result.json").read_text().splitlines()[-1]))
        for tdir in result.trials["trial_dir"]
    ]
    return result, lasts
