"""The ``raynas`` command line: ``run | resume | validate | spaces | strategies | schedulers``
and the
subcommands of :data:`CLI_EXTENSIONS` (``analyze``, ...).

A user mistake (bad config, unknown name, missing folder) prints one clear message per
problem and exits with code 2, never a Python traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from raynas.cli_args import add_overrides

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a command killed by it

#: Modules that add subcommands: each has ``register_cli(subparsers)``, which adds its
#: parsers with ``set_defaults(func=handler)``; ``handler(args) -> int`` is the exit code.
#: Their module-level imports stay light (no torch, no Ray) so ``--help`` is fast.
CLI_EXTENSIONS: tuple[str, ...] = (
    "raynas.results.analysis_cli",
    "raynas.bench.cli",
    "raynas.proxies.cli",
    "raynas.results.export",
    "raynas.experiment.retrain",
    "raynas.experiment.config_reference",
    "raynas.report.cli",
    "raynas.latency.cli",
)

EPILOG = """examples:
  raynas run examples/quickstart.yaml
  raynas run examples/quickstart.yaml --set budget.trials=4 --set train.epochs=1
  raynas run experiment.yaml --address auto        # on an existing Ray cluster
  raynas resume runs/quickstart
  raynas analyze runs/quickstart --top 10 --parquet out/
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with an unknown subcommand answered in the project's style."""

    def error(self, message: str) -> Any:  # argparse's signature says NoReturn
        m = re.match(r"argument COMMAND: invalid choice: (.*) \(choose from (.*)\)$", message)
        if m:
            known = ", ".join(c.strip(" '") for c in m[2].split(","))
            message = (
                f"COMMAND: unknown subcommand {m[1]}; use one of {known} "
                "(`raynas --help` says what each does)"
            )
        super().error(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="raynas",
        description="Neural Architecture Search on Ray Tune.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run an experiment from a YAML config",
        description="Validate CONFIG, run the search on Ray Tune, print the "
        "experiment folder and the top-5 architectures.",
    )
    run.add_argument("config", help="experiment YAML file")
    add_overrides(
        run,
        help="override a field, e.g. budget.trials=4 (repeatable; values are YAML); "
        "strategy.name or scheduler.name set to another name drops the old one's arguments",
    )
    run.add_argument("--storage", help="folder holding experiments (default: config storage)")
    run.add_argument("--name", help="experiment name, i.e. its folder (default: config name)")
    run.add_argument(
        "--address",
        help="Ray cluster address ('auto' for a running cluster); "
        "default: start Ray on this machine",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing experiment folder of the same name",
    )
    _output_flags(run)
    run.add_argument(
        "--warm-start",
        metavar="DIR",
        help="an earlier experiment of the same space: the strategy learns from its trials "
        "(and never proposes their architectures) before the search starts",
    )

    res = sub.add_parser(
        "resume",
        help="continue an interrupted experiment",
        description="Continue the experiment in DIR: finished trials are "
        "kept, unfinished ones continue from their last checkpoint, the "
        "searcher state is restored.",
    )
    res.add_argument("dir", help="experiment folder")
    add_overrides(
        res, help="raise budget.trials, e.g. budget.trials=40: also extends a finished search"
    )
    res.add_argument("--address", help="Ray cluster address")
    _output_flags(res)

    val = sub.add_parser(
        "validate",
        help="check a config without running it",
        description="Validate CONFIG (fields, space, strategy, data, "
        "resources) and exit 0 if it is good, 2 otherwise.",
    )
    val.add_argument("config")
    add_overrides(val)

    spc = sub.add_parser(
        "spaces",
        help="list the search spaces and their arguments",
        description="Name, cardinality, arguments (space_args, with defaults) and description "
        "of every registered space; with --config, also the spaces its plugins register; "
        "with a YAML space file, that space's decisions.",
    )
    spc.add_argument("file", nargs="?", help="a YAML space file: list its decisions")
    spc.add_argument("--config", help="an experiment YAML whose plugins are imported first")
    sub.add_parser(
        "schedulers",
        help="list the trial schedulers and their arguments",
        description="Every scheduler (scheduler.name) with its arguments and defaults.",
    )
    sub.add_parser(
        "strategies",
        help="list the search strategies and their arguments",
        description="Every registered strategy with its arguments and defaults.",
    )
    for module in CLI_EXTENSIONS:
        importlib.import_module(module).register_cli(sub)
    return p


def _output_flags(parser: argparse.ArgumentParser) -> None:
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--quiet", action="store_true", help="print only the final summary")
    out.add_argument(
        "--epochs", action="store_true", help="also print a line per epoch of every trial"
    )


def _verbosity(args: argparse.Namespace) -> str:
    return "summary" if args.quiet else "epochs" if args.epochs else "trials"


def _version() -> str:
    from raynas import __version__

    return f"raynas {__version__}"


