"""Per-trial overhead of raynas over plain Ray Tune, on trivial and on small real trials.

``--kind tabular`` (default, 1,000 trials): trivial trials that replay one recorded epoch of
a synthetic NAS-Bench-201 table (every one of the 15,625 cells; metrics are a deterministic
function of the cell, so each trial is a dictionary lookup). Both sides run the same archs
(the ones raynas's seeded random search picked) with the same resources, concurrency and
``reuse_actors=True``:

- raynas: ``raynas.run`` with ``trainable: tabular`` and ``strategy: random``: the
  searcher, the trial printer and the final analysis of the experiment folder included;
- plain Tune: a function trainable that looks the arch up in the same table, fed by a
  ``grid_search`` over the same archs.

Each side runs in its own process with its own embedded Ray runtime; the timed part is from
building the Tuner to the end of the run (``ray.init`` and imports excluded). Printed: wall
time and driver CPU time per trial of both (medians over ``--repeats`` alternating runs of
each side, default 3: the plain side alone varies by 2x from run to run on a 2-core
machine), and raynas minus plain Tune per trial (target: at most 10 ms).

``--kind train`` (20 trials): NAS-Bench-201 children (C=16, N=1) trained 3 epochs each on
sklearn's digits, 2 at a time with 1 CPU each, the same 20 archs on every side (the first
ones raynas's seeded random search proposes). The main row compares ``raynas run`` (its
defaults: cost measured, a checkpoint every epoch) with what a competent user writes in plain
Tune: a function trainable with ``reuse_actors=True`` and the data loaded once per worker
process (a module-level cache), the same NB201 model code, optimiser (SGD, Nesterov momentum
0.9, weight decay 5e-4, lr 0.1), cosine schedule per step, gradient clipping at 5, batch 64,
evaluation batch 512 and split sizes, so the training work is the same. Also run: raynas with
a checkpoint only at the end (what ``raynas export`` needs; the difference is the cost of the
per-epoch checkpoints) and, as a labelled second row, plain Tune's defaults (a fresh actor per
trial, which imports torch and loads the data again; ``--default-repeats`` runs, default 1).
The sides alternate in a rotating order, each in its own driver process with its own Ray
runtime; the timed part is from building the Tuner to the end of the run (``ray.init`` and
imports excluded; raynas's includes its config checks and final analysis), as wall time and
as the CPU seconds of the driver's whole process tree (Ray's processes and the trial actors
included; on a shared machine the wall time also counts the time other processes held the
CPUs). Printed: medians over ``--repeats`` and the ratios raynas / plain Tune (target: at
most 0.8).

The last line printed is JSON.

Usage: .venv/bin/python benchmarks/overhead.py [--kind tabular] [--trials 1000] [--concurrent 2]
       [--repeats 3]
       .venv/bin/python benchmarks/overhead.py --kind train [--trials 20] [--epochs 3] [--C 16]
       [--N 1] [--repeats 3] [--default-repeats 1]

Kept as one module (over 450 lines): a benchmark is one script to run; its kinds share the
alternating timing harness and the JSON line. ``bookkeeping.py`` imports its synthetic table,
tabular run config, seeded archs and marked-JSON reader from here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPACE_ARGS = {"C": 4, "N": 1}

#: Measures the CPU seconds of a driver process and all its descendants (Ray's raylet, GCS,
#: the trial actors): sampled every 0.25 s, so a process that exits loses at most its last
#: quarter second. On a shared machine this is the work an experiment did, while its wall
#: time also counts the time other processes kept the CPUs.
TREE_CPU = r"""
import threading
import psutil

class TreeCPU:
    def __init__(self, every=0.25):
        self.me, self.every = psutil.Process(), every
        self.seen, self.base = {}, {}
        self._done = threading.Event()
        self.sample(base=True)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def sample(self, base=False):
        try:
            procs = [self.me, *self.me.children(recursive=True)]
        except psutil.Error:
            procs = [self.me]
        for p in procs:
            try:
                t = p.cpu_times()
                key = (p.pid, p.create_time())
            except psutil.Error:
                continue
            if base:
                self.base[key] = t.user + t.system
            self.seen[key] = max(self.seen.get(key, 0.0), t.user + t.system)

    def _loop(self):
        while not self._done.wait(self.every):
            self.sample()

    def stop(self):
        self._done.set()
        self.thread.join()
        self.sample()
        return sum(v - self.base.get(k, 0.0) for k, v in self.seen.items())
