"""The options of the one-shot trainables and their config checks, before Ray starts.

Method options come from ``config["trainable_args"]``, one frozen pydantic model per method
(:class:`OneShotOptions` and subclasses in each method's module); the supernet's size comes
from ``trainable_args.search_args``, one model per supernet space (:data:`SEARCH_ARGS`).
Unknown keys and bad values are reported with their field path
(``trainable_args.arch_lr: must be > 0, got -1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

__all__ = [
    "OUTER_STRATEGIES",
    "SEARCH_ARGS",
    "DartsSearchArgs",
    "NB201SearchArgs",
    "OneShotOptions",
    "check_oneshot_config",
    "options_from_config",
    "parse_options",
    "parse_search_args",
    "seed_only_errors",
]

#: The outer strategies a one-shot experiment may use (its trials only take a seed from them).
OUTER_STRATEGIES = ("random", "grid")

Options = TypeVar("Options", bound=BaseModel)


class OneShotOptions(BaseModel):
    """Options every one-shot method takes (keys of ``trainable_args``).

    Attributes:
        train_portion: Share of the training split that trains the shared weights; the rest
            trains the architecture (DARTS/GDAS) or the controller (ENAS, less its
            ``derive_portion``). The validation split is never used by the search; it
            measures ``val_acc``.
        collapse_threshold: Warn (``collapse_warning: true``) when the share of parameter-free
            ops in the derived (normal) cell exceeds this.
        search_args: The supernet's size, with the space's argument names (see
            :data:`SEARCH_ARGS`); None: the paper's search size for the space.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    train_portion: float = Field(0.5, gt=0.0, lt=1.0)
    collapse_threshold: float = Field(0.5, ge=0.0, le=1.0)
    search_args: dict[str, Any] | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name != "search_args":
            raise ValueError("must be a number, not true/false")  # pydantic reads true as 1
        return value


