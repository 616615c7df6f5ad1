"""Search efficiency on a table: drive a real strategy by hand, or through Tune, per seed.

:func:`run_search` asks the strategy (a :class:`~raynas.strategies.NASSearcher`) for one
architecture at a time with ``suggest(trial_id)``, looks its final result up in the table and
hands it back with ``on_trial_complete`` (concurrency 1, no Ray trials): thousands of
evaluations take seconds. The strategy chooses by ``metric``; the *incumbent* after each
evaluation is the evaluated arch with the best ``metric`` (the earliest on ties), and it is
scored by ``report`` (e.g. search on validation accuracy, report the test accuracy of the
best-by-validation arch). Regret is the table's best ``report`` minus the incumbent's (for
``report_mode="max"``; reversed for ``"min"``), so 0 means the best arch of the table.

With ``scheduler=Asha(...)`` the search runs under ASHA-style early stopping replayed on
the table's learning curves (:class:`Asha`: Ray Tune's ``AsyncHyperBandScheduler`` rule, one
bracket), and ``concurrency`` trials run at once on a simulated clock: each trial advances an
epoch at a time, the strategy sees ``on_trial_result`` for every epoch that continues and
``on_trial_complete`` with the last one, as under Tune. The incumbent is then the best arch
*trained to its full budget*; a stopped trial never is one.

:func:`run_search_via_tune` runs the same search as a real Tune experiment with the
``tabular`` trainable (concurrency 1) and reads the trajectory back from the experiment
folder: same seed, same trajectory.

Example:
    >>> runs = run_searches(table, "bo", metric="val_acc", report="test_acc", budget=100,
    ...                     seeds=range(30))
    >>> summarize(runs)
    {'strategy': 'bo', 'budget': 100, 'seeds': 30, 'mean': ..., 'regret': ...}

Kept as one module (over 450 lines): the by-hand replay and the replay through Tune share
the run record, the ASHA replay and the summary, so that both paths compute a search's
figures with the same code.
"""

from __future__ import annotations

import heapq
import json
import math
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
        epochs: Epochs trained in all (early-stopped trials count the epochs they ran).
        stopped: Trials a scheduler stopped before their full budget.
        proxy_stats: The strategy's ``proxy_stats`` when it searched with a proxy (archs
            scored and seconds spent: no evaluation of the budget), else None.
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
    epochs: int = 0
    stopped: int = 0
    proxy_stats: dict[str, Any] | None = None

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
    """Fill ``run``'s incumbent arrays from the evaluated results, in order.

    A record with ``censored: True`` (stopped early) takes time but is never the incumbent.
    """
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
        full = not rec.get("censored")
        if full and value is not None and (best is None or sign * value > sign * best):
            best = value
            best_report = finite(rec.get(run.report)) or math.nan
        run.best_metric[i] = math.nan if best is None else best
        run.best_report[i] = best_report
        step = finite(rec.get(time_column)) if time_column else None
        clock += step if step is not None else float(rec.get("epoch") or 1)
        run.sim_time_s[i] = clock
        run.epochs += int(rec.get("epoch") or 1)
        run.stopped += 0 if full else 1
    run.regret = rsign * (run.optimum - run.best_report)
    hits = np.flatnonzero(np.isclose(run.best_metric, run.metric_optimum, rtol=0, atol=1e-12))
    run.evals_to_optimum = int(hits[0]) + 1 if len(hits) else None
    return run


@dataclass(frozen=True)
class Asha:
    """ASHA's early-stopping rule (Li et al., MLSys 2020) as Ray Tune applies it, one bracket.

    Rungs sit at ``grace_period * reduction_factor**k`` epochs (``k = 0, 1, ...`` while at most
    ``max_t``). A trial that reaches a rung it has no result at yet is compared with every
    result recorded there so far: below their ``1 - 1/reduction_factor`` quantile it stops,
    else it continues; either way its result is recorded there. At ``max_t`` it is done.
    Results are compared as "higher is better" (``mode`` applied). This is the promotion
    logic of ``ray.tune.schedulers.AsyncHyperBandScheduler`` (``brackets=1``,
    ``stop_last_trials=True``), replayed without Ray.

    Attributes:
        grace_period: Epochs before the first rung (>= 1).
        reduction_factor: ``eta`` (> 1): about ``1/eta`` of a rung's trials continue.
        max_t: The full budget in epochs (None: each run's recorded length).
    """

    grace_period: int = 1
    reduction_factor: float = 3
    max_t: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.grace_period, bool) or not isinstance(self.grace_period, int):
            raise TableError(f"grace_period must be an integer >= 1, got {self.grace_period!r}")
        if self.grace_period < 1 or not self.reduction_factor > 1:
            raise TableError(
                "ASHA needs grace_period >= 1 and reduction_factor > 1, got "
                f"({self.grace_period=}, {self.reduction_factor=})"
            )
        if self.max_t is not None and self.max_t < self.grace_period:
            raise TableError(f"max_t must be >= grace_period, got ({self.max_t=})")

    def milestones(self, max_t: int) -> list[float]:
        """The rungs, in epochs, for a full budget of ``max_t`` (Tune's formula)."""
        count = int(math.log(max_t / self.grace_period) / math.log(self.reduction_factor) + 1)
        return [self.grace_period * self.reduction_factor**k for k in range(count)]


