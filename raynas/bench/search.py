"""Search efficiency on a table: drive a real strategy by hand, or through Tune, per seed.

:func:`run_search` asks the strategy (a :class:`~raynas.strategies.NASSearcher`) for one
architecture at a time with ``suggest(trial_id)``, looks its final result up in the table and
hands it back with ``on_trial_complete`` (concurrency 1, no Ray trials): thousands of
evaluations take seconds. The strategy chooses by ``metric``; the *incumbent* after each
evaluation is the evaluated arch with the best ``metric`` (the earliest on ties), and it is
scored by ``report`` (e.g. search on validation accuracy, report the test accuracy of the
best-by-validation arch). Regret is the table's best ``report`` minus the incumbent's (for
``report_mode="max"``; reversed for ``"min"``), so 0 means the best arch of the table.

:func:`run_search_via_tune` runs the same search as a real Tune experiment with the
``tabular`` trainable (concurrency 1) and reads the trajectory back from the experiment
folder: same seed, same trajectory.

Example:
    >>> runs = run_searches(table, "bo", metric="val_acc", report="test_acc", budget=100,
    ...                     seeds=range(30))
    >>> summarize(runs)
    {'strategy': 'bo', 'budget': 100, 'seeds': 30, 'mean': ..., 'regret': ...}
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from raynas.bench.table import BenchTable, TableError, finite

#: Columns taken as the simulated clock when ``time_column="auto"`` (the first present).
TIME_COLUMNS = ("train_time_s", "time_s", "train_time")


@dataclass
class SearchRun:
    """One seeded search: what was evaluated, in order, and the incumbent after each step.

    Attributes:
        strategy: Strategy name.
        seed: The search's seed (the strategy's RNG; also the replayed run in ``by_seed``).
        archs: Arch strings in evaluation order.
        metric_values: The ``metric`` each evaluation returned (None: missing / NaN).
        best_metric: Incumbent's ``metric`` after each evaluation (NaN before a valid one).
        best_report: Incumbent's ``report`` after each evaluation.
        regret: ``optimum - best_report`` (``best_report - optimum`` for ``min``).
        sim_time_s: Cumulative simulated time (the time column, else epochs).
        optimum: Best ``report`` of the table (same replay view).
        metric_optimum: Best ``metric`` of the table.
        evals_to_optimum: Evaluations until the incumbent reached ``metric_optimum`` (None:
            not within the budget).
    """

    strategy: str
    seed: int
    metric: str
    report: str
    archs: list[str] = field(default_factory=list)
    metric_values: list[float | None] = field(default_factory=list)
    best_metric: np.ndarray = field(default_factory=lambda: np.zeros(0))
    best_report: np.ndarray = field(default_factory=lambda: np.zeros(0))
    regret: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sim_time_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    optimum: float = math.nan
    metric_optimum: float = math.nan
    evals_to_optimum: int | None = None

    def at(self, budget: int, what: str = "best_report") -> float:
        """``best_report`` / ``regret`` / ... after ``budget`` evaluations (the last if fewer)."""
        values = getattr(self, what)
        if len(values) == 0:
            return math.nan
        return float(values[min(budget, len(values)) - 1])


def _time_column(table: BenchTable, time_column: str | None) -> str | None:
    if time_column == "auto":
        return next((c for c in TIME_COLUMNS if c in table.metrics), None)
    table.require(time_column, flag="time_column")
    return time_column


def trajectory(
    run: SearchRun,
    records: Sequence[Mapping[str, Any]],
    *,
    mode: str,
    report_mode: str,
    time_column: str | None,
) -> SearchRun:
    """Fill ``run``'s incumbent arrays from the evaluated results, in order."""
    sign = 1.0 if mode == "max" else -1.0
    rsign = 1.0 if report_mode == "max" else -1.0
    best: float | None = None
    best_report = math.nan
    n = len(records)
    run.best_metric, run.best_report = np.full(n, math.nan), np.full(n, math.nan)
    run.sim_time_s = np.zeros(n)
    clock = 0.0
    run.metric_values = []
    for i, rec in enumerate(records):
        value = finite(rec.get(run.metric))
        run.metric_values.append(value)
        if value is not None and (best is None or sign * value > sign * best):
            best = value
            best_report = finite(rec.get(run.report)) or math.nan
        run.best_metric[i] = math.nan if best is None else best
        run.best_report[i] = best_report
        step = finite(rec.get(time_column)) if time_column else None
        clock += step if step is not None else float(rec.get("epoch") or 1)
        run.sim_time_s[i] = clock
    run.regret = rsign * (run.optimum - run.best_report)
    hits = np.flatnonzero(np.isclose(run.best_metric, run.metric_optimum, rtol=0, atol=1e-12))
    run.evals_to_optimum = int(hits[0]) + 1 if len(hits) else None
    return run


