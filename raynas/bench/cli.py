"""``raynas bench build | search | convert``: tabular benchmarks from the command line.

Module-level imports stay light (no pandas, torch or Ray): ``raynas --help`` imports this.
A user mistake (bad flag value, missing column, arch outside the space) prints one message
naming the flag or column and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from raynas.cli_args import add_key_values, add_overrides, add_subcommands, flag_errors, positive

EXIT_OK = 0

EPILOG = """examples:
  raynas bench build examples/bench-nb201-digits.yaml --out table.parquet --seeds 0 1
  raynas bench search benchmarks/data/nb201-3ops-digits.parquet --space nb201 \\
      --strategy evolution --metric val_acc --report test_acc --budget 100 --seeds 30
  raynas bench search benchmarks/data/nb201-3ops-digits.parquet --strategy evolution \
      --metric val_acc --report test_acc --budget 50 --seeds 30 \
      --proxy-table digits-proxies.parquet --proxy synflow --warmup-pool 1000
  raynas bench convert NAS-Bench-201-v1_1-096897.pth --benchmark nb201 \\
      --dataset cifar10-valid --out nb201-cifar10.parquet
"""


def register_cli(sub: Any) -> None:
    """Add ``bench`` and its subcommands to the ``raynas`` parser."""
    bench = sub.add_parser(
        "bench",
        help="tabular benchmarks: build, search, convert",
        description="Build a tabular benchmark by exhaustive evaluation, measure a strategy's "
        "search efficiency on one, or convert the official NAS-Bench-201 / NATS-Bench files.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bsub = add_subcommands(bench, "bench_command")
    _add_build(bsub)
    _add_search(bsub)
    _add_convert(bsub)


def _add_build(bsub: Any) -> None:
    p = bsub.add_parser(
        "build",
        help="evaluate every member of a small space and write the table",
        description="Run CONFIG's space exhaustively (grid strategy, budget = cardinality) with "
        "the normal runner, once per seed, and write the table with full learning curves. "
        "Resumable: run the same command again after an interruption.",
    )
    p.add_argument("config", help="experiment YAML (its strategy and budget are replaced)")
    p.add_argument("--out", required=True, metavar="TABLE", help="table to write (.parquet/.csv)")
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED", help="default: config seed")
    add_overrides(p)
    p.add_argument("--storage", help="folder of the experiment folders (default: config's)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=run_build)


def _add_search(bsub: Any) -> None:
    p = bsub.add_parser(
        "search",
        help="measure a strategy's search efficiency on a table",
        description="Run K seeded searches of N evaluations each, driving the strategy by hand "
        "against TABLE (no Ray trials). The strategy chooses by --metric; the found arch (best "
        "by --metric so far) is scored by --report.",
    )
    p.add_argument("table", help="the table (.parquet or .csv)")
    p.add_argument("--space", help="space name or YAML (default: the table's metadata)")
    add_key_values(
        p, "--space-arg", "space_args", None, help="space argument (default: the table's metadata)"
    )
    p.add_argument("--strategy", required=True)
    add_key_values(p, "--strategy-arg", "strategy_args", [])
    p.add_argument("--metric", required=True, help="column the strategy optimises")
    p.add_argument("--report", help="column the found arch is scored by (default: --metric)")
    p.add_argument("--mode", choices=("max", "min"), default="max")
    p.add_argument("--report-mode", choices=("max", "min"), help="default: --mode")
    p.add_argument("--budget", type=positive, required=True, metavar="N")
    p.add_argument("--seeds", type=positive, default=10, metavar="K")
    p.add_argument("--seed-start", type=int, default=0, help="first seed (seeds S..S+K-1)")
    p.add_argument(
        "--seed-mode",
        choices=("mean", "by_seed"),
        default="mean",
        help="replay the mean of the recorded runs, or the run picked by seed",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--curve", metavar="OUT.parquet", help="write best-so-far curves per seed (and OUT.png)"
    )
    p.add_argument(
        "--via-tune",
        action="store_true",
        help="run each search as a real Tune experiment with the tabular trainable",
    )
    p.add_argument("--storage", help="--via-tune: folder of the experiments (default: a temp dir)")
    g = p.add_argument_group(
        "proxy-guided search",
        "the strategy's initial draws and moves ranked by a zero-cost proxy, read from a table "
        "(no evaluation of the budget)",
    )
    g.add_argument(
        "--proxy-table",
        metavar="FILE",
        help="a 'raynas proxies score' table (joined by arch_id); needs --proxy",
    )
    g.add_argument("--proxy", metavar="NAME", help="--proxy-table's column to use as the proxy")
    g.add_argument(
        "--proxy-column", metavar="COL", help="use a column of TABLE itself as the proxy"
    )
    g.add_argument(
        "--warmup-pool", type=positive, metavar="N", help="ranked initial pool (default 100)"
    )
    g.add_argument(
        "--move-candidates", type=positive, metavar="K", help="candidates per move (default 10)"
    )
    p.set_defaults(func=run_search_cmd)


def _add_convert(bsub: Any) -> None:
    p = bsub.add_parser(
        "convert",
        help="official NAS-Bench-201 / NATS-Bench file -> table",
        description="Read the official benchmark file through its API package (pip install "
        "'raynas[nasbench]') and write our table format for one dataset.",
    )
    p.add_argument("source", help="benchmark file or folder (e.g. NAS-Bench-201-v1_1-096897.pth)")
    p.add_argument("--out", required=True, metavar="TABLE")
    p.add_argument("--benchmark", choices=("nb201", "nats-tss"), default="nb201")
    p.add_argument(
        "--dataset",
        default="cifar10-valid",
        help="cifar10-valid, cifar10, cifar100 or ImageNet16-120",
    )
    p.add_argument(
        "--hp",
        default=None,
        help="training schedule: '12' or '200' epochs (default: 200)",
    )
    p.add_argument("--limit", type=positive, help="convert only the first N archs")
    p.add_argument(
        "--final-only",
        action="store_true",
        help="one row per run (its last epoch) instead of the full curve",
    )
    p.set_defaults(func=run_convert)


def _user_errors(*more: type[BaseException]) -> tuple[type[BaseException], ...]:
    """The exceptions that are a user's mistake (and ``more``): printed, exit 2."""
    from raynas.bench.table import TableError
    from raynas.strategies.base import StrategyError

    return (TableError, StrategyError, *more)


