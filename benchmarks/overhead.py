"""Per-trial overhead: N one-epoch tiny children through `raynas run` vs plain Ray Tune.

The same architectures (the ones raynas's seeded random search picked) are trained for one
epoch on digits both ways:

- raynas: `raynas run` (class trainable, reused actors, dataset cached per worker);
- plain Tune: a function trainable with Tune's defaults (a fresh actor per trial, which
  imports torch and loads the data again), the same child, optimiser and batch size.

Each side runs in its own process with its own Ray runtime and is timed end to end
(process start to exit). Prints both wall times and the ratio; the last line is JSON.

Usage: .venv/bin/python benchmarks/overhead.py [--trials 40] [--concurrent 2]
"""

from __future__ import annotations

import argparse
import json
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

ray.init(include_dashboard=False, logging_level="WARNING")
tuner = tune.Tuner(
    tune.with_resources(train_child, {"cpu": 1}),
    param_space={"arch": tune.grid_search(ARCHS)},
    tune_config=tune.TuneConfig(max_concurrent_trials=CONCURRENT),
    run_config=tune.RunConfig(storage_path=STORAGE, name="plain", verbose=0),
)
grid = tuner.fit()
print("PLAIN_OK", len(grid), sum(1 for r in grid if r.error is None))
"""


def timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - start, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--concurrent", type=int, default=2)
    args = parser.parse_args()
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
    print(
        json.dumps(
            {
                "benchmark": "overhead",
                "trials": args.trials,
                "raynas_s": round(raynas_s, 1),
                "plain_tune_s": round(plain_s, 1),
                "ratio": round(ratio, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
