"""Multi-fidelity search: ``bohb`` under ASHA against full-fidelity strategies, by epochs.

On ``benchmarks/data/nb201-3ops-digits.parquet`` (729 cells, a 3-epoch learning curve per
cell and recorded seed, replayed at zero cost, no Ray), each strategy searches on ``val_acc``
one trial at a time:

- full fidelity: ``evolution``, ``bo`` and ``tpe`` train every proposal its full 3 epochs,
  ``max(--budgets)`` trials (3 epochs each);
- under ASHA: ``bohb`` (and ``random`` as the control) run under the ASHA replay of
  :class:`raynas.bench.search.Asha` (Ray Tune's ``AsyncHyperBandScheduler`` rule, one
  bracket: rungs at ``grace * eta**k`` epochs, a trial below the ``1 - 1/eta`` quantile of
  its rung stops there; defaults grace 1, eta 3: rungs at 1 and 3 epochs), fed every epoch
  they continue (``on_trial_result``) and the one they stop at (``on_trial_complete``), as
  Tune feeds a searcher, until they spent the same epochs.

The figure is the held-aside ``test_acc`` of the arch the search would return after ``e``
epochs spent: the best ``val_acc`` among the trials trained to the full budget (a stopped
trial never is one). For each full-fidelity budget ``B`` of ``--budgets`` (trials; ``3 B``
epochs) the target ``T`` is the best full-fidelity strategy's mean over seeds of that figure
after ``3 B`` epochs (its first ``B`` trials). Reported per ``B`` and strategy: mean +- std
(over seeds) of the figure at ``3 B`` epochs and at half of it; the epochs each seed needed
to reach ``T`` (mean +- std, unreached seeds counted at ``3 B``, with how many reached), and
a one-sided Mann-Whitney U p-value that ``bohb`` needs fewer epochs than the best
full-fidelity strategy (unreached seeds rank last); and the epochs at which each *mean*
curve (over seeds) reaches ``T``. Target: ``bohb`` under ASHA reaches ``T`` with at most half
the epochs the best full-fidelity strategy's mean curve needs (``ratio <= 0.5``).

Usage: .venv/bin/python benchmarks/multifidelity.py [--seeds 30] [--budgets 25 50 100]
       [--grace 1] [--reduction 3] [--full evolution,bo,tpe] [--asha bohb,random] [--jobs 2]
       [--table PATH]
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TABLE = REPO / "benchmarks" / "data" / "nb201-3ops-digits.parquet"
#: Constructor arguments per strategy (the defaults, BO's cheaper refits aside, as
#: benchmarks/fidelity_rule.py runs it).
ARGS: dict[str, dict[str, Any]] = {"bo": {"refit_every": 2}}
_TABLE: list[Any] = []


Task = tuple[str, str, int, int, int | None, float | None]


def _search(task: Task) -> tuple[np.ndarray, np.ndarray]:
    """One seeded search: (cumulative epochs, incumbent test_acc) after each trial."""
    from raynas.bench.search import Asha, run_search
    from raynas.bench.table import load_table

    path, strategy, seed, budget, grace, eta = task
    if not _TABLE:
        _TABLE.append(load_table(path))
    scheduler = None if grace is None else Asha(grace_period=grace, reduction_factor=eta or 3)
    run = run_search(
        _TABLE[0],
        strategy,
        metric="val_acc",
        report="test_acc",
        budget=budget,
        seed=seed,
        strategy_args=ARGS.get(strategy, {}),
        time_column=None,  # the simulated clock counts epochs (concurrency 1: epochs spent)
        scheduler=scheduler,
    )
    return run.sim_time_s.copy(), run.best_report.copy()


def at_epochs(epochs: np.ndarray, report: np.ndarray, e: float) -> float:
    """The incumbent's report after ``e`` epochs spent (NaN before any full-budget trial)."""
    k = int(np.searchsorted(epochs, e + 1e-9, side="right"))
    return float(report[k - 1]) if k else math.nan


def epochs_to(epochs: np.ndarray, report: np.ndarray, target: float) -> float:
    """Epochs spent when the incumbent's report first reaches ``target`` (inf: never)."""
    hits = np.flatnonzero(np.nan_to_num(report, nan=-np.inf) >= target - 1e-12)
    return float(epochs[hits[0]]) if len(hits) else math.inf


def mean_curve_epochs_to(
    runs: list[tuple[np.ndarray, np.ndarray]], target: float, cap: int
) -> float:
    """The first whole epoch count at which the mean (over seeds) incumbent report is
    ``>= target``; a seed without an incumbent yet counts as 0; inf: not within ``cap``."""
    for e in range(1, cap + 1):
        values = [at_epochs(ep, rep, e) for ep, rep in runs]
        if np.mean(np.nan_to_num(values, nan=0.0)) >= target - 1e-12:
            return float(e)
    return math.inf