class AshaRungs:
    """The recorded results of each rung of one :class:`Asha` run; decides stop/continue."""

    def __init__(self, rule: Asha, max_t: int) -> None:
        self.rule, self.max_t = rule, max_t
        self.rungs: list[tuple[float, dict[str, float]]] = [
            (m, {}) for m in reversed(rule.milestones(max_t))
        ]

    def on_result(self, trial_id: str, epoch: float, value: float) -> bool:
        """Whether the trial stops at this result (``value``: higher is better, NaN ok)."""
        if epoch >= self.max_t:
            return True
        return self._record(trial_id, epoch, value)

    def on_complete(self, trial_id: str, epoch: float, value: float) -> None:
        """Record the last result of a finished trial (Tune does, for the top rung)."""
        self._record(trial_id, epoch, value)

    def _record(self, trial_id: str, epoch: float, value: float) -> bool:
        for milestone, recorded in self.rungs:
            if epoch < milestone or trial_id in recorded:
                continue
            cutoff = None
            if recorded:
                quantile = (1 - 1 / self.rule.reduction_factor) * 100
                cutoff = float(np.nanpercentile(list(recorded.values()), quantile))
            recorded[trial_id] = value
            return cutoff is not None and value < cutoff
        return False


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
    scheduler: Asha | None = None,
    concurrency: int = 1,
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
        scheduler: :class:`Asha` to replay early stopping on the learning curves (None:
            every trial runs its full recorded length).
        concurrency: Trials running at once on the simulated clock (epoch durations from
            the time column, else one unit per epoch).

    Returns:
        The :class:`SearchRun`.

    Raises:
        TableError: a column is missing, or the strategy proposed an arch the table lacks.
        StrategyError / RegistryError: a bad strategy or strategy argument.
    """
    from raynas.strategies import get_strategy

    run, report, report_mode = _new_run(
        table, strategy, seed, metric, report, mode, report_mode, seed_mode
    )
    tcol = _time_column(table, time_column)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise TableError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    searcher = get_strategy(
        strategy, table.space, metric=metric, mode=mode, seed=seed, **dict(strategy_args or {})
    )
    replay = _Replay(table, searcher, seed_mode=seed_mode, seed=seed, time_column=tcol)
    if scheduler is None and concurrency == 1:
        records = replay.one_at_a_time(int(budget))
    else:
        records = replay.run(int(budget), scheduler, concurrency, mode)
    run.archs = [str(r["arch_str"]) for r in records]
    from raynas.strategies.proxy import ProxyGuided

    settings = searcher.proxy if isinstance(searcher, ProxyGuided) else None
    if isinstance(searcher, ProxyGuided) and settings is not None:
        run.proxy_stats = {
            **searcher.proxy_stats,
            "warmup_pool": settings.warmup_pool,
            "move_candidates": settings.move_candidates,
        }
    return trajectory(run, records, mode=mode, report_mode=report_mode, time_column=tcol)


class TableProxy:
    """A proxy scorer that looks scores up by arch id: zero-cost replay of a proxy search.

    ``TableProxy(space, scores)(arch)`` is ``scores[space.arch_id(arch)]``, NaN for an arch
    without a (finite) score; give it as ``strategy_args={"proxy": {"name": ..., "scorer":
    TableProxy(...)}}``.

    Args:
        space: The search space (arch ids are computed with it).
        scores: Score by arch id (higher is better).
        name: The proxy's name, for reports.
    """

    def __init__(self, space: Any, scores: Mapping[str, float], name: str) -> None:
        self.space, self.name = space, name
        self.scores = {str(k): float(v) for k, v in scores.items()}

    def __call__(self, arch: Any) -> float:
        value = self.scores.get(self.space.arch_id(arch), math.nan)
        return value if math.isfinite(value) else math.nan

    @classmethod
    def from_file(cls, table: BenchTable, path: str | Path, column: str) -> TableProxy:
        """Scores from a ``raynas proxies score`` table (``arch_id`` or ``arch`` JSON column).

        Raises:
            TableError: the file is missing or unreadable, has no ``column`` (the message
                lists its columns), or shares no arch id with ``table``.
        """
        import pandas as pd

        file = Path(path)
        if not file.is_file():
            raise TableError(f"--proxy-table: {str(file)!r} does not exist")
        try:
            df = pd.read_csv(file) if file.suffix.lower() == ".csv" else pd.read_parquet(file)
        except (OSError, ValueError) as err:
            raise TableError(f"--proxy-table: cannot read {str(file)!r}: {err}") from err
        if column not in df.columns:
            names = [c for c in df.columns if c not in ("arch", "arch_id", "seconds", "error")]
            raise TableError(
                f"--proxy: {str(file)!r} has no column {column!r}; its proxy columns are {names}"
            )
        if "arch_id" in df.columns:
            ids = df["arch_id"].astype(str)
        elif "arch" in df.columns:
            ids = df["arch"].map(lambda text: table.space.arch_id(json.loads(text)))
        else:
            raise TableError(f"--proxy-table: {str(file)!r} has no arch_id or arch column")
        values = pd.to_numeric(df[column], errors="coerce")
        scores = dict(zip(ids, values.astype(float)))
        known = table.final().index
        if not any(k in scores for k in known):
            raise TableError(
                f"--proxy-table: {str(file)!r} shares no arch id with the table; was it scored "
                "on the same space (and space arguments)?"
            )
        return cls(table.space, scores, column)

    @classmethod
    def from_column(
        cls, table: BenchTable, column: str, *, seed_mode: str = "mean", seed: int = 0
    ) -> TableProxy:
        """Scores from a column of the table itself (e.g. an oracle: ``test_acc``).

        Raises:
            TableError: the table has no such column.
        """
        table.require(column, flag="--proxy-column")
        view = table.final(seed_mode=seed_mode, seed=seed)
        return cls(
            table.space, dict(zip(view.index.astype(str), view[column].astype(float))), column
        )


class _Replay:
    """Evaluations of a searcher's proposals replayed from a table."""

    def __init__(
        self,
        table: BenchTable,
        searcher: Any,
        *,
        seed_mode: str,
        seed: int,
        time_column: str | None,
    ) -> None:
        self.table, self.searcher = table, searcher
        self.seed_mode, self.seed, self.time_column = seed_mode, seed, time_column
        self.view = table.final(seed_mode=seed_mode, seed=seed)
        self.columns = ["epoch", *table.metrics]

    def _suggest(self, trial_id: str, running: int) -> tuple[dict[str, Any], str] | str | None:
        """``(arch, arch_id)``, ``"finished"`` or None (the strategy waits)."""
        from ray.tune.search import Searcher

        suggestion = self.searcher.suggest(trial_id)
        if suggestion == Searcher.FINISHED:
            return "finished"
        if not isinstance(suggestion, dict):
            if running:
                return None
            from raynas.strategies.base import StrategyError

            raise StrategyError(
                f"strategy {self.searcher.name!r} proposed nothing (suggest returned "
                f"{suggestion!r}) with no evaluation running; it cannot run like this"
            )
        arch = suggestion["arch"]
        arch_id = self.table.space.arch_id(arch)
        if arch_id not in self.view.index:
            self.table.rows(arch)  # raises ArchNotInTable with the full message
            raise TableError(
                f"arch {self.table.space.to_string(arch)!r} has no run with seed "
                f"{self.table.record_seed(self.seed)}; use seed_mode 'mean'"
            )
        return arch, arch_id

    def final_result(self, arch: dict[str, Any], arch_id: str) -> dict[str, Any]:
        """The last recorded epoch of ``arch`` (the replay view), as a trial's result."""
        result: dict[str, Any] = {
            str(k): (None if v != v else v) for k, v in self.view.loc[arch_id].items()
        }
        result.update(
            epoch=int(self.view.at[arch_id, "epoch"]),
            status="ok",
            done=True,
            arch_id=arch_id,
            arch_str=self.table.space.to_string(arch),
        )
        return result

    def one_at_a_time(self, budget: int) -> list[dict[str, Any]]:
        """Each proposal evaluated to its full length before the next (no curves)."""
        records = []
        for i in range(budget):
            trial_id = f"t{i:06d}"
            out = self._suggest(trial_id, 0)
            if not isinstance(out, tuple):
                break
            result = self.final_result(*out)
            self.searcher.on_trial_complete(trial_id, result)
            records.append(result)
        return records

    def run(
        self, budget: int, scheduler: Asha | None, concurrency: int, mode: str
    ) -> list[dict[str, Any]]:
        """Trials advance an epoch at a time on a simulated clock; records in finish order."""
        sign = 1.0 if mode == "max" else -1.0
        metric = self.searcher.metric
        events: list[tuple[float, int, str]] = []  # (time the next epoch ends, order, trial)
        trials: dict[str, dict[str, Any]] = {}
        rungs: AshaRungs | None = None
        records: list[dict[str, Any]] = []
        clock, started, finished = 0.0, 0, False
        max_t = None if scheduler is None else scheduler.max_t or int(self.table.df["epoch"].max())
        if scheduler is not None and max_t is not None:
            rungs = AshaRungs(scheduler, max_t)
        while True:
            while not finished and started < budget and len(trials) < concurrency:
                trial_id = f"t{started:06d}"
                out = self._suggest(trial_id, len(trials))
                if out is None:
                    break
                if isinstance(out, str):
                    finished = True
                    break
                arch, arch_id = out
                curve = self.table.curve_array(arch, seed_mode=self.seed_mode, seed=self.seed)
                whole = len(curve)
                if max_t is not None:  # the budget ends at max_t epochs
                    curve = curve[: max(1, int((curve[:, 0] <= max_t).sum()))]
                trials[trial_id] = {
                    "arch": arch,
                    "arch_id": arch_id,
                    "curve": curve,
                    "k": 0,
                    "whole": len(curve) == whole,
                }
                heapq.heappush(events, (clock + self._duration(curve, 0), started, trial_id))
                started += 1
            if not events:
                return records
            clock, order, trial_id = heapq.heappop(events)
            trial = trials[trial_id]
            curve, k = trial["curve"], trial["k"]
            result = self._epoch_result(trial, k)
            last = k + 1 >= len(curve)
            value = finite(result.get(metric or ""))
            signed = math.nan if value is None else sign * value
            stop = last or (
                rungs is not None and rungs.on_result(trial_id, result["epoch"], signed)
            )
            if not stop:
                self.searcher.on_trial_result(trial_id, result)
                trial["k"] = k + 1
                heapq.heappush(events, (clock + self._duration(curve, k + 1), order, trial_id))
                continue
            if rungs is not None:
                rungs.on_complete(trial_id, result["epoch"], signed)
            if last and trial["whole"]:
                result = self.final_result(trial["arch"], trial["arch_id"])
            elif last:
                result["done"] = True
            else:
                result["censored"] = True
            del trials[trial_id]
            self.searcher.on_trial_complete(trial_id, result)
            records.append(result)

    def _epoch_result(self, trial: dict[str, Any], k: int) -> dict[str, Any]:
        row = trial["curve"][k]
        result: dict[str, Any] = {
            c: (None if v != v else float(v)) for c, v in zip(self.columns, row)
        }
        result.update(
            epoch=int(row[0]),
            epochs_total=int(trial["curve"][-1, 0]),
            status="ok",
            arch_id=trial["arch_id"],
            arch_str=self.table.space.to_string(trial["arch"]),
        )
        return result

    def _duration(self, curve: np.ndarray, k: int) -> float:
        """Simulated seconds of epoch ``k`` (the time column is cumulative)."""
        if self.time_column is None:
            return float(curve[k, 0] - (curve[k - 1, 0] if k else 0.0))
        col = 1 + self.table.metrics.index(self.time_column)
        now = finite(curve[k, col])
        before = finite(curve[k - 1, col]) if k else 0.0
        if now is None or before is None:
            return 1.0
        return max(now - before, 0.0)


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
    """The trial's creation counter, from its folder's name (``trial<n>-...``, or Tune's
    ``<Trainable>_<id>_<n>_...``)."""
    from raynas.files import parse_trial_dir_name

    index = parse_trial_dir_name(folder.name)[0]
    return 0 if index is None else index


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


