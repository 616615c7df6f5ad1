"""How well does a profiled latency table predict whole mobilenet networks on this CPU?

Profiles the ``mobilenet`` space (every block, ``raynas.latency.profile_space``), then samples
``--archs`` seeded random sub-networks, times each end to end alone (warm-up, then the median
of ``--repeats``) and compares with ``latency_pred_ms``: the share predicted within +-10%
(target >= 90% on a quiet CPU), the Spearman rank correlation, the median absolute error, and
the profile time. Timings are only as quiet as the machine: the load average
(``os.getloadavg``) before and after is printed with the figures. Ends with one JSON line.

    .venv/bin/python benchmarks/latency_model.py                      # threads 1, batch 1
    .venv/bin/python benchmarks/latency_model.py --archs 30 --repeats 20 --space-arg max_depth=2
    .venv/bin/python benchmarks/latency_model.py --clock cpu      # CPU time: a busy machine
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns (and prints last) the summary as a dict."""
    from raynas.cli_args import add_space_args

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_space_args(p)  # KEY=VALUE, the value read as YAML; a malformed one exits 2
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--input-shape", default="3,32,32")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--repeats", type=int, default=50, help="timed forwards per block / network")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--networks", type=int, default=8, help="whole networks for the overhead fit")
    p.add_argument("--archs", type=int, default=100, help="random networks to evaluate")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--table", help="also save the profiled table here (JSON)")
    p.add_argument("--pairs", help="also write each arch's measured and predicted ms (JSON)")
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: latency; cpu: one thread's CPU time (leaves out waits on a busy machine)",
    )
    args = p.parse_args(argv)

    import numpy as np
    import torch
    from scipy.stats import spearmanr

    from raynas.latency import Timing, profile_space, time_network
    from raynas.registry import resolve_space

    torch.set_num_threads(args.threads)
    shape = tuple(int(d) for d in args.input_shape.split(","))
    load_before = os.getloadavg()
    timing = Timing(batch=args.batch, warmup=args.warmup, repeats=args.repeats, clock=args.clock)
    start = time.perf_counter()
    table = profile_space(
        "mobilenet",
        dict(args.space_args),
        threads=args.threads,
        input_shape=shape,
        num_classes=args.num_classes,
        networks=args.networks,
        seed=0,
        log=print,
        **asdict(timing),
    )
    profile_s = time.perf_counter() - start
    if args.table:
        table.save(args.table)
    space = resolve_space("mobilenet", dict(args.space_args))
    rng = np.random.default_rng(args.seed)
    measured, predicted = [], []
    seen: set[str] = set()
    torch.manual_seed(args.seed)
    while len(measured) < args.archs:
        arch = space.sample(rng)
        if space.arch_id(arch) in seen:
            continue
        seen.add(space.arch_id(arch))
        model = space.build(arch, num_classes=args.num_classes, in_channels=shape[0])
        measured.append(time_network(model, shape, timing)["median_ms"])
        predicted.append(table.predict_ms(arch))
    m, q = np.asarray(measured), np.asarray(predicted)
    if args.pairs:
        pairs = {"measured_ms": measured, "predicted_ms": predicted}
        Path(args.pairs).write_text(json.dumps(pairs))
    rel = np.abs(q - m) / m
    load_after = os.getloadavg()
    summary = {
        "benchmark": "latency_model",
        "space_args": dict(args.space_args),
        "threads": args.threads,
        "batch": args.batch,
        "input_shape": list(shape),
        "blocks": len(table.blocks),
        "overhead_networks": args.networks,
        "clock": args.clock,
        "overhead_intercept_ms": round(float(table.overhead["intercept_ms"]), 4),
        "overhead_per_block_ms": round(float(table.overhead["per_block_ms"]), 4),
        "profile_s": round(profile_s, 2),
        "archs": len(measured),
        "within_10pct": round(float(np.mean(rel <= 0.10)), 4),
        "spearman": round(float(spearmanr(m, q).statistic), 4),
        "median_abs_rel_err": round(float(np.median(rel)), 4),
        "measured_ms_range": [round(float(m.min()), 3), round(float(m.max()), 3)],
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
    }
    print(
        f"{summary['within_10pct']:.0%} of {len(measured)} archs within +-10% "
        f"(target >= 90%), Spearman {summary['spearman']:.3f}, median |err| "
        f"{summary['median_abs_rel_err']:.1%}; profile {profile_s:.1f} s for "
        f"{len(table.blocks)} blocks; load average {load_before} -> {load_after}"
    )
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
