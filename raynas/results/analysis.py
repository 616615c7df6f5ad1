"""Experiment folder -> pandas: one row per trial, learning curves in long form, top-k, Pareto.

:class:`ExperimentResult` holds the tables :mod:`raynas.results.analysis_read` reads from the folder
(which files, the trial statuses, the schema) and answers the queries on them; like the
reader it needs no Ray and no GPU, so it works while an experiment runs and after a crash.

Example:
    >>> result = raynas.load("runs/quickstart")
    >>> result.trials[["arch", "val_acc", "params"]].head()
    >>> result.top(5)
    >>> result.pareto({"val_acc": "max", "params": "min"})
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from raynas.files import CONFIG_FILE, STOPS_FILE
from raynas.results.analysis_read import (
    CURVE_COLUMNS,
    OK_STATUSES,
    SCHEMA_VERSION,
    STATUSES,
    STOP_STATUS,
    TRIAL_COLUMNS,
    arch_text,
    error_line,
    flatten_arch,
    metric_mode,
    read_json,
    read_tables,
)

#: The public API; the schema and the reader's public helpers are re-exported from
#: :mod:`raynas.results.analysis_read`, where they live.
__all__ = [
    "CURVE_COLUMNS",
    "OK_STATUSES",
    "SCHEMA_VERSION",
    "STATUSES",
    "STOP_STATUS",
    "TRIAL_COLUMNS",
    "ExperimentResult",
    "arch_text",
    "error_line",
    "experiment_folder",
    "flatten_arch",
    "is_experiment_folder",
    "load",
    "metric_mode",
    "non_dominated",
    "short_arch",
]


class ExperimentResult:
    """The analysis of one experiment folder.

    Attributes:
        path: The experiment folder.
        config: The experiment config (dict) when raynas wrote one, else ``{}``.
        metric: The objective metric (default ``val_acc``); ``mode`` its direction.
        objectives: ``[(metric, mode), ...]``: the objective and ``objective.also``.
        finished: Whether Tune recorded every trial as ended.
        trials: One row per trial (columns: :data:`TRIAL_COLUMNS`, extra metrics, ``arch.*``).
        curves: Long form, one row per trial and epoch (:data:`CURVE_COLUMNS`, extra metrics).

    Raises:
        FileNotFoundError: ``path`` is not a folder.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()
        if not self.path.is_dir():
            raise FileNotFoundError(
                f"experiment folder {str(self.path)!r} does not exist; pass the folder that "
                "`raynas run` printed (<storage>/<name>)"
            )
        try:
            cfg = yaml.safe_load((self.path / CONFIG_FILE).read_text())
        except (OSError, yaml.YAMLError):
            cfg = None
        self.config: dict[str, Any] = cfg if isinstance(cfg, dict) else {}
        objective = self.config.get("objective") or {}
        self.metric: str = objective.get("metric", "val_acc")
        self.mode: str = objective.get("mode", "max")
        self.objectives: list[tuple[str, str]] = [(self.metric, self.mode)] + [
            (o["metric"], o.get("mode", "min")) for o in objective.get("also") or []
        ]
        self.max_epochs: int | None = (self.config.get("train") or {}).get("epochs")
        stops = read_json(self.path / STOPS_FILE)
        #: ``{trial_id: reason}`` of the trials the driver stopped (``budget.time_s``).
        self.stops: dict[str, str] = stops if isinstance(stops, dict) else {}
        self.trials, self.curves, self.finished = read_tables(
            self.path, self.metric, self.mode, self.max_epochs, self.stops
        )

    # --- queries ----------------------------------------------------------------------
    def status_counts(self) -> dict[str, int]:
        """``{status: number of trials}`` in :data:`STATUSES` order, zero counts left out."""
        counts = self.trials["status"].value_counts() if len(self.trials) else {}
        return {s: int(counts[s]) for s in STATUSES if s in counts}

    def errors(self) -> list[tuple[str, int]]:
        """Each distinct trial error (its exception line) with the number of trials it ended,
        most frequent first; the full traceback is in each trial's ``error.txt``."""
        if self.trials.empty:
            return []
        failed = self.trials[self.trials["status"] == "error"]["error"].dropna()
        counts = failed.value_counts(sort=False)
        return sorted(((str(k), int(v)) for k, v in counts.items()), key=lambda kv: -kv[1])

    def succeeded(self) -> bool:
        """Whether at least one trial ended with a usable result (:data:`OK_STATUSES`)."""
        return bool(len(self.trials)) and bool(self.trials["status"].isin(OK_STATUSES).any())

    def format_errors(self, limit: int = 5) -> str:
        """``errors: 3 trials: ValueError: ...`` lines for the summary; empty without errors."""
        errors = self.errors()
        if not errors:
            return ""
        lines = [f"errors (full tracebacks in each trial's error.txt, e.g. {self._error_dir()}):"]
        lines += [f"  {n} trial(s): {text}" for text, n in errors[:limit]]
        if len(errors) > limit:
            lines.append(f"  ... and {len(errors) - limit} other distinct errors")
        return "\n".join(lines)

    def _error_dir(self) -> str:
        rows = self.trials[self.trials["status"] == "error"]
        return str(Path(str(rows["trial_dir"].iloc[0])) / "error.txt") if len(rows) else ""

    def mode_of(self, metric: str) -> str:
        """The mode of ``metric``: from the objectives, else guessed by :func:`metric_mode`."""
        modes = dict(self.objectives)
        base = metric.removeprefix("best_")
        return modes.get(metric, modes.get(base, metric_mode(base)))

    def top(
        self,
        k: int = 5,
        metric: str | None = None,
        mode: str | None = None,
        *,
        include_running: bool = False,
    ) -> pd.DataFrame:
        """The ``k`` best trials by ``metric`` (default: the objective).

        Only trials that ended with a usable result rank (:data:`OK_STATUSES`); a ``running``
        trial (still training, or left so by a crashed driver) ranks only with
        ``include_running=True``, for a live look at a search.
        """
        metric = metric or self.metric
        mode = mode or self.mode_of(metric)
        if self.trials.empty or metric not in self.trials:
            return self.trials.head(0)
        statuses = (*OK_STATUSES, "running") if include_running else OK_STATUSES
        ok = self.trials[self.trials["status"].isin(statuses) & self.trials[metric].notna()]
        return ok.sort_values(metric, ascending=(mode == "min"), kind="stable").head(k)

    def best(self) -> pd.Series | None:
        """The best ended trial's row, or None when none reported the objective."""
        top = self.top(1)
        return None if top.empty else top.iloc[0]

    def default_objectives(self) -> list[tuple[str, str]]:
        """The experiment's objectives; a single objective is paired with ``params`` (min)."""
        objs = list(self.objectives)
        return objs if len(objs) > 1 else [*objs, ("params", "min")]

    def pareto(
        self, objectives: Mapping[str, str] | Sequence[tuple[str, str]] | None = None
    ) -> pd.DataFrame:
        """The non-dominated trials for ``{"val_acc": "max", "params": "min", ...}``.

        Any number of objectives; failed trials and rows missing a value are left out; equal
        points are all kept. Sorted by the first objective, best first.

        Raises:
            ValueError: An objective whose mode is not ``max`` or ``min``, or an unknown column.
        """
        objs = (
            list(objectives.items())
            if isinstance(objectives, Mapping)
            else list(objectives or self.default_objectives())
        )
        for metric, mode in objs:
            if mode not in ("max", "min"):
                raise ValueError(f"pareto: mode of {metric!r} must be 'max' or 'min', got {mode!r}")
            if metric not in self.trials:
                raise ValueError(
                    f"pareto: no column {metric!r}; numeric columns are "
                    f"{sorted(self.trials.select_dtypes('number').columns)}"
                )
        df = self.trials[self.trials["status"].isin(OK_STATUSES)].dropna(
            subset=[m for m, _ in objs]
        )
        if df.empty:
            return df
        vals = np.column_stack(
            [df[m].to_numpy(dtype=float) * (-1.0 if mode == "max" else 1.0) for m, mode in objs]
        )
        keep = non_dominated(vals)
        first, mode = objs[0]
        return df[keep].sort_values(first, ascending=(mode == "min"), kind="stable")

    def checkpoint(self, trial_id: str) -> Path | None:
        """The trial's last checkpoint folder (highest number), or None."""
        rows = self.trials[self.trials["trial_id"] == trial_id]
        if rows.empty:
            return None
        found = sorted(Path(str(rows.iloc[0]["trial_dir"])).glob("checkpoint_*"))
        found = [p for p in found if p.is_dir()]
        return found[-1] if found else None

    def trial_config(self, trial_id: str) -> dict[str, Any]:
        """The config trial ``trial_id``'s trainable saw (``arch``, ``space``, ``data``, ...).

        Tune records only each trial's own part (``params.json``: ``arch``, and ``train``
        under PBT); the settings all trials share are rebuilt from the experiment's
        ``raynas_experiment.yaml`` and the trial's part goes on top.

        Raises:
            KeyError: no such trial.
        """
        from raynas.experiment.config import ConfigError, trial_settings
        from raynas.experiment.config_load import load_config

        rows = self.trials[self.trials["trial_id"] == trial_id]
        if rows.empty:
            raise KeyError(f"no trial {trial_id!r} in {str(self.path)!r}")
        own = read_json(Path(str(rows.iloc[0]["trial_dir"])) / "params.json") or {}
        try:
            shared = trial_settings(load_config(self.config)) if self.config else {}
        except ConfigError:  # a config this version no longer reads: the trial's own part
            shared = {}
        return {**shared, **own}

    # --- output -----------------------------------------------------------------------
    def to_parquet(self, out_dir: str | Path) -> list[Path]:
        """Write ``trials.parquet`` and ``curves.parquet`` (stable schema) into ``out_dir``."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        out = Path(out_dir).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, df in (("trials", self.trials), ("curves", self.curves)):
            table = pa.Table.from_pandas(df, preserve_index=False)
            meta = {**(table.schema.metadata or {}), b"raynas_schema": SCHEMA_VERSION.encode()}
            pq.write_table(table.replace_schema_metadata(meta), out / f"{name}.parquet")
            paths.append(out / f"{name}.parquet")
        return paths

    def format_top(self, k: int = 5) -> str:
        """The top-k table as text: arch string, metric, params, flops, latency_ms."""
        top = self.top(k)
        if top.empty:
            return f"no completed trial reported {self.metric!r}"
        cols = ["trial_id", "status", "arch", self.metric, "params", "flops", "latency_ms"]
        cols = list(dict.fromkeys(c for c in [*cols, "epochs"] if c in top))
        shown = top[cols].copy()
        if "arch" in shown:
            shown["arch"] = [short_arch(a) for a in shown["arch"]]
        with pd.option_context("display.max_colwidth", 100, "display.width", 250):
            return f"top {len(top)} by {self.metric} ({self.mode}):\n" + shown.to_string(
                index=False, float_format=lambda v: f"{v:.4g}"
            )


def short_arch(arch: Any, width: int = 100) -> str:
    """An arch (string, or JSON-able) on one line of at most ``width`` characters (``...``
    marks a cut); ``?`` if there is none."""
    if arch is None or (isinstance(arch, float) and math.isnan(arch)):
        return "?"
    text = arch if isinstance(arch, str) else json.dumps(arch, separators=(",", ":"), default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def non_dominated(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of ``values`` no other row dominates (every column minimised)."""
    vals = np.asarray(values, dtype=float)
    if len(vals) == 0:
        return np.zeros(0, dtype=bool)
    le = (vals[:, None, :] <= vals[None, :, :]).all(axis=2)
    lt = (vals[:, None, :] < vals[None, :, :]).any(axis=2)
    dominated = np.asarray((le & lt).any(axis=0), dtype=bool)  # [i, j]: i dominates j
    return ~dominated


