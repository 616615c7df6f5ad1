"""Search efficiency of every strategy on tabular benchmarks (no training: seconds per search).

For each table and each registered single-objective strategy, runs ``--seeds`` seeded searches
of ``max(--budgets)`` evaluations, driving the real searcher by hand
(:func:`raynas.bench.search.run_search`): the strategy searches on ``--metric`` and the
incumbent (best by ``--metric`` so far) is scored by ``--report``. Prints, per table:

- mean +- std over seeds of the reported value at each budget (25/50/100/200 by default);
- the mean regret to the table's optimum at budget 100 and a one-sided Mann-Whitney U
  p-value of "this strategy's regret < random's" over the seeds (scipy);
- evaluations to the optimum: the median over seeds of the evaluations until the incumbent
  is the table's best by ``--metric`` (``>N``: fewer than half the seeds got there), with
  the fraction of seeds that did;
- evaluations to random's mean regret at budget 100: the first budget at which the
  strategy's mean regret curve is as low as random's at 100 (``bo`` should need <= 50).

Tables: the shipped ``benchmarks/data/nb201-3ops-digits.parquet`` by default, any tables
given, and with ``--synthetic-nb201`` a *synthetic* NAS-Bench-201-style table: the full
nb201 space (15,625 cells, 5 ops), 3 recorded seeds, final-epoch val/test accuracy from a
generated landscape (accuracy grows with the convolutions on input-output paths, saturates,
disconnected cells score at chance; per-arch and per-seed noise). It has NAS-Bench-201's
space, format and seed structure, not its measured numbers: the official file cannot be
downloaded here (``raynas bench convert`` reads it where it exists).

With ``--vs optuna``, Optuna's own samplers search beside raynas' strategies, through the
``optuna`` strategy on the same replay (same protocol, same seeds): ``optuna-tpe`` (Optuna's
TPESampler) on every seed and ``optuna-gp`` (its GPSampler, about a second per proposal at
100 observations on one CPU) on the first ``--gp-seeds`` seeds up to ``--gp-budget``
evaluations (0 seeds: left out; also left out, with a note, where GP cannot run). A table
per input table then compares, at each budget, the best raynas strategy (highest mean
reported value there, ``optuna`` itself excluded) with Optuna's TPE: mean +- std and a
one-sided Mann-Whitney U p-value of "the raynas strategy's reported value > Optuna TPE's"
over the seeds (the best strategy is chosen on the same seeds, which biases the p-value
downwards).

The last lines are one JSON object per (table, strategy); with ``--vs optuna`` one more
line ends the output: the comparison of every table and whether "best raynas >= optuna TPE
at every budget, strictly better (p < 0.05) at the largest budget" holds.

Usage:
    .venv/bin/python benchmarks/search_efficiency.py [TABLE ...] [--synthetic-nb201]
        [--synthetic-only] [--seeds 30] [--budgets 25 50 100 200]
        [--strategies random evolution ...] [--metric val_acc] [--report test_acc] [--jobs 2]
        [--vs optuna] [--gp-seeds 10] [--gp-budget 100]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHIPPED = REPO / "benchmarks" / "data" / "nb201-3ops-digits.parquet"
#: Strategies that need several objectives (skipped: this benchmark has one).
MULTI_OBJECTIVE = ("moea",)
#: Strategies that wrap another library: run only when named, or by ``--vs``.
EXTERNAL = ("optuna",)
#: ``--vs optuna``: label -> the ``optuna`` strategy's arguments.
OPTUNA_RIVALS = {"optuna-tpe": {"sampler": "tpe"}, "optuna-gp": {"sampler": "gp"}}
#: The level of the one-sided test at the largest budget.
ALPHA = 0.05
_TABLES: dict[str, Any] = {}


def synthetic_nb201(seed: int = 0) -> pd.DataFrame:
    """A synthetic NAS-Bench-201-style table over the full nb201 space (see module doc)."""
    from raynas.registry import get_space

    space = get_space("nb201")
    rng = np.random.default_rng(seed)
    gain = {
        "none": 0.0,
        "skip_connect": 0.05,
        "nor_conv_1x1": 0.6,
        "nor_conv_3x3": 1.0,
        "avg_pool_3x3": 0.15,
    }
    weight = {"none": 0, "skip_connect": 0, "nor_conv_1x1": 1, "nor_conv_3x3": 9, "avg_pool_3x3": 0}
    paths = [[(0, 3)], [(0, 1), (1, 3)], [(0, 2), (2, 3)], [(0, 1), (1, 2), (2, 3)]]
    rows = []
    for arch in space.enumerate():
        cell = arch["cell"]
        value, live = 0.0, False
        for path in paths:
            ops = [cell[f"edge_{i}_{j}"] for i, j in path]
            if "none" in ops:
                continue
            live = True
            value += sum(gain[o] for o in ops) * (1.0 + 0.15 * (len(ops) - 1))
        pools = sum(op == "avg_pool_3x3" for op in cell.values())
        base = 0.55 + 0.39 * (1.0 - math.exp(-0.45 * value)) - 0.01 * pools
        base += 0.015 * (cell["edge_0_3"] == "skip_connect") + rng.normal(0, 0.006)
        if not live:
            base = 0.1
        convs = sum(weight[o] for o in cell.values())
        for s in (777, 888, 999):
            rows.append(
                {
                    "arch": space.to_string(arch),
                    "seed": s,
                    "val_acc": min(base + rng.normal(0, 0.004), 1.0),
                    "test_acc": min(base - 0.003 + rng.normal(0, 0.004), 1.0),
                    "params": 70_000 + 16_000 * convs,
                    "train_time_s": (600 + 45 * convs) * rng.uniform(0.95, 1.05),
                }
            )
    return pd.DataFrame(rows)


def _table(path: str) -> Any:
    from raynas.bench.table import load_table

    if path not in _TABLES:
        _TABLES[path] = load_table(path)
    return _TABLES[path]


def _search(task: tuple[str, str, int, dict[str, Any]]) -> Any:
    """One seeded search (run in a worker process; the table is loaded once per worker)."""
    import torch

    from raynas.bench.search import run_search

    torch.set_num_threads(1)
    path, strategy, seed, kwargs = task
    return run_search(_table(path), strategy, seed=seed, **kwargs)


def strategies_to_run(wanted: list[str] | None) -> list[str]:
    from raynas.strategies import list_strategies

    names = [s for s in list_strategies() if s not in MULTI_OBJECTIVE]
    if wanted:
        return [s for s in wanted if s in names]
    return [s for s in names if s not in EXTERNAL]


def rivals_to_run(args: argparse.Namespace) -> dict[str, tuple[dict[str, Any], int, int]]:
    """``--vs optuna``: label -> (strategy arguments, seeds, budget) of each Optuna sampler
    that can run here (a note on stderr for one that cannot)."""
    if args.vs != "optuna":
        return {}
    from raynas.registry import get_space
    from raynas.strategies import StrategyError, get_strategy

    budget = max(args.budgets)
    out: dict[str, tuple[dict[str, Any], int, int]] = {}
    for label, strategy_args in OPTUNA_RIVALS.items():
        seeds, cap = args.seeds, budget
        if label == "optuna-gp":
            seeds, cap = min(args.gp_seeds, args.seeds), min(args.gp_budget, budget)
            if seeds < 1:
                continue
        try:
            get_strategy("optuna", get_space("nb201"), **strategy_args)
        except StrategyError as err:
            print(f"  --vs optuna: {label} left out: {err}", file=sys.stderr, flush=True)
            continue
        out[label] = (strategy_args, seeds, cap)
    return out


def benchmark_table(path: str, args: argparse.Namespace, pool: ProcessPoolExecutor) -> list[dict]:
    """Every strategy on one table; prints the table and returns one record per strategy."""
    from scipy.stats import mannwhitneyu

    from raynas.bench.search import evals_to_reach, mean_curve, summarize

    table = _table(path)
    budget = max(args.budgets)
    kwargs = {
        "metric": args.metric,
        "report": args.report,
        "budget": budget,
        "seed_mode": args.seed_mode,
    }
    names = strategies_to_run(args.strategies)
    rivals = rivals_to_run(args)
    start = time.perf_counter()
    runs: dict[str, list[Any]] = {}
    jobs = {s: ("optuna" if s in rivals else s, args.seeds, kwargs) for s in names}
    for label, (strategy_args, seeds, cap) in rivals.items():
        jobs[label] = ("optuna", seeds, {**kwargs, "budget": cap, "strategy_args": strategy_args})
    for s, (strategy, seeds, task_kwargs) in jobs.items():  # seeds in parallel; progress
        t0 = time.perf_counter()
        tasks = [(path, strategy, seed, task_kwargs) for seed in range(seeds)]
        runs[s] = list(pool.map(_search, tasks, chunksize=1))
        print(
            f"  {Path(path).name}: {s} done in {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    wall = time.perf_counter() - start
    ref_b = 100 if 100 in args.budgets else budget
    random_regret = [r.at(ref_b, "regret") for r in runs.get("random", [])]
    random_curve = mean_curve(runs["random"], budget=budget) if "random" in runs else None
    records = []
    for s in jobs:
        rec: dict[str, Any] = {
            "table": Path(path).name,
            "strategy": s,
            "seeds": len(runs[s]),
            "metric": args.metric,
            "report": args.report,
        }
        cap = rivals[s][2] if s in rivals else budget
        for b in args.budgets:
            if b > cap:
                continue  # a rival run to a smaller budget (--gp-budget)
            sm = summarize(runs[s], budget=b)
            rec[f"mean_{b}"], rec[f"std_{b}"] = sm["mean"], sm["std"]
            rec[f"regret_{b}"] = sm["regret"]
        full = summarize(runs[s], budget=cap)
        rec["evals_to_optimum_median"] = full["evals_to_optimum_median"]
        rec["found_optimum"] = full["found_optimum"]
        rec["optimum"] = full["optimum"]
        if random_regret and s != "random" and cap >= ref_b:
            mine = [r.at(ref_b, "regret") for r in runs[s]]
            rec[f"p_vs_random_{ref_b}"] = float(
                mannwhitneyu(mine, random_regret, alternative="less").pvalue
            )
        if random_curve is not None and cap >= budget:
            curve = mean_curve(runs[s], budget=budget)
            rec[f"evals_to_random_regret_{ref_b}"] = evals_to_reach(
                curve, float(random_curve[ref_b - 1])
            )
        records.append(rec)
    print_table(path, table, records, args, wall)
    if "optuna-tpe" in runs and [s for s in names if s not in EXTERNAL]:
        records.append(compare_with_optuna(path, runs, names, args))
    return records


def compare_with_optuna(
    path: str, runs: dict[str, list[Any]], names: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    """Prints the best raynas strategy against Optuna's samplers at each budget; returns the
    comparison (``"vs": "optuna"``)."""
    from scipy.stats import mannwhitneyu

    from raynas.bench.search import summarize

    ours = [s for s in names if s not in EXTERNAL]
    tpe = runs["optuna-tpe"]
    rows: list[dict[str, Any]] = []
    for b in args.budgets:
        means = {s: summarize(runs[s], budget=b)["mean"] for s in ours}
        best = max(ours, key=lambda s: means[s])
        mine = [r.at(b) for r in runs[best]]
        theirs = [r.at(b) for r in tpe]
        row: dict[str, Any] = {
            "budget": b,
            "best_raynas": best,
            "raynas_mean": means[best],
            "raynas_std": float(np.std(mine, ddof=1)),
            "optuna_tpe_mean": float(np.mean(theirs)),
            "optuna_tpe_std": float(np.std(theirs, ddof=1)),
            "p_raynas_gt_tpe": float(mannwhitneyu(mine, theirs, alternative="greater").pvalue),
        }
        gp = runs.get("optuna-gp", [])
        if gp and max(len(r.archs) for r in gp) >= b:
            vals = [r.at(b) for r in gp]
            row.update(
                optuna_gp_mean=float(np.mean(vals)),
                optuna_gp_std=float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                optuna_gp_seeds=len(vals),
            )
        rows.append(row)
    last = rows[-1]
    met = all(r["raynas_mean"] >= r["optuna_tpe_mean"] for r in rows) and (
        last["raynas_mean"] > last["optuna_tpe_mean"] and last["p_raynas_gt_tpe"] < ALPHA
    )
    print(
        f"\n== {Path(path).name} vs optuna: {args.report} of the incumbent by {args.metric}, "
        f"mean +- std over {len(tpe)} seeds (optuna-gp: {len(runs.get('optuna-gp', []))}); "
        f"p: one-sided Mann-Whitney U, best raynas > optuna-tpe"
    )
    head = ["budget", "best raynas", "mean+-std", "optuna-tpe", "optuna-gp", "p(raynas>tpe)"]
    lines = [head]
    for r in rows:
        gp_cell = (
            f"{r['optuna_gp_mean']:.4f}+-{r['optuna_gp_std']:.4f}" if "optuna_gp_mean" in r else "-"
        )
        lines.append(
            [
                str(r["budget"]),
                r["best_raynas"],
                f"{r['raynas_mean']:.4f}+-{r['raynas_std']:.4f}",
                f"{r['optuna_tpe_mean']:.4f}+-{r['optuna_tpe_std']:.4f}",
                gp_cell,
                f"{r['p_raynas_gt_tpe']:.3g}",
            ]
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    for line in lines:
        print("  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip())
    print(
        f"best raynas >= optuna-tpe at every budget, strictly better (p < {ALPHA}) at "
        f"{last['budget']}: {'met' if met else 'NOT met'}"
    )
    return {"vs": "optuna", "table": Path(path).name, "criterion_met": met, "budgets": rows}


def print_table(
    path: str, table: Any, records: list[dict], args: argparse.Namespace, wall: float
) -> None:
    s = table.summary()
    ref = 100 if 100 in args.budgets else max(args.budgets)
    print(
        f"\n== {Path(path).name}: {s['archs']} archs, seeds {s['seeds']}, search "
        f"{args.metric}, report {args.report} (seed_mode {args.seed_mode}); optimum "
        f"{records[0]['optimum']:.4f}; {args.seeds} seeds per strategy, {wall:.0f} s"
    )
    head = [
        "strategy",
        *[f"@{b}" for b in args.budgets],
        f"regret@{ref}",
        f"p<random@{ref}",
        "evals-to-opt",
        f"evals-to-rnd@{ref}",
    ]
    lines = [head]
    for r in records:
        med = r["evals_to_optimum_median"]
        opt = (
            str(med) if med is not None else f">{max(args.budgets)}"
        ) + f" ({r['found_optimum']:.0%})"
        p = r.get(f"p_vs_random_{ref}")
        reach = r.get(f"evals_to_random_regret_{ref}")
        lines.append(
            [
                r["strategy"],
                *[
                    f"{r[f'mean_{b}']:.4f}+-{r[f'std_{b}']:.4f}" if f"mean_{b}" in r else "-"
                    for b in args.budgets
                ],
                f"{r[f'regret_{ref}']:.4f}" if f"regret_{ref}" in r else "-",
                "-" if p is None else f"{p:.2g}",
                opt,
                "-"
                if f"evals_to_random_regret_{ref}" not in r
                else (str(reach) if reach is not None else f">{max(args.budgets)}"),
            ]
        )
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(head))]
    for row in lines:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tables", nargs="*", help=f"tables (default: {SHIPPED.relative_to(REPO)})")
    p.add_argument(
        "--synthetic-nb201",
        action="store_true",
        help="also run on a synthetic NAS-Bench-201-style table (15,625 archs)",
    )
    p.add_argument(
        "--synthetic-only",
        action="store_true",
        help="run on the synthetic table alone (implies --synthetic-nb201)",
    )
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--budgets", type=int, nargs="+", default=[25, 50, 100, 200])
    p.add_argument("--strategies", nargs="+", help="default: every single-objective one")
    p.add_argument("--metric", default="val_acc")
    p.add_argument("--report", default="test_acc")
    p.add_argument("--seed-mode", choices=("mean", "by_seed"), default="mean")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument(
        "--vs",
        choices=("optuna",),
        help="also run another library's searchers (optuna: its TPE and GP samplers)",
    )
    p.add_argument("--gp-seeds", type=int, default=10, help="--vs optuna: seeds of its GP")
    p.add_argument("--gp-budget", type=int, default=100, help="--vs optuna: GP's budget")
    args = p.parse_args(argv)
    args.budgets = sorted(set(args.budgets))
    tables = [str(Path(t).resolve()) for t in args.tables] or [str(SHIPPED)]
    if args.synthetic_only:
        tables, args.synthetic_nb201 = [], True
    with tempfile.TemporaryDirectory() as tmp:
        if args.synthetic_nb201:
            from raynas.bench.table import write_table

            synth = Path(tmp) / "synthetic-nb201-style.parquet"
            write_table(synthetic_nb201(), synth, meta={"space": "nb201", "space_args": {}})
            tables.append(str(synth))
        records = []
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for t in tables:
                records += benchmark_table(t, args, pool)
    print()
    comparisons = [r for r in records if r.get("vs")]
    for r in records:
        if not r.get("vs"):
            print(json.dumps(r))
    if comparisons:
        met = all(c["criterion_met"] for c in comparisons)
        print(json.dumps({"vs": "optuna", "criterion_met": met, "tables": comparisons}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
