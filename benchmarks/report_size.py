"""Size and build time of ``raynas report`` for a large experiment (target: 1,000 trials in
under 5 s and under 10 MB).

A folder of ``--trials`` tabular trials is written directly in the layout a real
``trainable: tabular`` run leaves (``params.json``, one ``result.json`` line per replayed
epoch with the cost columns, ``epochs_total``, ``arch_id`` / ``arch_str``, Tune's
``experiment_state-*.json`` and ``raynas_experiment.yaml``): NAS-Bench-201 cells drawn at
random, metrics a deterministic function of the cell, ASHA-like stops (about two thirds of
the trials end after 1 or 4 of ``--epochs`` epochs). Then the report is built and written
``--repeats`` times; printed: the median time to load the folder, to build the page and in
all, the file size, and whether both targets are met.

Usage: .venv/bin/python benchmarks/report_size.py [--trials 1000] [--epochs 12] [--repeats 3]

The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
TARGET_S, TARGET_MB = 5.0, 10.0


def synthesise(folder: Path, trials: int, epochs: int, seed: int = 0) -> Path:
    """An experiment folder of ``trials`` tabular NB201 trials, as a real run writes it."""
    from raynas.registry import get_space

    space = get_space("nb201", C=4, N=1)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "name": folder.name,
        "space": "nb201",
        "space_args": {"C": 4, "N": 1},
        "trainable": "tabular",
        "train": {"epochs": epochs},
        "strategy": {"name": "random"},
        "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 4},
        "objective": {"metric": "val_acc", "mode": "max"},
        "budget": {"trials": trials, "concurrent": 2},
    }
    (folder / "raynas_experiment.yaml").write_text(json.dumps(cfg))
    states, clock = [], 1_700_000_000.0
    for i in range(trials):
        arch = {"cell": {f"edge_{a}_{b}": OPS[int(rng.integers(len(OPS)))] for a, b in EDGES}}
        conv = sum(op.startswith("nor_conv") for op in arch["cell"].values())
        final = 0.55 + 0.06 * conv + float(rng.normal(0, 0.02))
        params = 2000 + 1500 * conv + int(rng.integers(0, 300))
        length = int(rng.choice([1, 4, epochs], p=[0.45, 0.25, 0.30]))
        tid = f"{i:05d}"
        tdir = folder / f"TabularTrainable_{tid}_{i + 1}_arch=x_2026-01-01_00-00-00"
        tdir.mkdir()
        (tdir / "params.json").write_text(json.dumps({"arch": arch}))
        start, lines = clock, []
        for e in range(1, length + 1):
            acc = final * (1 - 0.6 * np.exp(-e / 3))
            clock += 0.02
            lines.append(
                json.dumps(
                    {
                        "epoch": e,
                        "val_acc": acc,
                        "val_loss": 2.3 * (1 - acc),
                        "train_loss": 2.0 * (1 - acc),
                        "params": params,
                        "flops": 40 * params,
                        "latency_ms": 0.3 + 0.05 * conv,
                        "epochs_total": epochs,
                        "sim_time_s": float(e),
                        "arch_id": f"{i:016x}",
                        "arch_str": space.to_string(arch),
                        "trial_id": tid,
                        "timestamp": clock,
                        "time_total_s": clock - start,
                        "time_this_iter_s": 0.02,
                        "done": e == length,
                        "training_iteration": e,
                        "status": "ok",
                    }
                )
            )
        (tdir / "result.json").write_text("\n".join(lines) + "\n")
        states.append(
            [
                json.dumps({"trial_id": tid, "status": "TERMINATED", "relative_logdir": tdir.name}),
                json.dumps({"start_time": start}),
            ]
        )
    (folder / "experiment_state-2026-01-01_00-00-00.json").write_text(
        json.dumps({"trial_data": states})
    )
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    from raynas.report import write_report
    from raynas.results.analysis import load

    with tempfile.TemporaryDirectory() as tmp:
        folder = synthesise(Path(tmp) / "big", args.trials, args.epochs)
        write_report(folder, Path(tmp) / "warm.html")  # imports (plotly) out of the timing
        loads, builds, totals = [], [], []
        size = 0
        for _ in range(max(1, args.repeats)):
            t0 = time.perf_counter()
            result = load(folder)
            t1 = time.perf_counter()
            path = write_report(folder, result=result)
            t2 = time.perf_counter()
            loads.append(t1 - t0)
            builds.append(t2 - t1)
            totals.append(t2 - t0)
            size = path.stat().st_size
        n_rows = len(result.trials)
        n_points = len(result.curves)
    total_s, size_mb = round(statistics.median(totals), 3), round(size / 1e6, 3)
    figures: dict[str, object] = {
        "benchmark": "report_size",
        "trials": n_rows,
        "curve_points": n_points,
        "load_s": round(statistics.median(loads), 3),
        "build_s": round(statistics.median(builds), 3),
        "total_s": total_s,
        "size_mb": size_mb,
        "target_s": TARGET_S,
        "target_mb": TARGET_MB,
    }
    figures["meets_targets"] = total_s < TARGET_S and size_mb < TARGET_MB
    print(
        f"{n_rows} trials, {n_points} curve points: load {figures['load_s']} s, build + write "
        f"{figures['build_s']} s, total {figures['total_s']} s; {figures['size_mb']} MB"
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
