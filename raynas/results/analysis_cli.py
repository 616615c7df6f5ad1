"""``raynas analyze DIR``: status counts, the top-k table, Parquet tables, PNG plots."""

from __future__ import annotations

import argparse
from typing import Any


def register_cli(sub: Any) -> None:
    """Add the ``analyze`` subcommand to the ``raynas`` parser."""
    ana = sub.add_parser(
        "analyze",
        help="summarise an experiment folder (tables, Parquet, plots)",
        description="Print status counts and the top-k trials of DIR (works while the "
        "experiment runs and after a crash); optionally write the tables as Parquet and "
        "the plots as PNG.",
    )
    ana.add_argument("dir", help="experiment folder (<storage>/<name>)")
    ana.add_argument("--top", type=int, default=5, metavar="K", help="rows of the top-k table")
    ana.add_argument(
        "--parquet", metavar="OUT", help="write trials.parquet and curves.parquet into OUT"
    )
    ana.add_argument(
        "--plots",
        metavar="OUT",
        help="write PNG plots into OUT: best so far (trials, wall time), learning curves of "
        "the top-k, Pareto fronts against params/flops/latency, op frequencies (cell spaces)",
    )
    ana.set_defaults(func=run_analyze)


def run_analyze(args: argparse.Namespace) -> int:
    """Print the summary of ``args.dir``; write Parquet / plots when asked. Returns 0."""
    from raynas.experiment.config import ConfigError
    from raynas.results.analysis import experiment_folder, load

    if args.top < 1:
        raise ConfigError([f"--top: must be >= 1, got {args.top}"])
    folder = experiment_folder(args.dir)
    result = load(folder)
    counts = result.status_counts()
    state = "finished" if result.finished else "not finished (running, or stopped early)"
    print(f"experiment: {result.path} ({state})")
    print(
        f"trials: {len(result.trials)} (" + ", ".join(f"{k}={v}" for k, v in counts.items()) + ")"
    )
    errors = result.format_errors()
    if errors:
        print(errors)
    print(result.format_top(args.top))
    if args.parquet:
        for p in result.to_parquet(args.parquet):
            print(f"wrote {p}")
    if args.plots:
        from raynas.results.plots import plot_all

        written = plot_all(result, args.plots, k=args.top)
        for p in written:
            print(f"wrote {p}")
        if not written:
            print("no plot: no trial has reported a metric yet")
    return 0
