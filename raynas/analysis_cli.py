"""``raynas analyze DIR``: status counts, the top-k table, Parquet tables."""

from __future__ import annotations

import argparse
from typing import Any


def register_cli(sub: Any) -> None:
    """Add the ``analyze`` subcommand to the ``raynas`` parser."""
    ana = sub.add_parser(
        "analyze",
        help="summarise an experiment folder",
        description="Print status counts and the top-k trials of DIR; optionally write the "
        "tables as Parquet.",
    )
    ana.add_argument("dir", help="experiment folder")
    ana.add_argument("--top", type=int, default=5, metavar="K")
    ana.add_argument(
        "--parquet", metavar="OUT", help="write trials.parquet and curves.parquet into OUT"
    )
    ana.set_defaults(func=run_analyze)


def run_analyze(args: argparse.Namespace) -> int:
    from raynas.analysis import load

    result = load(args.dir)
    counts = result.status_counts()
    print(f"experiment: {result.path}")
    print(
        f"trials: {len(result.trials)} (" + ", ".join(f"{k}={v}" for k, v in counts.items()) + ")"
    )
    print(result.format_top(args.top))
    if args.parquet:
        for p in result.to_parquet(args.parquet):
            print(f"wrote {p}")
    return 0
