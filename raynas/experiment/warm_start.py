"""``raynas run --warm-start DIR``: start a search from another experiment's trials.

Every trial of the earlier experiment (its ``params.json`` config and every result in its
``result.json``) is observed by the new search's strategy before the first suggestion, through
the same path as a trial that finished in the new run (:meth:`NASSearcher.warm_start`): the
strategy learns from them and never proposes their architectures again. The trials are not
copied into the new folder and do not count in ``budget.trials``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raynas.experiment.config import ConfigError, Experiment
from raynas.experiment.config_load import load_config
from raynas.files import CONFIG_FILE

__all__ = ["warm_start_records"]


def warm_start_records(folder: str | Path, exp: Experiment) -> list[tuple[dict[str, Any], Any]]:
    """``(config, results)`` per trial of the experiment in ``folder``, for ``exp``'s strategy.

    A trial that reported nothing is a failure (results None).

    Raises:
        ConfigError: ``folder`` is not a raynas experiment, it searched another space, or the
            new experiment has no strategy to warm (``pbt_evolution``). Field ``--warm-start``.
    """
    path = Path(folder).expanduser()
    if not (path / CONFIG_FILE).is_file():
        raise ConfigError(
            [f"--warm-start: {str(path)!r} is not a raynas experiment folder (no {CONFIG_FILE})"]
        )
    if exp.scheduler.name == "pbt_evolution":
        raise ConfigError(
            [
                "--warm-start: pbt_evolution samples its population without a strategy, so "
                "there is nothing to warm-start; leave --warm-start out"
            ]
        )
    old = load_config(path / CONFIG_FILE)
    if (old.space, old.space_args) != (exp.space, exp.space_args):
        raise ConfigError(
            [
                f"--warm-start: {str(path)!r} searched space {old.space!r} {old.space_args}, "
                f"this experiment searches {exp.space!r} {exp.space_args}; warm-start from an "
                "experiment of the same space and space_args"
            ]
        )
    records: list[tuple[dict[str, Any], Any]] = []
    for trial in sorted(p for p in path.iterdir() if (p / "params.json").is_file()):
        try:
            config = json.loads((trial / "params.json").read_text())
        except ValueError:  # a file a kill cut: a trial that never reported
            continue
        if not isinstance(config, dict):
            continue
        rows = []
        result_file = trial / "result.json"
        if result_file.is_file():
            for line in result_file.read_text().splitlines():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue  # a line cut by a kill
        records.append(({"arch": config.get("arch")}, rows or None))
    if not records:
        raise ConfigError([f"--warm-start: {str(path)!r} holds no trials yet"])
    return records
