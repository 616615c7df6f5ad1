"""Tune trial schedulers by name: ``fifo``, ``asha``, ``hyperband``, ``median``.

All run on ``time_attr: epoch`` with the objective's metric and mode. Trials they stop early
end normally (Tune's ``terminated``); their last result keeps its ``epoch`` so a searcher can
tell a 1-epoch result from a full one.
"""

from __future__ import annotations

from typing import Any

from raynas.config import ConfigError, Experiment

_ARGS: dict[str, dict[str, Any]] = {
    "fifo": {},
    "asha": {"grace_period": 1, "reduction_factor": 3, "brackets": 1, "max_t": None},
    "hyperband": {"reduction_factor": 3, "max_t": None},
    "median": {"grace_period": 1, "min_samples_required": 3},
}


def scheduler_arguments() -> dict[str, dict[str, Any]]:
    """Each scheduler's arguments with their defaults (``max_t`` defaults to train.epochs)."""
    return {k: dict(v) for k, v in _ARGS.items()}


def build_scheduler(exp: Experiment) -> Any:
    """The Tune scheduler of ``exp.scheduler`` (None for FIFO).

    Raises:
        ConfigError: unknown argument or a scheduler not available here.
    """
    from ray.tune.schedulers import (
        AsyncHyperBandScheduler,
        HyperBandScheduler,
        MedianStoppingRule,
    )

    name = exp.scheduler.name
    if name not in _ARGS:
        raise ConfigError(
            [f"scheduler.name: {name!r} is not available yet; use one of {sorted(_ARGS)}"]
        )
    args = dict(_ARGS[name])
    for key, value in exp.scheduler.args.items():
        if key not in args:
            raise ConfigError(
                [f"scheduler.{key}: unknown argument of {name!r}; its arguments are {sorted(args)}"]
            )
        args[key] = value
    if name == "fifo":
        return None
    if "max_t" in args and args["max_t"] is None:
        args["max_t"] = exp.train.epochs
    common: dict[str, Any] = {"time_attr": "epoch"}
    if name == "asha":
        return AsyncHyperBandScheduler(**common, **args)
    if name == "hyperband":
        return HyperBandScheduler(**common, **args)
    return MedianStoppingRule(**common, **args)
