"""Tabular benchmarks: replay recorded results, build our own tables, measure search efficiency.

A *table* records, once, what every architecture of a space scored (NAS-Bench-201 and friends,
or one raynas built by exhaustive evaluation): strategies are then compared in seconds instead
of GPU-days, through the same searchers.

- :mod:`raynas.bench.table`: load and validate a table (:func:`load_table`), index it by
  ``arch_id``, replay views (final value per arch, per-epoch curves), the optimum.
- :mod:`raynas.bench.search`: drive a strategy by hand against a table; per-seed trajectories.
- :mod:`raynas.bench.build`: evaluate every member of a small space with the normal runner and
  write the table (resumable).
- :mod:`raynas.bench.convert`: official NAS-Bench-201 / NATS-Bench files -> our table format.
- :mod:`raynas.bench.cli`: ``raynas bench build | search | convert``.

Example:
    >>> from raynas.bench import load_table, run_searches, summarize
    >>> table = load_table("benchmarks/data/nb201-3ops-digits.parquet")
    >>> runs = run_searches(table, "evolution", metric="val_acc", report="test_acc",
    ...                     budget=100, seeds=range(10))
    >>> summarize(runs)["mean"]
"""

from __future__ import annotations

from raynas.lazy import lazy_getattr

# Loaded on first use, so `raynas --help` (which imports raynas.bench.cli) stays fast.
_LAZY = {
    "raynas.bench.search": ("SearchRun", "run_search", "run_searches", "summarize"),
    "raynas.bench.table": ("SEED_MODES", "BenchTable", "TableError", "load_table"),
}
__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "SEED_MODES",
    "BenchTable",
    "SearchRun",
    "TableError",
    "load_table",
    "run_search",
    "run_searches",
    "summarize",
]
