"""The rules the config schema applies and the trainables reuse, defined once.

The constraint language of ``objective.constraints`` (``"params <= 1e6"``: a cost metric, a
comparison, a finite number) and the dataset facts behind ``data.limit`` and ``data.root``.
Nothing here imports raynas: the schema (:mod:`raynas.experiment.config`), the checks and the
trainables all read the same rule.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence

COST_METRICS = ("params", "flops", "latency_ms", "latency_pred_ms")
#: The latency predicted from ``objective.latency_model`` (a ``raynas latency profile`` table).
LATENCY_PRED_METRIC = "latency_pred_ms"
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|<|>)\s*([-+0-9.eE_]+)\s*$")


def parse_constraint(text: str) -> tuple[str, str, float]:
    """``"params <= 1e6"`` -> ``("params", "<=", 1e6)``; ValueError naming the fix."""
    m = _CONSTRAINT_RE.match(str(text))
    if not m:
        raise ValueError(
            f"constraint {text!r} must look like 'params <= 1e6' (metric, one of <= < >= >, "
            "a number)"
        )
    metric, op, num = m.groups()
    if metric not in COST_METRICS:
        raise ValueError(
            f"constraint {text!r}: {metric!r} is not a cost metric; use one of {list(COST_METRICS)}"
        )
    try:
        value = float(num)
    except ValueError:
        raise ValueError(f"constraint {text!r}: {num!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"constraint {text!r}: the bound must be finite")
    return metric, op, value


def violated_constraints(constraints: Sequence[str], cost: Mapping[str, float]) -> list[str]:
    """The constraints (as written) that ``cost`` violates.

    A ``latency_pred_ms`` constraint is skipped where ``cost`` lacks that metric (a trainable
    that does not predict it): the driver checked it before proposing the candidate.
    """
    out = []
    for c in constraints:
        metric, op, bound = parse_constraint(c)
        if metric == LATENCY_PRED_METRIC and metric not in cost:
            continue
        if not _OPS[op](float(cost[metric]), bound):
            out.append(c)
    return out


#: Classes of each dataset the ``classify`` trainable loads (:mod:`trainables.data` reads its
#: counts from here, so the ``data.limit`` rule and the loader agree).
DATASET_CLASSES: dict[str, int] = {
    "digits": 10,
    "cifar10": 10,
    "cifar100": 100,
    "fashion_mnist": 10,
    "svhn": 10,
    "imagenet16": 120,
    "wine": 3,
    "breast_cancer": 2,
}


EMBEDDED_DATASETS = ("digits", "wine", "breast_cancer")


def limit_problem(name: str, limit: object) -> str | None:
    """What is wrong with ``data.limit`` for dataset ``name``, or None if it is fine.

    The one rule for ``data.limit``, applied by the config schema and by
    :func:`trainables.data.load_dataset`: None (no limit), or an int of at least the
    dataset's number of classes (at least 2 for a dataset not in :data:`DATASET_CLASSES`),
    so the stratified subsample can hold every class (it does for datasets whose class sizes
    differ by less than 3x, every built-in one) and a validation split can be carved.

    The message says the fix but not the value (the caller shows it).

    Example:
        >>> limit_problem("fashion_mnist", 5)
        "must be at least 10, the number of classes of 'fashion_mnist', or null for no limit"
    """
    if limit is None:
        return None
    least = max(2, DATASET_CLASSES.get(name, 2))
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < least:
        why = f", the number of classes of {name!r}," if name in DATASET_CLASSES else ""
        return f"must be at least {least}{why} or null for no limit"
    return None
