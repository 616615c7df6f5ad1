"""The experiment schema: one config, YAML or Python, validated before Ray starts.

Every error names the field path, shows the bad value and says the fix::

    train.lr: must be > 0, got -1.0

Example:
    >>> exp = load_config("examples/quickstart.yaml", overrides=["budget.trials=4"])
    >>> exp.space, exp.budget.trials
    ('nb201', 4)
"""

from __future__ import annotations

import copy
import math
import operator
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

SCHEDULERS = ("fifo", "asha", "hyperband", "median", "pbt_evolution")
COST_METRICS = ("params", "flops", "latency_ms")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|<|>)\s*([-+0-9.eE_]+)\s*$")


class ConfigError(ValueError):
    """A bad experiment config. ``errors`` holds one ``path: message`` line per problem."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


class _Model(BaseModel):
    # inf and NaN are never a sensible lr, bound or fraction: `null` says "no limit".
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


#: Classes of each dataset the ``classify`` trainable loads (:mod:`trainables.data` reads its
#: counts from here, so the ``data.limit`` rule and the loader agree).
DATASET_CLASSES: dict[str, int] = {
    "digits": 10,
    "cifar10": 10,
    "cifar100": 100,
    "fashion_mnist": 10,
    "svhn": 10,
    "imagenet16": 120,
    "wine": 3,
    "breast_cancer": 2,
}


def limit_problem(name: str, limit: object) -> str | None:
    """What is wrong with ``data.limit`` for dataset ``name``, or None if it is fine.

    The one rule for ``data.limit``, applied by the config schema and by
    :func:`trainables.data.load_dataset`: None (no limit), or an int of at least the
    dataset's number of classes (at least 2 for a dataset not in :data:`DATASET_CLASSES`),
    so the stratified subsample can hold every class (it does for datasets whose class sizes
    differ by less than 3x, every built-in one) and a validation split can be carved.

    The message says the fix but not the value (the caller shows it).

    Example:
        >>> limit_problem("fashion_mnist", 5)
        "must be at least 10, the number of classes of 'fashion_mnist', or null for no limit"
    """
    if limit is None:
        return None
    least = max(2, DATASET_CLASSES.get(name, 2))
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < least:
        why = f", the number of classes of {name!r}," if name in DATASET_CLASSES else ""
        return f"must be at least {least}{why} or null for no limit"
    return None


class DataConfig(_Model):
    """Dataset: a name, a local root for real datasets, the validation split.

    ``val_fraction: 0`` holds out no validation split: ``classify`` trains on the whole
    training split and reports ``test_loss`` / ``test_acc`` every epoch instead of ``val_*``
    (a final training, as ``raynas retrain --final`` runs it). The official test split is
    loaded only then or with ``evaluate_test: true``.
    """

    name: str = "digits"
    #: The folder holding an on-disk dataset's files (see :mod:`trainables.data`), e.g.
    #: ``/usr/share/datasets/fashion-mnist`` after ``apt-get install dataset-fashion-mnist``.
    root: str | None = None
    #: Fetch missing files into ``root`` with torchvision (needs a network).
    download: bool = False
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    limit: int | None = Field(
        None,
        description=(
            "Use at most this many examples of the official training split: a stratified "
            "subsample drawn with the experiment seed, before the validation split is carved "
            "from it (the test split is never limited); for quick runs on large sets. At "
            "least the dataset's number of classes (see limit_problem)."
        ),
    )
    #: Also evaluate the official test split after the last epoch (``test_loss`` /
    #: ``test_acc``); off, the test files are not even read.
    evaluate_test: bool = False

    @field_validator("limit")
    @classmethod
    def _limit_fits_the_dataset(cls, v: int | None, info: ValidationInfo) -> int | None:
        problem = limit_problem(str(info.data.get("name", "")), v)
        if problem is not None:
            raise ValueError(problem)
        return v


class TrainConfig(_Model):
    """How each child is trained."""

    epochs: int = Field(3, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0.0)
    warmup_epochs: float = Field(0.0, ge=0.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    grad_clip: float | None = Field(5.0, gt=0.0)
    amp: bool = True
    channels_last: bool = True
    eval_batch_size: int = Field(512, ge=1)
    latency_repeats: int = Field(10, ge=1)
    #: On a GPU: cuDNN's deterministic kernels, no autotuning (``cudnn.benchmark``) and
    #: torch's deterministic algorithms, so a re-run child gives the same result; off trades
    #: that for speed. No effect on the CPU, which is deterministic either way.
    deterministic: bool = True
    #: Within an epoch that lasts longer, print a progress line to the trial's stdout at most
    #: every this many seconds (``batch i/n``, running train loss; Ray forwards it to the
    #: driver's console). Tune still gets one result per epoch. None: never.
    progress_s: float | None = Field(30.0, gt=0.0)


class StrategyConfig(BaseModel):
    """The search strategy by name; every other key is an argument of the strategy."""

    model_config = ConfigDict(extra="allow")
    name: str = "random"

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SchedulerConfig(BaseModel):
    """A Tune trial scheduler by name; every other key is its argument."""

    model_config = ConfigDict(extra="allow")
    name: Literal["fifo", "asha", "hyperband", "median", "pbt_evolution"] = "fifo"

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ExtraObjective(_Model):
    """A further objective of a multi-objective search."""

    metric: str
    mode: Literal["max", "min"] = "min"


class ObjectiveConfig(_Model):
    """What to optimise and the hard constraints checked before training.

    ``also`` lists further objectives: a Pareto strategy (``moea``) uses them all; with
    ``scalarize`` (``{metric: weight}``) the trainable reports
    ``objective = sum(weight * value)`` over the metrics named there (signs are yours:
    a negative weight penalises), and ``metric: objective`` optimises that.
    """

    metric: str = "val_acc"
    mode: Literal["max", "min"] = "max"
    constraints: list[str] = Field(default_factory=list)
    also: list[ExtraObjective] = Field(default_factory=list)
    scalarize: dict[str, float] | None = None

    def objectives(self) -> list[tuple[str, str]]:
        """``[(metric, mode), ...]``: the primary objective first, then ``also``."""
        return [(self.metric, self.mode), *((o.metric, o.mode) for o in self.also)]

    @field_validator("constraints", mode="before")
    @classmethod
    def _constraints_as_list(cls, v: Any) -> Any:
        if isinstance(v, Mapping):
            return [
                f"{k} {c}" if str(c).lstrip()[:1] in "<>" else f"{k} <= {c}" for k, c in v.items()
            ]
        if isinstance(v, str):
            return [v]
        return v

    @field_validator("constraints")
    @classmethod
    def _check_constraints(cls, v: list[str]) -> list[str]:
        for c in v:
            parse_constraint(c)
        return v


class BudgetConfig(_Model):
    """When the search stops: a number of trials and/or wall time; how many run at once."""

    trials: int = Field(20, ge=1)
    time_s: float | None = Field(None, gt=0)
    concurrent: int | None = Field(None, ge=1)
    #: Propose in synchronous batches of this size: each batch once the previous ones have
    #: finished, their results observed in proposal order, so the search's trajectory is the
    #: same at any concurrency (None: asynchronous, each result observed as it comes).
    sync_batch: int | None = Field(None, ge=1)


class ResourcesConfig(_Model):
    """Per-trial resources: CPUs and a whole or fractional GPU (0.25 packs four per GPU)."""

    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)

    @field_validator("gpu")
    @classmethod
    def _fraction_or_whole(cls, v: float) -> float:
        if v > 1 and not float(v).is_integer():
            raise ValueError(f"must be a fraction <= 1 or a whole number, got {v}")
        return v


class CheckpointConfig(_Model):
    every: int = Field(1, ge=0)
    keep: int | None = Field(2, ge=1)


class FailureConfig(_Model):
    max_retries: int = Field(0, ge=-1)


class Experiment(_Model):
    """One NAS experiment: what to search, how, how to evaluate, with which resources.

    Example:
        >>> Experiment(space="nb201", space_args={"C": 8, "N": 1},
        ...            strategy={"name": "evolution"}, budget={"trials": 20})
    """

    name: str = "raynas"
    plugins: list[str] = Field(default_factory=list)
    space: str = "nb201"
    space_args: dict[str, Any] = Field(default_factory=dict)
    trainable: str = "classify"
    trainable_args: dict[str, Any] = Field(default_factory=dict)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    seed: int = Field(0, ge=0)
    storage: str = "runs"
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    failure: FailureConfig = Field(default_factory=FailureConfig)
    reuse_actors: bool = True

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):
            raise ValueError(
                f"must be letters, digits, '.', '_' or '-' (it names a folder), got {v!r}"
            )
        return v

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the YAML form), strategy and scheduler arguments included."""
        return self.model_dump(mode="json")


