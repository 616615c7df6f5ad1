"""``raynas report DIR [--watch]`` and ``raynas draw ARCH --space NAME``.

A user mistake (no such folder, unknown space, an arch that does not parse) is a
:class:`~raynas.experiment.config.ConfigError` with one ``field: message`` line naming the fix; the
``raynas`` entry point prints it and exits 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_INTERRUPTED = 0, 130


def register_cli(sub: Any) -> None:
    """Add the ``report`` and ``draw`` subcommands to the ``raynas`` parser."""
    rep = sub.add_parser(
        "report",
        help="write a self-contained HTML report of an experiment folder",
        description="Write one HTML file (default DIR/report.html) with the trial table, search "
        "progress, learning curves, Pareto fronts, op frequencies and drawings of the top-k "
        "architectures. Built from the folder alone: works while the search runs and after a "
        "crash; the page needs no network.",
    )
    rep.add_argument("dir", help="experiment folder (<storage>/<name>)")
    rep.add_argument("--out", metavar="FILE", help="HTML file to write (default DIR/report.html)")
    rep.add_argument("--top", type=int, default=5, metavar="K", help="top-k trials drawn")
    rep.add_argument(
        "--watch",
        action="store_true",
        help="rewrite the file every --interval seconds until the experiment ends (Ctrl-C "
        "stops); the page reloads itself",
    )
    rep.add_argument(
        "--interval",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds between rewrites with --watch (default 5)",
    )
    rep.set_defaults(func=run_report)

    draw = sub.add_parser(
        "draw",
        help="draw one architecture as SVG",
        description="Draw ARCH (the space's canonical string, as `raynas analyze` prints it, "
        "or the arch as JSON) as an SVG file: cells as DAGs, mobilenet as its block chain, mlp "
        "as its layer stack, other spaces as a list of their decisions.",
    )
    draw.add_argument("arch", help="canonical arch string or JSON")
    draw.add_argument("--space", required=True, help="space name (`raynas spaces`) or YAML file")
    draw.add_argument(
        "--space-arg",
        dest="space_args",
        action="append",
        default=[],
        metavar="K=V",
        help="space argument, e.g. C=8 (repeatable; values are YAML)",
    )
    draw.add_argument("--out", required=True, metavar="FILE.svg", help="SVG file to write")
    draw.add_argument("--title", default="", help="caption drawn on top")
    draw.set_defaults(func=run_draw)


def _folder(raw: str) -> Path:
    from raynas.results.analysis import experiment_folder

    return experiment_folder(raw)


def run_report(args: argparse.Namespace) -> int:
    """Write the report of ``args.dir`` (once, or until the run ends with ``--watch``)."""
    from raynas.experiment.config import ConfigError
    from raynas.report.build import write_report
    from raynas.report.live import watch

    if args.top < 1:
        raise ConfigError([f"--top: must be >= 1, got {args.top}"])
    if not args.interval > 0:
        raise ConfigError([f"--interval: must be > 0 seconds, got {args.interval}"])
    folder = _folder(args.dir)
    if not args.watch:
        print(f"wrote {write_report(folder, args.out, k=args.top)}")
        return EXIT_OK
    print(f"watching {folder}: rewriting the report every {args.interval:g} s (Ctrl-C stops)")
    try:
        path = watch(folder, args.out, interval_s=args.interval, k=args.top)
    except KeyboardInterrupt:
        print("stopped watching (the report keeps its last version)", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"experiment over; wrote {path}")
    return EXIT_OK


def _space_args(items: list[str]) -> dict[str, Any]:
    import yaml

    from raynas.experiment.config import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError([f"--space-arg {item!r}: must be K=V, e.g. C=8"])
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError([f"--space-arg {item!r}: value is not YAML ({err})"]) from err
    return out


def parse_arch(space: Any, text: str) -> dict[str, Any]:
    """``text`` as an arch of ``space``: JSON when it starts with ``{``, else the space's
    canonical string (:meth:`Space.from_string`); returned in canonical form.

    Raises:
        ConfigError: ``ARCH: ...`` saying what is wrong and what to pass instead.
    """
    from raynas.experiment.config import ConfigError
    from raynas.space import InvalidArchitecture

    fix = (
        f"pass the canonical string of a {space.name!r} arch (the `arch` column of "
        "`raynas analyze`) or the arch as JSON"
    )
    try:
        if text.lstrip().startswith("{"):
            try:
                arch = json.loads(text)
            except ValueError as err:
                raise ConfigError([f"ARCH: not valid JSON ({err}); {fix}"]) from err
            return dict(space.canonical(arch))
        return dict(space.from_string(text))
    except InvalidArchitecture as err:
        raise ConfigError([f"ARCH: {err}; {fix}"]) from err
    except (ValueError, TypeError, KeyError, AttributeError) as err:  # a string it rejects
        raise ConfigError(
            [f"ARCH: {text!r} is not an arch of {space.name!r} ({err}); {fix}"]
        ) from err


def run_draw(args: argparse.Namespace) -> int:
    """Draw ``args.arch`` of ``args.space`` into ``args.out`` (SVG)."""
    from raynas.experiment.config import ConfigError
    from raynas.registry import RegistryError, resolve_space
    from raynas.report.draw import draw_arch
    from raynas.space import SpaceDefinitionError

    space_args = _space_args(args.space_args)
    try:
        space = resolve_space(args.space, space_args)
    except RegistryError as err:
        field = "--space-arg" if "argument" in str(err) else "--space"
        raise ConfigError([f"{field}: {err}"]) from err
    except (SpaceDefinitionError, OSError) as err:
        raise ConfigError([f"--space: {err}"]) from err
    arch = parse_arch(space, args.arch)
    out = Path(args.out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(draw_arch(arch, space=space, title=args.title))
    print(f"wrote {out}")
    return EXIT_OK
