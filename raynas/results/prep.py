"""Data preparation shared by the PNG plots (:mod:`raynas.results.plots`) and the HTML report
(:mod:`raynas.report`): every table a chart draws is computed here, once, as a DataFrame.

All functions take an :class:`~raynas.results.analysis.ExperimentResult` and read nothing else.
Accuracies stay fractions in [0, 1], as the CLI prints them.

Example:
    >>> result = raynas.load("runs/quickstart")
    >>> best_so_far(result).tail(1)[["order", "best"]]
    >>> pareto_points(result, "params")  # every ranked trial, ``front`` marks the front
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from raynas.results.analysis import non_dominated

if TYPE_CHECKING:
    from raynas.results.analysis import ExperimentResult

#: Cost columns a Pareto front is drawn against, when a trial reported them.
COSTS = ("params", "flops", "latency_ms")
#: Statuses drawn as points in progress charts (each ended with a usable metric, or runs).
SHOWN_STATUSES = ("completed", "early_stopped", "timed_out", "stopped_at_target", "running")
#: Prefix of the per-epoch architecture weights a one-shot trainable may report
#: (``arch_weight.<cell>.<edge>.<op>``: the softmax weight of ``op`` on ``edge``).
ARCH_WEIGHT_PREFIX = "arch_weight."
_OP_COLUMN = re.compile(r"^arch\.(?P<cell>.+?)\.(edge_\d+_\d+|node_\d+\.ops\.\d+)$")
_LABELS = {
    "val_acc": "validation accuracy (fraction)",
    "train_acc": "training accuracy (fraction)",
    "test_acc": "test accuracy (fraction)",
    "val_loss": "validation loss (cross-entropy)",
    "train_loss": "training loss (cross-entropy)",
    "test_loss": "test loss (cross-entropy)",
    "params": "parameters (count)",
    "flops": "FLOPs per example",
    "latency_ms": "latency, batch of 1 (ms)",
    "objective": "scalarised objective",
}


def metric_label(metric: str) -> str:
    """An axis label with units for a metric (accuracies are fractions, as in the CLI)."""
    return _LABELS.get(metric, metric.replace("_", " "))


def usable(result: ExperimentResult, metric: str) -> pd.DataFrame:
    """Trials with a value of ``metric`` and a status in :data:`SHOWN_STATUSES`."""
    t = result.trials
    if t.empty or metric not in t:
        return t.head(0)
    return t[t["status"].isin(list(SHOWN_STATUSES)) & t[metric].notna()]


def cost_columns(result: ExperimentResult, costs: Sequence[str] = COSTS) -> list[str]:
    """The ``costs`` some trial reported a value of."""
    t = result.trials
    return [c for c in costs if c in t and t[c].notna().any()]


def best_so_far(result: ExperimentResult, metric: str | None = None) -> pd.DataFrame:
    """One row per trial in the order trials finished, with the best ``metric`` so far.

    Columns: ``trial_id, status, order`` (1, 2, ...), ``time_s`` (end, or start, since the
    first start), ``value`` (NaN for a trial without a usable value), ``ok``, ``best``
    (running best in the metric's mode, forward filled; NaN before the first usable value).
    Empty when no trial reported ``metric``.
    """
    metric = metric or result.metric
    cols = ["trial_id", "status", "order", "time_s", "value", "ok", "best"]
    if usable(result, metric).empty:
        return pd.DataFrame(columns=cols)
    t = result.trials.sort_values(["end_time", "trial_index"], kind="stable", na_position="last")
    t = t.reset_index(drop=True)
    ok = (t["status"].isin(list(SHOWN_STATUSES)) & t[metric].notna()).to_numpy(dtype=bool)
    values = t[metric].astype("float64").to_numpy(na_value=np.nan)
    values = np.where(ok, values, np.nan)
    series = pd.Series(values)
    best = series.cummax() if result.mode_of(metric) == "max" else series.cummin()
    t0 = float(t["start_time"].min()) if t["start_time"].notna().any() else 0.0
    ends = t["end_time"].fillna(t["start_time"]).astype("float64").to_numpy(na_value=np.nan)
    return pd.DataFrame(
        {
            "trial_id": t["trial_id"].astype(str).to_numpy(),
            "status": t["status"].astype(str).to_numpy(),
            "order": np.arange(1, len(t) + 1),
            "time_s": ends - t0,
            "value": values,
            "ok": ok,
            "best": best.ffill().to_numpy(),
        }
    )


def pareto_points(result: ExperimentResult, cost: str, metric: str | None = None) -> pd.DataFrame:
    """Every trial with ``metric`` and ``cost``, and whether it is on the Pareto front.

    The front (``metric`` in its mode, ``cost`` minimised) is computed over the fully trained
    trials only (status ``completed``): an early-stopped trial's metric is that of a partly
    trained network and would dominate unfairly or be dominated for no reason. Columns:
    ``trial_id, status, arch, cost, value, front``; sorted by cost.
    """
    metric = metric or result.metric
    cols = ["trial_id", "status", "arch", "cost", "value", "front"]
    t = usable(result, metric)
    if t.empty or cost not in t:
        return pd.DataFrame(columns=cols)
    t = t.dropna(subset=[cost])
    out = pd.DataFrame(
        {
            "trial_id": t["trial_id"].astype(str).to_numpy(),
            "status": t["status"].astype(str).to_numpy(),
            "arch": t["arch"].astype(object).where(t["arch"].notna(), "").to_numpy(),
            "cost": t[cost].astype("float64").to_numpy(),
            "value": t[metric].astype("float64").to_numpy(),
        }
    )
    out["front"] = False
    done = (out["status"] == "completed").to_numpy()
    if done.any():
        sign = -1.0 if result.mode_of(metric) == "max" else 1.0
        vals = np.column_stack([out["value"].to_numpy()[done] * sign, out["cost"].to_numpy()[done]])
        out.loc[np.flatnonzero(done)[non_dominated(vals)], "front"] = True
    return out.sort_values(["cost", "value"], kind="stable").reset_index(drop=True)


def op_columns(trials: pd.DataFrame) -> dict[str, list[str]]:
    """``{cell: [arch column, ...]}`` for the op decisions of cell spaces (edges, node ops)."""
    out: dict[str, list[str]] = {}
    for col in trials.columns:
        m = _OP_COLUMN.match(str(col))
        if m:
            out.setdefault(m.group("cell"), []).append(str(col))
    return out


def op_frequencies(result: ExperimentResult, k: int = 5) -> pd.DataFrame:
    """How often each operation sits on each edge among the top-``k`` and all ranked trials.

    Columns: ``cell, edge`` (the arch column without ``arch.<cell>.``), ``op``,
    ``top_share`` (fraction of the top-``k`` with ``op`` there), ``all_share`` (same over every
    trial :data:`SHOWN_STATUSES` with the objective). Empty for spaces without cells.
    """
    cols = ["cell", "edge", "op", "top_share", "all_share"]
    cells = op_columns(result.trials)
    top = result.top(k)
    if not cells or top.empty:
        return pd.DataFrame(columns=cols)
    ranked = usable(result, result.metric)
    rows = []
    for cell, columns in cells.items():
        ops = sorted({str(v) for c in columns for v in result.trials[c].dropna()})
        for col in columns:
            top_counts = top[col].dropna().astype(str).value_counts(normalize=True)
            all_counts = ranked[col].dropna().astype(str).value_counts(normalize=True)
            for op in ops:
                rows.append(
                    {
                        "cell": cell,
                        "edge": col.removeprefix(f"arch.{cell}."),
                        "op": op,
                        "top_share": float(top_counts.get(op, 0.0)),
                        "all_share": float(all_counts.get(op, 0.0)),
                    }
                )
    return pd.DataFrame(rows, columns=cols)


def cell_op_shares(freq: pd.DataFrame) -> pd.DataFrame:
    """:func:`op_frequencies` summed over each cell's edges: ``cell, op, top_share,
    all_share`` (each share a fraction of the cell's op decisions)."""
    if freq.empty:
        return pd.DataFrame(columns=["cell", "op", "top_share", "all_share"])
    g = freq.groupby(["cell", "op"], sort=False)[["top_share", "all_share"]].sum()
    edges = freq.groupby("cell", sort=False)["edge"].nunique()
    g = g.div(edges, axis=0, level="cell")
    return g.reset_index()


def top_curves(result: ExperimentResult, k: int = 5, metric: str | None = None) -> pd.DataFrame:
    """The curves rows (:attr:`ExperimentResult.curves`) of the top-``k`` trials, in rank
    order (column ``rank``, 1 is the best)."""
    metric = metric or result.metric
    top = result.top(k, metric)
    curves = result.curves
    if top.empty or curves.empty or metric not in curves:
        return curves.head(0).assign(rank=pd.Series(dtype="int64"))
    rank = {str(t): i for i, t in enumerate(top["trial_id"], start=1)}
    sel = curves[curves["trial_id"].astype(str).isin(rank)].copy()
    sel["rank"] = sel["trial_id"].astype(str).map(rank)
    return sel.sort_values(["rank", "epoch"], kind="stable").reset_index(drop=True)


def robust_range(
    values: Sequence[float] | np.ndarray | pd.Series,
    *,
    lo: float = 2.0,
    hi: float = 98.0,
    pad: float = 0.08,
) -> tuple[float, float] | None:
    """A y range from the ``lo``..``hi`` percentiles of the finite values, padded.

    One divergent epoch (a loss of 1e3 among losses near 1) then no longer flattens every
    other curve. None when no value is finite.
    """
    arr = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return None
    a, b = (float(x) for x in np.percentile(arr, [lo, hi]))
    if a == b:
        a, b = float(arr.min()), float(arr.max())
    span = (b - a) or max(abs(a), 1.0) * 0.1
    return a - pad * span, b + pad * span


def family_edges(result: ExperimentResult) -> pd.DataFrame:
    """``child, parent`` trial ids for trials whose parent (a trial or arch id) is a trial of
    this experiment (PBT exploits, mutation lineages). Empty without parent links."""
    t = result.trials
    if t.empty or t["parent"].isna().all():
        return pd.DataFrame(columns=["child", "parent"])
    ids = {str(x): str(x) for x in t["trial_id"]}
    ids.update({str(a): str(x) for a, x in zip(t["arch_id"], t["trial_id"]) if pd.notna(a)})
    rows = [
        {"child": str(c), "parent": ids[str(p)]}
        for c, p in zip(t["trial_id"], t["parent"])
        if pd.notna(p) and str(p) in ids and ids[str(p)] != str(c)
    ]
    return pd.DataFrame(rows, columns=["child", "parent"])


def arch_weight_history(result: ExperimentResult) -> pd.DataFrame:
    """Per-epoch architecture weights one-shot trials reported, in long form.

    Read from ``arch_weight.<cell>.<edge>.<op>`` result keys. Columns: ``trial_id, epoch,
    cell, edge, op, weight``. Empty when no trial reports them (the built-in one-shot
    trainables report ``arch_entropy`` only).
    """
    cols = ["trial_id", "epoch", "cell", "edge", "op", "weight"]
    c = result.curves
    wcols = [x for x in c.columns if str(x).startswith(ARCH_WEIGHT_PREFIX)]
    if c.empty or not wcols:
        return pd.DataFrame(columns=cols)
    long = c.melt(
        id_vars=["trial_id", "epoch"], value_vars=wcols, var_name="key", value_name="weight"
    ).dropna(subset=["weight"])
    parts = long["key"].str.removeprefix(ARCH_WEIGHT_PREFIX).str.rsplit(".", n=2, expand=True)
    if parts.shape[1] < 3:
        return pd.DataFrame(columns=cols)
    long["cell"], long["edge"], long["op"] = parts[0], parts[1], parts[2]
    long = long.dropna(subset=["cell", "edge", "op"])
    return long[cols].reset_index(drop=True)
