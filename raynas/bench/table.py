"""Tabular benchmark files: load, validate, index by architecture, replay.

The format (Parquet or CSV), one row per recorded result:

- ``arch`` (required): the space's canonical string (for ``nb201`` the NAS-Bench-201 string
  ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``) or the architecture as JSON (``{"cell": ...}``);
- ``epoch`` (optional): learning curves, one row per epoch; without it each run is one row;
- ``seed`` (optional): several recorded runs of the same architecture;
- any numeric metric columns (``val_acc``, ``test_acc``, ``params``, ``train_time_s``, ...);
  a metric may be empty (NaN) on some rows, e.g. ``test_acc`` recorded at the last epoch only.

A Parquet table written by raynas also says its space in the schema metadata (key
``raynas.bench``: ``{"space": ..., "space_args": ...}``), so ``load_table(path)`` needs no
space argument. Rows are counted from 0, header excluded, in every error message.

Replay views pick, per architecture, one recorded run by seed (``seed_mode="by_seed"``: the
recorded seed ``seeds[seed % len(seeds)]``) or the mean over the recorded runs
(``seed_mode="mean"``); the *final* value of a run is its row at its last epoch.

Example:
    >>> table = load_table("benchmarks/data/nb201-3ops-digits.parquet")
    >>> arch_id, best = table.optimum("test_acc", "max")
    >>> table.curve(table.arch(arch_id), seed_mode="by_seed", seed=0)[["epoch", "val_acc"]]

Kept as one module (over 450 lines): the table format, its validation, the index by
architecture and the replay are one file format's reader.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raynas.space import InvalidArchitecture, Space
from raynas.space.space import canonical_arch_id

SEED_MODES = ("by_seed", "mean")
KEY_COLUMNS = ("arch", "epoch", "seed")
META_KEY = b"raynas.bench"
FORMATS = (".parquet", ".csv")


class TableError(ValueError):
    """A table that does not follow the format; the message names the row or column."""


class ArchNotInTable(TableError, KeyError):
    """An architecture the table holds no record of."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``raynas.bench`` metadata of a Parquet table (``{}`` for CSV or none)."""
    p = Path(path)
    if p.suffix.lower() != ".parquet":
        return {}
    import pyarrow.parquet as pq

    meta = pq.read_schema(p).metadata or {}
    raw = meta.get(META_KEY)
    return json.loads(raw) if raw else {}


