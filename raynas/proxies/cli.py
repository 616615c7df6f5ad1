"""``raynas proxies list | score | correlate``: zero-cost proxies from the command line.

Module-level imports stay light (no torch, pandas or Ray): ``raynas --help`` imports this.
A user mistake raises :class:`raynas.experiment.config.ConfigError` with a line naming the flag,
which ``raynas`` prints before exiting 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from raynas.cli_args import add_space_args, add_subcommands, flag_errors, positive
from raynas.proxies import DATA_FREE, ENSEMBLES, PROXIES, list_proxies

EXIT_OK, EXIT_INTERRUPTED = 0, 130

EPILOG = """examples:
  raynas proxies score --space nb201 --space-arg C=16 --space-arg N=5 --input-shape 3,32,32 \\
      --num-classes 10 --sample 20 --seed 0 --proxy synflow --proxy zen --out free.parquet
  raynas proxies score --config examples/bench-nb201-digits.yaml --all --proxy snip \\
      --proxy nwot --proxy vote --out digits-proxies.parquet
  raynas proxies correlate digits-proxies.parquet benchmarks/data/nb201-3ops-digits.parquet \\
      --metric test_acc --plot corr.png
"""


def register_cli(sub: Any) -> None:
    """Add ``proxies`` and its subcommands to the ``raynas`` parser."""
    proxies = sub.add_parser(
        "proxies",
        help="zero-cost proxies: score archs at initialisation, correlate with a table",
        description="Score architectures at initialisation (no training, at most one batch) "
        "and measure how well the scores rank a tabular benchmark.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    psub = add_subcommands(proxies, "proxies_command")
    p = psub.add_parser("list", help="the proxies, their data needs and papers")
    p.set_defaults(func=run_list)
    _add_score(psub)
    _add_correlate(psub)


def _add_score(psub: Any) -> None:
    p = psub.add_parser(
        "score",
        help="score every member or a sample of a space",
        description="Build each arch at initialisation (seeded by --seed and its arch id) and "
        "score it with each --proxy, in chunks of archs on Ray tasks. Data-free from --space "
        "and --input-shape, or with one batch of the training split of --config's data. "
        "Resumable: rerun the same command after an interruption.",
    )
    p.add_argument(
        "--proxy",
        dest="proxies",
        action="append",
        default=[],
        metavar="NAME",
        help=f"repeatable; one of {list_proxies()}",
    )
    p.add_argument("--config", help="experiment YAML: space, data and input shape from there")
    p.add_argument("--space", help="space name (data-free proxies only)")
    add_space_args(p)
    p.add_argument("--input-shape", metavar="C,H,W", help="one input's shape, e.g. 3,32,32")
    p.add_argument(
        "--num-classes",
        type=positive,
        default=None,
        metavar="K",
        help="classifier outputs (default 10)",
    )
    p.add_argument("--all", dest="every", action="store_true", help="every member of the space")
    p.add_argument("--sample", type=positive, metavar="N", help="N distinct seeded samples")
    p.add_argument("--seed", type=int, default=0, help="sample, init and batch seed")
    p.add_argument(
        "--batch-size",
        type=positive,
        default=64,
        metavar="B",
        help="--config: examples in the one batch (default 64)",
    )
    p.add_argument("--out", metavar="TABLE.parquet", help="write the table (resumable)")
    p.add_argument("--chunk-size", type=positive, default=8, metavar="K", help="archs per task")
    p.add_argument("--in-process", action="store_true", help="score here, without Ray")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run_score)


def _add_correlate(psub: Any) -> None:
    p = psub.add_parser(
        "correlate",
        help="Spearman / Kendall of each proxy against a bench table's metric",
        description="Join a `proxies score` table to a tabular benchmark by arch and print "
        "each proxy's rank correlation with the final --metric (mean over recorded seeds).",
    )
    p.add_argument("proxy_table", metavar="PROXY_TABLE")
    p.add_argument("bench_table", metavar="BENCH_TABLE")
    p.add_argument("--metric", required=True, help="a metric column of BENCH_TABLE")
    p.add_argument("--plot", metavar="FILE.png", help="scatter of proxy rank vs metric")
    p.set_defaults(func=run_correlate)


def run_list(args: argparse.Namespace) -> int:
    for name, spec in PROXIES.items():
        data = "one batch" if spec.needs_data else "data-free"
        print(f"{name:<12} {data:<10} {spec.citation}")
    for name, members in ENSEMBLES.items():
        over = ", ".join(members) if members else "the other proxies scored"
        print(f"{name:<12} {'ensemble':<10} rank average over {over}")
    return EXIT_OK


def _proxies(names: list[str], data: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(per-model proxies, ensembles), with the vote's members added."""
    bad = [n for n in names if n not in PROXIES and n not in ENSEMBLES]
    errors = [f"--proxy: {n!r} is unknown; choose among {list_proxies()}" for n in bad]
    if not names:
        errors.append(f"--proxy: give at least one, e.g. --proxy synflow ({list_proxies()})")
    flag_errors(errors)
    ensembles = tuple(dict.fromkeys(n for n in names if n in ENSEMBLES))
    models = [n for n in names if n in PROXIES]
    for e in ensembles:
        models.extend(ENSEMBLES[e] or ())
    models = list(dict.fromkeys(models))
    if "rank_average" in ensembles and not models:
        errors.append("--proxy: rank_average averages the other proxies; add at least one")
    if not data:
        errors += [
            f"--proxy: {n!r} needs one batch of data; give --config FILE (its data section), "
            f"or choose data-free proxies {list(DATA_FREE)}"
            for n in models
            if PROXIES[n].needs_data
        ]
    flag_errors(errors)
    return tuple(models), ensembles


