"""Tune trial schedulers by name: ``fifo``, ``asha``, ``hyperband``, ``median``,
``pbt_evolution``.

All run on ``time_attr: epoch`` with the objective's metric and mode. Trials they stop early
end normally (Tune's ``terminated``); their last result keeps its ``epoch`` so a searcher can
tell a 1-epoch result from a full one (see ``NASSearcher`` for how it is observed).

``pbt_evolution`` is :class:`ArchPBT`, Tune's ``PopulationBasedTraining`` with
:class:`ArchExplorer` as its explore function: a trial that exploits a better one takes its
checkpoint *and* a mutated copy of its architecture (and a perturbed learning rate); the
trainable then inherits every weight, and the optimizer state of every weight, whose name and
shape still fit (``trainables.inherit``) and reports the lineage. Two rules give a mutated
child a fair chance before it is ranked against members that kept training undisturbed:

* ``mutation_grace`` (default 1): a child whose architecture changed trains that many epochs
  more than ``perturbation_interval`` before it can be truncated again;
* no exploit in the last ``perturbation_interval + mutation_grace`` epochs: a child made
  there would train at a learning rate near the end of its cosine decay and be scored
  before it could recover.

``synch: true`` is Tune's synchronous PBT: the population is ranked together at each
interval, so who clones whom does not depend on which trial reports first.

A mutation that breaks a constraint the driver can check (``params``, ``flops``) is drawn
again (up to 20 times, then the child keeps its donor's architecture).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler

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
        "mutation_grace": 1,
        "synch": False,
    },
}
#: Draws of a mutation that must satisfy the driver-checked constraints before giving up.
MUTATION_TRIES = 20


class ArchExplorer:
    """PBT explore function: mutate one architecture decision and perturb the lr.

    Seeded, and picklable (Tune saves schedulers with the experiment state).

    Args:
        space_name: Space of the experiment (built-in name or YAML path).
        space_args: Its arguments.
        seed: Seed of the mutation RNG.
        mutate_arch: Whether to mutate the architecture (else only the lr moves).
        lr_factors: The lr is multiplied by one of these, chosen at random.
        check: ``arch -> violated constraints`` (picklable), evaluated on the driver; a
            mutation that violates one is drawn again.
    """

    def __init__(
        self,
        space_name: str,
        space_args: dict[str, Any],
        seed: int,
        mutate_arch: bool = True,
        lr_factors: Sequence[float] = (0.8, 1.2),
        check: Callable[[Any], list[str]] | None = None,
    ) -> None:
        self.space_name, self.space_args = space_name, dict(space_args)
        self.rng = np.random.default_rng(seed)
        self.mutate_arch = mutate_arch
        self.lr_factors = [float(f) for f in lr_factors]
        self.check = check
        #: Mutations drawn again because they broke a constraint.
        self.refused = 0
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
            new = self._feasible_mutation(old)
            if new is None:
                notes.append("no mutation satisfies the constraints; architecture kept")
            else:
                notes.append(_describe_change(old, new))
                config["arch"] = new
        if self.lr_factors:
            factor = self.lr_factors[int(self.rng.integers(len(self.lr_factors)))]
            config["train"] = {**config["train"], "lr": config["train"]["lr"] * factor}
            notes.append(f"lr x{factor}")
        config["lineage"] = {"mutation": "; ".join(notes)}
        return config

    def _feasible_mutation(self, arch: Any) -> Any:
        """A mutation of ``arch`` that passes ``check`` (None after MUTATION_TRIES)."""
        for _ in range(MUTATION_TRIES):
            new = self._space.mutate(arch, self.rng)
            if self.check is None or not self.check(new):
                return new
            self.refused += 1
        return None


class ArchPBT(PopulationBasedTraining):
    """Tune's PBT with the two fairness rules of this module's docstring.

    Args:
        epochs: A trial's planned length (``train.epochs``).
        mutation_grace: Extra epochs a child with a changed architecture trains before it is
            ranked again.
        **kwargs: ``PopulationBasedTraining``'s arguments.
    """

    def __init__(self, *, epochs: int, mutation_grace: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epochs, self.mutation_grace = int(epochs), int(mutation_grace)
        #: The last epoch at which a trial may exploit another.
        self.last_exploit_epoch = self.epochs - self._perturbation_interval - self.mutation_grace

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        epoch = result.get(self._time_attr)
        if isinstance(epoch, int | float) and epoch > self.last_exploit_epoch:
            return str(TrialScheduler.CONTINUE)  # too late for a child to recover
        return str(super().on_trial_result(tune_controller, trial, result))

    def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
        super()._exploit(tune_controller, trial, trial_to_clone)
        if trial.config.get("arch") != trial_to_clone.config.get("arch"):
            self._trial_state[trial].last_perturbation_time += self.mutation_grace


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
    from ray.tune.schedulers import AsyncHyperBandScheduler, HyperBandScheduler, MedianStoppingRule

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
    from raynas.constraints import ConstraintCheck

    grace = args["mutation_grace"]
    if isinstance(grace, bool) or not isinstance(grace, int) or grace < 0:
        raise ConfigError([f"scheduler.mutation_grace: must be an integer >= 0, got {grace!r}"])
    explorer = ArchExplorer(
        exp.space,
        exp.space_args,
        exp.seed,
        mutate_arch=bool(args.pop("mutate_arch")),
        lr_factors=args.pop("lr_factors") or (),
        check=ConstraintCheck.for_experiment(exp),
    )
    return ArchPBT(
        **common,
        epochs=exp.train.epochs,
        mutation_grace=args.pop("mutation_grace"),
        custom_explore_fn=explorer,
        hyperparam_mutations={},
        resample_probability=0.0,
        **args,
    )
