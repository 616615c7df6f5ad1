"""Does a trained supernet rank sub-networks as training them from scratch does?

On a stratified subset of Fashion-MNIST (``--limit`` images of the training split, a
``--val-fraction`` of them held out for validation), this script

1. trains the ``mobilenet`` supernet of a small space (:data:`SPACE_ARGS`) for
   ``--supernet-epochs`` with the ``supernet`` trainable (single-path uniform sampling, or
   ``--sandwich``), and times it;
2. samples ``--archs`` distinct sub-networks (seeded by ``--seed``) and evaluates each with the
   ``subnet`` trainable: inherited weights, BN recalibrated on ``--bn-batches`` training
   batches, one actor reused for all (as Tune's ``reuse_actors`` does), and times it;
3. trains the same sub-networks from scratch with ``classify`` for ``--scratch-epochs`` with the
   same recipe (optimizer, lr, batch size, weight decay) and takes their final ``val_acc``;
4. reports the Spearman rank correlation between the two accuracies (target >= 0.6), Kendall's
   tau, the supernet's training time and the subnet evaluations per second.

The trainables run in this process, outside Tune, exactly as a Tune actor runs them.

Usage: .venv/bin/python benchmarks/subnet_ranking.py [--limit 1500] [--val-fraction 0.4]
       [--archs 30] [--supernet-epochs 8] [--scratch-epochs 4] [--batch-size 32]
       [--lr 0.05] [--bn-batches 10] [--sandwich] [--threads 1] [--seed 0]
The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
#: The space searched: 28x28 -> 14x14 -> 7x7, 1-2 blocks a stage, ~11M architectures.
SPACE_ARGS: dict[str, Any] = {
    "stages": [[16, 2], [24, 2], [32, 1]],
    "min_depth": 1,
    "max_depth": 2,
    "kernels": [3, 5],
    "expands": [2, 3, 4],
    "width_mults": [0.5, 0.75, 1.0],
}


def rank(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho: the Pearson correlation of the ranks."""
    return float(np.corrcoef(rank(a), rank(b))[0, 1])


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b over every pair."""
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif da == db:
                concordant += 1
            else:
                discordant += 1
    n0 = concordant + discordant
    return float((concordant - discordant) / np.sqrt((n0 + ties_a) * (n0 + ties_b)))


def experiment(trainable: str, args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """The experiment mapping every phase shares (space, data, recipe)."""
    return {
        "name": f"ranking-{trainable}",
        "space": "mobilenet",
        "space_args": SPACE_ARGS,
        "trainable": trainable,
        "data": {
            "name": "fashion_mnist",
            "root": FASHION_MNIST,
            "limit": args.limit,
            "val_fraction": args.val_fraction,
        },
        "train": {
            "epochs": args.scratch_epochs,
            "batch_size": args.batch_size,
            "optimizer": "sgd",
            "lr": args.lr,
            "weight_decay": 5e-5,
            "eval_batch_size": 256,
            "latency_repeats": 1,
        },
        "strategy": {"name": "random"},
        "resources": {"cpu": args.threads, "gpu": 0},
        "seed": args.seed,
        **extra,
    }


def make(cls: type, data: dict[str, Any], arch: dict[str, Any], logdir: Path) -> Any:
    """A trainable of ``cls`` built as Tune builds it, for ``arch``."""
    import ray.tune.trainable.trainable as tune_trainable

    from raynas.experiment.config import trial_settings
    from raynas.experiment.config_load import load_config

    config = trial_settings(load_config(data))
    config["arch"] = arch
    logdir.mkdir(parents=True, exist_ok=True)
    tune_trainable.DEFAULT_STORAGE_PATH = str(logdir)
    return cls(config=config)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--limit", type=int, default=1500, help="Fashion-MNIST images used")
    p.add_argument("--val-fraction", type=float, default=0.4)
    p.add_argument("--archs", type=int, default=30, help="sub-networks ranked")
    p.add_argument("--supernet-epochs", type=int, default=8)
    p.add_argument("--scratch-epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--bn-batches", type=int, default=10)
    p.add_argument("--sandwich", action="store_true", help="sandwich rule + distillation")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import torch

    from raynas.registry import resolve_space
    from trainables.classify import ClassifyTrainable
    from trainables.supernet import SubnetTrainable, SupernetTrainable

    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    space = resolve_space("mobilenet", SPACE_ARGS)
    rng = np.random.default_rng(args.seed)
    archs: dict[str, dict[str, Any]] = {}
    while len(archs) < args.archs:
        arch = space.canonical(space.sample(rng))
        archs.setdefault(space.arch_id(arch), arch)
    work = Path(tempfile.mkdtemp(prefix="subnet-ranking-"))

    # 1. the supernet
    sup_data = experiment(
        "supernet",
        args,
        trainable_args={"sandwich": args.sandwich, "eval_bn_batches": args.bn_batches},
    )
    sup_data["train"] = {**sup_data["train"], "epochs": args.supernet_epochs}
    sup = make(SupernetTrainable, sup_data, space.sample(args.seed), work / "supernet")
    start = time.perf_counter()
    for _ in range(args.supernet_epochs):
        last = sup.train()
        print(
            f"supernet epoch {last['epoch']}: train_loss {last['train_loss']:.3f} "
            f"val_acc largest {last['val_acc_largest']:.3f} "
            f"smallest {last['val_acc_smallest']:.3f} ({last['epoch_time_s']:.0f} s)",
            flush=True,
        )
    supernet_s = time.perf_counter() - start
    ckpt = work / "checkpoint_000000"
    ckpt.mkdir()
    sup.save_checkpoint(str(ckpt))

    # 2. inherited weights + BN recalibration, one reused actor
    sub_data = experiment(
        "subnet", args, trainable_args={"supernet": str(ckpt), "bn_batches": args.bn_batches}
    )
    items = list(archs.values())
    sub = make(SubnetTrainable, sub_data, items[0], work / "subnet")
    inherited = []
    start = time.perf_counter()
    for i, arch in enumerate(items):
        if i:
            sub.reset_config({**sub.config, "arch": arch})
        inherited.append(sub.step()["val_acc"])
    subnet_s = time.perf_counter() - start

    # 3. the same sub-networks from scratch, the same recipe
    scratch = []
    cls_data = experiment("classify", args)
    child = make(ClassifyTrainable, cls_data, items[0], work / "classify")
    start = time.perf_counter()
    for i, arch in enumerate(items):
        if i:
            child.reset_config({**child.config, "arch": arch})
        for _ in range(args.scratch_epochs):
            result = child.step()
        scratch.append(result["val_acc"])
        print(
            f"arch {i + 1}/{len(items)}: inherited {inherited[i]:.3f} scratch {scratch[-1]:.3f}",
            flush=True,
        )
    scratch_s = time.perf_counter() - start

    a, b = np.array(inherited), np.array(scratch)
    rho, tau = spearman(a, b), kendall_tau(a, b)  # NaN when one side is constant
    record = {
        "benchmark": "subnet_ranking",
        "dataset": f"fashion_mnist limit={args.limit} val_fraction={args.val_fraction}",
        "archs": len(items),
        "sampling": "sandwich" if args.sandwich else "spos",
        "supernet_epochs": args.supernet_epochs,
        "scratch_epochs": args.scratch_epochs,
        "threads": args.threads,
        "spearman": round(rho, 4) if np.isfinite(rho) else None,
        "kendall_tau": round(tau, 4) if np.isfinite(tau) else None,
        "target_spearman": 0.6,
        "target_met": bool(rho >= 0.6),
        "supernet_train_s": round(supernet_s, 1),
        "supernet_val_acc_largest": last["val_acc_largest"],
        "supernet_val_acc_smallest": last["val_acc_smallest"],
        "subnet_evals_per_s": round(len(items) / subnet_s, 3),
        "scratch_train_s": round(scratch_s, 1),
        "inherited_val_acc_mean": round(float(a.mean()), 4),
        "scratch_val_acc_mean": round(float(b.mean()), 4),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