def run_build(args: argparse.Namespace) -> int:
    from raynas.bench.build import build_table

    try:
        build_table(
            args.config,
            args.out,
            seeds=args.seeds,
            overrides=args.overrides,
            storage=args.storage,
            verbose=not args.quiet,
        )
    except _user_errors() as err:
        flag_errors([str(err)])
    return EXIT_OK


def run_search_cmd(args: argparse.Namespace) -> int:
    from raynas.bench.search import run_searches, summarize
    from raynas.bench.table import load_table

    try:
        space_args = dict(args.space_args) if args.space_args is not None else None
        table = load_table(args.table, args.space, space_args=space_args)
        table.require(args.metric, flag="--metric")
        table.require(args.report, flag="--report")
        seeds = range(args.seed_start, args.seed_start + args.seeds)
        kwargs: dict[str, Any] = {
            "metric": args.metric,
            "report": args.report,
            "mode": args.mode,
            "report_mode": args.report_mode,
            "budget": args.budget,
            "strategy_args": dict(args.strategy_args),
            "seed_mode": args.seed_mode,
        }
        proxy = _proxy_arg(args, table)
        if proxy is not None:
            kwargs["strategy_args"]["proxy"] = proxy
        if args.via_tune:
            from raynas.bench.search import run_searches_via_tune

            runs = run_searches_via_tune(
                table, args.strategy, seeds=seeds, storage=args.storage, **kwargs
            )
            direct = run_searches(table, args.strategy, seeds=seeds, **kwargs)
            same = all(a.archs == b.archs for a, b in zip(runs, direct))
        else:
            runs = run_searches(table, args.strategy, seeds=seeds, **kwargs)
    except _user_errors() as err:
        flag_errors([str(err)])
    summary = summarize(runs)
    if args.via_tune:
        summary["same_as_direct"] = same
    if args.curve:
        for path in write_curves(runs, args.curve):
            print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(summary))
    else:
        print_summary(summary, table)
    return EXIT_OK