def _shape(text: str | None) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in (text or "").split(","))
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        flag_errors([f"--input-shape: must be positive integers like 3,32,32, got {text!r}"])
    return shape


def _job(args: argparse.Namespace) -> Any:
    from raynas.proxies.scoring import ScoreJob

    if (args.config is None) == (args.space is None):
        flag_errors(
            [
                "--space / --config: give exactly one (a space for data-free proxies, or an "
                "experiment YAML for its space and one batch of its data)"
            ]
        )
    models, ensembles = _proxies(args.proxies, data=args.config is not None)
    if args.space is not None:
        if args.input_shape is None:
            flag_errors(["--input-shape: needed with --space, e.g. --input-shape 3,32,32"])
        return ScoreJob(
            space=args.space,
            space_args=dict(args.space_args),
            proxies=models,
            input_shape=_shape(args.input_shape),
            num_classes=args.num_classes or 10,
            seed=args.seed,
            ensembles=ensembles,
        )
    given = [
        f
        for f, v in (
            ("--space-arg", args.space_args),
            ("--input-shape", args.input_shape),
            ("--num-classes", args.num_classes),
        )
        if v
    ]
    flag_errors([f"{f}: taken from --config; leave it out" for f in given])
    from raynas.proxies.scoring import config_job

    return config_job(args.config, models, ensembles, seed=args.seed, batch_size=args.batch_size)


def run_score(args: argparse.Namespace) -> int:
    from raynas.proxies import ProxyError
    from raynas.proxies.scoring import _space, run_scoring, select_archs

    if args.every == (args.sample is not None):
        flag_errors(["--all / --sample: give exactly one (every member, or N seeded samples)"])
    if args.out is not None and Path(args.out).suffix.lower() != ".parquet":
        flag_errors([f"--out: must end in .parquet, got {args.out!r}"])
    job = _job(args)
    try:
        archs = select_archs(_space(job), every=args.every, sample=args.sample, seed=args.seed)
        start = time.perf_counter()
        table = run_scoring(
            job,
            archs,
            out=args.out,
            chunk_size=args.chunk_size,
            use_ray=not args.in_process,
            log=(lambda _m: None) if args.quiet else print,
        )
    except ProxyError as err:
        flag_errors([str(err)])
    except KeyboardInterrupt:
        kept = f"; finished chunks are kept in {args.out}.parts" if args.out else ""
        print(f"raynas: interrupted{kept}; rerun the same command to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    wall = time.perf_counter() - start
    cols = [*job.proxies, *job.ensembles]
    print(
        f"scored {len(table)} archs of {job.space} with {', '.join(cols)} in {wall:.1f} s "
        f"({table['seconds'].mean():.3f} s/arch in a task)"
    )
    failed = int((table["error"] != "").sum())
    if failed:
        print(f"{failed} archs have errors (see the 'error' column); their scores are nan")
    shown = table.sort_values(cols[0], ascending=False).head(10)
    print(shown[["arch_id", *cols, "seconds"]].to_string(index=False))
    if args.out is not None:
        print(f"wrote {args.out}")
    return EXIT_OK


def run_correlate(args: argparse.Namespace) -> int:
    import pandas as pd

    from raynas.bench.table import TableError, load_table
    from raynas.proxies import ProxyError
    from raynas.proxies.correlate import correlate, plot_correlation

    path = Path(args.proxy_table)
    if not path.is_file():
        flag_errors([f"PROXY_TABLE: no file {str(path)!r}; write one with `raynas proxies score`"])
    if not Path(args.bench_table).is_file():
        flag_errors([f"BENCH_TABLE: no file {args.bench_table!r}"])
    try:
        scores = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a file that is not Parquet
        flag_errors([f"PROXY_TABLE: {str(path)!r} is not a Parquet table: {err}"])
    try:
        table = load_table(args.bench_table)
        result = correlate(scores, table, args.metric)
    except (TableError, ProxyError) as err:
        flag_errors([str(err)])
    print(
        f"{len(scores)} scored archs vs {args.metric} of {Path(args.bench_table).name} "
        f"({len(table)} archs)"
    )
    print(result.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.plot:
        print(f"wrote {plot_correlation(scores, table, args.metric, args.plot, result)}")
    return EXIT_OK
