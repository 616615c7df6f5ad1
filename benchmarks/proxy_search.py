"""Proxy-guided vs plain search on the shipped tables (zero-cost replay, seconds per search).

For each table, each zero-cost proxy and each strategy, runs ``--seeds`` seeded searches of
``max(--budgets)`` evaluations twice on the same seeds: plain, and guided by the proxy
(``strategy.proxy: {name, warmup_pool, move_candidates}``: the first proposals are the top of
a proxy-ranked random pool, each move the proxy's best of K candidates; for ``bo`` also the
proxy as one more surrogate input alone, ``proxy_feature: true``, rows ``PROXY (feature)``).
The real searchers are driven by :func:`raynas.bench.search.run_search`; the proxy's scores
come from a :class:`raynas.bench.search.TableProxy`, the same lookup ``raynas bench search
--proxy-table`` uses. Scoring costs no evaluation of the budget.

The scores are computed here, once per table, exactly as ``raynas proxies score --config``
computes them: each cell of the table built at initialisation (seeded by ``--seed`` and its
arch id) and scored on one seeded batch of ``--batch`` examples of the training split of the
table's build config (``examples/bench-nb201-digits.yaml``, and
``examples/bench-nb201-fashion-mnist.yaml`` for the Fashion-MNIST table, which needs
``dataset-fashion-mnist``; that table is left out, with a note, where the files are missing).
``--score-archs N`` scores only N sampled cells (tiny runs; unscored cells get no proxy
value, so the strategy treats them as the worst).

Search signal: ``val_acc`` (mean over the table's seeds); reported: the *test* column
(``test_acc``) of the arch with the best signal so far, mean +- std over seeds. For every
(strategy, budget) a one-sided Mann-Whitney U p-value of "guided > plain". The target of
issue 17 is checked for evolution: guided at budget 50 at least matches plain at budget 100
(mean guided@50 >= mean plain@100; the p-value of "plain@100 > guided@50" is given too).

Usage:
    .venv/bin/python benchmarks/proxy_search.py [--tables digits fmnist] [--proxies zico synflow]
        [--strategies evolution random local_search bo] [--budgets 25 50 100] [--seeds 30]
        [--warmup-pool 100] [--move-candidates 10] [--score-archs N] [--batch 64] [--jobs 2]
Prints one JSON line last: {"rows": [...], "targets": [...]}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
#: Table name -> (table file, its build config).
TABLES = {
    "digits": (
        REPO / "benchmarks" / "data" / "nb201-3ops-digits.parquet",
        REPO / "examples" / "bench-nb201-digits.yaml",
    ),
    "fmnist": (
        REPO / "benchmarks" / "data" / "nb201-3ops-fmnist.parquet",
        REPO / "examples" / "bench-nb201-fashion-mnist.yaml",
    ),
}
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
METRIC, REPORT = "val_acc", "test_acc"
_TABLES: dict[str, Any] = {}


def _table(path: str) -> Any:
    from raynas.bench.table import load_table

    if path not in _TABLES:
        _TABLES[path] = load_table(path)
    return _TABLES[path]


def _score(task: tuple[Any, list[str]]) -> list[dict[str, Any]]:
    """Score one chunk of cells (in a worker process)."""
    import torch

    from raynas.proxies.scoring import score_chunk

    torch.set_num_threads(1)
    job, archs = task
    return score_chunk(job, archs)


def proxy_scores(
    name: str, proxies: list[str], args: argparse.Namespace, pool: ProcessPoolExecutor
) -> tuple[pd.DataFrame, float]:
    """The proxy table of one shipped table (``raynas proxies score`` rows) and its seconds."""
    from raynas.proxies.scoring import config_job, select_archs

    table_path, config = TABLES[name]
    table = _table(str(table_path))
    job = config_job(config, tuple(proxies), seed=args.seed, batch_size=args.batch)
    every = args.score_archs is None
    archs = select_archs(table.space, every=every, sample=args.score_archs, seed=args.seed)
    chunks = [archs[i :: args.jobs * 4] for i in range(args.jobs * 4)]
    start = time.perf_counter()
    rows = [r for part in pool.map(_score, [(job, c) for c in chunks if c]) for r in part]
    return pd.DataFrame(rows), time.perf_counter() - start


def _search(task: tuple[str, str, int, dict[str, Any]]) -> Any:
    """One seeded search (in a worker process; the table is loaded once per worker)."""
    import torch

    from raynas.bench.search import run_search

    torch.set_num_threads(1)
    path, strategy, seed, kwargs = task
    return run_search(_table(path), strategy, seed=seed, **kwargs)


def _scorer(table: Any, scores: pd.DataFrame, proxy: str) -> Any:
    from raynas.bench.search import TableProxy
    from raynas.proxies.ensemble import oriented

    values = oriented(scores[proxy], proxy).replace(-np.inf, np.nan)
    return TableProxy(table.space, dict(zip(scores["arch_id"].astype(str), values)), proxy)


def _mwu(a: list[float], b: list[float]) -> float:
    """One-sided Mann-Whitney U p-value of "a > b" (1.0 when all values tie)."""
    from scipy.stats import mannwhitneyu

    if len(set(a) | set(b)) <= 1:
        return 1.0
    return float(mannwhitneyu(a, b, alternative="greater").pvalue)


def benchmark(name: str, args: argparse.Namespace, pool: ProcessPoolExecutor) -> dict[str, Any]:
    """Plain and guided searches on one table; prints its table, returns rows and targets."""
    table_path = str(TABLES[name][0])
    table = _table(table_path)
    scores, score_s = proxy_scores(name, args.proxies, args, pool)
    print(f"{name}: {len(scores)} cells scored with {args.proxies} in {score_s:.1f} s")
    budget = max(args.budgets)
    base = {"metric": METRIC, "report": REPORT, "budget": budget}
    runs: dict[tuple[str, str], list[Any]] = {}
    for strategy in args.strategies:
        tasks = [(table_path, strategy, s, base) for s in range(args.seeds)]
        runs[("plain", strategy)] = list(pool.map(_search, tasks, chunksize=1))
        for proxy in args.proxies:
            guide = {
                "name": proxy,
                "scorer": _scorer(table, scores, proxy),
                "warmup_pool": args.warmup_pool,
                "move_candidates": args.move_candidates,
            }
            kwargs = {**base, "strategy_args": {"proxy": guide}}
            tasks = [(table_path, strategy, s, kwargs) for s in range(args.seeds)]
            runs[(proxy, strategy)] = list(pool.map(_search, tasks, chunksize=1))
            if strategy == "bo" and not args.no_bo_feature:
                # The proxy as one more surrogate input only (no warm-up pool, no filter).
                feature = {**guide, "warmup_pool": 1, "move_candidates": 1}
                strategy_args = {"proxy": feature, "proxy_feature": True}
                tasks = [
                    (table_path, strategy, s, {**base, "strategy_args": strategy_args})
                    for s in range(args.seeds)
                ]
                runs[(f"{proxy} (feature)", strategy)] = list(pool.map(_search, tasks, chunksize=1))
    rows = []
    for (guide, strategy), found in runs.items():
        row: dict[str, Any] = {"table": name, "strategy": strategy, "proxy": guide}
        plain = runs[("plain", strategy)]
        for b in args.budgets:
            values = [r.at(b) for r in found]
            row[f"mean_{b}"], row[f"std_{b}"] = float(np.mean(values)), float(np.std(values))
            if guide != "plain":
                row[f"p_gt_plain_{b}"] = _mwu(values, [r.at(b) for r in plain])
        rows.append(row)
    targets = []
    if "evolution" in args.strategies and {50, 100} <= set(args.budgets):
        plain100 = [r.at(100) for r in runs[("plain", "evolution")]]
        for proxy in args.proxies:
            guided50 = [r.at(50) for r in runs[(proxy, "evolution")]]
            targets.append(
                {
                    "table": name,
                    "proxy": proxy,
                    "target": "guided evolution @50 >= plain evolution @100",
                    "guided_50": float(np.mean(guided50)),
                    "plain_100": float(np.mean(plain100)),
                    "p_plain100_gt_guided50": _mwu(plain100, guided50),
                    "met": bool(np.mean(guided50) >= np.mean(plain100)),
                }
            )
    _print(name, table, rows, targets, args, score_s)
    return {"rows": rows, "targets": targets, "score_seconds": score_s, "cells": len(scores)}


def _print(
    name: str,
    table: Any,
    rows: list[dict[str, Any]],
    targets: list[dict[str, Any]],
    args: argparse.Namespace,
    score_s: float,
) -> None:
    best = float(table.final()[REPORT].max())
    print(
        f"\n{name}: {REPORT} of the best-{METRIC} arch so far, mean +- std over {args.seeds} "
        f"seeds (table optimum {best:.4f}); proxy settings warmup_pool={args.warmup_pool}, "
        f"move_candidates={args.move_candidates}; p: one-sided Mann-Whitney U, guided > plain"
    )
    head = "| strategy | proxy | " + " | ".join(f"@{b}" for b in args.budgets) + " |"
    print(head + "\n" + "|---" * (2 + len(args.budgets)) + "|")
    for r in rows:
        cells = []
        for b in args.budgets:
            cell = f"{r[f'mean_{b}']:.4f} +- {r[f'std_{b}']:.4f}"
            if f"p_gt_plain_{b}" in r:
                cell += f" (p={r[f'p_gt_plain_{b}']:.3g})"
            cells.append(cell)
        print(f"| {r['strategy']} | {r['proxy']} | " + " | ".join(cells) + " |")
    for t in targets:
        verdict = "met" if t["met"] else "NOT met"
        print(
            f"target ({t['proxy']}): {t['target']}: {t['guided_50']:.4f} vs "
            f"{t['plain_100']:.4f} (p plain@100 > guided@50 = "
            f"{t['p_plain100_gt_guided50']:.3g}): {verdict}"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    p.add_argument("--proxies", nargs="+", default=["zico", "synflow"])
    p.add_argument("--strategies", nargs="+", default=["evolution", "random", "local_search", "bo"])
    p.add_argument("--budgets", nargs="+", type=int, default=[25, 50, 100])
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--warmup-pool", type=int, default=100)
    p.add_argument("--move-candidates", type=int, default=10)
    p.add_argument("--score-archs", type=int, default=None, help="score N sampled cells only")
    p.add_argument("--batch", type=int, default=64, help="examples in the one scoring batch")
    p.add_argument("--seed", type=int, default=0, help="init and batch seed of the scores")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument(
        "--no-bo-feature",
        action="store_true",
        help="leave out bo with the proxy as a surrogate feature only (rows 'PROXY (feature)')",
    )
    args = p.parse_args(argv)
    from raynas.proxies import PROXIES
    from raynas.strategies import list_strategies

    bad = [x for x in args.proxies if x not in PROXIES]
    if bad:
        p.error(f"--proxies: unknown proxy {bad[0]!r}; choose from {sorted(PROXIES)}")
    bad = [s for s in args.strategies if s not in list_strategies()]
    if bad:
        p.error(f"--strategies: unknown strategy {bad[0]!r}; choose from {list_strategies()}")
    if min(args.budgets) < 1 or args.seeds < 1:
        p.error("--budgets and --seeds must be >= 1")
    out: dict[str, Any] = {"rows": [], "targets": [], "score_seconds": {}, "skipped": []}
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for name in args.tables:
            if name == "fmnist" and not FASHION_MNIST.is_dir():
                print(f"{name}: skipped, {FASHION_MNIST} is missing (dataset-fashion-mnist)")
                out["skipped"].append(name)
                continue
            found = benchmark(name, args, pool)
            out["rows"] += found["rows"]
            out["targets"] += found["targets"]
            out["score_seconds"][name] = round(found["score_seconds"], 1)
    out["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
