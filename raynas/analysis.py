"""Experiment folder -> pandas: one row per trial, learning curves in long form, top-k.

Reads only files (no Ray, no GPU), so it works while an experiment runs and after a crash:
each trial folder Tune writes holds ``params.json`` (the trial's config, ``arch`` included),
``result.json`` (one JSON line per reported result) and ``error.txt`` when the trial failed.

Example:
    >>> result = raynas.load("runs/quickstart")
    >>> result.trials[["arch", "val_acc", "params"]].head()
    >>> result.top(5)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

CONFIG_FILE = "raynas_experiment.yaml"
STATUSES = ("completed", "early_stopped", "error", "diverged", "constraint_violated", "running")
_CURVE_KEYS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "lr",
    "time_this_iter_s",
    "time_total_s",
    "epoch_time_s",
)


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


def _read_results(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if not path.is_file():
        return rows
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a half-written last line after a crash
    return rows


class ExperimentResult:
    """The analysis of one experiment folder.

    Attributes:
        path: The experiment folder.
        config: The experiment config (dict) when raynas wrote one.
        trials: One row per trial (see module docstring).
        curves: Long form: ``trial_id, epoch`` and every per-epoch metric.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()
        if not self.path.is_dir():
            raise FileNotFoundError(f"experiment folder {str(self.path)!r} does not exist")
        cfg = self.path / CONFIG_FILE
        self.config: dict[str, Any] = yaml.safe_load(cfg.read_text()) if cfg.is_file() else {}
        objective = self.config.get("objective", {})
        self.metric: str = objective.get("metric", "val_acc")
        self.mode: str = objective.get("mode", "max")
        self.max_epochs: int | None = self.config.get("train", {}).get("epochs")
        self.trials, self.curves = self._load()

    def _trial_dirs(self) -> list[Path]:
        return sorted(p.parent for p in self.path.glob("*/params.json"))

    def _load(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        rows, curve_rows = [], []
        finished = _experiment_finished(self.path)
        for tdir in self._trial_dirs():
            params = json.loads((tdir / "params.json").read_text())
            results = _read_results(tdir / "result.json")
            last = results[-1] if results else {}
            trial_id = last.get("trial_id") or "_".join(tdir.name.split("_")[1:3])
            error_file = tdir / "error.txt"
            status = _status(last, error_file.is_file(), finished, self.max_epochs)
            row: dict[str, Any] = {
                "trial_id": trial_id,
                "status": status,
                "arch_id": last.get("arch_id"),
                "arch": last.get("arch_str"),
                "epochs": last.get("epoch", 0),
                "wall_time_s": last.get("time_total_s"),
                "params": last.get("params"),
                "flops": last.get("flops"),
                "latency_ms": last.get("latency_ms"),
                "error": error_file.read_text().strip().splitlines()[-1]
                if error_file.is_file() and error_file.read_text().strip()
                else None,
                "trial_dir": str(tdir),
            }
            for key in ("val_acc", "val_loss", "train_acc", "train_loss", "test_acc", "test_loss"):
                if key in last:
                    row[key] = last[key]
            values = [
                float(r[self.metric])
                for r in results
                if isinstance(r.get(self.metric), int | float) and math.isfinite(r[self.metric])
            ]
            if values:
                row[f"best_{self.metric}"] = max(values) if self.mode == "max" else min(values)
            for key in ("parent", "mutation", "inherited"):
                if key in last:
                    row[key] = last[key]
            row.update(flatten_arch(params.get("arch", {})))
            rows.append(row)
            for r in results:
                if "epoch" in r and r.get("status", "ok") == "ok":
                    curve_rows.append(
                        {"trial_id": trial_id, **{k: r[k] for k in _CURVE_KEYS if k in r}}
                    )
        trials = pd.DataFrame(rows)
        if not trials.empty:
            trials = trials.sort_values("trial_id", kind="stable").reset_index(drop=True)
        return trials, pd.DataFrame(curve_rows)

    # --- queries ----------------------------------------------------------------------
    def status_counts(self) -> dict[str, int]:
        if self.trials.empty:
            return {}
        return {k: int(v) for k, v in self.trials["status"].value_counts().items()}

    def top(self, k: int = 5, metric: str | None = None, mode: str | None = None) -> pd.DataFrame:
        """The ``k`` best trials by ``metric`` (default: the objective), failures excluded."""
        metric = metric or self.metric
        mode = mode or self.mode
        if self.trials.empty or metric not in self.trials:
            return self.trials.head(0)
        ok = self.trials[self.trials["status"].isin(["completed", "early_stopped", "running"])]
        ok = ok[ok[metric].notna()]
        return ok.sort_values(metric, ascending=(mode == "min"), kind="stable").head(k)

    def best(self) -> pd.Series | None:
        top = self.top(1)
        return None if top.empty else top.iloc[0]

    def pareto(self, objectives: Mapping[str, str] | Sequence[tuple[str, str]]) -> pd.DataFrame:
        """Non-dominated trials for ``{"val_acc": "max", "params": "min", ...}``."""
        objs = list(objectives.items()) if isinstance(objectives, Mapping) else list(objectives)
        df = self.trials.dropna(subset=[m for m, _ in objs])
        if df.empty:
            return df
        signed = pd.DataFrame({m: df[m] * (-1 if mode == "max" else 1) for m, mode in objs})
        vals = signed.to_numpy(dtype=float)
        keep = []
        for i in range(len(vals)):
            dominated = ((vals <= vals[i]).all(axis=1) & (vals < vals[i]).any(axis=1)).any()
            keep.append(not dominated)
        return df[keep]

    def to_parquet(self, out_dir: str | Path) -> list[Path]:
        """Write ``trials.parquet`` and ``curves.parquet`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "trials.parquet", out / "curves.parquet"]
        self.trials.to_parquet(paths[0], index=False)
        self.curves.to_parquet(paths[1], index=False)
        return paths

    def format_top(self, k: int = 5) -> str:
        """The top-k table as text: arch string, metric, params, flops, latency_ms."""
        top = self.top(k)
        if top.empty:
            return f"no completed trial reported {self.metric!r}"
        cols = ["trial_id", "arch", self.metric, "params", "flops", "latency_ms", "epochs"]
        cols = [c for c in cols if c in top]
        with pd.option_context("display.max_colwidth", 100, "display.width", 200):
            return f"top {len(top)} by {self.metric} ({self.mode}):\n" + top[cols].to_string(
                index=False, float_format=lambda v: f"{v:.4g}"
            )


def _experiment_finished(path: Path) -> bool:
    """Whether Tune recorded the experiment as over (no trial pending or running)."""
    states = sorted(path.glob("experiment_state-*.json"))
    if not states:
        return False
    try:
        data = json.loads(states[-1].read_text())
    except (json.JSONDecodeError, OSError):
        return False
    statuses = []
    for item in data.get("trial_data", []):
        blob = item[0] if isinstance(item, list) else item
        try:
            trial = json.loads(blob) if isinstance(blob, str) else blob
        except json.JSONDecodeError:
            continue
        if isinstance(trial, dict) and "status" in trial:
            statuses.append(trial["status"])
    return bool(statuses) and all(s in ("TERMINATED", "ERROR") for s in statuses)


def _status(last: Mapping[str, Any], errored: bool, finished: bool, max_epochs: int | None) -> str:
    reported = last.get("status")
    if reported in ("constraint_violated", "diverged"):
        return str(reported)
    # Tune marks the last result of a scheduler-stopped trial done=True too: when the
    # planned epochs are known, only reaching them counts as completed.
    if max_epochs is not None:
        if last.get("epoch", 0) >= max_epochs:
            return "completed"
    elif last.get("done"):
        return "completed"
    if errored:
        return "error"
    return "early_stopped" if finished and last else "running"


def load(path: str | Path) -> ExperimentResult:
    """Analyse the experiment folder ``path`` (works during a run and after a crash)."""
    return ExperimentResult(path)
