"""GPU throughput: one child alone on a GPU vs four children packed at ``gpu: 0.25``.

Runs two real experiments through ``raynas.run`` on the same GPU: (A) one nb201 child with
a whole GPU; (B) four children at once, each with a quarter. Prints training images/s
(all trials together) for both and the packing speed-up; the last line is JSON. On a
machine without a GPU it says so and prints a JSON line with ``"skipped": true``.

Usage: python benchmarks/gpu_throughput.py [--data cifar10 --root /data] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

import raynas


def run(tmp: str, name: str, trials: int, gpu: float, args: argparse.Namespace) -> dict:
    exp = {
        "name": name,
        "space": "nb201",
        "space_args": {"C": args.C, "N": args.N},
        "data": {"name": args.data, "root": args.root},
        "train": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": 0.1,
            "amp": True,
            "channels_last": True,
        },
        "strategy": {"name": "random"},
        "budget": {"trials": trials, "concurrent": trials},
        "resources": {"cpu": 1, "gpu": gpu},
        "checkpoint": {"every": 0},
        "objective": {"constraints": []},
        "storage": tmp,
        "seed": 0,
    }
    start = time.perf_counter()
    result = raynas.run(exp, verbose=False)
    wall = time.perf_counter() - start
    train_time = float(result.curves["epoch_time_s"].sum())
    from trainables.data import load_dataset

    n_train = int(load_dataset(args.data, root=args.root).train_x.shape[0])
    images = n_train * args.epochs * trials
    return {
        "trials": trials,
        "gpu_per_trial": gpu,
        "wall_s": round(wall, 1),
        "images": images,
        "images_per_s_wall": round(images / wall, 1),
        "images_per_s_train": round(images / (train_time / trials), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--root", default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--N", type=int, default=5)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU on this machine: benchmark skipped")
        print(json.dumps({"benchmark": "gpu_throughput", "skipped": True}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        alone = run(tmp, "alone", 1, 1.0, args)
        packed = run(tmp, "packed", 4, 0.25, args)
    speedup = packed["images_per_s_wall"] / alone["images_per_s_wall"]
    print(f"GPU: {torch.cuda.get_device_name(0)}; data {args.data}, nb201 C={args.C} N={args.N}")
    for label, r in (("alone (gpu 1.0)", alone), ("4 packed (0.25)", packed)):
        print(f"{label:18} {r['images_per_s_wall']:10.1f} images/s over the run ({r['wall_s']} s)")
    print(f"packing speed-up: {speedup:.2f}x")
    print(
        json.dumps(
            {
                "benchmark": "gpu_throughput",
                "device": torch.cuda.get_device_name(0),
                "alone": alone,
                "packed": packed,
                "speedup": round(speedup, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