def write_table(
    df: pd.DataFrame, path: str | Path, *, meta: Mapping[str, Any] | None = None
) -> Path:
    """Write ``df`` as Parquet (with ``meta`` in the schema metadata) or CSV, by suffix.

    Raises:
        TableError: the suffix is neither ``.parquet`` nor ``.csv``.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in FORMATS:
        raise TableError(f"--out {str(p)!r}: a table is .parquet or .csv, got {suffix!r}")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    if suffix == ".csv":
        df.to_csv(tmp, index=False)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pat = pa.Table.from_pandas(df, preserve_index=False)
        extra = {META_KEY: json.dumps(dict(meta or {}), sort_keys=True).encode()}
        pat = pat.replace_schema_metadata({**(pat.schema.metadata or {}), **extra})
        pq.write_table(pat, tmp)
    tmp.replace(p)
    return p


def _read_frame(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"table {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise TableError(f"table {str(path)!r}: a table is .parquet or .csv, got {suffix!r}")
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow / csv parser errors of many kinds
        raise TableError(f"table {str(path)!r} cannot be read as {suffix[1:]}: {err}") from err


def _resolve_space(
    space: Space | str | None, space_args: Mapping[str, Any] | None, meta: dict, where: str
) -> tuple[Space, str | None, dict[str, Any]]:
    from raynas.registry import resolve_space

    if isinstance(space, Space):
        return space, None, {}
    name = space or meta.get("space")
    if not name:
        raise TableError(
            f"table {where} does not say its space (no raynas metadata); pass the space "
            "(CLI: --space NAME, with --space-arg KEY=VALUE for its arguments)"
        )
    args = space_args
    if args is None:
        args = meta.get("space_args", {}) if meta.get("space") == name else {}
    return resolve_space(str(name), dict(args)), str(name), dict(args)


def _as_int_column(df: pd.DataFrame, col: str) -> np.ndarray:
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)) | (values < 0))
    if len(bad):
        i = int(bad[0])
        value = df[col].iloc[i]
        value = value.item() if isinstance(value, np.generic) else value
        raise TableError(
            f"row {i}, column {col!r}: {value!r} is not a whole number >= 0; every "
            f"{col} must be one"
        )
    return values.astype(np.int64)


class BenchTable:
    """A validated table indexed by architecture. Build it with :func:`load_table`.

    Attributes:
        space: The space the architectures belong to.
        df: The rows: ``arch`` (canonical string), ``arch_id``, ``epoch``, ``seed`` and the
            metric columns, sorted by ``arch_id, seed, epoch``.
        metrics: The numeric metric columns.
        seeds: The recorded seeds, sorted (``[0]`` when the table has no seed column).
        has_curves: Whether the table had an ``epoch`` column.
        meta: The table's raynas metadata (``{}`` if none).
        path: Where it was loaded from (None for an in-memory table).
        space_name: The registered name (or YAML path) of the space, when known.
        space_args: Its arguments.
    """

    def __init__(
        self,
        df: pd.DataFrame,
        space: Space,
        *,
        metrics: Sequence[str] | None = None,
        meta: Mapping[str, Any] | None = None,
        path: str | Path | None = None,
    ) -> None:
        self.space = space
        self.meta = dict(meta or {})
        self.path = Path(path) if path is not None else None
        self.space_name: str | None = None
        self.space_args: dict[str, Any] = {}
        where = repr(str(path)) if path is not None else "(in memory)"
        if "arch" not in df.columns:
            raise TableError(
                f"table {where}: column 'arch' is missing (the architecture, as the space's "
                f"canonical string or JSON); the table has columns {list(map(str, df.columns))}"
            )
        self.has_curves = "epoch" in df.columns
        df = df.reset_index(drop=True)
        epoch = _as_int_column(df, "epoch") if self.has_curves else np.ones(len(df), np.int64)
        seed = _as_int_column(df, "seed") if "seed" in df.columns else np.zeros(len(df), np.int64)
        self.metrics = self._metric_columns(df, metrics)
        arch_str, arch_id = self._parse_archs(df["arch"])
        out = pd.DataFrame({"arch": arch_str, "arch_id": arch_id, "epoch": epoch, "seed": seed})
        for m in self.metrics:
            out[m] = pd.to_numeric(df[m]).astype(float).to_numpy()
        dup = out.duplicated(["arch_id", "seed", "epoch"], keep=False).to_numpy()
        if dup.any():
            first = int(np.flatnonzero(dup)[0])
            key = out.iloc[first]
            same = out.index[
                dup
                & (out["arch_id"] == key["arch_id"]).to_numpy()
                & (out["seed"] == key["seed"]).to_numpy()
                & (out["epoch"] == key["epoch"]).to_numpy()
            ].tolist()
            raise TableError(
                f"rows {same[0]} and {same[1]}: duplicate record of arch {key['arch']!r} seed "
                f"{int(key['seed'])} epoch {int(key['epoch'])}; keep one row per (arch, seed, "
                "epoch), or tell repeated runs apart with a 'seed' column"
            )
        self.df = out.sort_values(["arch_id", "seed", "epoch"], kind="stable").reset_index(
            drop=True
        )
        self.seeds = sorted(int(s) for s in np.unique(seed))
        starts = np.flatnonzero(
            np.r_[True, self.df["arch_id"].to_numpy()[1:] != self.df["arch_id"].to_numpy()[:-1]]
        )
        ids = self.df["arch_id"].to_numpy()[starts]
        bounds = np.r_[starts, len(self.df)]
        self._index = {str(a): (int(bounds[k]), int(bounds[k + 1])) for k, a in enumerate(ids)}
        first_arch = self.df["arch"].to_numpy()[starts]
        self._archs = {str(a): str(first_arch[k]) for k, a in enumerate(ids)}
        # seed, epoch, metrics... as floats, in df's order: replays slice it, no pandas per trial
        self._values = self.df[["seed", "epoch", *self.metrics]].to_numpy(dtype=float)
        self._final_cache: dict[tuple[str, int], pd.DataFrame] = {}

    # --- construction helpers -------------------------------------------------------
    @staticmethod
    def _metric_columns(df: pd.DataFrame, wanted: Sequence[str] | None) -> list[str]:
        cols = [str(c) for c in df.columns]
        if wanted is not None:
            for m in wanted:
                if m in KEY_COLUMNS:
                    raise TableError(f"column {m!r} is a key column, not a metric")
                if m not in cols:
                    raise TableError(f"column {m!r} is missing; the table has columns {cols}")
                if not _is_numeric(df[m]):
                    raise TableError(
                        f"column {m!r} must be numeric, got {df[m].dtype} (e.g. "
                        f"{df[m].iloc[0]!r} in row 0)"
                    )
            return list(dict.fromkeys(wanted))
        metrics = [
            c for c in cols if c not in KEY_COLUMNS and c != "arch_id" and _is_numeric(df[c])
        ]
        if not metrics:
            raise TableError(f"the table has no numeric metric column; its columns are {cols}")
        return metrics

    def _parse_archs(self, column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        if (codes < 0).any():
            i = int(np.flatnonzero(codes < 0)[0])
            raise TableError(f"row {i}, column 'arch': empty; every row needs an architecture")
        strings, ids = [], []
        for k, value in enumerate(uniques):
            try:
                arch = self._parse_arch(value)
            except InvalidArchitecture as err:
                i = int(np.flatnonzero(codes == k)[0])
                raise TableError(
                    f"row {i}, column 'arch': {value!r} is not in space {self.space.name!r} "
                    f"({err}); write archs as the space's string, e.g. "
                    f"{self.space.to_string(self.space.sample(0))!r}, or as JSON"
                ) from err
            strings.append(self.space.to_string(arch))
            ids.append(canonical_arch_id(arch))  # _parse_arch returned it canonical
        return np.asarray(strings, dtype=object)[codes], np.asarray(ids, dtype=object)[codes]

    def _parse_arch(self, value: Any) -> dict[str, Any]:
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                return self.space.canonical(json.loads(value))
            except json.JSONDecodeError as err:
                raise InvalidArchitecture("arch", f"not valid JSON: {err}") from err
        if not isinstance(value, str):
            raise InvalidArchitecture("arch", f"must be a string, got {type(value).__name__}")
        return self.space.from_string(value)

    # --- lookups ------------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of distinct architectures."""
        return len(self._index)

    def __contains__(self, arch: object) -> bool:
        try:
            return self.space.arch_id(arch) in self._index
        except InvalidArchitecture:
            return False

    @property
    def arch_ids(self) -> list[str]:
        return list(self._index)

    def arch(self, arch_id: str) -> dict[str, Any]:
        """The architecture (a dict) recorded under ``arch_id``."""
        return self.space.from_string(self._archs[arch_id])

    def record_seed(self, seed: int) -> int:
        """The recorded seed a trial with ``seed`` replays (``seeds[seed % len(seeds)]``)."""
        return self.seeds[int(seed) % len(self.seeds)]

    def rows(self, arch: Any) -> pd.DataFrame:
        """Every row recorded for ``arch``.

        Raises:
            ArchNotInTable: the table has no record of ``arch``.
        """
        start, stop = self._span(arch)
        return self.df.iloc[start:stop]

    def _span(self, arch: Any) -> tuple[int, int]:
        arch_id = self.space.arch_id(arch)
        if arch_id not in self._index:
            where = f" {str(self.path)!r}" if self.path else ""
            raise ArchNotInTable(
                f"arch {self.space.to_string(arch)!r} (id {arch_id}) is not in table{where}, "
                f"which records {len(self)} of the {self.space.cardinality} archs of space "
                f"{self.space.name!r}; search a space the table covers (check --space-arg / "
                "space_args) or rebuild the table"
            )
        return self._index[arch_id]

    def curve(self, arch: Any, *, seed_mode: str = "mean", seed: int = 0) -> pd.DataFrame:
        """Per-epoch metrics of ``arch``: one recorded run (``by_seed``) or their mean."""
        values = self.curve_array(arch, seed_mode=seed_mode, seed=seed)
        out = pd.DataFrame(values[:, 1:], columns=self.metrics)
        out.insert(0, "epoch", values[:, 0].astype(np.int64))
        return out

    def curve_array(self, arch: Any, *, seed_mode: str = "mean", seed: int = 0) -> np.ndarray:
        """:meth:`curve` as a float array, columns ``["epoch", *metrics]``, a row per epoch.

        The replay's fast path: a slice of the table, averaged over seeds with numpy (NaNs
        skipped, as pandas' mean does) for ``mean``.
        """
        _check_seed_mode(seed_mode)
        start, stop = self._span(arch)
        rows = self._values[start:stop]
        seeds = rows[:, 0]
        if seed_mode == "by_seed":
            rec = self.record_seed(seed)
            picked = rows[seeds == rec]
            if not len(picked):
                raise ArchNotInTable(
                    f"arch {self._archs[self.space.arch_id(arch)]!r} has no run with seed {rec} "
                    f"in the table (it has {sorted({int(s) for s in seeds})}); use seed_mode "
                    "'mean'"
                )
            return picked[:, 1:].copy()
        if (seeds == seeds[0]).all():
            return rows[:, 1:].copy()
        epochs, where = np.unique(rows[:, 1], return_inverse=True)
        metrics = rows[:, 2:]
        known = ~np.isnan(metrics)
        sums = np.zeros((len(epochs), metrics.shape[1]))
        counts = np.zeros_like(sums)
        np.add.at(sums, where, np.where(known, metrics, 0.0))
        np.add.at(counts, where, known)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return np.column_stack([epochs, means])

    def final(self, *, seed_mode: str = "mean", seed: int = 0) -> pd.DataFrame:
        """Final-epoch metrics of every arch, indexed by ``arch_id`` (cached).

        ``by_seed``: the row at the last epoch of the run with the picked seed (archs without
        that run are left out); ``mean``: the mean over runs of each run's last row.
        """
        _check_seed_mode(seed_mode)
        rec = self.record_seed(seed) if seed_mode == "by_seed" else -1
        key = (seed_mode, rec)
        if key not in self._final_cache:
            df = self.df if rec < 0 else self.df[self.df["seed"] == rec]
            last = df.groupby(["arch_id", "seed"], sort=False).tail(1)
            cols = ["epoch", *self.metrics]
            self._final_cache[key] = last.groupby("arch_id", sort=True)[cols].mean()
        return self._final_cache[key]

    def optimum(
        self, metric: str, mode: str = "max", *, seed_mode: str = "mean", seed: int = 0
    ) -> tuple[str, float]:
        """``(arch_id, value)`` of the best final ``metric`` in the table (NaNs ignored)."""
        self.require(metric)
        col = self.final(seed_mode=seed_mode, seed=seed)[metric].dropna()
        if col.empty:
            raise TableError(f"column {metric!r} has no value at any architecture's last epoch")
        arch_id = col.idxmax() if mode == "max" else col.idxmin()
        return str(arch_id), float(col[arch_id])

    def require(self, *metrics: str | None, flag: str = "column") -> None:
        """Raise a :class:`TableError` naming ``flag`` when a metric is not a table column."""
        for m in metrics:
            if m is not None and m not in self.metrics:
                raise TableError(
                    f"{flag}: {m!r} is not a metric column of the table; its metrics are "
                    f"{self.metrics}"
                )

    def summary(self) -> dict[str, Any]:
        """Counts for a one-line description: archs, rows, seeds, epochs, metrics."""
        return {
            "archs": len(self),
            "cardinality": self.space.cardinality,
            "rows": len(self.df),
            "seeds": self.seeds,
            "epochs": int(self.df["epoch"].max()) if len(self.df) else 0,
            "metrics": self.metrics,
        }


