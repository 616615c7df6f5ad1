"""The reading side of the analysis: an experiment folder -> the ``trials`` and ``curves`` tables.

Reads only files (no Ray, no GPU), so it works while an experiment runs and after a crash:
each trial folder Tune writes holds ``params.json`` (the trial's config, ``arch`` included),
``result.json`` (one JSON line per reported result), ``error.txt`` when the trial failed and
``checkpoint_*/``; ``experiment_state-*.json`` holds Tune's status of every trial and
``raynas_experiment.yaml`` the experiment config. Missing or half-written files are skipped.

A trial's ``status`` is one of :data:`STATUSES`: ``completed`` (trained ``train.epochs``
epochs), ``early_stopped`` (a scheduler ended it sooner; the planned length is ``train.epochs``, or
``epochs_total`` when the trainable reports it), ``timed_out`` (``budget.time_s`` ran out while
it trained), ``stopped_at_target`` (a result met ``budget.stop`` while it trained), ``error``
(``error.txt`` and no retry finished it), ``diverged`` / ``constraint_violated`` / ``oom``
(the trainable's own verdict) or ``running`` (not done and the experiment is not over, or
the driver was killed).

The tables have a stable schema (:data:`TRIAL_COLUMNS`, :data:`CURVE_COLUMNS`, fixed names,
order and dtypes, present even with zero trials), followed by any further metrics a trainable
reports (sorted, float) and, in ``trials``, the ``arch.*`` columns. :mod:`raynas.results.analysis`
queries them (:class:`~raynas.results.analysis.ExperimentResult`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from raynas.files import CLASSIFY_METRICS, parse_trial_dir_name

STATUSES = (
    "completed",
    "early_stopped",
    "timed_out",
    "stopped_at_target",
    "error",
    "diverged",
    "constraint_violated",
    "oom",
    "running",
)
#: Statuses whose metrics rank a trial: it ended with a usable result (``early_stopped`` and
#: ``timed_out`` at a lower fidelity). ``running`` trials rank only when asked for.
OK_STATUSES = ("completed", "early_stopped", "timed_out", "stopped_at_target")
#: The status of a trial the budget cut, by the reason ``raynas_stops.json`` records.
STOP_STATUS = {"time_budget": "timed_out", "target": "stopped_at_target"}
SCHEMA_VERSION = "1"
_METRICS = CLASSIFY_METRICS  # the fixed metric columns
#: Fixed columns of :attr:`ExperimentResult.trials`, in order, with their pandas dtypes.
TRIAL_COLUMNS: dict[str, str] = {
    "trial_id": "string",
    "trial_index": "Int64",
    "status": "string",
    "arch_id": "string",
    "arch": "string",
    "epochs": "Int64",
    **{m: "float64" for m in _METRICS},
    **{f"best_{m}": "float64" for m in _METRICS},
    "best_epoch": "Int64",
    "lr": "float64",
    "params": "Int64",
    "flops": "Int64",
    "latency_ms": "float64",
    "wall_time_s": "float64",
    "start_time": "float64",
    "end_time": "float64",
    "parent": "string",
    "parent_arch": "string",
    "mutation": "string",
    "lineage": "string",
    "error": "string",
    "violations": "string",
    "trial_dir": "string",
}
#: Fixed columns of :attr:`ExperimentResult.curves` (one row per trial and epoch;
#: ``from_trial`` is the trial that trained that epoch: another one for epochs a PBT clone
#: inherited).
CURVE_COLUMNS: dict[str, str] = {
    "trial_id": "string",
    "epoch": "Int64",
    "status": "string",
    "from_trial": "string",
    **{m: "float64" for m in _METRICS},
    "lr": "float64",
    "epoch_time_s": "float64",
    "time_this_iter_s": "float64",
    "time_total_s": "float64",
    "timestamp": "float64",
}
#: Result keys that are bookkeeping, not metrics (Tune's and raynas's).
_NOT_METRICS = frozenset(
    {
        "done", "training_iteration", "trial_id", "date", "pid", "hostname", "node_ip",
        "config", "time_since_restore", "iterations_since_restore", "experiment_tag",
        "checkpoint_dir_name", "should_checkpoint", "arch_id", "arch_str", "fidelity",
        "censored", "mutation", "inherited", "experiment_id", "episodes_total",
        "timesteps_total", "timesteps_since_restore", "warmup_time", "epochs_total",
        "restored_history", "lineage_step",
    }
)  # fmt: skip
#: Result keys the trials table holds under another name (epochs, end_time, wall_time_s).
_RENAMED = frozenset({"epoch", "timestamp", "time_total_s", "time_this_iter_s", "epoch_time_s"})
_MIN_HINTS = ("loss", "error", "params", "flops", "latency", "time", "mem")


def metric_mode(metric: str) -> str:
    """A guess at ``max``/``min`` for a metric name (losses, costs and times: ``min``)."""
    return "min" if any(h in metric for h in _MIN_HINTS) else "max"


def flatten_arch(arch: Any, prefix: str = "arch") -> dict[str, Any]:
    """``{"cell": {"edge_0_1": "x"}}`` -> ``{"arch.cell.edge_0_1": "x"}`` (lists by index)."""
    out: dict[str, Any] = {}
    if isinstance(arch, Mapping):
        for k, v in arch.items():
            out.update(flatten_arch(v, f"{prefix}.{k}"))
    elif isinstance(arch, list):
        out[f"{prefix}.len"] = len(arch)
        for i, v in enumerate(arch):
            out.update(flatten_arch(v, f"{prefix}.{i}"))
    else:
        out[prefix] = arch
    return out


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing, unreadable or half-written."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_results(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line of ``result.json`` (a half-written last line is dropped)."""
    try:
        text = path.read_text()
    except OSError:
        return []
    rows: list[dict[str, Any]] = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _tune_state(path: Path) -> tuple[dict[str, dict[str, Any]], bool]:
    """``{trial_id: {status, logdir, start_time, config}}`` from Tune's newest state file,
    and whether the experiment is over (every trial TERMINATED or ERROR)."""
    out: dict[str, dict[str, Any]] = {}
    states = sorted(path.glob("experiment_state-*.json"), key=lambda p: p.name)
    data = read_json(states[-1]) if states else None
    for item in (data or {}).get("trial_data", []) if isinstance(data, dict) else []:
        try:  # each item: [trial JSON, runtime JSON (start_time, ...)]
            items = item if isinstance(item, list) else [item]
            parts = [json.loads(p) if isinstance(p, str) else p for p in items]
        except (ValueError, TypeError):
            continue
        trial, runtime = (*parts, {}, {})[:2]
        if isinstance(trial, dict) and trial.get("trial_id"):
            out[str(trial["trial_id"])] = {
                "status": trial.get("status"),
                "logdir": trial.get("relative_logdir"),
                "config": trial.get("config"),
                "start_time": (runtime or {}).get("start_time"),
            }
    finished = bool(out) and all(t["status"] in ("TERMINATED", "ERROR") for t in out.values())
    return out, finished


