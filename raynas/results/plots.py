"""PNG plots of an experiment: search progress, learning curves, Pareto fronts, op frequencies.

Every function takes an :class:`~raynas.results.analysis.ExperimentResult` and a file path, draws
with matplotlib's Agg backend (no display needed) and returns the path written, or None when the
experiment has nothing to show for that plot (say, no trained trial yet). :func:`plot_all`
writes every plot that applies into a folder. The tables drawn come from :mod:`raynas.results.prep`,
which the HTML report (:mod:`raynas.report`) draws too. Accuracies are fractions, as the CLI
prints them; counts (trials, epochs) have integer ticks; legends sit outside the axes so no
point hides behind them; loss axes are clipped to robust percentiles so one spike does not
flatten every curve.

Example:
    >>> result = raynas.load("runs/quickstart")
    >>> plot_all(result, "plots/")
    [PosixPath('plots/best_so_far_trials.png'), ...]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from raynas.results.prep import (
    COSTS,
    best_so_far,
    cell_op_shares,
    cost_columns,
    metric_label,
    op_columns,
    op_frequencies,
    pareto_points,
    robust_range,
    top_curves,
    usable,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from raynas.results.analysis import ExperimentResult

__all__ = [
    "COSTS",
    "metric_label",
    "op_columns",
    "plot_all",
    "plot_best_so_far",
    "plot_learning_curves",
    "plot_op_frequencies",
    "plot_pareto",
]

_LOSS_STYLE: dict[str, Literal["--", "-"]] = {"train_loss": "--", "val_loss": "-"}
_STATUS_STYLE = {
    "completed": ("o", "tab:blue"),
    "early_stopped": ("v", "tab:orange"),
    "timed_out": ("^", "tab:purple"),
    "stopped_at_target": ("P", "tab:cyan"),
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


def _legend_outside(ax: Axes, *args: Any, **kwargs: Any) -> None:
    """A legend right of the axes: it never covers a point (the best trial's included)."""
    ax.legend(*args, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
              fontsize="small", **kwargs)  # fmt: skip


def _integer_x(ax: Axes, last: float) -> None:
    """Whole-number ticks on a count axis (trials, epochs) running 1..``last``."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlim(0.5, max(float(last), 1.0) + 0.5)


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
    b = best_so_far(result, metric)
    if b.empty:
        return None
    if x == "time":
        seconds = b["time_s"].to_numpy(dtype=float)
        minutes = bool(np.nanmax(seconds) > 180)
        xs = seconds / 60.0 if minutes else seconds
        xlabel = f"wall time since the first trial started ({'min' if minutes else 's'})"
    else:
        xs = b["order"].to_numpy(dtype=float)
        xlabel = "trials finished (count)"
    fig, (ax,) = _figure(width=7.6)
    ok = b["ok"].to_numpy(dtype=bool)
    values = b["value"].to_numpy(dtype=float)
    for status, (marker, color) in _STATUS_STYLE.items():
        sel = ok & (b["status"] == status).to_numpy()
        if sel.any():
            label = f"{status.replace('_', ' ')} trial ({int(sel.sum())})"
            ax.scatter(xs[sel], values[sel], marker=marker, color=color, alpha=0.7, label=label)
    ax.step(xs, b["best"].to_numpy(dtype=float), where="post", color="black", linewidth=2,
            label=f"best so far ({mode})")  # fmt: skip
    failed = ~ok
    if failed.any():
        ax.scatter(xs[failed], np.zeros(int(failed.sum())), marker="x", color="tab:red",
                   transform=ax.get_xaxis_transform(), clip_on=False,
                   label=f"failed / no {metric} ({int(failed.sum())})")  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric_label(metric))
    if x != "time":
        _integer_x(ax, float(xs.max()))
    against = "wall time" if x == "time" else "trials"
    ax.set_title(f"Best {metric} so far against {against} ({len(b)} trials)")
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    return _save(fig, path)


def plot_learning_curves(
    result: ExperimentResult, path: str | Path, *, k: int = 5, metric: str | None = None
) -> Path | None:
    """Per-epoch ``metric`` (left) and training/validation loss (right) of the top-``k`` trials.

    Every epoch is a marker, so a curve of one epoch still shows; loss axes are clipped to
    the 2nd..98th percentiles (padded) of the losses drawn, so one divergent epoch does not
    flatten the other curves.

    Returns:
        The path written, or None when no top trial has a curve.
    """
    metric = metric or result.metric
    curves = top_curves(result, k, metric)
    if curves.empty:
        return None
    top = result.top(k, metric)
    losses = [c for c in ("train_loss", "val_loss") if c in curves and curves[c].notna().any()]
    fig, axes = _figure(ncols=2 if losses else 1, width=6.0)
    for rank, (_, row) in enumerate(top.iterrows(), start=1):
        color = f"C{(rank - 1) % 10}"
        c = curves[curves["rank"] == rank]
        params = "" if pd.isna(row.get("params")) else f", {int(row['params']):,} params"
        label = f"{row['trial_id']} ({metric} {row[metric]:.4g}{params})"
        axes[0].plot(c["epoch"], c[metric], marker="o", color=color, label=label)
        for loss in losses:
            axes[-1].plot(c["epoch"], c[loss], linestyle=_LOSS_STYLE[loss], marker=".",
                          color=color)  # fmt: skip
    axes[0].set_title(f"Learning curves of the top {len(top)} trials by {metric}")
    axes[0].set_ylabel(metric_label(metric))
    # A minimised metric (a loss) can spike; an accuracy is bounded and keeps every point.
    span = robust_range(curves[metric]) if result.mode_of(metric) == "min" else None
    if span is not None:
        axes[0].set_ylim(*span)
    if losses:
        from matplotlib.lines import Line2D

        axes[-1].set_title("Training (dashed) and validation (solid) loss")
        axes[-1].set_ylabel("loss (cross-entropy)")
        span = robust_range(np.concatenate([curves[c].to_numpy(dtype=float) for c in losses]))
        if span is not None:
            axes[-1].set_ylim(*span)
        handles = [Line2D([], [], color="gray", linestyle=_LOSS_STYLE[c]) for c in losses]
        _legend_outside(axes[-1], handles, [metric_label(c) for c in losses])
    _legend_outside(axes[0], title="trial")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        _integer_x(ax, float(curves["epoch"].max()))
    return _save(fig, path)


def plot_pareto(
    result: ExperimentResult,
    path: str | Path,
    *,
    metric: str | None = None,
    costs: Sequence[str] = COSTS,
) -> Path | None:
    """``metric`` against each cost (params, FLOPs, latency), the Pareto front drawn.

    The front is computed over fully trained (``completed``) trials only; early-stopped
    trials are drawn as their own points.

    Returns:
        The path written, or None when no trial has ``metric`` and a cost.
    """
    metric = metric or result.metric
    mode = result.mode_of(metric)
    costs = cost_columns(result, costs)
    if usable(result, metric).empty or not costs:
        return None
    fig, axes = _figure(ncols=len(costs), width=5.6)
    for ax, cost in zip(axes, costs):
        pts = pareto_points(result, cost, metric)
        done = pts[pts["status"] == "completed"]
        partial = pts[pts["status"] != "completed"]
        front = pts[pts["front"]]
        ax.scatter(done["cost"], done["value"], color="tab:gray", alpha=0.6,
                   label=f"completed trial ({len(done)})")  # fmt: skip
        if len(partial):
            ax.scatter(partial["cost"], partial["value"], color="tab:orange", marker="v",
                       alpha=0.5, label=f"partly trained, not ranked ({len(partial)})")  # fmt: skip
        ax.step(front["cost"], front["value"], where="post", color="tab:red", linewidth=1.5)
        ax.scatter(front["cost"], front["value"], color="tab:red", zorder=3,
                   label=f"Pareto front ({len(front)})")  # fmt: skip
        lo, hi = float(pts["cost"].min()), float(pts["cost"].max())
        if lo > 0 and hi / lo > 20:
            ax.set_xscale("log")
        ax.set_xlabel(metric_label(cost))
        ax.set_ylabel(metric_label(metric))
        ax.set_title(f"{metric} ({mode}) vs {cost} (min)")
        ax.grid(alpha=0.3)
        _legend_outside(ax)
    better = "up" if mode == "max" else "down"
    fig.suptitle(f"Pareto fronts of {result.path.name} (better: {better} and to the left)")
    return _save(fig, path)


def plot_op_frequencies(result: ExperimentResult, path: str | Path, *, k: int = 5) -> Path | None:
    """Share of each operation among the top-``k`` trials' cells, against all trained trials.

    Returns:
        The path written, or None for spaces without cells or without a ranked trial.
    """
    shares = cell_op_shares(op_frequencies(result, k))
    if shares.empty:
        return None
    top = result.top(k)
    trained = usable(result, result.metric)
    cells = list(dict.fromkeys(shares["cell"]))
    fig, axes = _figure(ncols=len(cells), width=6.4)
    for ax, cell in zip(axes, cells):
        s = shares[shares["cell"] == cell]
        y = np.arange(len(s))
        ax.barh(y - 0.2, s["top_share"].to_numpy(), height=0.4, label=f"top {len(top)}")
        ax.barh(y + 0.2, s["all_share"].to_numpy(), height=0.4,
                label=f"all {len(trained)} trained")  # fmt: skip
        ax.set_yticks(y, list(s["op"]))
        ax.invert_yaxis()
        ax.set_xlabel(f"share of the operations in arch.{cell} (fraction)")
        n_edges = len(op_columns(result.trials).get(cell, []))
        ax.set_title(f"arch.{cell}: {n_edges} operation choices per architecture")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
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
