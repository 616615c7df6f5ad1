"""What the one-shot tests share: a trainable driven directly, a tiny search through
``raynas.run`` (with the ``local_ray`` fixture of ``tests/conftest.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ray.tune.trainable.trainable as tune_trainable

import raynas
from raynas.experiment.config import trial_settings
from raynas.experiment.config_load import load_config
from tests.conftest import small_experiment


def make_oneshot_trainable(cls: Any, tmp_path: Path, *, epochs: int, **sections: Any) -> Any:
    """A one-shot trainable ``cls`` (its ``METHOD``) on 240 digits, its config from
    :func:`~tests.conftest.small_experiment` with ``sections``; a given ``space_args`` replaces
    the default one instead of being merged into it. The arch is the space's ``sample(0)``.
    """
    data = small_experiment(
        tmp_path,
        trainable=cls.METHOD,
        data={"name": "digits", "limit": 240},
        train={"epochs": epochs, "batch_size": 64},
        **sections,
    )
    data["space_args"] = sections.get("space_args", data["space_args"])  # replace, not merge
    exp = load_config(data)
    cfg = trial_settings(exp)
    cfg["arch"] = raynas.get_space(exp.space, **exp.space_args).sample(0)
    tmp_path.mkdir(parents=True, exist_ok=True)
    tune_trainable.DEFAULT_STORAGE_PATH = str(tmp_path)
    return cls(config=cfg)


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
