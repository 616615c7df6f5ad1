"""ASHA vs full training: the same children, the best val_acc found and the epochs spent.

Both runs use seeded random search with the same seed, so they propose the same children;
one trains every child for the full budget, the other runs Tune's ASHA on ``epoch``.

Usage: .venv/bin/python benchmarks/asha_vs_full.py [--trials 27] [--epochs 9]
Target: ASHA's best within 0.5 points of the full-budget best at <= 1/3 of the epochs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import raynas


def experiment(storage: str, name: str, trials: int, epochs: int, scheduler: dict) -> dict:
    return {
        "name": name,
        "space": "nb201",
        "space_args": {"C": 8, "N": 1},
        "data": {"name": "digits"},
        "train": {"epochs": epochs, "batch_size": 128, "lr": 0.1, "latency_repeats": 2},
        "strategy": {"name": "random"},
        "scheduler": scheduler,
        "budget": {"trials": trials, "concurrent": 2},
        "checkpoint": {"every": 0},
        "storage": storage,
        "seed": 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=27)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--grace", type=int, default=1)
    parser.add_argument("--reduction", type=int, default=3)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, sched in (
            ("full", {"name": "fifo"}),
            (
                "asha",
                {"name": "asha", "grace_period": args.grace, "reduction_factor": args.reduction},
            ),
        ):
            start = time.perf_counter()
            res = raynas.run(experiment(tmp, label, args.trials, args.epochs, sched), verbose=False)
            wall = time.perf_counter() - start
            best = res.top(1).iloc[0]
            rows[label] = {
                "best_val_acc": float(best["val_acc"]),
                "best_arch": best["arch"],
                "epochs": int(res.trials["epochs"].sum()),
                "wall_s": round(wall, 1),
                "early_stopped": int((res.trials["status"] == "early_stopped").sum()),
            }
    full, asha = rows["full"], rows["asha"]
    gap = 100 * (full["best_val_acc"] - asha["best_val_acc"])
    frac = asha["epochs"] / full["epochs"]
    print(f"{args.trials} children, up to {args.epochs} epochs each")
    print(f"{'':6} {'best val_acc':>12} {'epochs':>7} {'stopped':>8} {'wall s':>7}")
    for label, r in rows.items():
        print(
            f"{label:6} {r['best_val_acc']:12.4f} {r['epochs']:7d} {r['early_stopped']:8d} "
            f"{r['wall_s']:7.1f}"
        )
    print(f"gap {gap:.2f} points (target <= 0.5), epochs {frac:.2f} of full (target <= 0.33)")
    print(
        json.dumps(
            {
                "benchmark": "asha_vs_full",
                "trials": args.trials,
                "full_best": full["best_val_acc"],
                "asha_best": asha["best_val_acc"],
                "gap_points": round(gap, 2),
                "full_epochs": full["epochs"],
                "asha_epochs": asha["epochs"],
                "epoch_fraction": round(frac, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
