"""Zero-cost proxies: seconds per arch, and rank correlation with a recorded table.

1. Cost: each proxy on ``--archs`` sampled NAS-Bench-201 networks at C=16, N=5 (the
   benchmark's own size) on one 32x32x3 batch of ``--batch`` seeded Gaussian inputs with
   random labels (CIFAR-10 is not shipped), on the CPU, in this process: median seconds per
   arch of :func:`raynas.proxies.score` (the build is not counted).
2. Quality: ``--table-archs`` archs sampled from the shipped table
   ``benchmarks/data/nb201-3ops-digits.parquet`` (729 cells of nb201 C=4 N=1 with 3 ops,
   trained 3 epochs on digits; ``examples/bench-nb201-digits.yaml``), built with that space's
   args and scored on one seeded batch of digits (``raynas proxies score --config``'s
   batch); Spearman's rho and Kendall's tau of each proxy (and ``vote``) against the
   table's final ``test_acc`` (mean over its seeds). ``--table`` and ``--config`` name
   another table and its build config (``--fmnist``: the Fashion-MNIST table,
   ``benchmarks/data/nb201-3ops-fmnist.parquet`` with ``examples/bench-nb201-fashion-mnist.yaml``,
   scored on one batch of its training split; needs ``dataset-fashion-mnist``).

Usage: .venv/bin/python benchmarks/proxies.py [--archs 5] [--table-archs 729] [--proxies ...]
       [--fmnist | --table TABLE --config CONFIG]
Prints one JSON line last: {"seconds_per_arch": {...}, "spearman": {...}, "kendall": {...}}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from raynas.bench.table import load_table
from raynas.proxies import PROXIES, score
from raynas.proxies.correlate import correlate
from raynas.proxies.scoring import add_ensembles, config_job, score_chunk, select_archs
from raynas.registry import resolve_space

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "benchmarks" / "data" / "nb201-3ops-digits.parquet"
CONFIG = REPO / "examples" / "bench-nb201-digits.yaml"
FM_TABLE = REPO / "benchmarks" / "data" / "nb201-3ops-fmnist.parquet"
FM_CONFIG = REPO / "examples" / "bench-nb201-fashion-mnist.yaml"


def seconds_per_arch(proxies: list[str], archs: int, batch: int, seed: int) -> dict[str, float]:
    """Median seconds of each proxy over ``archs`` nb201 C=16 N=5 networks at 32x32."""
    space = resolve_space("nb201", {"C": 16, "N": 5})
    gen = torch.Generator().manual_seed(seed)
    data = (torch.randn(batch, 3, 32, 32, generator=gen), torch.randint(0, 10, (batch,)))
    times: dict[str, list[float]] = {p: [] for p in proxies}
    for text in select_archs(space, every=False, sample=archs, seed=seed):
        torch.manual_seed(seed)
        model = space.build(json.loads(text), num_classes=10, in_channels=3)
        for name in proxies:
            start = time.perf_counter()
            score(name, model, data, input_shape=(3, 32, 32), seed=seed)
            times[name].append(time.perf_counter() - start)
    return {p: statistics.median(t) for p, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--proxies", nargs="+", default=list(PROXIES), choices=list(PROXIES))
    parser.add_argument("--archs", type=int, default=5, help="timed nb201 C=16 N=5 archs")
    parser.add_argument("--table-archs", type=int, default=729, help="archs of the table")
    parser.add_argument("--batch", type=int, default=64, help="examples in the one batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table", type=Path, default=TABLE, help="recorded table")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the table's build config")
    parser.add_argument(
        "--fmnist", action="store_true", help="the Fashion-MNIST table and its config"
    )
    args = parser.parse_args()
    if args.fmnist:
        args.table, args.config = FM_TABLE, FM_CONFIG

    timing = seconds_per_arch(args.proxies, args.archs, args.batch, args.seed)
    print("seconds per arch (nb201 C=16 N=5, 32x32, CPU):")
    for name, s in timing.items():
        print(f"  {name:<10} {s:8.3f}")

    vote = all(p in args.proxies for p in ("synflow", "jacob_cov", "snip"))
    ensembles = ("vote",) if vote else ()
    job = config_job(
        args.config, tuple(args.proxies), ensembles, seed=args.seed, batch_size=args.batch
    )
    table = load_table(args.table)
    start = time.perf_counter()
    archs = select_archs(table.space, every=False, sample=args.table_archs, seed=args.seed)
    scores = add_ensembles(pd.DataFrame(score_chunk(job, archs)), job)
    result = correlate(scores, table, "test_acc")
    print(
        f"{len(scores)} archs of {args.table.name} scored in {time.perf_counter() - start:.1f} s; "
        "rank correlation with test_acc:"
    )
    print(result.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    summary = {
        "timed_archs": args.archs,
        "batch": args.batch,
        "seconds_per_arch": {k: round(v, 4) for k, v in timing.items()},
        "table": args.table.name,
        "correlated_archs": len(scores),
        "metric": "test_acc",
        "spearman": {r.proxy: round(r.spearman, 4) for r in result.itertuples()},
        "kendall": {r.proxy: round(r.kendall, 4) for r in result.itertuples()},
        "nan_scores": {r.proxy: int(r.nan) for r in result.itertuples()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