def plain(obj: Any) -> Any:
    """``obj`` with every non-finite float as None (strict JSON: "never reached")."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def summary(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(np.nanmean(arr)), "std": float(np.nanstd(arr, ddof=1))}


def compare(
    runs: dict[str, list[tuple[np.ndarray, np.ndarray]]], full: list[str], cap: int
) -> dict[str, Any]:
    """The figures at one full-fidelity budget of ``cap`` epochs (see the module doc)."""
    from scipy.stats import mannwhitneyu

    final = {k: [at_epochs(ep, rep, cap) for ep, rep in r] for k, r in runs.items()}
    half = {k: [at_epochs(ep, rep, cap / 2) for ep, rep in r] for k, r in runs.items()}
    best_full = max(full, key=lambda s: float(np.nanmean(final[s])))
    target = float(np.nanmean(final[best_full]))
    rows: dict[str, dict[str, Any]] = {}
    reach: dict[str, list[float]] = {}
    for key, r in runs.items():
        reach[key] = [epochs_to(ep, rep, target) for ep, rep in r]
        rows[key] = {
            "test_at_budget": summary(final[key]),
            "test_at_half": summary(half[key]),
            "epochs_to_target": summary([min(e, cap) for e in reach[key]]),
            "reached": int(sum(e <= cap for e in reach[key])),
            "mean_curve_epochs_to_target": mean_curve_epochs_to(r, target, cap),
        }
    out: dict[str, Any] = {
        "epochs_full": cap,
        "best_full": best_full,
        "target_test_acc": target,
        "rows": rows,
    }
    if "bohb-asha" in runs:
        capped = {k: [min(e, cap + 1) for e in v] for k, v in reach.items()}  # unreached last
        p = float(mannwhitneyu(capped["bohb-asha"], capped[best_full], alternative="less").pvalue)
        ratio = (
            rows["bohb-asha"]["mean_curve_epochs_to_target"]
            / rows[best_full]["mean_curve_epochs_to_target"]
        )
        out.update(ratio=ratio, p_value=p, met=bool(ratio <= 0.5))
    return out


def print_comparison(result: dict[str, Any], seeds: int) -> None:
    cap = result["epochs_full"]
    print(
        f"\n-- full fidelity {cap} epochs: target T = {result['best_full']}'s mean test_acc "
        f"= {result['target_test_acc']:.4f}"
    )
    print(
        f"{'strategy':12} {'test @' + str(cap):>17} {'test @' + str(cap // 2):>17} "
        f"{'epochs to T':>15} {'reached':>8} {'mean curve':>11}"
    )
    for key, row in result["rows"].items():
        a, h, e = row["test_at_budget"], row["test_at_half"], row["epochs_to_target"]
        print(
            f"{key:12} {a['mean']:8.4f} ± {a['std']:6.4f} {h['mean']:8.4f} ± {h['std']:6.4f} "
            f"{e['mean']:7.1f} ± {e['std']:5.1f} {row['reached']:4d}/{seeds:<3d} "
            f"{row['mean_curve_epochs_to_target']:11g}"
        )
    if "ratio" in result:
        print(
            f"bohb-asha vs {result['best_full']}: epochs to T of the mean curves, ratio "
            f"{result['ratio']:.2f} (target <= 0.5: {'met' if result['met'] else 'not met'}); "
            f"one-sided Mann-Whitney p={result['p_value']:.3g} that bohb-asha's seeds need "
            "fewer epochs"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument(
        "--budgets", type=int, nargs="+", default=[25, 50, 100], help="full-fidelity trials"
    )
    parser.add_argument("--grace", type=int, default=1)
    parser.add_argument("--reduction", type=float, default=3)
    parser.add_argument("--full", default="evolution,bo,tpe")
    parser.add_argument("--asha", default="bohb,random")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--table", default=str(TABLE), help="a table with learning curves")
    args = parser.parse_args(argv)
    from raynas.bench.table import load_table

    max_t = int(load_table(args.table).df["epoch"].max())
    budget = max(args.budgets)
    cap = budget * max_t  # the epochs the longest full-fidelity search spends
    full = [s for s in args.full.split(",") if s]
    asha = [s for s in args.asha.split(",") if s]
    seeds = range(args.seeds)
    tasks: dict[str, list[Task]] = {}
    for s in full:
        tasks[s] = [(args.table, s, seed, budget, None, None) for seed in seeds]
    for s in asha:  # at least one epoch per trial: `cap` trials always spend `cap` epochs
        tasks[f"{s}-asha"] = [
            (args.table, s, seed, cap, args.grace, args.reduction) for seed in seeds
        ]
    start = time.perf_counter()
    runs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {k: [pool.submit(_search, t) for t in ts] for k, ts in tasks.items()}
        for key, fs in futures.items():
            runs[key] = [f.result() for f in fs]
    wall = time.perf_counter() - start
    print(
        f"{Path(args.table).name}: search on val_acc, report test_acc; {args.seeds} seeds; "
        f"{max_t} epochs a full trial; ASHA grace {args.grace}, eta {args.reduction:g}; "
        f"{wall:.0f} s"
    )
    results = [compare(runs, full, b * max_t) for b in sorted(args.budgets)]
    for result in results:
        print_comparison(result, args.seeds)
    out = {
        "benchmark": "multifidelity",
        "seeds": args.seeds,
        "grace": args.grace,
        "reduction": args.reduction,
        "by_budget": results,
    }
    print(json.dumps(plain(out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