def is_experiment_folder(path: str | Path) -> bool:
    """Whether ``path`` holds an experiment: raynas' config, Tune's state or a trial folder."""
    folder = Path(path)
    if (folder / CONFIG_FILE).is_file() or any(folder.glob("experiment_state-*.json")):
        return True
    return any(folder.glob("*/params.json")) or any(folder.glob("*/result.json"))


def experiment_folder(path: str | Path) -> Path:
    """``path`` as an experiment folder, for a command's ``dir`` argument.

    Raises:
        ConfigError: it does not exist, or holds no experiment (see
            :func:`is_experiment_folder`); the message names ``dir`` and the fix.
    """
    from raynas.experiment.config import ConfigError

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(
            [f"dir: folder {str(folder)!r} does not exist; pass the folder `raynas run` printed "
             "(<storage>/<name>)"]
        )  # fmt: skip
    if not is_experiment_folder(folder):
        raise ConfigError(
            [f"dir: {str(folder)!r} is not an experiment folder (no {CONFIG_FILE}, no Tune "
             "experiment state, no trial folders); pass the folder `raynas run` printed "
             "(<storage>/<name>)"]
        )  # fmt: skip
    return folder


def load(path: str | Path) -> ExperimentResult:
    """Analyse the experiment folder ``path`` (works during a run and after a crash).

    Raises:
        FileNotFoundError: ``path`` is not a folder.
    """
    return ExperimentResult(path)
