"""``raynas latency profile``: build a per-device latency table of a space's blocks.

Module-level imports stay light (no torch, no Ray): ``raynas --help`` imports this. A user
mistake raises :class:`raynas.experiment.config.ConfigError` with a line naming the flag, which
``raynas`` prints before exiting 2.
"""

from __future__ import annotations

import argparse
from typing import Any

from raynas.cli_args import add_space_args, add_subcommands, flag_errors, positive

EXIT_OK = 0

EPILOG = """examples:
  raynas latency profile --space mobilenet --device cpu --threads 1 --out lat-cpu.json
  raynas latency profile --space mobilenet --space-arg max_depth=2 --device cuda --batch 8 \\
      --channels-last --amp --out lat-h200.json
then in the experiment:
  objective: {constraints: ["latency_pred_ms <= 5"], latency_model: lat-cpu.json}
"""


def register_cli(sub: Any) -> None:
    """Add ``latency`` and its ``profile`` subcommand to the ``raynas`` parser."""
    latency = sub.add_parser(
        "latency",
        help="latency lookup tables: profile a space's blocks on a device",
        description="Per-device latency tables: every distinct block of a space timed alone on "
        "the target device; objective.latency_model then predicts latency_pred_ms of any "
        "architecture before it is proposed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lsub = add_subcommands(latency, "latency_command")
    p = lsub.add_parser(
        "profile",
        help="time every block of a space on a device and write the table",
        description="Time each distinct block the space can produce (mobilenet: the stem, "
        "every MBConv shape at every width, the head) alone on --device: --warmup untimed "
        "forwards, then --repeats timed ones, median and IQR kept. Then time --networks "
        "whole random members end to end and fit the overhead the sum of blocks misses "
        "(least squares). Writes one JSON file.",
    )
    p.add_argument("--space", required=True, help="a space with a block decomposition (mobilenet)")
    add_space_args(p)
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N); default cpu")
    p.add_argument(
        "--threads", type=positive, default=1, metavar="N", help="CPU threads (default 1)"
    )
    p.add_argument("--batch", type=positive, default=1, metavar="B", help="batch (default 1)")
    p.add_argument(
        "--input-shape", default="3,32,32", metavar="C,H,W", help="deployment input, 3,32,32"
    )
    p.add_argument("--num-classes", type=positive, default=10, metavar="K", help="default 10")
    p.add_argument(
        "--repeats", type=positive, default=50, metavar="R", help="timed forwards (default 50)"
    )
    p.add_argument("--warmup", type=positive, default=10, metavar="W", help="default 10")
    p.add_argument(
        "--networks",
        type=positive,
        default=8,
        metavar="N",
        help="whole networks timed to fit the overhead (default 8)",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the networks' choice")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--amp", action="store_true", help="fp16 autocast (cuda only)")
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: latency (default); cpu: one thread's CPU time, which leaves out waits "
        "for a core on a busy machine (cpu device, --threads 1)",
    )
    p.add_argument("--out", required=True, metavar="FILE.json", help="the table to write")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run_profile)


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or any(d < 1 for d in shape):
        flag_errors(
            [f"--input-shape: must be three positive integers C,H,W like 3,32,32, got {text!r}"]
        )
    return shape


def run_profile(args: argparse.Namespace) -> int:
    """Profile, save, print a summary."""
    from raynas.latency import LatencyError, decomposition_for, profile_space
    from raynas.registry import resolve_space

    shape = _shape(args.input_shape)
    errors = []
    if not args.out.endswith(".json"):
        errors.append(f"--out: must end in .json, got {args.out!r}")
    if args.device.split(":")[0] not in ("cpu", "cuda"):
        errors.append(f"--device: use cpu or cuda (cuda:N), got {args.device!r}")
    flag_errors(errors)
    try:
        decomposition_for(resolve_space(args.space, dict(args.space_args)))
    except LatencyError as err:
        flag_errors([f"--space: {err}"])
    try:
        table = profile_space(
            args.space,
            dict(args.space_args),
            device=args.device,
            threads=args.threads,
            batch=args.batch,
            input_shape=shape,
            num_classes=args.num_classes,
            warmup=args.warmup,
            repeats=args.repeats,
            networks=args.networks,
            seed=args.seed,
            channels_last=args.channels_last,
            amp=args.amp,
            clock=args.clock,
            log=None if args.quiet else print,
        )
    except LatencyError as err:
        text = str(err)
        flag = next((f for f in ("amp", "clock") if text.startswith(f)), "device")
        flag_errors([f"--{flag}: {err}"])
    path = table.save(args.out)
    meta = table.meta
    print(
        f"wrote {path}: {len(table.blocks)} blocks of {args.space} on {meta['device']} "
        f"({meta['device_name']}, torch {meta['torch']}, {meta['threads']} threads, batch "
        f"{meta['batch']}, {meta['dtype']}, {meta['memory_format']}) in {meta['profile_s']:.1f} s"
    )
    return EXIT_OK