"""


# A plain Ray Tune function trainable, as a competent user writes it: the data loaded once per
# worker process (module-level cache), the same NB201 model code and the same optimiser,
# schedule, clipping, batch sizes and split sizes as raynas's classify trainable, so both sides
# do the same training work. ``reuse_actors`` is the only thing the two plain rows change.
PLAIN_TRAIN = r"""
import json, math, sys, time
import ray
from ray import tune

ARGS = json.loads(sys.argv[1])
_DATA = {}

def data():
    if not _DATA:  # once per worker process
        import torch
        from sklearn.datasets import load_digits
        x, y = load_digits(return_X_y=True)
        x = torch.tensor(x / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
        y = torch.tensor(y)
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
        tr = perm[: ARGS["n_train"]]
        va = perm[ARGS["n_train"] : ARGS["n_train"] + ARGS["n_val"]]
        mean, std = x[tr].mean(), x[tr].std()
        x = (x - mean) / std
        _DATA.update(xtr=x[tr], ytr=y[tr], xva=x[va], yva=y[va])
    return _DATA

def train_child(config):
    import torch
    from torch import nn
    from search_spaces.models.nb201_net import NB201Network, parse_nb201_string
    torch.set_num_threads(1)
    torch.manual_seed(0)
    d = data()
    xtr, ytr, xva, yva = d["xtr"], d["ytr"], d["xva"], d["yva"]
    model = NB201Network(parse_nb201_string(config["arch"]), C=ARGS["C"], N=ARGS["N"],
                         num_classes=10, in_channels=1)
    opt = torch.optim.SGD(model.parameters(), lr=ARGS["lr"], momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    batch, epochs, n = ARGS["batch_size"], ARGS["epochs"], len(ytr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=math.ceil(n / batch) * epochs)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen)
        total, correct = 0.0, 0
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            xb, yb = xtr[idx], ytr[idx]
            opt.zero_grad()
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total += loss.item() * len(yb)
            correct += (logits.argmax(1) == yb).sum().item()
        model.eval()
        val_loss, val_correct = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(yva), 512):
                logits = model(xva[i : i + 512])
                val_loss += nn.functional.cross_entropy(logits, yva[i : i + 512],
                                                        reduction="sum").item()
                val_correct += (logits.argmax(1) == yva[i : i + 512]).sum().item()
        tune.report({"epoch": epoch, "train_loss": total / n, "train_acc": correct / n,
                     "val_loss": val_loss / len(yva), "val_acc": val_correct / len(yva)})

ray.init(address="local", include_dashboard=False, logging_level="WARNING")
exec(ARGS["tree_cpu"])
cpu = TreeCPU()
wall0 = time.perf_counter()
tuner = tune.Tuner(
    tune.with_resources(train_child, {"cpu": 1}),
    param_space={"arch": tune.grid_search(ARGS["archs"])},
    tune_config=tune.TuneConfig(max_concurrent_trials=ARGS["concurrent"],
                                reuse_actors=ARGS["reuse_actors"]),
    run_config=tune.RunConfig(storage_path=ARGS["storage"], name="plain", verbose=0),
)
grid = tuner.fit()
wall = time.perf_counter() - wall0
cpu_s = cpu.stop()
done = sum(1 for r in grid if r.error is None and r.metrics.get("epoch") == ARGS["epochs"])
print("PLAIN_OK " + json.dumps({"wall_s": wall, "cpu_s": cpu_s, "done": done}))
"""

RAYNAS_TRAIN = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import raynas
from raynas.experiment.ray_setup import init_ray

config = json.loads(sys.argv[2])
init_ray(None)
exec(sys.argv[3])
cpu = TreeCPU()
wall0 = time.perf_counter()
result = raynas.run(config, verbose=False)
wall = time.perf_counter() - wall0
cpu_s = cpu.stop()
done = int((result.trials["status"] == "completed").sum())
archs = sorted(result.trials["arch"])
print("RAYNAS_OK " + json.dumps({"wall_s": wall, "cpu_s": cpu_s, "done": done, "archs": archs}))
"""


NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]

RAYNAS_TABULAR = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import raynas
from raynas.experiment.ray_setup import init_ray

config = json.loads(sys.argv[2])
init_ray(None)
cpu0, wall0 = time.process_time(), time.perf_counter()
result = raynas.run(config, verbose=True)
wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
done = int((result.trials["status"] == "completed").sum())
archs = list(result.trials["arch"])
print("RAYNAS_OK " + json.dumps({"wall_s": wall, "cpu_s": cpu, "done": done, "archs": archs}))
"""

PLAIN_TABULAR = r"""
import json, sys, time
import ray
from ray import tune

TABLE, ARCHS = sys.argv[1], json.loads(sys.argv[2])
CONCURRENT, STORAGE = int(sys.argv[3]), sys.argv[4]
_LOOKUP = {}

def replay(config):
    if not _LOOKUP:  # once per worker process, as raynas's tabular trainable does
        import pandas as pd
        df = pd.read_parquet(TABLE)
        _LOOKUP.update(zip(df["arch"], df[["val_acc", "params"]].to_dict("records")))
    row = _LOOKUP[config["arch"]]
    tune.report({"val_acc": row["val_acc"], "params": row["params"], "epoch": 1})

ray.init(address="local", include_dashboard=False, logging_level="WARNING")
cpu0, wall0 = time.process_time(), time.perf_counter()
tuner = tune.Tuner(
    tune.with_resources(replay, {"cpu": 1}),
    param_space={"arch": tune.grid_search(ARCHS)},
    tune_config=tune.TuneConfig(max_concurrent_trials=CONCURRENT, reuse_actors=True),
    run_config=tune.RunConfig(storage_path=STORAGE, name="plain", verbose=0),
)
grid = tuner.fit()
wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
done = sum(1 for r in grid if r.error is None)
print("PLAIN_OK " + json.dumps({"wall_s": wall, "cpu_s": cpu, "done": done}))
"""


def write_synthetic_table(path: Path) -> Path:
    """Every NAS-Bench-201 cell (5 ops, 15,625) with metrics that are a function of the cell."""
    import itertools

    import pandas as pd

    sys.path.insert(0, str(REPO))
    from raynas.bench.table import write_table

    rows = []
    for k, ops in enumerate(itertools.product(NB201_OPS, repeat=6)):
        arch = "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)
        convs = sum(op.startswith("nor_conv") for op in ops)
        rows.append(
            {
                "arch": arch,
                "val_acc": 0.5 + 0.07 * convs + 0.0001 * (k % 97),
                "params": 1000 + 500 * convs,
            }
        )
    return write_table(pd.DataFrame(rows), path, meta={"space": "nb201", "space_args": {}})


def marked(proc: subprocess.CompletedProcess, mark: str, what: str) -> dict:
    """The JSON a side's subprocess printed after ``mark``; exits naming ``what`` without it."""
    for line in proc.stdout.splitlines():
        if line.startswith(mark + " "):
            return dict(json.loads(line[len(mark) + 1 :]))
    sys.exit(f"{what} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def tabular_config(
    name: str, table: Path, trials: int, concurrent: int, seed: int, storage: Path
) -> dict:
    """The raynas side of a tabular run: random search replaying ``table``, no checkpoints."""
    return {
        "name": name,
        "space": "nb201",
        "trainable": "tabular",
        "trainable_args": {"table": str(table), "metric_columns": ["val_acc", "params"]},
        "strategy": {"name": "random"},
        "objective": {"metric": "val_acc", "mode": "max"},
        "budget": {"trials": trials, "concurrent": concurrent},
        "resources": {"cpu": 1},
        "checkpoint": {"every": 0},
        "seed": seed,
        "storage": str(storage),
    }