class _SearchSize(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be an integer, not true/false")
        return value


class NB201SearchArgs(_SearchSize):
    """``search_args`` of an ``nb201`` space: NAS-Bench-201 searches at the evaluation size.

    Attributes:
        C: Channels of the first stage; None: the space's ``C`` (16 by default).
        N: Cells per stage; None: the space's ``N`` (5 by default).
    """

    C: int | None = Field(None, ge=1)
    N: int | None = Field(None, ge=1)


class DartsSearchArgs(_SearchSize):
    """``search_args`` of a ``darts`` space: DARTS searches a smaller network than it evaluates.

    Attributes:
        C: Initial channels of the search network (DARTS: 16; evaluation: 36).
        layers: Cells of the search network (DARTS: 8; evaluation: 20).
    """

    C: int = Field(16, ge=1)
    layers: int = Field(8, ge=3)


#: The ``trainable_args.search_args`` model of each supernet space.
SEARCH_ARGS: dict[str, type[_SearchSize]] = {"nb201": NB201SearchArgs, "darts": DartsSearchArgs}


def _error_lines(err: ValidationError, prefix: str, unknown: str) -> list[str]:
    lines = []
    for e in err.errors():
        path = ".".join([prefix, *(str(p) for p in e["loc"])])
        if e["type"] == "extra_forbidden":
            lines.append(f"{path}: {unknown}")
            continue
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {msg[:1].lower()}{msg[1:]}, got {e.get('input')!r}")
    return lines


def parse_options(
    cls: type[Options], args: Mapping[str, Any] | None
) -> tuple[Options | None, list[str]]:
    """Build ``cls`` from ``trainable_args``; errors are ``trainable_args.<key>: ...`` lines.

    Args:
        cls: The method's options model (a one-shot method's, or any pydantic model).
        args: ``config["trainable_args"]`` (None: all defaults).

    Returns:
        ``(options, [])`` or ``(None, errors)``.
    """
    try:
        return cls.model_validate(dict(args or {})), []
    except ValidationError as err:
        known = f"unknown option; known options: {sorted(cls.model_fields)}"
        return None, _error_lines(err, "trainable_args", known)


def options_from_config(cls: type[Options], config: Mapping[str, Any]) -> Options:
    """A trial's ``trainable_args`` (``config["trainable_args"]``) as ``cls``.

    Raises:
        ValueError: The :func:`parse_options` error lines, joined by ``; ``.
    """
    opts, errors = parse_options(cls, config.get("trainable_args"))
    if opts is None:
        raise ValueError("; ".join(errors))
    return opts


def parse_search_args(
    space: str, args: Mapping[str, Any] | None
) -> tuple[dict[str, int | None] | None, list[str]]:
    """Validate ``trainable_args.search_args`` for a supernet space.

    Args:
        space: ``nb201`` or ``darts``.
        args: The ``search_args`` mapping (None: the defaults).

    Returns:
        ``(size, [])`` with every size argument of the space (None: the space's own value),
        or ``(None, errors)``, one ``trainable_args.search_args.<key>: ...`` line each.

    Example:
        >>> parse_search_args("darts", {"C": 8})
        ({'C': 8, 'layers': 8}, [])
    """
    cls = SEARCH_ARGS[space]
    try:
        return cls.model_validate(dict(args or {})).model_dump(), []
    except ValidationError as err:
        known = (
            f"unknown option; search_args takes {list(cls.model_fields)} "
            "(the rest of the space comes from space_args)"
        )
        return None, _error_lines(err, "trainable_args.search_args", known)


def check_oneshot_config(exp: Any, options: type[OneShotOptions]) -> list[str]:
    """The config checks of a one-shot trainable; one ``field.path: message`` line each."""
    from search_spaces.models.supernet import SUPERNET_SPACES
    from trainables.data import DATASETS

    name = exp.trainable
    errors: list[str] = []
    if exp.space not in SUPERNET_SPACES:
        errors.append(
            f"space: one-shot trainable {name!r} searches a supernet of {list(SUPERNET_SPACES)}, "
            f"got {exp.space!r} (a hyper-parameter space file is not supported: method options "
            "go in trainable_args)"
        )
    errors.extend(parse_options(options, exp.trainable_args)[1])
    search_args = (exp.trainable_args or {}).get("search_args")
    if exp.space in SUPERNET_SPACES and isinstance(search_args, Mapping):
        errors.extend(parse_search_args(exp.space, search_args)[1])
    if exp.data.val_fraction == 0:
        errors.append(
            "data.val_fraction: a one-shot search reports val_acc on the validation split; set "
            "it > 0 (0 is for a final training with classify)"
        )
    if exp.data.name not in DATASETS:
        errors.append(f"data.name: unknown dataset {exp.data.name!r}; known: {list(DATASETS)}")
    elif exp.data.name in ("wine", "breast_cancer"):
        errors.append(f"data.name: one-shot supernets need images; {exp.data.name!r} is tabular")
    errors += seed_only_errors(
        exp,
        strategy=f"{exp.strategy.name!r} learns from the proposed arch, but a one-shot trial "
        "only uses it as a seed",
        constraints="a one-shot trial derives its arch while it runs and cannot refuse it "
        "before training; remove them (the final result reports the derived child's "
        "params/flops/latency_ms)",
    )
    if exp.scheduler.name == "pbt_evolution":
        errors.append(
            "scheduler.name: pbt_evolution mutates a trial's arch; one-shot trials derive theirs "
            "(use fifo, asha, hyperband or median)"
        )
    return errors


def seed_only_errors(exp: Any, *, strategy: str, constraints: str) -> list[str]:
    """The checks of a trainable whose trials only take a seed from the proposed arch.

    Args:
        exp: The experiment.
        strategy: Why, when the outer strategy is not one of :data:`OUTER_STRATEGIES`.
        constraints: Why, and what to do, when the objective has constraints.

    Returns:
        A ``strategy.name: ...`` and an ``objective.constraints: ...`` line, where they apply.
    """
    errors = []
    if exp.strategy.name not in OUTER_STRATEGIES:
        errors.append(f"strategy.name: {strategy}; use one of {list(OUTER_STRATEGIES)}")
    if exp.objective.constraints:
        errors.append(f"objective.constraints: {constraints}")
    return errors
