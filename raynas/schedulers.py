"""Tune trial schedulers by name: ``fifo``, ``asha``, ``hyperband``, ``median``,
``pbt_evolution``.

All run on ``time_attr: epoch`` with the objective's metric and mode. Trials they stop early
end normally (Tune's ``terminated``); their last result keeps its ``epoch`` so a searcher can
tell a 1-epoch result from a full one (see ``NASSearcher`` for how it is observed).

``pbt_evolution`` is Tune's ``PopulationBasedTraining`` with :class:`ArchExplorer` as its
explore function: a trial that exploits a better one takes its checkpoint *and* a mutated
copy of its architecture (and a perturbed learning rate); the trainable then inherits every
weight whose name and shape still fit (``trainables.inherit``) and reports the lineage.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from raynas.config import ConfigError, Experiment

_ARGS: dict[str, dict[str, Any]] = {
    "fifo": {},
    "asha": {"grace_period": 1, "reduction_factor": 3, "brackets": 1, "max_t": None},
    "hyperband": {"reduction_factor": 3, "max_t": None},
    "median": {"grace_period": 1, "min_samples_required": 3},
    "pbt_evolution": {
        "perturbation_interval": 1,
        "quantile_fraction": 0.25,
        "mutate_arch": True,
        "lr_factors": [0.8, 1.2],
        "burn_in_period": 0,
    },
}


class ArchExplorer:
    """PBT explore function: mutate one architecture decision and perturb the lr.

    Seeded, and picklable (Tune saves schedulers with the experiment state).

    Args:
        space_name: Space of the experiment (built-in name or YAML path).
        space_args: Its arguments.
        seed: Seed of the mutation RNG.
        mutate_arch: Whether to mutate the architecture (else only the lr moves).
        lr_factors: The lr is multiplied by one of these, chosen at random.
    """

    def __init__(
        self,
        space_name: str,
        space_args: dict[str, Any],
        seed: int,
        mutate_arch: bool = True,
        lr_factors: Sequence[float] = (0.8, 1.2),
    ) -> None:
        self.space_name, self.space_args = space_name, dict(space_args)
        self.rng = np.random.default_rng(seed)
        self.mutate_arch = mutate_arch
        self.lr_factors = [float(f) for f in lr_factors]
        self._space: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_space": None}

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        from raynas.registry import resolve_space

        if self._space is None:
            self._space = resolve_space(self.space_name, self.space_args)
        config = copy.deepcopy(config)
        notes = []
        if self.mutate_arch:
            old = self._space.canonical(config["arch"])
            new = self._space.mutate(old, self.rng)
            notes.append(_describe_change(old, new))
            config["arch"] = new
        if self.lr_factors:
            factor = self.lr_factors[int(self.rng.integers(len(self.lr_factors)))]
            config["train"] = {**config["train"], "lr": config["train"]["lr"] * factor}
            notes.append(f"lr x{factor}")
        config["lineage"] = {"mutation": "; ".join(notes)}
        return config


def _describe_change(old: Any, new: Any, path: str = "arch") -> str:
    """``arch.cell.edge_0_1: none -> nor_conv_3x3`` for the first difference."""
    if isinstance(old, dict) and isinstance(new, dict) and old.keys() == new.keys():
        for k in old:
            if old[k] != new[k]:
                return _describe_change(old[k], new[k], f"{path}.{k}")
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            if a != b:
                return _describe_change(a, b, f"{path}[{i}]")
    return f"{path}: {old!r} -> {new!r}"


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
        PopulationBasedTraining,
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
    if name == "median":
        return MedianStoppingRule(**common, **args)
    explorer = ArchExplorer(
        exp.space,
        exp.space_args,
        exp.seed,
        mutate_arch=bool(args.pop("mutate_arch")),
        lr_factors=args.pop("lr_factors") or (),
    )
    return PopulationBasedTraining(
        **common,
        custom_explore_fn=explorer,
        hyperparam_mutations={},
        resample_probability=0.0,
        **args,
    )
