"""Cost of one-shot search: seconds per search epoch and peak memory, per method and space.

Each (method, space, device) runs in its own process: it builds the one-shot trainable (on
digits, outside Tune), replaces the two training halves by ``--steps`` batches of synthetic
``1 x S x S`` images (``--image-size``) at a fixed ``--batch-size``, runs one warm-up epoch,
then times ``--repeats`` search epochs (``_search_epoch``: the weight and architecture /
controller steps; no evaluation; the fastest counts). Memory is measured in a second process:
the peak above the level before one search epoch, on CPU of the process RSS sampled every
2 ms (with glibc's mmap threshold at 4 KiB, so freed tensors leave the RSS), on GPU of
``torch.cuda.max_memory_allocated``.

Methods: ``darts-1`` (first-order DARTS), ``darts-2`` (second order), ``gdas``, ``enas``
(``controller_steps`` REINFORCE steps per epoch, 10 here). Spaces: ``nb201`` (``C=8, N=1``)
and ``darts`` (``C=8, layers=5``), the supernet's size (``trainable_args.search_args``; the
evaluation network is the same). The GPU rows appear when CUDA is available.

Usage: .venv/bin/python benchmarks/oneshot_cost.py [--steps 3] [--batch-size 64]
       [--image-size 8] [--repeats 2] [--methods darts-1 darts-2 gdas enas]
       [--spaces nb201 darts] [--devices cpu cuda]
The last line printed is JSON (one record per row).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
METHODS = {
    "darts-1": ("darts", {"order": 1}),
    "darts-2": ("darts", {"order": 2}),
    "gdas": ("gdas", {}),
    "enas": ("enas", {"controller_steps": 10, "derive_samples": 4}),
}
SPACE_ARGS = {"nb201": {"C": 8, "N": 1}, "darts": {"C": 8, "layers": 5}}


class RssPeak:
    """Peak resident memory of this process above its level at start, sampled in a thread."""

    def __init__(self, interval_s: float = 0.002) -> None:
        import psutil

        self.process = psutil.Process()
        self.interval_s = interval_s
        self.base = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval_s)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


def measure(method: str, space: str, device: str, args: argparse.Namespace) -> dict[str, Any]:
    """Time (``args.mode == "time"``) or measure the memory of one configuration."""
    import ray.tune.trainable.trainable as tune_trainable
    import torch

    import trainables.oneshot.common as common
    from raynas.experiment.config import trial_settings
    from raynas.experiment.config_load import load_config
    from raynas.registry import TRAINABLES, get_space

    torch.set_num_threads(args.threads)
    dev = torch.device(device)
    common.trial_device = lambda config: dev  # outside Ray: no GPU ids are assigned
    trainable_name, trainable_args = METHODS[method]
    exp = load_config(
        {
            "space": space,
            "space_args": SPACE_ARGS[space],
            "trainable": trainable_name,
            "trainable_args": {**trainable_args, "search_args": SPACE_ARGS[space]},
            "data": {"name": "digits", "limit": 200},
            "train": {"epochs": 10, "batch_size": args.batch_size, "latency_repeats": 1},
            "resources": {"cpu": args.threads},
        }
    )
    config = trial_settings(exp)
    config["arch"] = get_space(space, **SPACE_ARGS[space]).sample(0)
    tune_trainable.DEFAULT_STORAGE_PATH = tempfile.mkdtemp(prefix="oneshot_cost_")
    trainable = TRAINABLES.get(trainable_name)(config=config)
    n = args.steps * args.batch_size
    g = torch.Generator().manual_seed(0)
    shape = (n, 1, args.image_size, args.image_size)
    trainable.w_x, trainable.a_x = (torch.randn(shape, generator=g).to(dev) for _ in range(2))
    trainable.w_y, trainable.a_y = (
        torch.randint(0, 10, (n,), generator=g).to(dev) for _ in range(2)
    )
    trainable._search_epoch()  # warm-up (allocator, kernels, lazy state)
    row: dict[str, Any] = {
        "method": method,
        "space": space,
        "device": device,
        "supernet_params": sum(p.numel() for p in trainable.net.parameters()),
    }
    if args.mode == "time":
        times = []
        for _ in range(args.repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            trainable._search_epoch()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return {**row, "s_per_epoch": min(times), "s_per_step": min(times) / args.steps}
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        trainable._search_epoch()
        torch.cuda.synchronize()
        return {**row, "peak_mib": (torch.cuda.max_memory_allocated() - before) / 2**20}
    with RssPeak() as rss:
        trainable._search_epoch()
    return {**row, "peak_mib": rss.mib}


def _run(one: list[str], passthrough: list[str], env: dict[str, str]) -> dict[str, Any] | str:
    proc = subprocess.run(
        [sys.executable, __file__, "--one", *one, *passthrough],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if proc.returncode != 0:
        return proc.stderr.strip()[-300:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=3, help="weight steps per search epoch")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2, help="timed epochs (the fastest counts)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--spaces", nargs="+", default=list(SPACE_ARGS), choices=list(SPACE_ARGS))
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda if present")
    p.add_argument("--one", nargs=3, metavar=("METHOD", "SPACE", "DEVICE"), help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=("time", "memory"), default="time", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        method, space, device = args.one
        print(json.dumps(measure(method, space, device, args)))
        return
    devices = args.devices
    if devices is None:
        import torch

        devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    passthrough = [
        f"--steps={args.steps}",
        f"--batch-size={args.batch_size}",
        f"--image-size={args.image_size}",
        f"--repeats={args.repeats}",
        f"--threads={args.threads}",
    ]
    # Memory runs apart from timing runs: there every CPU block of 4 KiB or more comes from
    # mmap and goes back to the OS when freed, so the RSS follows the live tensors (glibc
    # otherwise keeps freed blocks); timing runs keep the normal allocator.
    timing_env = dict(os.environ)
    memory_env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "4096"}
    settings = {"batch_size": args.batch_size, "steps": args.steps, "image_size": args.image_size}
    rows = []
    print(
        f"batch {args.batch_size}, {args.steps} steps/epoch, 1x{args.image_size}x{args.image_size}"
    )
    print(
        f"{'method':<8} {'space':<6} {'device':<6} {'params':>8} {'s/epoch':>9} {'s/step':>8} "
        f"{'peak MiB':>9}"
    )
    for device in devices:
        for space in args.spaces:
            for method in args.methods:
                timed = _run([method, space, device], [*passthrough, "--mode=time"], timing_env)
                sized = _run([method, space, device], [*passthrough, "--mode=memory"], memory_env)
                if isinstance(timed, str) or isinstance(sized, str):
                    why = timed if isinstance(timed, str) else sized
                    print(f"{method:<8} {space:<6} {device:<6} failed: {why}")
                    continue
                row = {**timed, "peak_mib": sized["peak_mib"], **settings}
                rows.append(row)
                print(
                    f"{method:<8} {space:<6} {device:<6} {row['supernet_params']:>8,} "
                    f"{row['s_per_epoch']:>9.3f} {row['s_per_step']:>8.3f} {row['peak_mib']:>9.1f}",
                    flush=True,
                )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
