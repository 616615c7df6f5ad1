"""Crash the driver again and again: does `raynas resume` lose or repeat anything?

For each ``strategy:scheduler`` pair, runs a small search (nb201 C=4 N=1 on digits, one trial
at a time so the uninterrupted order is deterministic) once without interruption and once
SIGKILLed ``--kills`` times at seeded moments chosen from what the experiment recorded
(the n-th epoch result), resuming after each kill (``raynas.testing.kill_loop``). Reported
per pair: kills survived, trials re-run (finished before a kill and trained again, or an
architecture evaluated twice), trials lost, whether the sequence of architectures and of
epochs each trained equals the uninterrupted run's, trials whose rows miss or repeat an
epoch (gaps), seconds lost per kill (the Ray restart dominates) and Ray processes still running
5 s after their driver was killed.

``random:pbt_evolution`` is synchronous PBT over a population of ``--pbt-population`` trials
trained together for ``--pbt-epochs`` epochs; "the same sequence" then also means the same
lineage (epoch by epoch, each trial's architecture and the trial it was cloned from).

Usage: .venv/bin/python benchmarks/kill_loop.py [--kills 10] [--trials 12] [--epochs 3]
       [--pairs evolution:fifo bo:asha random:pbt_evolution] [--pbt-population 4]
       [--pbt-epochs 4]
Target: 0 re-run and 0 lost over at least 10 kills per pair, the same sequence.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from raynas.testing.kill_loop import kill_loop, small_search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pairs", nargs="+", default=["evolution:fifo", "bo:asha", "random:pbt_evolution"]
    )
    parser.add_argument("--pbt-population", type=int, default=4)
    parser.add_argument("--pbt-epochs", type=int, default=4)
    args = parser.parse_args()
    start = time.perf_counter()
    reports = []
    with tempfile.TemporaryDirectory(prefix="raynas-kill-loop-") as tmp:
        for pair in args.pairs:
            strategy, scheduler = pair.split(":")
            if scheduler == "pbt_evolution":
                cfg = small_search(strategy, scheduler, args.pbt_population, args.pbt_epochs)
            else:
                cfg = small_search(strategy, scheduler, args.trials, args.epochs)
            report = kill_loop(
                cfg, Path(tmp) / pair.replace(":", "-"), kills=args.kills, seed=args.seed
            )
            reports.append(report.to_dict())
            print(json.dumps(report.to_dict()), flush=True)
    summary = {
        "benchmark": "kill_loop",
        "pairs": args.pairs,
        "kills": sum(r["kills"] for r in reports),
        "rerun": sum(r["rerun"] for r in reports),
        "lost": sum(r["lost"] for r in reports),
        "same_sequence": all(r["same_sequence"] for r in reports),
        "seconds_lost_per_kill": round(
            sum(r["seconds_lost_per_kill"] * r["kills"] for r in reports)
            / max(1, sum(r["kills"] for r in reports)),
            2,
        ),
        "leaked_processes": sum(r["leaked_processes"] for r in reports),
        "not_reaped": sum(r["not_reaped"] for r in reports),
        "unreadable": sum(r["unreadable"] for r in reports),
        "gaps": sum(r["gaps"] for r in reports),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
