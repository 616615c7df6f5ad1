"""Constraints the driver checks before a candidate is proposed (``params``, ``flops``,
``latency_pred_ms``).

A candidate that breaks ``objective.constraints`` is never worth a trial. Where the trainable
can compute a child's cost on the driver (``classify`` builds the child on the CPU and counts
its parameters and FLOPs, which do not depend on the device), the searcher and PBT's
mutations draw again instead of spending a trial of ``budget.trials`` on a refusal. With
``objective.latency_model`` (a table from ``raynas latency profile``) the driver also predicts
``latency_pred_ms`` from the table alone, for any trainable. Measured latency depends on where
the child runs, so ``latency_ms`` constraints stay checked inside the trial (which still
checks every constraint, as a safety net).

A trainable opts in with a static ``driver_cost(experiment) -> (arch -> {metric: value})``.

Example:
    >>> check = ConstraintCheck.for_experiment(exp)   # None: nothing to check here
    >>> check(arch)
    ['params <= 1e5']
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from raynas.experiment.config import Experiment
from raynas.experiment.config_check import load_latency_model
from raynas.experiment.config_load import load_config
from raynas.experiment.config_rules import (
    LATENCY_PRED_METRIC,
    parse_constraint,
    violated_constraints,
)

#: Cost metrics that do not depend on the device, so the driver can compute them (with the
#: trainable's ``driver_cost``).
DRIVER_METRICS = ("params", "flops")
_CACHE = 4096


def driver_metrics(exp: Experiment) -> tuple[str, ...]:
    """The metrics the driver can compute for ``exp``: :data:`DRIVER_METRICS`, and
    ``latency_pred_ms`` when ``objective.latency_model`` is set."""
    latency = (LATENCY_PRED_METRIC,) if exp.objective.latency_model else ()
    return (*DRIVER_METRICS, *latency)


class ConstraintCheck:
    """``arch -> violated constraints`` on the driver; picklable (PBT saves it).

    Args:
        exp: The experiment (its config is kept as plain data; the cost function is rebuilt
            lazily after unpickling).
        constraints: The driver-checkable constraints, as written.
    """

    def __init__(self, exp: Experiment, constraints: list[str]) -> None:
        self.config = exp.to_dict()
        self.constraints = list(constraints)
        self._cost: Callable[[Any], Mapping[str, float]] | None = None
        self._latency: Any = None
        self._space: Any = None
        self._memo: OrderedDict[str, list[str]] = OrderedDict()

    @classmethod
    def for_experiment(cls, exp: Experiment) -> ConstraintCheck | None:
        """The check of ``exp``, or None when it has no driver-checkable constraint or its
        trainable cannot compute costs on the driver."""
        from raynas.registry import TRAINABLES

        metrics = driver_metrics(exp)
        constraints = [c for c in exp.objective.constraints if parse_constraint(c)[0] in metrics]
        if not callable(getattr(TRAINABLES.get(exp.trainable), "driver_cost", None)):
            # latency_pred_ms needs only the table; params and flops need the trainable.
            constraints = [c for c in constraints if parse_constraint(c)[0] not in DRIVER_METRICS]
        if not constraints:
            return None
        return cls(exp, constraints)

    def __getstate__(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "_cost": None,
            "_latency": None,
            "_space": None,
            "_memo": OrderedDict(),
        }

    def _setup(self) -> None:
        from raynas.registry import TRAINABLES, resolve_space

        exp = load_config(self.config)
        self._space = resolve_space(exp.space, exp.space_args)
        metrics = {parse_constraint(c)[0] for c in self.constraints}
        if metrics & set(DRIVER_METRICS):
            self._cost = TRAINABLES.get(exp.trainable).driver_cost(exp)
        else:
            self._cost = lambda arch: {}
        if LATENCY_PRED_METRIC in metrics and exp.objective.latency_model:
            self._latency = load_latency_model(
                exp.objective.latency_model, exp.space, exp.space_args
            )

    def cost(self, arch: Any) -> dict[str, float]:
        """The driver-side cost of ``arch`` for this check's metrics."""
        if self._cost is None:
            self._setup()
        cost = dict(self._cost(arch)) if self._cost is not None else {}
        if self._latency is not None:
            cost[LATENCY_PRED_METRIC] = float(self._latency.predict_ms(arch))
        return cost

    def __call__(self, arch: Any) -> list[str]:
        if self._cost is None:
            self._setup()
        key = self._space.arch_id(arch)
        if key not in self._memo:
            self._memo[key] = violated_constraints(self.constraints, self.cost(arch))
            if len(self._memo) > _CACHE:
                self._memo.popitem(last=False)
        return list(self._memo[key])