def _is_numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def _check_seed_mode(seed_mode: str) -> None:
    if seed_mode not in SEED_MODES:
        raise TableError(f"seed_mode must be one of {list(SEED_MODES)}, got {seed_mode!r}")


def load_table(
    path: str | Path,
    space: Space | str | None = None,
    *,
    space_args: Mapping[str, Any] | None = None,
    metrics: Sequence[str] | None = None,
) -> BenchTable:
    """Load and validate a Parquet or CSV table.

    Args:
        path: The table file (``.parquet`` or ``.csv``).
        space: The space (a :class:`Space`, or a registered name / YAML path); default: the
            one the table's raynas metadata names.
        space_args: Arguments of a named space; default: the metadata's when it names the same
            space, else none.
        metrics: The metric columns to keep (each must exist and be numeric); default: every
            numeric column other than ``arch``, ``epoch`` and ``seed``.

    Returns:
        The validated, indexed table.

    Raises:
        FileNotFoundError: no file at ``path``.
        TableError: a missing or non-numeric column, an arch not in the space, a bad epoch or
            seed, a duplicate row; the message names the row and column.
    """
    p = Path(path).expanduser()
    df = _read_frame(p)
    meta = read_meta(p)
    resolved, name, args = _resolve_space(space, space_args, meta, repr(str(p)))
    table = BenchTable(df, resolved, metrics=metrics, meta=meta, path=p)
    table.space_name, table.space_args = name, args
    return table


def finite(value: Any) -> float | None:
    """``float(value)`` when it is a finite number, else None."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
