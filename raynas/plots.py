"""PNG plots of an experiment: search progress, learning curves, Pareto fronts, op frequencies.

Every function takes an :class:`~raynas.analysis.ExperimentResult` and a file path, draws with
matplotlib's Agg backend (no display needed) and returns the path written, or None when the
experiment has nothing to show for that plot (say, no trained trial yet). :func:`plot_all`
writes every plot that applies into a folder.

Example:
    >>> result = raynas.load("runs/quickstart")
    >>> plot_all(result, "plots/")
    [PosixPath('plots/best_so_far_trials.png'), ...]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from raynas.analysis import ExperimentResult

COSTS = ("params", "flops", "latency_ms")
_LABELS = {
    "val_acc": "validation accuracy (%)",
    "train_acc": "training accuracy (%)",
    "test_acc": "test accuracy (%)",
    "val_loss": "validation loss (cross-entropy)",
    "train_loss": "training loss (cross-entropy)",
    "test_loss": "test loss (cross-entropy)",
    "params": "parameters (count)",
    "flops": "FLOPs per example",
    "latency_ms": "latency, batch of 1 (ms)",
    "objective": "scalarised objective",
}
_LOSS_STYLE: dict[str, Literal["--", "-"]] = {"train_loss": "--", "val_loss": "-"}
_OP_COLUMN = re.compile(r"^arch\.(?P<cell>.+?)\.(edge_\d+_\d+|node_\d+\.ops\.\d+)$")
_STATUS_STYLE = {
    "completed": ("o", "tab:blue"),
    "early_stopped": ("v", "tab:orange"),
    "timed_out": ("^", "tab:purple"),
    "running": ("s", "tab:green"),
}


def _figure(ncols: int = 1, width: float = 6.4, height: float = 4.4) -> tuple[Figure, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def metric_label(metric: str) -> str:
    """An axis label with units for a metric (accuracies are shown in percent)."""
    return _LABELS.get(metric, metric.replace("_", " "))


def _scale(metric: str) -> float:
    return 100.0 if metric.endswith("acc") else 1.0


def _usable(result: ExperimentResult, metric: str) -> pd.DataFrame:
    t = result.trials
    if t.empty or metric not in t:
        return t.head(0)
    return t[t["status"].isin(list(_STATUS_STYLE)) & t[metric].notna()]


def plot_best_so_far(
    result: ExperimentResult, path: str | Path, *, x: str = "trials", metric: str | None = None
) -> Path | None:
    """Each trial's ``metric`` and the best so far, against trials finished or wall time.

    Args:
        result: The experiment.
        path: PNG file to write.
        x: ``"trials"`` (in the order they finished) or ``"time"`` (since the first start).
        metric: Default: the objective.

    Returns:
        The path written, or None when no trial reported ``metric``.
    """
    metric = metric or result.metric
    mode = result.mode_of(metric)
    t = result.trials
    if _usable(result, metric).empty:
        return None
    t = t.sort_values(["end_time", "trial_index"], kind="stable", na_position="last")
    t = t.reset_index(drop=True)
    if x == "time":
        t0 = float(t["start_time"].min())
        seconds = (t["end_time"].fillna(t["start_time"]) - t0).to_numpy(dtype=float)
        minutes = np.nanmax(seconds) > 180
        xs = seconds / 60.0 if minutes else seconds
        xlabel = f"wall time since the first trial started ({'min' if minutes else 's'})"
    else:
        xs = np.arange(1, len(t) + 1, dtype=float)
        xlabel = "trials finished (count)"
    scale = _scale(metric)
    fig, (ax,) = _figure()
    ok = t["status"].isin(list(_STATUS_STYLE)) & t[metric].notna()
    values = t[metric].astype("float64").to_numpy() * scale
    for status, (marker, color) in _STATUS_STYLE.items():
        sel = (ok & (t["status"] == status)).to_numpy()
        if sel.any():
            label = f"{status.replace('_', ' ')} trial ({int(sel.sum())})"
            ax.scatter(xs[sel], values[sel], marker=marker, color=color, alpha=0.7, label=label)
    best = pd.Series(np.where(ok, values, np.nan))
    best = (best.cummax() if mode == "max" else best.cummin()).ffill().to_numpy()
    ax.step(xs, best, where="post", color="black", linewidth=2, label=f"best so far ({mode})")
    failed = ~ok.to_numpy()
    if failed.any():
        ax.scatter(xs[failed], np.zeros(int(failed.sum())), marker="x", color="tab:red",
                   transform=ax.get_xaxis_transform(), clip_on=False,
                   label=f"failed / no {metric} ({int(failed.sum())})")  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric_label(metric))
    against = "wall time" if x == "time" else "trials"
    ax.set_title(f"Best {metric} so far against {against} ({len(t)} trials)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return _save(fig, path)


def plot_learning_curves(
    result: ExperimentResult, path: str | Path, *, k: int = 5, metric: str | None = None
) -> Path | None:
    """Per-epoch ``metric`` (left) and training/validation loss (right) of the top-``k`` trials.

    Returns:
        The path written, or None when no top trial has a curve.
    """
    metric = metric or result.metric
    top = result.top(k, metric)
    curves = result.curves
    if top.empty or curves.empty or metric not in curves:
        return None
    losses = [c for c in ("train_loss", "val_loss") if c in curves and curves[c].notna().any()]
    fig, axes = _figure(ncols=2 if losses else 1)
    colors = [f"C{i % 10}" for i in range(len(top))]
    for color, (_, row) in zip(colors, top.iterrows()):
        c = curves[curves["trial_id"] == row["trial_id"]].sort_values("epoch")
        params = "" if pd.isna(row.get("params")) else f", {int(row['params']):,} params"
        label = f"{row['trial_id']} ({metric} {row[metric] * _scale(metric):.4g}{params})"
        axes[0].plot(c["epoch"], c[metric] * _scale(metric), marker="o", color=color, label=label)
        for loss in losses:
            axes[-1].plot(c["epoch"], c[loss], linestyle=_LOSS_STYLE[loss], color=color)
    axes[0].set_title(f"Learning curves of the top {len(top)} trials by {metric}")
    axes[0].set_ylabel(metric_label(metric))
    axes[0].legend(loc="best", fontsize="small", title="trial")
    if losses:
        from matplotlib.lines import Line2D

        axes[-1].set_title("Training (dashed) and validation (solid) loss")
        axes[-1].set_ylabel("loss (cross-entropy)")
        handles = [Line2D([], [], color="gray", linestyle=_LOSS_STYLE[c]) for c in losses]
        axes[-1].legend(handles, [metric_label(c) for c in losses], loc="best", fontsize="small")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    return _save(fig, path)


def plot_pareto(
    result: ExperimentResult,
    path: str | Path,
    *,
    metric: str | None = None,
    costs: Sequence[str] = COSTS,
) -> Path | None:
    """``metric`` against each cost (params, FLOPs, latency), the Pareto front drawn.

    Returns:
        The path written, or None when no trial has ``metric`` and a cost.
    """
    metric = metric or result.metric
    mode = result.mode_of(metric)
    usable = _usable(result, metric)
    costs = [c for c in costs if c in usable and usable[c].notna().any()]
    if usable.empty or not costs:
        return None
    scale = _scale(metric)
    fig, axes = _figure(ncols=len(costs), width=5.2)
    for ax, cost in zip(axes, costs):
        pts = usable.dropna(subset=[cost])
        front = result.pareto([(metric, mode), (cost, "min")]).sort_values(cost)
        ax.scatter(pts[cost], pts[metric] * scale, color="tab:gray", alpha=0.5,
                   label=f"trial ({len(pts)})")  # fmt: skip
        ax.step(front[cost], front[metric] * scale, where="post", color="tab:red", linewidth=1.5)
        ax.scatter(front[cost], front[metric] * scale, color="tab:red", zorder=3,
                   label=f"Pareto front ({len(front)})")  # fmt: skip
        lo, hi = float(pts[cost].min()), float(pts[cost].max())
        if lo > 0 and hi / lo > 20:
            ax.set_xscale("log")
        ax.set_xlabel(metric_label(cost))
        ax.set_ylabel(metric_label(metric))
        ax.set_title(f"{metric} ({mode}) vs {cost} (min)")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    better = "up" if mode == "max" else "down"
    fig.suptitle(f"Pareto fronts of {result.path.name} (better: {better} and to the left)")
    return _save(fig, path)


def op_columns(trials: pd.DataFrame) -> dict[str, list[str]]:
    """``{cell: [arch column, ...]}`` for the op decisions of cell spaces (edges, node ops)."""
    out: dict[str, list[str]] = {}
    for col in trials.columns:
        m = _OP_COLUMN.match(str(col))
        if m:
            out.setdefault(m.group("cell"), []).append(str(col))
    return out


def plot_op_frequencies(result: ExperimentResult, path: str | Path, *, k: int = 5) -> Path | None:
    """Share of each operation among the top-``k`` trials' cells, against all trained trials.

    Returns:
        The path written, or None for spaces without cells or without a ranked trial.
    """
    cells = op_columns(result.trials)
    top = result.top(k)
    trained = _usable(result, result.metric)
    if not cells or top.empty:
        return None
    fig, axes = _figure(ncols=len(cells), width=6.4)
    for ax, (cell, cols) in zip(axes, cells.items()):
        ops = sorted({str(v) for c in cols for v in result.trials[c].dropna()})
        y = np.arange(len(ops))
        for offset, (name, rows) in zip(
            (-0.2, 0.2), ((f"top {len(top)}", top), (f"all {len(trained)} trained", trained))
        ):
            flat = pd.Series(rows[cols].to_numpy().ravel()).dropna().astype(str)
            share = flat.value_counts(normalize=True).reindex(ops, fill_value=0.0) * 100
            ax.barh(y + offset, share.to_numpy(), height=0.4, label=name)
        ax.set_yticks(y, ops)
        ax.invert_yaxis()
        ax.set_xlabel(f"share of the operations in arch.{cell} (%)")
        ax.set_title(f"arch.{cell}: {len(cols)} operation choices per architecture")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    fig.suptitle(f"Operation frequencies among the top {len(top)} by {result.metric}")
    return _save(fig, path)


def plot_all(result: ExperimentResult, out_dir: str | Path, *, k: int = 5) -> list[Path]:
    """Write every plot that applies into ``out_dir``; returns the files written.

    Files: ``best_so_far_trials.png``, ``best_so_far_time.png``, ``learning_curves.png``,
    ``pareto.png`` and, for cell spaces, ``op_frequencies.png``.
    """
    out = Path(out_dir).expanduser()
    written = [
        plot_best_so_far(result, out / "best_so_far_trials.png", x="trials"),
        plot_best_so_far(result, out / "best_so_far_time.png", x="time"),
        plot_learning_curves(result, out / "learning_curves.png", k=k),
        plot_pareto(result, out / "pareto.png"),
        plot_op_frequencies(result, out / "op_frequencies.png", k=k),
    ]
    return [p for p in written if p is not None]