def _new_run(
    table: BenchTable,
    strategy: str,
    seed: int,
    metric: str,
    report: str | None,
    mode: str,
    report_mode: str | None,
    seed_mode: str,
) -> tuple[SearchRun, str, str]:
    if mode not in ("max", "min"):
        raise TableError(f"--mode must be 'max' or 'min', got {mode!r}")
    report = report or metric
    report_mode = report_mode or mode
    if report_mode not in ("max", "min"):
        raise TableError(f"--report-mode must be 'max' or 'min', got {report_mode!r}")
    table.require(metric, flag="--metric")
    table.require(report, flag="--report")
    run = SearchRun(strategy, int(seed), metric, report)
    run.optimum = table.optimum(report, report_mode, seed_mode=seed_mode, seed=seed)[1]
    run.metric_optimum = table.optimum(metric, mode, seed_mode=seed_mode, seed=seed)[1]
    return run, report, report_mode


def run_search(
    table: BenchTable,
    strategy: str,
    *,
    metric: str,
    budget: int,
    seed: int = 0,
    report: str | None = None,
    mode: str = "max",
    report_mode: str | None = None,
    strategy_args: Mapping[str, Any] | None = None,
    seed_mode: str = "mean",
    time_column: str | None = "auto",
) -> SearchRun:
    """One search of ``budget`` evaluations, the strategy driven by hand against the table.

    Args:
        table: The table (its space is the search space).
        strategy: A registered strategy name.
        metric: The column the strategy optimises.
        budget: Number of evaluations (fewer if the strategy exhausts the space).
        seed: The strategy's seed; with ``seed_mode="by_seed"`` also the replayed run.
        report: The column the incumbent is scored by (default: ``metric``).
        mode: ``"max"`` or ``"min"`` for ``metric``.
        report_mode: The same for ``report`` (default: ``mode``).
        strategy_args: Keyword arguments of the strategy.
        seed_mode: ``"mean"`` over recorded runs, or ``"by_seed"``.
        time_column: The cumulative time column of the simulated clock; ``"auto"`` picks
            the first of :data:`TIME_COLUMNS`; None counts epochs.

    Returns:
        The :class:`SearchRun`.

    Raises:
        TableError: a column is missing, or the strategy proposed an arch the table lacks.
        StrategyError / RegistryError: a bad strategy or strategy argument.
    """
    from ray.tune.search import Searcher

    from raynas.strategies import get_strategy

    run, report, report_mode = _new_run(
        table, strategy, seed, metric, report, mode, report_mode, seed_mode
    )
    tcol = _time_column(table, time_column)
    view = table.final(seed_mode=seed_mode, seed=seed)
    searcher = get_strategy(
        strategy, table.space, metric=metric, mode=mode, seed=seed, **dict(strategy_args or {})
    )
    records: list[Mapping[str, Any]] = []
    for i in range(int(budget)):
        trial_id = f"t{i:06d}"
        suggestion = searcher.suggest(trial_id)
        if suggestion == Searcher.FINISHED:
            break
        if not isinstance(suggestion, dict):
            from raynas.strategies.base import StrategyError

            raise StrategyError(
                f"strategy {strategy!r} proposed nothing (suggest returned {suggestion!r}) "
                "with no evaluation running; it cannot run at concurrency 1"
            )
        arch = suggestion["arch"]
        arch_id = table.space.arch_id(arch)
        if arch_id not in view.index:
            table.rows(arch)  # raises ArchNotInTable with the full message
            raise TableError(
                f"arch {table.space.to_string(arch)!r} has no run with seed "
                f"{table.record_seed(seed)}; use seed_mode 'mean'"
            )
        arch_str = table.space.to_string(arch)
        result: dict[str, Any] = {
            str(k): (None if v != v else v) for k, v in view.loc[arch_id].items()
        }
        result.update(
            epoch=int(view.at[arch_id, "epoch"]),
            status="ok",
            done=True,
            arch_id=arch_id,
            arch_str=arch_str,
        )
        searcher.on_trial_complete(trial_id, result)
        run.archs.append(arch_str)
        records.append(result)
    return trajectory(run, records, mode=mode, report_mode=report_mode, time_column=tcol)


def run_searches(
    table: BenchTable, strategy: str, *, seeds: Iterable[int], **kwargs: Any
) -> list[SearchRun]:
    """:func:`run_search` once per seed (same keyword arguments)."""
    return [run_search(table, strategy, seed=int(s), **kwargs) for s in seeds]


