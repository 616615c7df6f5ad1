"""Signal of a tabular benchmark: do its seeds agree, and do its architectures differ?

For each table (default: the shipped ones), on the final epoch of every (arch, seed):

- ``seed_spearman``: Spearman's rho between seeds of each metric (``val_acc``, ``test_acc``),
  over the archs every seed holds (the mean over seed pairs when there are more than two);
- ``arch_spread``: the standard deviation over archs of the seed-mean metric, and
  ``seed_noise``: the standard deviation of one seed's value around its arch's seed-mean
  (pooled over archs); ``spread_over_noise`` is their ratio;
- the same among the *trainable* cells only (seed-mean ``val_acc`` above chance + 0.05): in
  NAS-Bench-201 a cell whose edges are all ``none`` or that skips every conv sits at chance,
  and those cells alone make two seeds agree; this row says how well the table ranks the
  cells a search actually has to choose between.

Usage: .venv/bin/python benchmarks/table_signal.py [TABLE ...]
Prints one JSON line last: {"tables": {name: {...}}}.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from raynas.bench.table import load_table

REPO = Path(__file__).resolve().parents[1]
TABLES = [
    REPO / "benchmarks" / "data" / "nb201-3ops-digits.parquet",
    REPO / "benchmarks" / "data" / "nb201-3ops-fmnist.parquet",
]
METRICS = ("val_acc", "test_acc")


def final_rows(path: Path) -> pd.DataFrame:
    """``arch_id x seed`` rows of the last recorded epoch of each (arch, seed)."""
    table = load_table(path)
    per_seed = [
        table.final(seed_mode="by_seed", seed=i).assign(seed=seed)
        for i, seed in enumerate(table.seeds)
    ]
    return pd.concat(per_seed).set_index("seed", append=True).sort_index()


def signal(final: pd.DataFrame, metric: str) -> dict[str, float]:
    """Seed-to-seed Spearman, spread over archs and seed noise of ``metric``."""
    wide = final[metric].unstack("seed").dropna()
    seeds = list(wide.columns)
    rhos = [
        stats.spearmanr(wide[a], wide[b]).statistic for a, b in itertools.combinations(seeds, 2)
    ]
    mean = wide.mean(axis=1)
    noise = float(np.sqrt(((wide.sub(mean, axis=0)) ** 2).sum().sum() / (wide.size - len(wide))))
    spread = float(mean.std())
    return {
        "archs": len(wide),
        "seeds": len(seeds),
        "seed_spearman": float(np.mean(rhos)) if rhos else float("nan"),
        "arch_spread": spread,
        "seed_noise": noise,
        "spread_over_noise": spread / noise if noise > 0 else float("inf"),
        "best": float(mean.max()),
        "median": float(mean.median()),
    }


def table_signal(path: Path) -> dict[str, Any]:
    final = final_rows(path)
    classes = 10  # every shipped table is a 10-class task
    val_mean = final["val_acc"].unstack("seed").mean(axis=1)
    trainable = val_mean[val_mean > 1 / classes + 0.05].index
    out: dict[str, Any] = {"all": {}, "trainable": {}}
    for metric in METRICS:
        if metric not in final or final[metric].isna().all():
            continue
        out["all"][metric] = signal(final, metric)
        out["trainable"][metric] = signal(
            final[final.index.isin(trainable, level="arch_id")], metric
        )
    out["train_time_s"] = float(final["train_time_s"].sum()) if "train_time_s" in final else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="*", type=Path, default=None)
    args = parser.parse_args()
    tables = args.tables or [t for t in TABLES if t.is_file()]
    summary: dict[str, Any] = {}
    for path in tables:
        result = table_signal(path)
        summary[path.name] = result
        print(f"{path.name}:")
        for subset in ("all", "trainable"):
            for metric, r in result[subset].items():
                print(
                    f"  {subset:<9} {metric:<8} archs {r['archs']:>4}  seed rho "
                    f"{r['seed_spearman']:.3f}  spread {r['arch_spread']:.4f}  noise "
                    f"{r['seed_noise']:.4f}  ratio {r['spread_over_noise']:.1f}  best "
                    f"{r['best']:.4f}  median {r['median']:.4f}"
                )
    print(json.dumps({"tables": summary}))


if __name__ == "__main__":
    main()