#: Key of a trial's config holding the ObjectRefs of its trainable's ``shared_objects(exp)``.
SHARED_KEY = "shared"


def trial_settings(exp: Experiment) -> dict[str, Any]:
    """The settings every trial of ``exp`` shares: space, data, train, objective, seed...

    A trainable sees them merged under its trial's own config (``arch``; under PBT also
    ``train``), so its ``config`` is the whole picture. Tune itself only carries the per-trial
    part (:func:`param_space`): it writes a trial's config to ``params.json``, into every line
    of ``result.json`` and into each snapshot of the experiment state, so a large constant part
    there costs driver time on every trial.
    """
    space = exp.space
    if space.endswith((".yaml", ".yml")):
        space = str(Path(space).expanduser().resolve())
    return {
        "space": {"name": space, "args": exp.space_args},
        "plugins": list(exp.plugins),
        "data": exp.data.model_dump(mode="json"),
        "train": exp.train.model_dump(mode="json"),
        "constraints": list(exp.objective.constraints),
        "objective": exp.objective.model_dump(mode="json"),
        "trainable_args": dict(exp.trainable_args),
        "resources": exp.resources.model_dump(mode="json"),
        "seed": exp.seed,
        "data_seed": exp.seed,
    }


def parse_constraint(text: str) -> tuple[str, str, float]:
    """``"params <= 1e6"`` -> ``("params", "<=", 1e6)``; ValueError naming the fix."""
    m = _CONSTRAINT_RE.match(str(text))
    if not m:
        raise ValueError(
            f"constraint {text!r} must look like 'params <= 1e6' (metric, one of <= < >= >, "
            "a number)"
        )
    metric, op, num = m.groups()
    if metric not in COST_METRICS:
        raise ValueError(
            f"constraint {text!r}: {metric!r} is not a cost metric; use one of {list(COST_METRICS)}"
        )
    try:
        value = float(num)
    except ValueError:
        raise ValueError(f"constraint {text!r}: {num!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"constraint {text!r}: the bound must be finite")
    return metric, op, value


def violated_constraints(constraints: Sequence[str], cost: Mapping[str, float]) -> list[str]:
    """The constraints (as written) that ``cost`` violates."""
    out = []
    for c in constraints:
        metric, op, bound = parse_constraint(c)
        if not _OPS[op](float(cost[metric]), bound):
            out.append(c)
    return out


# --- loading ---------------------------------------------------------------------------
def yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error on one line, with the line and column it was found at (1-based)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    what = getattr(err, "problem", None) or getattr(err, "context", None) or str(err)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{' '.join(str(what).split())}"


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a config mapping."""
    data = copy.deepcopy(data)
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
        node[parts[-1]] = value
    return data


def format_validation_error(err: ValidationError, prefix: str = "") -> list[str]:
    """pydantic's errors as ``field.path: message, got value`` lines (paths under ``prefix``)."""
    lines = []
    for e in err.errors():
        path = ".".join([*filter(None, [prefix]), *(str(p) for p in e["loc"])]) or "config"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            lines.append(f"{path}: unknown field; remove it or check its spelling")
            continue
        if e["type"] == "missing":
            lines.append(f"{path}: is required")
            continue
        msg = msg.removeprefix("Value error, ")
        msg = msg[0].lower() + msg[1:] if msg else msg
        got = f"got {e.get('input')!r}"
        lines.append(f"{path}: {msg}" if msg.endswith(got) else f"{path}: {msg}, {got}")
    return lines


def experiment_from_dict(data: Mapping[str, Any], *, base_dir: Path | None = None) -> Experiment:
    """Validate a config mapping; relative space files resolve against ``base_dir``."""
    if not isinstance(data, Mapping):
        raise ConfigError([f"config: must be a mapping of sections, got {type(data).__name__}"])
    data = dict(data)
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


# --- semantic checks (registries, files, hardware) --------------------------------------
EMBEDDED_DATASETS = ("digits", "wine", "breast_cancer")


def check_experiment(exp: Experiment, *, address: str | None = None) -> None:
    """Checks that need the registries, the file system or the hardware; all at once.

    Raises:
        ConfigError: one line per problem, each naming its field.
    """
    from raynas.registry import TRAINABLES, RegistryError, load_plugins, resolve_space
    from raynas.space import InvalidArchitecture, SpaceDefinitionError
    from raynas.strategies import StrategyError, get_strategy

    try:
        load_plugins(exp.plugins)
    except RegistryError as err:
        raise ConfigError([f"plugins: {err}"]) from None
    errors: list[str] = []
    space = None
    try:
        space = resolve_space(exp.space, exp.space_args)
    except RegistryError as err:
        field = "space_args" if "argument" in str(err) else "space"
        errors.append(f"{field}: {err}")
    except (SpaceDefinitionError, InvalidArchitecture, TypeError, ValueError) as err:
        field = "space" if exp.space.endswith((".yaml", ".yml")) else "space_args"
        text = str(err)
        if text.startswith("space_args "):  # space_args given with a YAML space file
            field, text = "space_args", text.removeprefix("space_args ")
        elif isinstance(err.__cause__, yaml.YAMLError):  # one line, with the line number
            where = f"space file {exp.space!r}"
            text = f"{where} is not valid YAML: {yaml_problem(err.__cause__)}; fix the syntax there"
        errors.append(f"{field}: {text}")

    trainable = None
    try:
        trainable = TRAINABLES.get(exp.trainable)
    except RegistryError as err:
        errors.append(f"trainable: {err}")
    if trainable is not None:
        metrics = (*getattr(trainable, "METRICS", ()), "objective")
        if exp.objective.scalarize:
            for m in exp.objective.scalarize:
                if len(metrics) > 1 and m not in metrics:
                    errors.append(
                        f"objective.scalarize.{m}: {exp.trainable!r} does not report {m!r}; "
                        f"it reports {list(metrics[:-1])}"
                    )
        elif exp.objective.metric == "objective":
            errors.append(
                "objective.metric: 'objective' is the scalarised metric; set "
                "objective.scalarize: {metric: weight, ...} to define it"
            )
        for extra in exp.objective.also:
            if len(metrics) > 1 and extra.metric not in metrics:
                errors.append(
                    f"objective.also: {exp.trainable!r} does not report {extra.metric!r}; "
                    f"it reports {list(metrics[:-1])}"
                )
        if len(metrics) > 1 and exp.objective.metric not in metrics:
            errors.append(
                f"objective.metric: {exp.trainable!r} does not report {exp.objective.metric!r}; "
                f"it reports {list(metrics)}"
            )
        check = getattr(trainable, "check_config", None)
        if check is not None:
            errors.extend(check(exp))

    if space is not None:
        try:
            get_strategy(exp.strategy.name, space, seed=exp.seed, **exp.strategy.args)
        except RegistryError as err:
            field = "strategy" if "unknown" in str(err) else "strategy (argument)"
            errors.append(f"{field.split()[0]}: {err}")
        except (StrategyError, TypeError, ValueError) as err:
            errors.append(f"strategy: {err}")

    try:
        from raynas.schedulers import build_scheduler

        build_scheduler(exp)
    except ConfigError as err:
        errors.extend(err.errors)
    except (TypeError, ValueError) as err:
        errors.append(f"scheduler: {err}")
    if exp.scheduler.name == "pbt_evolution" and exp.strategy.name != "random":
        errors.append(
            f"strategy.name: pbt_evolution evolves its own population (Tune's PBT takes no "
            f"searcher); the initial population is random, so use 'random', not "
            f"{exp.strategy.name!r}"
        )
    if exp.scheduler.name == "pbt_evolution" and exp.checkpoint.every < 1:
        errors.append(
            "checkpoint.every: pbt_evolution clones trials through checkpoints; set it to 1 "
            "(or another interval >= 1)"
        )

    data = exp.data
    known_dataset = not any(e.startswith("data.name:") for e in errors)  # else its root is moot
    if known_dataset and data.name not in EMBEDDED_DATASETS and not data.download:
        if not data.root:
            errors.append(
                f"data.root: dataset {data.name!r} loads from a local folder; set data.root to "
                "it (or data.download: true)"
            )
        elif not Path(data.root).expanduser().is_dir():
            errors.append(f"data.root: folder {data.root!r} does not exist")

    if address is None and not os.environ.get("RAY_ADDRESS"):
        cpus = os.cpu_count() or 1
        if exp.resources.cpu > cpus:
            errors.append(
                f"resources.cpu: {exp.resources.cpu:g} CPUs per trial but this machine has "
                f"{cpus}, so no trial could ever start; set resources.cpu <= {cpus} or run on "
                "a cluster (--address)"
            )
    if exp.resources.gpu > 0 and address is None:
        try:
            import torch

            available = torch.cuda.device_count()
        except Exception:  # torch without CUDA support
            available = 0
        if exp.resources.gpu > available:
            errors.append(
                f"resources.gpu: {exp.resources.gpu} GPU(s) per trial but this machine has "
                f"{available}; set resources.gpu: 0 (CPU) or run on a GPU machine/cluster"
            )
    if errors:
        raise ConfigError(errors)