def _cmd_run(args: argparse.Namespace) -> int:
    from raynas.experiment.runner import run

    result = run(
        args.config,
        overrides=args.overrides,
        storage=args.storage,
        name=args.name,
        address=args.address,
        overwrite=args.overwrite,
        verbose=_verbosity(args),
        warm_start=args.warm_start,
    )
    return _search_exit(result)


def _cmd_resume(args: argparse.Namespace) -> int:
    from raynas.experiment.runner import resume

    result = resume(
        args.dir, address=args.address, verbose=_verbosity(args), overrides=args.overrides
    )
    return _search_exit(result)


def _search_exit(result: Any) -> int:
    """1 when no trial of the search ended with a usable result (every one failed)."""
    if result is not None and len(result.trials) and not result.succeeded():
        print(
            "raynas: error: no trial succeeded (see the errors above and each trial's error.txt)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    from raynas.experiment.config_check import check_experiment
    from raynas.experiment.config_load import load_config
    from raynas.experiment.run_notes import run_notes

    exp = load_config(args.config, overrides=args.overrides)
    check_experiment(exp)
    print(
        f"{args.config}: ok (space {exp.space}, strategy {exp.strategy.name}, "
        f"{exp.budget.trials} trials)"
    )
    for line in run_notes(exp):
        print(line if line.startswith("warning:") else f"note: {line}")
    return EXIT_OK


def _cardinality(card: int | None) -> str:
    return "continuous" if card is None else f"{card:.3g}" if card > 10**9 else f"{card:,}"


def _cmd_spaces(args: argparse.Namespace) -> int:
    import inspect

    from raynas.registry import SPACES, get_space, load_plugins, resolve_space

    if args.file:
        space = resolve_space(args.file)
        print(f"{space.name}: {_cardinality(space.cardinality)} architectures")
        if space.description:
            print(space.description)
        genes = [(g.path, "continuous" if g.size is None else g.size) for g in space.genes]
        _table(("decision", "options"), genes)
        return EXIT_OK
    if args.config:
        from raynas.experiment.config_load import load_config

        exp = load_config(args.config)
        load_plugins(exp.plugins, exp.plugin_path)
    rows = []
    for entry in SPACES.entries():
        params = inspect.signature(entry.obj).parameters.values()
        shown = ", ".join(
            p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
            for p in params
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )
        card = get_space(entry.name).cardinality
        rows.append((entry.name, _cardinality(card), entry.description, shown or "-"))
    _table(("name", "cardinality", "description", "space_args (defaults)"), rows)
    return EXIT_OK


def _cmd_strategies(args: argparse.Namespace) -> int:
    from raynas.registry import STRATEGIES
    from raynas.strategies import strategy_arguments

    for entry in STRATEGIES.entries():
        params = strategy_arguments(entry.obj)
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "(none)"
        print(f"{entry.name:<14} {entry.description}")
        print(f"{'':<14} args: {shown}")
    return EXIT_OK


def _cmd_schedulers(args: argparse.Namespace) -> int:
    from raynas.experiment.schedulers import scheduler_arguments, scheduler_descriptions

    about = scheduler_descriptions()
    for name, params in scheduler_arguments().items():
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "(none)"
        print(f"{name:<14} {about[name]}")
        print(f"{'':<14} args: {shown}")
    return EXIT_OK


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


_COMMANDS = {
    "run": _cmd_run,
    "resume": _cmd_resume,
    "validate": _cmd_validate,
    "spaces": _cmd_spaces,
    "strategies": _cmd_strategies,
    "schedulers": _cmd_schedulers,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``raynas`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)  # a bad argument: SystemExit(2), argparse's usage line
    if not args.command:
        parser.print_help()
        return EXIT_OK
    from raynas.experiment.config import ConfigError
    from raynas.experiment.lock import keeping_locks
    from raynas.registry import RegistryError
    from raynas.space import InvalidArchitecture, SpaceDefinitionError

    try:
        with keeping_locks(_stop_ray_it_started(_ray_up())):
            handler = getattr(args, "func", None) or _COMMANDS[args.command]
            return int(handler(args))
    except ConfigError as err:
        for line in err.errors:
            print(f"raynas: error: {line}", file=sys.stderr)
        return EXIT_CONFIG
    except (RegistryError, SpaceDefinitionError, InvalidArchitecture, FileNotFoundError) as err:
        print(f"raynas: error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except BrokenPipeError:  # `raynas strategies | head`: the reader left; no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit must not fail again
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt as err:
        where = getattr(err, "path", None) or "DIR"
        print(f"raynas: interrupted; continue with `raynas resume {where}`", file=sys.stderr)
        return EXIT_INTERRUPTED


def _ray_up() -> bool:
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def _stop_ray_it_started(was_up: bool) -> Callable[[], None]:
    """What runs before a command releases its experiment folders: shut down the Ray the
    command started (not one this process already had: a notebook's, a test session's), so
    that a driver killed while its Ray stops still holds the folder and the next command on
    it reaps what that Ray left running."""

    def stop() -> None:
        if not was_up and _ray_up():
            sys.modules["ray"].shutdown()

    return stop


if __name__ == "__main__":
    sys.exit(main())