def read_tables(
    path: Path,
    metric: str = "val_acc",
    mode: str = "max",
    max_epochs: int | None = None,
    stops: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """The ``trials`` and ``curves`` tables of the experiment folder ``path``, and whether Tune
    recorded every trial as ended.

    ``metric`` and ``mode`` (the objective) pick each trial's ``best_epoch``; ``max_epochs`` is
    the planned length (``train.epochs``) of a trial whose own config has none; ``stops`` is
    ``{trial_id: reason}`` of the trials the driver stopped (``raynas_stops.json``).
    """
    state, finished = _tune_state(path)
    by_logdir = {s["logdir"]: tid for tid, s in state.items() if s["logdir"]}
    dirs = {p.parent for n in ("params.json", "result.json", "error.txt")
            for p in path.glob(f"*/{n}")}  # fmt: skip
    rows, curve_rows = [], []
    for tdir in sorted(dirs):
        results = read_results(tdir / "result.json")
        last = results[-1] if results else {}
        index, named_id = parse_trial_dir_name(tdir.name)
        trial_id = str(last.get("trial_id") or by_logdir.get(tdir.name) or named_id or tdir.name)
        info = state.get(trial_id, {})
        config = read_json(tdir / "params.json") or info.get("config") or {}
        row = _trial_row(
            tdir,
            trial_id,
            results,
            config,
            info,
            objective=(metric, mode),
            default_epochs=max_epochs,
            finished=finished,
            stops=stops or {},
        )
        row["trial_index"] = index
        rows.append(row)
        curve_rows.extend(_curve_rows(trial_id, results))
    trials = _with_schema(pd.DataFrame(rows), TRIAL_COLUMNS, tail_prefix="arch.")
    if not trials.empty:
        trials = trials.sort_values(["trial_index", "trial_id"], kind="stable")
        trials = trials.reset_index(drop=True)
        trials["lineage"] = pd.Series(_lineages(trials), dtype="string")
    curves = _with_schema(pd.DataFrame(curve_rows), CURVE_COLUMNS)
    if not curves.empty:
        order = {t: i for i, t in enumerate(trials["trial_id"])}
        curves = curves.sort_values(
            ["trial_id", "epoch"], key=lambda c: c.map(order) if c.name == "trial_id" else c
        ).reset_index(drop=True)
    return trials, curves, finished


def _trial_row(
    tdir: Path,
    trial_id: str,
    results: list[dict[str, Any]],
    config: Mapping[str, Any],
    info: Mapping[str, Any],
    *,
    objective: tuple[str, str],
    default_epochs: int | None,
    finished: bool,
    stops: Mapping[str, str],
) -> dict[str, Any]:
    """One trial's row of the trials table (``trial_index`` and ``lineage`` aside)."""
    last = results[-1] if results else {}
    error_text = error_line(tdir / "error.txt")
    # A trainable whose length is not ``train.epochs`` (tabular replays) reports its own.
    max_epochs = _number(last.get("epochs_total")) or (
        (config.get("train") or {}).get("epochs") or default_epochs
    )
    status = _status(last, error_text is not None, info.get("status"), finished, max_epochs)
    if status == "early_stopped" and trial_id in stops:
        status = STOP_STATUS.get(stops[trial_id], "timed_out")
    first = results[0] if results else {}
    start = _number(info.get("start_time"))
    if start is None and first:
        start = (_number(first.get("timestamp")) or 0.0) - (
            _number(first.get("time_total_s")) or 0.0
        )
    row: dict[str, Any] = {
        "trial_id": trial_id,
        "status": status,
        "arch_id": last.get("arch_id"),
        "arch": arch_text(last, config),
        "epochs": int(_number(last.get("epoch")) or 0),
        "wall_time_s": last.get("time_total_s"),
        "start_time": start,
        "end_time": last.get("timestamp"),
        "error": error_text or last.get("error"),
        "violations": last.get("violations"),
        "parent": last.get("parent", config.get("parent")),
        "parent_arch": last.get("parent_arch"),
        "mutation": last.get("mutation"),
        "trial_dir": str(tdir),
    }
    for key, value in last.items():
        skip = key in _NOT_METRICS or key in _RENAMED or key in row
        if not skip and _number(value) is not None:
            row[key] = value
    scored = {m: metric_mode(m) for m in _METRICS}
    scored[objective[0]] = objective[1]
    for metric, mode in scored.items():
        values = [(_number(r.get(metric)), r.get("epoch")) for r in results]
        finite = [(v, e) for v, e in values if v is not None and math.isfinite(v)]
        if finite:
            pick = max if mode == "max" else min
            row[f"best_{metric}"], epoch = pick(finite, key=lambda t: t[0])
            if metric == objective[0]:
                row["best_epoch"] = epoch
    # One-shot trials report the arch they derived; PBT may change a trial's arch.
    arch = last.get("arch") or (last.get("config") or {}).get("arch") or config.get("arch")
    if isinstance(arch, Mapping):
        row.update(flatten_arch(arch))
    return row


def arch_text(result: Mapping[str, Any], config: Mapping[str, Any]) -> str | None:
    """A trial's arch as text: what it reported (``arch_str``), else its config's ``arch`` as
    compact JSON (a plugin trainable that reports no arch)."""
    if result.get("arch_str") is not None:
        return str(result["arch_str"])
    arch = config.get("arch")
    if arch is None:
        return None
    return json.dumps(arch, sort_keys=True, separators=(",", ":"), default=str)


def _curve_rows(trial_id: str, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per epoch of a trial's curve, each marked with the trial that trained it.

    A trial's ``result.json`` can repeat or skip epochs: a retry restores its last checkpoint
    and reports the epochs after it again, Tune does not log the result on which a scheduler
    paused a trial, and under PBT a trial that clones a peer continues from the peer's epoch.
    After every restore the trainable reports the lineage's epochs up to the restored
    checkpoint (``restored_history``, each marked with the trial that trained it); the curve
    is the latest such history followed by what the trial reported since, and a repeated epoch
    keeps its latest row.
    """
    start, restored = 0, []
    for i, r in enumerate(results):
        if isinstance(r.get("restored_history"), str):
            try:
                history = json.loads(r["restored_history"])
            except ValueError:
                continue
            start = i
            restored = [
                {**h, "status": "ok", "from_trial": str(h.get("trial") or trial_id)}
                for h in history
                if isinstance(h, dict)
            ]
    by_epoch: dict[float, dict[str, Any]] = {}
    for r in [*restored, *results[start:]]:
        epoch = _number(r.get("epoch"))
        if epoch is None or epoch < 1:
            continue  # constraint-violated children are never trained
        by_epoch[epoch] = {
            "trial_id": trial_id,
            "status": r.get("status", "ok"),
            "from_trial": r.get("from_trial", trial_id),
            **{
                k: v
                for k, v in r.items()
                if k not in _NOT_METRICS and k != "status" and _number(v) is not None
            },
        }
    return [by_epoch[e] for e in sorted(by_epoch)]


def error_line(path: Path) -> str | None:
    """The last non-empty line of a trial's ``error.txt`` (the exception), or None."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1] if lines else "error (empty error.txt)"


def _status(
    last: Mapping[str, Any],
    errored: bool,
    tune_status: str | None,
    finished: bool,
    max_epochs: float | None,
) -> str:
    """A trial's status from its last result, its error file and Tune's state."""
    reported = last.get("status")
    if reported not in (None, "ok"):
        return str(reported)  # the trainable's verdict: constraint_violated, diverged, oom
    epoch = _number(last.get("epoch")) or 0
    if max_epochs is not None and epoch >= max_epochs:
        return "completed"  # a retry that finished beats an earlier error.txt
    if errored or tune_status == "ERROR":
        return "error"
    if max_epochs is None and last.get("done"):
        return "completed"
    if tune_status == "TERMINATED" or (finished and tune_status is None):
        return "early_stopped" if last else "error"
    return "running"


def _lineages(trials: pd.DataFrame) -> list[str | None]:
    """``root > ... > parent > trial`` by following ``parent`` (a trial or arch id)."""
    ids = {str(t): str(t) for t in trials["trial_id"]}
    ids.update(
        {str(a): str(t) for a, t in zip(trials["arch_id"], trials["trial_id"]) if pd.notna(a)}
    )
    parent = {
        str(t): ids.get(str(p)) for t, p in zip(trials["trial_id"], trials["parent"]) if pd.notna(p)
    }
    out: list[str | None] = []
    for t in map(str, trials["trial_id"]):
        chain = [t]
        while parent.get(chain[-1]) and parent[chain[-1]] not in chain:
            chain.append(str(parent[chain[-1]]))
        out.append(" > ".join(reversed(chain)) if len(chain) > 1 else None)
    return out


def _with_schema(
    df: pd.DataFrame, columns: Mapping[str, str], tail_prefix: str = ""
) -> pd.DataFrame:
    """``df`` with the fixed ``columns`` first (typed), extra metrics (float), then the
    ``tail_prefix`` columns (one type each: numbers, booleans or strings)."""
    out = pd.DataFrame(index=df.index)
    for col, dtype in columns.items():
        values = df[col] if col in df else pd.Series([None] * len(df), index=df.index)
        if dtype == "Int64":
            values = pd.to_numeric(values, errors="coerce").round()
        elif dtype == "float64":
            values = pd.to_numeric(values, errors="coerce")
        else:
            values = values.map(lambda v: None if _missing(v) else str(v))
        out[col] = values.astype(dtype)
    extra = sorted(
        c for c in df if c not in columns and not (tail_prefix and c.startswith(tail_prefix))
    )
    for col in extra:
        out[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in (c for c in df if tail_prefix and c.startswith(tail_prefix)):
        out[col] = _uniform(df[col])
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _uniform(values: pd.Series) -> pd.Series:
    """One Parquet-friendly type per ``arch.*`` column: Int64, float64, boolean or string."""
    present = [v for v in values if not _missing(v)]
    if present and all(isinstance(v, bool) for v in present):
        return values.astype("boolean")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return values.astype("Int64")
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return values.astype("float64")
    return values.map(lambda v: None if _missing(v) else str(v)).astype("string")