def run_search_via_tune(
    table: BenchTable,
    strategy: str,
    *,
    metric: str,
    budget: int,
    seed: int = 0,
    report: str | None = None,
    mode: str = "max",
    report_mode: str | None = None,
    strategy_args: Mapping[str, Any] | None = None,
    seed_mode: str = "mean",
    time_column: str | None = "auto",
    storage: str | Path | None = None,
) -> SearchRun:
    """The same search as :func:`run_search`, as a real Tune experiment (concurrency 1).

    Each evaluation is a Tune trial of the ``tabular`` trainable replaying the table; the
    trajectory is read back from the experiment folder. Needs a table loaded from a file with
    a registered (or YAML) space.

    Raises:
        TableError: the table has no file or no named space, or a trial failed.
    """
    import raynas

    run, report, report_mode = _new_run(
        table, strategy, seed, metric, report, mode, report_mode, seed_mode
    )
    tcol = _time_column(table, time_column)
    if table.path is None or table.space_name is None:
        raise TableError("--via-tune needs a table file whose space has a name (--space)")
    exp = {
        "name": f"tabular-{strategy}-seed{seed}",
        "space": table.space_name,
        "space_args": table.space_args,
        "trainable": "tabular",
        "trainable_args": {
            "table": str(table.path.resolve()),
            "seed_mode": seed_mode,
            "time_column": tcol,
        },
        "strategy": {"name": strategy, **dict(strategy_args or {})},
        "objective": {"metric": metric, "mode": mode},
        "budget": {"trials": int(budget), "concurrent": 1},
        "seed": int(seed),
        "checkpoint": {"every": 0},
        "resources": {"cpu": 1, "gpu": 0},
    }
    with tempfile.TemporaryDirectory(prefix="raynas-tabular-") as tmp:
        # address "local": a fresh local Ray unless one is running in this process (a stale
        # /tmp/ray/ray_current_cluster would otherwise make ray.init wait for a dead cluster).
        result = raynas.run(
            exp, storage=str(storage or tmp), overwrite=True, verbose=False, address="local"
        )
        records = _tune_records(result.path)
    run.archs = [str(r["arch_str"]) for r in records]
    return trajectory(run, records, mode=mode, report_mode=report_mode, time_column=tcol)


def _trial_order(folder: Path) -> int:
    """The trial's creation counter, from Tune's folder name ``<Trainable>_<id>_<n>_...``."""
    m = re.match(r"^[^_]+_[0-9a-f]+_(\d+)_", folder.name)
    return int(m.group(1)) if m else 0


def _tune_records(path: Path) -> list[dict[str, Any]]:
    """The last result of each trial of an experiment folder, in the order trials started."""
    records = []
    for params in sorted(path.glob("*/params.json"), key=lambda p: _trial_order(p.parent)):
        lines = (params.parent / "result.json").read_text().splitlines()
        last = json.loads(lines[-1]) if lines else {}
        if not last.get("done") or (params.parent / "error.txt").is_file():
            error = params.parent / "error.txt"
            text = error.read_text().strip().splitlines()[-1:] if error.is_file() else []
            raise TableError(
                f"--via-tune: trial {params.parent.name} did not complete: "
                f"{text[0] if text else 'no final result'}"
            )
        records.append(last)
    return records


def run_searches_via_tune(
    table: BenchTable, strategy: str, *, seeds: Iterable[int], **kwargs: Any
) -> list[SearchRun]:
    """:func:`run_search_via_tune` once per seed."""
    return [run_search_via_tune(table, strategy, seed=int(s), **kwargs) for s in seeds]


def summarize(runs: list[SearchRun], budget: int | None = None) -> dict[str, Any]:
    """Mean, std (over seeds, ddof 1), median of the reported value at ``budget``; regret.

    Args:
        runs: Searches of one strategy (one per seed).
        budget: Evaluations to summarise at (default: the longest run).

    Returns:
        ``{strategy, budget, seeds, metric, report, mean, std, median, regret, regret_std,
        optimum, evals_to_optimum_median, found_optimum}``; ``evals_to_optimum_median`` is
        None when fewer than half the seeds reached the optimum (``found_optimum`` is that
        fraction).
    """
    if not runs:
        raise ValueError("summarize needs at least one run")
    b = int(budget or max(len(r.archs) for r in runs))
    values = np.asarray([r.at(b) for r in runs])
    regrets = np.asarray([r.at(b, "regret") for r in runs])
    hits = [
        r.evals_to_optimum
        for r in runs
        if r.evals_to_optimum is not None and r.evals_to_optimum <= b
    ]
    ranked = sorted([*hits, *[math.inf] * (len(runs) - len(hits))])
    median_hits = ranked[(len(ranked) - 1) // 2] if ranked else math.inf
    ddof = 1 if len(runs) > 1 else 0
    return {
        "strategy": runs[0].strategy,
        "budget": b,
        "seeds": len(runs),
        "metric": runs[0].metric,
        "report": runs[0].report,
        "mean": float(np.nanmean(values)),
        "std": float(np.nanstd(values, ddof=ddof)),
        "median": float(np.nanmedian(values)),
        "regret": float(np.nanmean(regrets)),
        "regret_std": float(np.nanstd(regrets, ddof=ddof)),
        "optimum": float(np.mean([r.optimum for r in runs])),
        "evals_to_optimum_median": None if math.isinf(median_hits) else int(median_hits),
        "found_optimum": len(hits) / len(runs),
    }


def mean_curve(
    runs: list[SearchRun], what: str = "regret", budget: int | None = None
) -> np.ndarray:
    """The mean over seeds of ``what`` after 1..budget evaluations."""
    b = int(budget or max(len(r.archs) for r in runs))
    return np.asarray([np.nanmean([r.at(n, what) for r in runs]) for n in range(1, b + 1)])


def evals_to_reach(curve: np.ndarray, target: float) -> int | None:
    """The first evaluation count at which a mean-regret ``curve`` is ``<= target``."""
    hits = np.flatnonzero(curve <= target + 1e-12)
    return int(hits[0]) + 1 if len(hits) else None