def _proxy_arg(args: argparse.Namespace, table: Any) -> dict[str, Any] | None:
    """The strategy's ``proxy`` argument from the proxy flags (None: no proxy flag).

    Raises:
        TableError: naming the flag that is missing, conflicting or bad.
    """
    from raynas.bench.search import TableProxy
    from raynas.bench.table import TableError
    from raynas.registry import STRATEGIES
    from raynas.strategies import strategy_parameters

    tuning = {"--warmup-pool": args.warmup_pool, "--move-candidates": args.move_candidates}
    if args.proxy_table is None and args.proxy_column is None:
        given = [flag for flag, v in (("--proxy", args.proxy), *tuning.items()) if v is not None]
        if given:
            raise TableError(
                f"{given[0]}: needs a proxy source: --proxy-table FILE --proxy NAME, or "
                "--proxy-column COL"
            )
        return None
    if args.proxy_table is not None and args.proxy_column is not None:
        raise TableError("--proxy-table and --proxy-column: give one proxy source, not both")
    if args.proxy_table is not None and not args.proxy:
        raise TableError("--proxy-table: name the proxy column with --proxy NAME (e.g. synflow)")
    if args.proxy_column is not None and args.proxy:
        raise TableError("--proxy: only with --proxy-table (--proxy-column names the column)")
    if args.via_tune:
        raise TableError("--via-tune: proxy-guided replay runs only without --via-tune")
    if "proxy" in dict(args.strategy_args):
        raise TableError("--strategy-arg proxy=...: use the --proxy-* flags instead")
    if "proxy" not in strategy_parameters(STRATEGIES.get(args.strategy)):
        guided = [e.name for e in STRATEGIES.entries() if "proxy" in strategy_parameters(e.obj)]
        raise TableError(
            f"--strategy {args.strategy!r} takes no proxy; strategies that do: {guided}"
        )
    if args.proxy_table is not None:
        scorer = TableProxy.from_file(table, args.proxy_table, args.proxy)
    else:
        scorer = TableProxy.from_column(table, args.proxy_column, seed_mode=args.seed_mode)
    proxy: dict[str, Any] = {"name": scorer.name, "scorer": scorer}
    if args.warmup_pool is not None:
        proxy["warmup_pool"] = args.warmup_pool
    if args.move_candidates is not None:
        proxy["move_candidates"] = args.move_candidates
    return proxy


def run_convert(args: argparse.Namespace) -> int:
    from raynas.bench.convert import ConvertError, convert

    try:
        report = convert(
            args.source,
            args.out,
            benchmark=args.benchmark,
            dataset=args.dataset,
            hp=args.hp,
            limit=args.limit,
            final_only=args.final_only,
        )
    except _user_errors(ConvertError) as err:
        flag_errors([str(err)])
    print(f"wrote {report['out']}: {report['rows']} rows, {report['archs']} archs")
    return EXIT_OK


def print_summary(summary: dict[str, Any], table: Any) -> None:
    """The human-readable result of ``bench search``."""
    s = summary
    name = table.path.name if table.path is not None else "table"
    print(
        f"{s['strategy']} on {name} ({table.summary()['archs']} archs): {s['seeds']} seeds x "
        f"{s['budget']} evaluations, searching {s['metric']}, reporting {s['report']}"
    )
    print(
        f"{s['report']} of the best-by-{s['metric']} arch at {s['budget']}: mean "
        f"{s['mean']:.4f} +- {s['std']:.4f} (std), median {s['median']:.4f}"
    )
    print(
        f"table optimum {s['optimum']:.4f}, mean regret {s['regret']:.4f} +- {s['regret_std']:.4f}"
    )
    med = s["evals_to_optimum_median"]
    shown = str(med) if med is not None else f"> {s['budget']}"
    print(
        f"evaluations to the {s['metric']} optimum: median {shown} (found by "
        f"{s['found_optimum']:.0%} of seeds)"
    )
    if "same_as_direct" in s:
        print(f"--via-tune trajectory identical to the direct search: {s['same_as_direct']}")
    if "proxy" in s:
        p = s["proxy"]
        print(
            f"proxy {p['proxy']} (warmup_pool {p['warmup_pool']}, move_candidates "
            f"{p['move_candidates']}): {p['archs_scored_mean']:.0f} archs scored per seed, "
            f"{p['seconds_mean']:.3f} s per seed, no evaluation of the budget"
        )


def write_curves(runs: list[Any], out: str) -> list[str]:
    """Best-so-far curves per seed to Parquet (long form) and a PNG plot next to it."""
    from pathlib import Path

    import pandas as pd

    rows = []
    for r in runs:
        for i in range(len(r.archs)):
            rows.append(
                {
                    "strategy": r.strategy,
                    "seed": r.seed,
                    "evaluation": i + 1,
                    "arch": r.archs[i],
                    r.metric: r.metric_values[i],
                    "best_metric": r.best_metric[i],
                    "best_report": r.best_report[i],
                    "regret": r.regret[i],
                    "sim_time_s": r.sim_time_s[i],
                }
            )
    path = Path(out)
    if path.suffix.lower() != ".parquet":
        path = path.with_suffix(".parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df.to_parquet(path, index=False)
    png = path.with_suffix(".png")
    _plot_curves(df, png, runs[0].report if runs else "report")
    return [str(path), str(png)]


def _plot_curves(df: Any, png: Any, report: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for _, g in df.groupby("seed"):
        ax.plot(g["evaluation"], g["best_report"], color="tab:blue", alpha=0.2, lw=0.8)
    mean = df.groupby("evaluation")["best_report"].mean()
    ax.plot(mean.index, mean.to_numpy(), color="tab:blue", lw=2, label="mean over seeds")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"{report} of the incumbent")
    strategy = df["strategy"].iat[0] if len(df) else ""
    ax.set_title(f"{strategy}: best so far per seed")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
