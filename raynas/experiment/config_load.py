"""Loading an experiment config: a YAML file, a mapping or an Experiment, with ``--set``
overrides, validated by the schema (:mod:`raynas.experiment.config`) into an :class:`Experiment`.

Example:
    >>> exp = load_config("examples/quickstart.yaml", overrides=["budget.trials=4"])
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from raynas.experiment.config import ConfigError, Experiment, format_validation_error


def yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error on one line, with the line and column it was found at (1-based)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    what = getattr(err, "problem", None) or getattr(err, "context", None) or str(err)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{' '.join(str(what).split())}"


#: Sections whose keys other than ``name`` are the named thing's arguments: an override
#: that changes the name starts the section afresh.
NAMED_SECTIONS = ("strategy", "scheduler")


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a config mapping.

    ``strategy.name`` or ``scheduler.name`` set to another name drops the arguments the
    config gave the old one (``--set scheduler.name=fifo`` on an ``asha`` config leaves no
    ``grace_period`` behind); arguments set by the overrides themselves are kept.
    """
    data = copy.deepcopy(data)
    overridden: set[tuple[str, ...]] = set()
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError([f"--set {item!r}: must be KEY=VALUE, e.g. budget.trials=4"])
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(
                [f"--set {item!r}: the value is not valid YAML ({yaml_problem(err)}); quote it "
                 "or fix its syntax, e.g. train.lr=0.01 or objective.constraints=['params <= 1e6']"]
            ) from None  # fmt: skip
        parts = [part.strip() for part in key.strip().split(".")]
        if not all(parts):
            raise ConfigError(
                [f"--set {item!r}: {key.strip()!r} has an empty part; write a dotted field path, "
                 "e.g. budget.trials=4"]
            )  # fmt: skip
        node = data
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError([f"--set {item!r}: {where} is {nxt!r}, not a section"])
            node = nxt
        if (
            len(parts) == 2
            and parts[1] == "name"
            and parts[0] in NAMED_SECTIONS
            and node.get("name") != value
        ):
            for arg in [k for k in node if k != "name" and (parts[0], k) not in overridden]:
                del node[arg]  # the old name's arguments
        node[parts[-1]] = value
        overridden.add(tuple(parts))
    return data


def experiment_from_dict(data: Mapping[str, Any], *, base_dir: Path | None = None) -> Experiment:
    """Validate a config mapping; relative space files resolve against ``base_dir``."""
    if not isinstance(data, Mapping):
        raise ConfigError([f"config: must be a mapping of sections, got {type(data).__name__}"])
    data = dict(data)
    if base_dir is not None and data.get("plugins"):
        # `plugins: [my_space]` finds my_space.py beside the config: without a plugin_path
        # the config's folder is the path. Paths are made absolute, as the experiment folder
        # keeps this config (and a resume reads it from there).
        here = base_dir.expanduser().resolve()
        paths = data.get("plugin_path", [str(here)])
        if isinstance(paths, list):
            data["plugin_path"] = [str(here / str(p)) for p in paths]  # absolute stays
    objective = data.get("objective")
    if base_dir is not None and isinstance(objective, Mapping):
        model = objective.get("latency_model")
        if isinstance(model, str) and model and not Path(model).expanduser().is_absolute():
            # Kept absolute, as the experiment folder keeps this config (resume reads it).
            here = base_dir.expanduser().resolve()
            data["objective"] = {**objective, "latency_model": str(here / model)}
    space = data.get("space")
    if base_dir is not None and isinstance(space, str) and space.endswith((".yaml", ".yml")):
        p = Path(space)
        if not p.is_absolute() and not p.exists():
            data["space"] = str(base_dir / p)
    try:
        return Experiment.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None


def load_config(
    source: str | Path | Mapping[str, Any] | Experiment, *, overrides: Sequence[str] = ()
) -> Experiment:
    """An :class:`Experiment` from a YAML path, a mapping or an Experiment, with overrides.

    Raises:
        ConfigError: the file is missing or not YAML, or a field is invalid.
    """
    base_dir = None
    if isinstance(source, Experiment):
        data: Any = source.to_dict()
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError([f"config: file {str(path)!r} does not exist"])
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(
                [f"config: {str(path)!r} is not valid YAML: {yaml_problem(err)}; fix the syntax "
                 "there"]
            ) from None  # fmt: skip
        if data is None:
            raise ConfigError(
                [
                    f"config: {str(path)!r} is empty; write at least the sections you mean "
                    "(see examples/quickstart.yaml), or pass `{}` to run every default"
                ]
            )
        base_dir = path.parent
        if not isinstance(data, Mapping):
            raise ConfigError([f"config: {str(path)!r} must hold a mapping of sections"])
    if overrides:
        data = apply_overrides(dict(data), overrides)
    return experiment_from_dict(data, base_dir=base_dir)
