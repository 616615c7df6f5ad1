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

``--kind train`` (40 trials): one-epoch tiny NB201 children on digits through ``raynas run``
vs a plain Tune function trainable with Tune's defaults (a fresh actor per trial, which
imports torch and loads the data again); each side timed end to end (process start to exit).

The last line printed is JSON.

Usage: .venv/bin/python benchmarks/overhead.py [--kind tabular] [--trials 1000] [--concurrent 2]
       [--repeats 3]
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

PLAIN_TUNE = r"""
import json, sys, time
import ray
from ray import tune

ARCHS = json.loads(sys.argv[1])
CONCURRENT = int(sys.argv[2])
STORAGE = sys.argv[3]

def train_child(config):
    import torch
    from torch import nn
    from sklearn.datasets import load_digits
    from search_spaces.models.nb201_net import NB201Network, parse_nb201_string
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(y)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(y), generator=g)
    tr, va = perm[:1150], perm[1150:1438]
    model = NB201Network(parse_nb201_string(config["arch"]), C=4, N=1, num_classes=10,
                         in_channels=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    order = tr[torch.randperm(len(tr), generator=g)]
    for i in range(0, len(order), 128):
        idx = order[i:i + 128]
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x[va]).argmax(1) == y[va]).float().mean().item()
    tune.report({"val_acc": acc, "epoch": 1})

ray.init(address="local", include_dashboard=False, logging_level="WARNING")
tuner = tune.Tuner(
    tune.with_resources(train_child, {"cpu": 1}),
    param_space={"arch": tune.grid_search(ARCHS)},
    tune_config=tune.TuneConfig(max_concurrent_trials=CONCURRENT),
    run_config=tune.RunConfig(storage_path=STORAGE, name="plain", verbose=0),
)
grid = tuner.fit()
print("PLAIN_OK", len(grid), sum(1 for r in grid if r.error is None))
"""


NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]

RAYNAS_TABULAR = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import raynas
from raynas.runner import init_ray

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


def _marked(proc: subprocess.CompletedProcess, mark: str, what: str) -> dict:
    for line in proc.stdout.splitlines():
        if line.startswith(mark + " "):
            return json.loads(line[len(mark) + 1 :])
    sys.exit(f"{what} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def tabular(trials: int, concurrent: int, repeats: int) -> dict:
    runs: dict[str, list[dict]] = {"raynas": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        table = write_synthetic_table(Path(tmp) / "nb201-synthetic.parquet")
        for rep in range(repeats):  # alternate the two sides: machine noise hits both
            storage = Path(tmp) / f"rep{rep}"
            config = {
                "name": "overhead-tabular",
                "space": "nb201",
                "trainable": "tabular",
                "trainable_args": {"table": str(table), "metric_columns": ["val_acc", "params"]},
                "strategy": {"name": "random"},
                "objective": {"metric": "val_acc", "mode": "max"},
                "budget": {"trials": trials, "concurrent": concurrent},
                "resources": {"cpu": 1},
                "checkpoint": {"every": 0},
                "seed": rep,
                "storage": str(storage),
            }
            cmd = [sys.executable, "-c", RAYNAS_TABULAR, str(REPO), json.dumps(config)]
            ours = _marked(timed(cmd, REPO)[1], "RAYNAS_OK", "raynas run")
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
            plain = _marked(timed(cmd, REPO)[1], "PLAIN_OK", "plain Tune")
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


def train(args: argparse.Namespace) -> dict:
    exe = Path(sys.executable).parent / "raynas"
    with tempfile.TemporaryDirectory() as tmp:
        raynas_s, proc = timed(
            [
                str(exe),
                "run",
                str(REPO / "examples" / "quickstart.yaml"),
                "--storage",
                tmp,
                "--name",
                "overhead",
                "--quiet",
                "--set",
                f"budget.trials={args.trials}",
                "--set",
                f"budget.concurrent={args.concurrent}",
                "--set",
                "train.epochs=1",
                "--set",
                "train.batch_size=128",
                "--set",
                f"space_args={json.dumps(SPACE_ARGS)}",
                "--set",
                "checkpoint.every=0",
                "--set",
                "train.latency_repeats=2",
                "--set",
                "objective.constraints=[]",
            ],
            REPO,
        )
        if proc.returncode != 0:
            sys.exit(f"raynas run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        sys.path.insert(0, str(REPO))
        import raynas

        result = raynas.load(Path(tmp) / "overhead")
        archs = list(result.trials["arch"])
        plain_s, proc = timed(
            [sys.executable, "-c", PLAIN_TUNE, json.dumps(archs), str(args.concurrent), tmp],
            REPO,
        )
        if "PLAIN_OK" not in proc.stdout:
            sys.exit(f"plain Tune failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    ratio = raynas_s / plain_s
    print(f"{args.trials} one-epoch children, {args.concurrent} at a time")
    print(f"raynas run        : {raynas_s:7.1f} s ({raynas_s / args.trials:.2f} s/trial)")
    print(f"plain Tune default: {plain_s:7.1f} s ({plain_s / args.trials:.2f} s/trial)")
    print(f"ratio raynas/plain: {ratio:.2f} (target <= 1.0)")
    return {
        "benchmark": "overhead",
        "kind": "train",
        "trials": args.trials,
        "raynas_s": round(raynas_s, 1),
        "plain_tune_s": round(plain_s, 1),
        "ratio": round(ratio, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["tabular", "train"], default="tabular")
    parser.add_argument("--trials", type=int, help="default: 1000 (tabular), 40 (train)")
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument(
        "--repeats", type=int, default=3, help="tabular: runs of each side (medians reported)"
    )
    args = parser.parse_args()
    if args.trials is None:
        args.trials = 1000 if args.kind == "tabular" else 40
    if args.trials < 1 or args.concurrent < 1 or args.repeats < 1:
        parser.error("--trials, --concurrent and --repeats must be at least 1")
    if args.kind == "tabular":
        summary = tabular(args.trials, args.concurrent, args.repeats)
    else:
        summary = train(args)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