def tabular(trials: int, concurrent: int, repeats: int) -> dict:
    runs: dict[str, list[dict]] = {"raynas": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        table = write_synthetic_table(Path(tmp) / "nb201-synthetic.parquet")
        for rep in range(repeats):  # alternate the two sides: machine noise hits both
            storage = Path(tmp) / f"rep{rep}"
            config = tabular_config("overhead-tabular", table, trials, concurrent, rep, storage)
            cmd = [sys.executable, "-c", RAYNAS_TABULAR, str(REPO), json.dumps(config)]
            ours = marked(timed(cmd, REPO)[1], "RAYNAS_OK", "raynas run")
            archs = ours.pop("archs")
            cmd = [
                sys.executable,
                "-c",
                PLAIN_TABULAR,
                str(table),
                json.dumps(archs),
                str(concurrent),
                str(storage),
            ]
            plain = marked(timed(cmd, REPO)[1], "PLAIN_OK", "plain Tune")
            runs["raynas"].append(ours)
            runs["plain"].append(plain)
            print(
                f"run {rep + 1}/{repeats}: raynas {ours['wall_s'] / trials * 1000:.1f} ms/trial, "
                f"plain Tune {plain['wall_s'] / trials * 1000:.1f} ms/trial",
                flush=True,
            )
    per = {
        side: {m: statistics.median(r[m] for r in rs) / trials * 1000 for m in ("wall_s", "cpu_s")}
        for side, rs in runs.items()
    }
    extras = [
        (a["wall_s"] - b["wall_s"]) / trials * 1000 for a, b in zip(runs["raynas"], runs["plain"])
    ]
    extra = per["raynas"]["wall_s"] - per["plain"]["wall_s"]
    print(f"{trials} trivial tabular trials, {concurrent} at a time, reused actors, median of "
          f"{repeats} run(s) each")  # fmt: skip
    for side, label in (("raynas", "raynas run"), ("plain", "plain Tune")):
        p = per[side]
        done = [r["done"] for r in runs[side]]
        print(
            f"{label:11s}: {p['wall_s']:.1f} ms/trial wall, driver CPU {p['cpu_s']:.1f} ms/trial, "
            f"completed {done}"
        )
    print(
        f"raynas - plain: {extra:+.1f} ms/trial wall (medians; per run "
        f"{', '.join(f'{e:+.1f}' for e in extras)}; target <= +10 ms)"
    )
    return {
        "benchmark": "overhead",
        "kind": "tabular",
        "trials": trials,
        "concurrent": concurrent,
        "repeats": repeats,
        "raynas_ms_per_trial": round(per["raynas"]["wall_s"], 1),
        "plain_tune_ms_per_trial": round(per["plain"]["wall_s"], 1),
        "raynas_driver_cpu_ms_per_trial": round(per["raynas"]["cpu_s"], 1),
        "plain_tune_driver_cpu_ms_per_trial": round(per["plain"]["cpu_s"], 1),
        "extra_ms_per_trial": round(extra, 1),
        "extra_ms_per_trial_runs": [round(e, 1) for e in extras],
        "completed": [
            min(r["done"] for r in runs["raynas"]),
            min(r["done"] for r in runs["plain"]),
        ],
    }


def timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - start, proc


#: The sides of ``--kind train``: (label, how its subprocess is started).
TRAIN_SIDES = ("raynas", "raynas_ckpt_end", "plain", "plain_default")


def seeded_archs(trials: int, seed: int, **space_args: int) -> list[str]:
    """The arch strings raynas's seeded random search on nb201 proposes first (what both
    sides run)."""
    sys.path.insert(0, str(REPO))
    import raynas
    from raynas.strategies import get_strategy

    space = raynas.get_space("nb201", **space_args)
    searcher = get_strategy("random", space, metric="val_acc", mode="max", seed=seed)
    archs = []
    for i in range(trials):
        config = searcher.suggest(f"t{i}")
        assert isinstance(config, dict), config
        archs.append(space.to_string(config["arch"]))
    return archs


def _train_side(side: str, args: argparse.Namespace, archs: list[str], storage: Path) -> dict:
    """Run one side of ``--kind train`` in its own process; its timed part and results."""
    if side.startswith("raynas"):
        config = {
            "name": "overhead-train",
            "space": "nb201",
            "space_args": {"C": args.C, "N": args.N},
            "trainable": "classify",
            "data": {"name": "digits", "val_fraction": 0.2},
            "train": {"epochs": args.epochs, "batch_size": 64, "lr": 0.1},
            "strategy": {"name": "random"},
            "objective": {"metric": "val_acc", "mode": "max"},
            "budget": {"trials": args.trials, "concurrent": args.concurrent},
            "resources": {"cpu": 1},
            "seed": args.seed,
            "storage": str(storage),
        }
        if side == "raynas_ckpt_end":  # only the final checkpoint (what `raynas export` reads)
            config["checkpoint"] = {"every": args.epochs}
        cmd = [sys.executable, "-c", RAYNAS_TRAIN, str(REPO), json.dumps(config), TREE_CPU]
        total, proc = timed(cmd, REPO)
        out = marked(proc, "RAYNAS_OK", f"raynas run ({side})")
        out["same_archs"] = out.pop("archs") == sorted(archs)
    else:
        plain_args = {
            "archs": archs,
            "C": args.C,
            "N": args.N,
            "epochs": args.epochs,
            "batch_size": 64,
            "lr": 0.1,
            "n_train": args.n_train,
            "n_val": args.n_val,
            "concurrent": args.concurrent,
            "reuse_actors": side == "plain",
            "storage": str(storage),
            "tree_cpu": TREE_CPU,
        }
        total, proc = timed([sys.executable, "-c", PLAIN_TRAIN, json.dumps(plain_args)], REPO)
        out = marked(proc, "PLAIN_OK", f"plain Tune ({side})")
    out["process_s"] = total
    return out


def train(args: argparse.Namespace) -> dict:
    """``--kind train``: raynas vs plain Tune on the same children, sides alternated."""
    sys.path.insert(0, str(REPO))
    import torch

    from trainables.data import load_dataset

    splits = load_dataset("digits", val_fraction=0.2, seed=0, device=torch.device("cpu"))
    args.n_train, args.n_val = int(splits.train_y.shape[0]), int(splits.val_y.shape[0])
    archs = seeded_archs(args.trials, args.seed, C=args.C, N=args.N)
    sides = [s for s in TRAIN_SIDES if s != "plain_default" or args.default_repeats > 0]
    runs: dict[str, list[dict]] = {s: [] for s in sides}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            shift = rep % len(sides)  # rotate the order: machine noise hits every side
            for side in sides[shift:] + sides[:shift]:
                if side == "plain_default" and len(runs[side]) >= args.default_repeats:
                    continue
                out = _train_side(side, args, archs, Path(tmp) / f"{side}-{rep}")
                runs[side].append(out)
                print(
                    f"run {rep + 1}/{args.repeats} {side:15s}: {out['wall_s']:6.1f} s wall, "
                    f"{out['cpu_s']:6.1f} CPU s (process {out['process_s']:.1f} s, "
                    f"completed {out['done']})",
                    flush=True,
                )
    med = {s: statistics.median(r["wall_s"] for r in rs) for s, rs in runs.items()}
    cpu = {s: statistics.median(r["cpu_s"] for r in rs) for s, rs in runs.items()}
    ratio = med["raynas"] / med["plain"]
    cpu_ratio = cpu["raynas"] / cpu["plain"]
    pair_ratios = [a["wall_s"] / b["wall_s"] for a, b in zip(runs["raynas"], runs["plain"])]
    print(
        f"{args.trials} NB201 children (C={args.C}, N={args.N}), {args.epochs} epochs on digits, "
        f"{args.concurrent} at a time, 1 CPU each; median of {args.repeats} alternated run(s)"
    )
    labels = {
        "raynas": "raynas run (defaults: checkpoint every epoch)",
        "raynas_ckpt_end": "raynas run, checkpoint at the end only",
        "plain": "plain Tune, reuse_actors=True, data cached per process",
        "plain_default": "plain Tune defaults (fresh actor per trial)",
    }
    for side in sides:
        print(
            f"  {labels[side]:55s}: {med[side]:6.1f} s wall ({med[side] / args.trials:.2f} "
            f"s/trial), {cpu[side]:6.1f} CPU s"
        )
    print(
        f"ratio raynas/plain (reused actors): {ratio:.2f} wall, {cpu_ratio:.2f} CPU (target <= 0.8)"
    )
    if "plain_default" in med:
        print(f"ratio raynas/plain Tune defaults  : {med['raynas'] / med['plain_default']:.2f}")
    saving = med["raynas"] - med["raynas_ckpt_end"]
    cpu_saving = cpu["raynas"] - cpu["raynas_ckpt_end"]
    print(
        f"checkpoints every epoch instead of at the end only cost {saving:+.1f} s wall "
        f"({saving / med['raynas_ckpt_end']:+.0%}), {cpu_saving:+.1f} CPU s "
        f"({cpu_saving / cpu['raynas_ckpt_end']:+.0%})"
    )
    summary = {
        "benchmark": "overhead",
        "kind": "train",
        "trials": args.trials,
        "epochs": args.epochs,
        "C": args.C,
        "N": args.N,
        "concurrent": args.concurrent,
        "repeats": args.repeats,
        "raynas_s": round(med["raynas"], 2),
        "raynas_checkpoint_at_end_only_s": round(med["raynas_ckpt_end"], 2),
        "plain_tune_s": round(med["plain"], 2),
        "ratio": round(ratio, 3),
        "ratio_runs": [round(r, 3) for r in pair_ratios],
        "meets_target": ratio <= 0.8,
        "raynas_cpu_s": round(cpu["raynas"], 2),
        "raynas_checkpoint_at_end_only_cpu_s": round(cpu["raynas_ckpt_end"], 2),
        "plain_tune_cpu_s": round(cpu["plain"], 2),
        "cpu_ratio": round(cpu_ratio, 3),
        "intermediate_checkpoints_cpu_s": round(cpu_saving, 2),
        "cpu_runs_s": {s: [round(r["cpu_s"], 2) for r in rs] for s, rs in runs.items()},
        "intermediate_checkpoints_cost_s": round(saving, 2),
        "same_archs": all(
            r["same_archs"] for s in sides if s.startswith("raynas") for r in runs[s]
        ),
        "completed": {s: min(r["done"] for r in rs) for s, rs in runs.items()},
        "runs_s": {s: [round(r["wall_s"], 2) for r in rs] for s, rs in runs.items()},
    }
    if "plain_default" in med:
        summary["plain_tune_defaults_s"] = round(med["plain_default"], 2)
        summary["ratio_vs_defaults"] = round(med["raynas"] / med["plain_default"], 3)
        summary["plain_tune_defaults_cpu_s"] = round(cpu["plain_default"], 2)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["tabular", "train"], default="tabular")
    parser.add_argument("--trials", type=int, help="default: 1000 (tabular), 20 (train)")
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side (medians)")
    parser.add_argument("--epochs", type=int, default=3, help="train: epochs per child")
    parser.add_argument("--C", type=int, default=16, help="train: NB201 stem width")
    parser.add_argument("--N", type=int, default=1, help="train: NB201 cells per stage")
    parser.add_argument("--seed", type=int, default=0, help="train: seed of the arch sample")
    parser.add_argument(
        "--default-repeats",
        type=int,
        default=1,
        help="train: runs of the plain-Tune-defaults row (slow: a fresh actor per trial; 0: skip)",
    )
    args = parser.parse_args()
    if args.trials is None:
        args.trials = 1000 if args.kind == "tabular" else 20
    if min(args.trials, args.concurrent, args.repeats, args.epochs, args.C, args.N) < 1:
        parser.error("--trials, --concurrent, --repeats, --epochs, --C and --N must be >= 1")
    if args.kind == "tabular":
        summary = tabular(args.trials, args.concurrent, args.repeats)
    else:
        summary = train(args)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
