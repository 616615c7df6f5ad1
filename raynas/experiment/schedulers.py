"""Tune trial schedulers by name: ``fifo``, ``asha``, ``hyperband``, ``median``,
``pbt_evolution``.

All run on ``time_attr: epoch`` with the objective's metric and mode. Trials they stop early
end normally (Tune's ``terminated``); their last result keeps its ``epoch`` so a searcher can
tell a 1-epoch result from a full one (see ``NASSearcher`` for how it is observed).

``pbt_evolution`` is :class:`raynas.experiment.pbt.ArchPBT` (PBT evolution with weight inheritance
and a mutated architecture per exploit; its rules are in :mod:`raynas.experiment.pbt`). The ASHA,
HyperBand and median schedulers are Tune's, with their stops journaled (:class:`DurableStops`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from ray.tune.schedulers import (
    AsyncHyperBandScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    TrialScheduler,
)

from raynas.experiment.config import ConfigError, Experiment, format_validation_error
from raynas.experiment.pbt import ArchExplorer, ArchPBT


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields[str(info.field_name)]
        if isinstance(value, bool) and field.annotation is not bool:
            raise ValueError("must be a number, not true/false")
        return value


class _FifoArgs(_Args):
    """First in, first out: every trial trains its full budget."""


class _AshaArgs(_Args):
    """Asynchronous successive halving: stops the worse trials at rungs grace_period * rf^k."""

    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(3, gt=1)
    brackets: int = Field(1, ge=1)
    max_t: int | None = Field(None, ge=1)


class _HyperbandArgs(_Args):
    """Synchronous HyperBand: brackets of successive halving, the worse half paused, stopped."""

    reduction_factor: float = Field(3, gt=1)
    max_t: int | None = Field(None, ge=1)


class _MedianArgs(_Args):
    """Median stopping: stops a trial whose best is below the median of the others' so far."""

    grace_period: float = Field(1, ge=0)
    min_samples_required: int = Field(3, ge=1)


class _PbtArgs(_Args):
    """PBT evolution: the worst clone the best (weights inherited) with a mutated arch."""

    perturbation_interval: float = Field(1, gt=0)
    quantile_fraction: float = Field(0.25, gt=0, le=0.5)
    mutate_arch: bool = True
    lr_factors: list[float] = Field(default_factory=lambda: [0.8, 1.2])
    burn_in_period: float = Field(0, ge=0)
    mutation_grace: int = Field(1, ge=0)
    synch: bool = False

    @field_validator("lr_factors")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if any(not f > 0 for f in value):
            raise ValueError("every factor must be > 0")
        return value


#: Each scheduler's arguments (a pydantic model: names, types, ranges, defaults).
_ARGS: dict[str, type[_Args]] = {
    "fifo": _FifoArgs,
    "asha": _AshaArgs,
    "hyperband": _HyperbandArgs,
    "median": _MedianArgs,
    "pbt_evolution": _PbtArgs,
}


class DurableStops:
    """Mixin for Tune schedulers that stop trials from ``on_trial_result`` (ASHA, HyperBand,
    median): a STOP is written to the experiment journal before Tune acts on it.

    A driver killed between the decision and the trial's end would otherwise resume the trial
    from a checkpoint past the rung where it was stopped, and it would train to the end. The
    runner sets :attr:`journal` (``raynas.experiment.journal.Journal``); None: nothing is written.
    """

    journal: Any = None

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)  # type: ignore[misc]
        if decision == TrialScheduler.STOP and self.journal is not None:
            self.journal.record_stop(trial, result)
        return str(decision)


class DurableASHA(DurableStops, AsyncHyperBandScheduler):
    """ASHA whose stops are journaled (:class:`DurableStops`)."""


class DurableHyperBand(DurableStops, HyperBandScheduler):
    """HyperBand whose stops are journaled (:class:`DurableStops`)."""


class DurableMedian(DurableStops, MedianStoppingRule):
    """The median stopping rule, its stops journaled (:class:`DurableStops`)."""


def scheduler_arguments() -> dict[str, dict[str, Any]]:
    """Each scheduler's arguments with their defaults (``max_t`` defaults to train.epochs)."""
    return {k: model().model_dump() for k, model in _ARGS.items()}


def scheduler_descriptions() -> dict[str, str]:
    """Each scheduler's one-line description (for ``raynas schedulers``)."""
    return {k: " ".join((model.__doc__ or "").split()) for k, model in _ARGS.items()}


def scheduler_args(exp: Experiment) -> dict[str, Any]:
    """``exp.scheduler``'s arguments, validated, with defaults filled in.

    Raises:
        ConfigError: an unknown argument (the message lists the scheduler's), or a value out
            of range (``scheduler.grace_period: input should be greater than or equal to 1,
            got -1``), one line each.
    """
    name = exp.scheduler.name
    if name not in _ARGS:
        raise ConfigError(
            [f"scheduler.name: {name!r} is not available yet; use one of {sorted(_ARGS)}"]
        )
    model = _ARGS[name]
    unknown = sorted(set(exp.scheduler.args) - set(model.model_fields))
    if unknown:
        raise ConfigError(
            [
                f"scheduler.{key}: unknown argument of {name!r}; its arguments are "
                f"{sorted(model.model_fields)}"
                for key in unknown
            ]
        )
    try:
        return model.model_validate(exp.scheduler.args).model_dump()
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "scheduler")) from None


def build_scheduler(exp: Experiment) -> Any:
    """The Tune scheduler of ``exp.scheduler`` (None for FIFO).

    Raises:
        ConfigError: unknown argument or a scheduler not available here.
    """

    name = exp.scheduler.name
    args = scheduler_args(exp)
    if name == "fifo":
        return None
    if "max_t" in args and args["max_t"] is None:
        args["max_t"] = exp.train.epochs
    common: dict[str, Any] = {"time_attr": "epoch"}
    if name == "asha":
        return DurableASHA(**common, **args)
    if name == "hyperband":
        return DurableHyperBand(**common, **args)
    if name == "median":
        return DurableMedian(**common, **args)
    from raynas.experiment.constraints import ConstraintCheck

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
        seed=exp.seed,
        hyperparam_mutations={},
        resample_probability=0.0,
        **args,
    )
