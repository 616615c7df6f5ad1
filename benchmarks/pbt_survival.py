"""PBT-evolution: do mutated children survive as often as members that were not mutated?

Runs the quickstart (nb201 C=8 N=1 on digits) under ``pbt_evolution`` as a new user would
(``--trials`` members, ``--epochs`` epochs, ``checkpoint.keep`` left as the quickstart has it,
no ``budget.concurrent`` cap) for each seed, then splits every trial's history into lineage
segments: a segment starts when the trial begins or clones a peer, and ends when it clones
again (it was truncated) or when the trial ends (it survived). A segment is ``mutated`` when
its clone changed the architecture.

Reported per kind (mutated / not mutated): segments, the share that survived to the end,
truncations per epoch at risk (segments start at different times, so this is the fair rate),
and the final val_acc of surviving segments; plus the final val_acc of mutated children
against their parents.

Usage: .venv/bin/python benchmarks/pbt_survival.py [--trials 6] [--epochs 6] [--seeds 0 1 2]
Target: mutated segments truncated per epoch at risk no more than 1.5x unmutated ones.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import raynas
from raynas.experiment.config_load import load_config

REPO = Path(__file__).resolve().parents[1]


def segments(rows: list[dict[str, Any]], epochs: int) -> list[dict[str, Any]]:
    """A trial's lineage segments from its results in report order."""
    out: list[dict[str, Any]] = []
    current = {"start": 0, "mutated": False, "parent": None, "last": None}
    seen = None
    for r in rows:
        step = r.get("lineage_step")
        clone = (r.get("parent"), step)
        if r.get("parent") is not None and clone != seen:  # the first result after a clone
            seen = clone
            current["end"] = int((current["last"] or {}).get("epoch") or current["start"])
            current["truncated"] = True
            out.append(current)
            current = {
                "start": step,
                "mutated": r.get("arch_str") != r.get("parent_arch"),
                "parent": r.get("parent"),
                "last": None,
            }
        current["last"] = r
    last = current["last"] or {}
    current["end"], current["truncated"] = int(last.get("epoch") or epochs), False
    out.append(current)
    return out


def run_seed(storage: str, seed: int, trials: int, epochs: int) -> list[dict[str, Any]]:
    exp = load_config(
        REPO / "examples" / "quickstart.yaml",
        overrides=[
            "scheduler.name=pbt_evolution",
            f"budget.trials={trials}",
            "budget.concurrent=null",
            f"train.epochs={epochs}",
            f"seed={seed}",
            f"storage={storage}",
            f"name=pbt-{seed}",
        ],
    )
    result = raynas.run(exp, verbose=False)
    finals = dict(zip(result.trials["trial_id"], result.trials["val_acc"]))
    segs = []
    for tid, tdir in zip(result.trials["trial_id"], result.trials["trial_dir"]):
        rows = [json.loads(x) for x in (Path(tdir) / "result.json").read_text().splitlines()]
        for s in segments(rows, epochs):
            last = s.pop("last") or {}
            segs.append({**s, "trial": tid, "val_acc": last.get("val_acc"), "seed": seed})
    for s in segs:
        s["parent_final"] = finals.get(s["parent"]) if s["parent"] else None
    return segs


def summarise(segs: list[dict[str, Any]], epochs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, mutated in (("mutated", True), ("not_mutated", False)):
        group = [s for s in segs if s["mutated"] == mutated]
        at_risk = sum(max(1, s["end"] - s["start"]) for s in group)
        truncated = sum(s["truncated"] for s in group)
        survivors = [s["val_acc"] for s in group if not s["truncated"] and s["val_acc"]]
        out[kind] = {
            "segments": len(group),
            "survived_share": round(1 - truncated / len(group), 3) if group else None,
            "truncations_per_epoch_at_risk": round(truncated / at_risk, 3) if at_risk else None,
            "survivor_val_acc_mean": round(float(np.mean(survivors)), 4) if survivors else None,
        }
    children = [s for s in segs if s["mutated"] and not s["truncated"] and s["parent_final"]]
    out["mutated_child_vs_parent_final_val_acc"] = [
        [round(s["val_acc"], 4), round(s["parent_final"], 4)] for s in children
    ]
    rates = [out[k]["truncations_per_epoch_at_risk"] for k in ("mutated", "not_mutated")]
    out["rate_ratio_mutated_over_not"] = (
        round(rates[0] / rates[1], 2) if all(rates) and rates[1] else None
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    start = time.perf_counter()
    segs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            segs += run_seed(tmp, seed, args.trials, args.epochs)
    summary = summarise(segs, args.epochs)
    for kind in ("mutated", "not_mutated"):
        print(kind, summary[kind])
    print(
        json.dumps(
            {
                "benchmark": "pbt_survival",
                "trials": args.trials,
                "epochs": args.epochs,
                "seeds": args.seeds,
                **summary,
                "wall_s": round(time.perf_counter() - start, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