def _proxy_summary(runs: list[SearchRun]) -> dict[str, Any] | None:
    stats = [r.proxy_stats for r in runs if r.proxy_stats is not None]
    if not stats:
        return None
    return {
        "proxy": stats[0]["proxy"],
        "warmup_pool": stats[0]["warmup_pool"],
        "move_candidates": stats[0]["move_candidates"],
        "archs_scored_mean": float(np.mean([s["archs_scored"] for s in stats])),
        "seconds_mean": float(np.mean([s["seconds"] for s in stats])),
    }


def summarize(runs: list[SearchRun], budget: int | None = None) -> dict[str, Any]:
    """Mean, std (over seeds, ddof 1), median of the reported value at ``budget``; regret.

    Args:
        runs: Searches of one strategy (one per seed).
        budget: Evaluations to summarise at (default: the longest run).

    Returns:
        ``{strategy, budget, seeds, metric, report, mean, std, median, regret, regret_std,
        optimum, evals_to_optimum_median, found_optimum}``; ``evals_to_optimum_median`` is
        None when fewer than half the seeds reached the optimum (``found_optimum`` is that
        fraction). Runs with a proxy add ``proxy: {proxy, warmup_pool,
        move_candidates, archs_scored_mean, seconds_mean}``.
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
    out: dict[str, Any] = {
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
    proxy = _proxy_summary(runs)
    if proxy is not None:
        out["proxy"] = proxy
    return out


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
