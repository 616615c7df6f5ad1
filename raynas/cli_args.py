"""Argument pieces the ``raynas`` subcommands share: value types, ``--set``, ``KEY=VALUE``
flags, subcommands, flag errors.

Module-level imports stay light (argparse only): ``raynas --help`` imports this.
"""

from __future__ import annotations

import argparse
from typing import Any


def key_value(text: str) -> tuple[str, Any]:
    """argparse type of a ``KEY=VALUE`` flag: the key and the value read as YAML (empty: None)."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} must be KEY=VALUE, e.g. population_size=20")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: value is not valid YAML: {err}") from err
    return key.strip(), value


def positive(text: str) -> int:
    """argparse type of a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_overrides(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """Add the repeatable ``--set KEY=VALUE`` config override (into ``args.overrides``)."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def add_key_values(
    parser: argparse.ArgumentParser,
    flag: str,
    dest: str,
    default: list[tuple[str, Any]] | None,
    help: str | None = None,
) -> None:
    """Add a repeatable ``FLAG KEY=VALUE`` (into ``args.<dest>``, a list of pairs)."""
    parser.add_argument(
        flag,
        dest=dest,
        action="append",
        type=key_value,
        default=default,
        metavar="KEY=VALUE",
        help=help,
    )


def add_space_args(parser: argparse.ArgumentParser) -> None:
    """Add the repeatable ``--space-arg KEY=VALUE`` (into ``args.space_args``, a list of pairs)."""
    add_key_values(parser, "--space-arg", "space_args", [])


def add_subcommands(group: argparse.ArgumentParser, dest: str) -> Any:
    """Give the subcommand ``group`` subcommands of its own; returns their subparsers.

    The chosen one's name goes to ``args.<dest>``; ``group`` alone prints its help and exits 0.
    """
    group.set_defaults(func=lambda args: _print_help(group))
    return group.add_subparsers(dest=dest, metavar="SUBCOMMAND")


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def flag_errors(lines: list[str]) -> None:
    """Raise :class:`raynas.experiment.config.ConfigError` with ``lines`` (each naming the flag,
    column or file at fault), if any: ``raynas`` prints them and exits 2."""
    from raynas.experiment.config import ConfigError

    if lines:
        raise ConfigError(lines)
