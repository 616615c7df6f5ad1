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
COST_METRICS = ("params", "flops", "latency_ms", "latency_pred_ms")
#: The latency predicted from ``objective.latency_model`` (a ``raynas latency profile`` table).
LATENCY_PRED_METRIC = "latency_pred_ms"
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
    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,  # each field's docstring is its one-line reference
    )


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
    """Dataset: digits (embedded), cifar10, cifar100, fashion_mnist, svhn, imagenet16, wine,
    breast_cancer."""
    root: str | None = None
    """Folder holding an on-disk dataset's files, e.g. /usr/share/datasets/fashion-mnist."""
    download: bool = False
    """Fetch missing files into root with torchvision (needs a network)."""
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    """Share of the training split held out for validation (val_*); 0: train on all of it and
    report test_*."""
    limit: int | None = None
    """Use at most this many training examples (a stratified, seeded subsample; at least the number
    of classes); null: all."""
    evaluate_test: bool = False
    """Also evaluate the official test split after the last epoch (test_loss, test_acc); off, its
    files are not read."""

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
    """Epochs each child trains (a scheduler may stop it sooner)."""
    batch_size: int = Field(64, ge=1)
    """Training mini-batch size."""
    optimizer: Literal["sgd", "adamw"] = "sgd"
    """sgd or adamw."""
    lr: float = Field(0.05, gt=0.0)
    """Peak learning rate (cosine decay to 0 over epochs, after warmup_epochs)."""
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    """SGD momentum (adamw does not use it)."""
    nesterov: bool = True
    """Nesterov momentum for sgd."""
    weight_decay: float = Field(5e-4, ge=0.0)
    """Weight decay."""
    warmup_epochs: float = Field(0.0, ge=0.0)
    """Linear learning-rate warm-up, in epochs (fractions allowed)."""
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    """Label smoothing of the cross-entropy loss."""
    grad_clip: float | None = Field(5.0, gt=0.0)
    """Clip the gradient norm to this; null: no clipping."""
    amp: bool = True
    """Mixed precision on a GPU (torch.autocast in fp16, with a grad scaler); none on a CPU."""
    channels_last: bool = True
    """channels_last memory format for conv models on a GPU."""
    eval_batch_size: int = Field(512, ge=1)
    """Batch size of validation and test evaluation."""
    latency_repeats: int = Field(10, ge=1)
    """Timed forwards behind latency_ms (after warm-up ones)."""
    deterministic: bool = True
    """On a GPU: deterministic cuDNN kernels and algorithms, no autotuning, so a re-run child gives
    the same result."""
    progress_s: float | None = Field(30.0, gt=0.0)
    """In an epoch longer than this, print a progress line to the trial's output at most this
    often; null: never."""


class StrategyConfig(BaseModel):
    """The search strategy by name; every other key is an argument of the strategy."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)
    name: str = "random"
    """A registered strategy (`raynas strategies`); every other key of this section is its
    argument."""

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SchedulerConfig(BaseModel):
    """A Tune trial scheduler by name; every other key is its argument."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)
    name: Literal["fifo", "asha", "hyperband", "median", "pbt_evolution"] = "fifo"
    """fifo, asha, hyperband, median or pbt_evolution (`raynas schedulers`); every other key is its
    argument."""

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ExtraObjective(_Model):
    """A further objective of a multi-objective search."""

    metric: str
    """A reported metric, e.g. params, flops, latency_ms."""
    mode: Literal["max", "min"] = "min"
    """max or min."""


class ObjectiveConfig(_Model):
    """What to optimise and the hard constraints checked before training.

    ``also`` lists further objectives: a Pareto strategy (``moea``) uses them all; with
    ``scalarize`` (``{metric: weight}``) the trainable reports
    ``objective = sum(weight * value)`` over the metrics named there (signs are yours:
    a negative weight penalises), and ``metric: objective`` optimises that.
    """

    metric: str = "val_acc"
    """The reported metric the search optimises (val_acc; objective with scalarize)."""
    mode: Literal["max", "min"] = "max"
    """max or min."""
    constraints: list[str] = Field(default_factory=list)
    """Hard limits such as 'params <= 1e6' (params, flops and latency_pred_ms are checked before
    training)."""
    latency_model: str | None = None
    """A latency table written by `raynas latency profile` (JSON; a relative path is relative
    to the config file): each candidate's latency_pred_ms (its blocks' medians plus the fitted
    overhead, at the profile's device, batch and input shape) is predicted on the driver before
    it is proposed, so a constraint on it never costs a trial, and every trial reports it;
    null: no latency_pred_ms."""
    also: list[ExtraObjective] = Field(default_factory=list)
    """Further objectives ({metric, mode}) for a Pareto strategy such as moea."""
    scalarize: dict[str, float] | None = None
    """{metric: weight}: the trainable reports objective = sum(weight * value)."""

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
    """Children to train (refused and warm-start archs not counted)."""
    time_s: float | None = Field(None, gt=0)
    """Wall-time budget in seconds; running trials are cut (status timed_out); null: none."""
    concurrent: int | None = Field(None, ge=1)
    """Most trials at once; null: as many as the resources allow."""
    sync_batch: int | None = Field(None, ge=1)
    """Propose in synchronous batches of this size, so the trajectory is the same at any
    concurrency; null: asynchronous."""
    stop: dict[str, float] | None = None
    """Stop the search once one result reaches every value here, e.g. {val_acc: 0.99} (at
    least, for a max metric; at most, for a min one); running trials are cut (status
    stopped_at_target); null: never."""


class ResourcesConfig(_Model):
    """Per-trial resources: CPUs and a whole or fractional GPU (0.25 packs four per GPU)."""

    cpu: float = Field(1.0, gt=0)
    """CPUs per trial."""
    gpu: float = Field(0.0, ge=0)
    """GPUs per trial: a fraction <= 1 packs children (0.25: four per GPU) or a whole number."""

    @field_validator("gpu")
    @classmethod
    def _fraction_or_whole(cls, v: float) -> float:
        if v > 1 and not float(v).is_integer():
            raise ValueError(f"must be a fraction <= 1 or a whole number, got {v}")
        return v


class CheckpointConfig(_Model):
    every: int | None = Field(None, ge=0)
    """Checkpoint every this many epochs (0: never; pbt_evolution needs >= 1); null: 1 when the
    trainable can save checkpoints, else 0."""
    keep: int | None = Field(2, ge=1)
    """Checkpoints kept per trial (pbt_evolution keeps all); null: all."""


class ReportConfig(_Model):
    """The HTML report (``raynas report``) written by the run itself."""

    live: bool = False
    """Keep DIR/report.html current while the search runs (the open page reloads itself) and
    write the final one at its end."""
    interval_s: float = Field(10.0, gt=0)
    """Seconds between two rewrites of the live report."""
    top: int = Field(5, ge=1)
    """Architectures drawn (the top-k)."""


class CallbackConfig(_Model):
    """An experiment tracker (``callbacks:``): a name, or a mapping with its options."""

    name: Literal["tensorboard", "csv", "json", "mlflow", "wandb"]
    """tensorboard, csv and json are written always (accepted, change nothing); mlflow and
    wandb need the extras raynas[mlflow] / raynas[wandb]."""
    tracking_uri: str | None = None
    """mlflow: the store; null: sqlite:///<experiment folder>/mlflow.db."""
    experiment_name: str | None = None
    """mlflow: the MLflow experiment; null: the experiment's name."""
    save_artifact: bool = False
    """mlflow: upload each trial folder as the run's artifacts at its end."""
    project: str | None = None
    """wandb: the project; null: the experiment's name."""
    group: str | None = None
    """wandb: the run group; null: the experiment folder's name."""
    mode: Literal["offline", "online", "disabled"] = "offline"
    """wandb: offline keeps the runs in <experiment folder>/wandb (wandb sync uploads them);
    online needs WANDB_API_KEY."""

    @field_validator("tracking_uri", "experiment_name", "save_artifact")
    @classmethod
    def _mlflow_only(cls, v: Any, info: ValidationInfo) -> Any:
        if v not in (None, False) and info.data.get("name") != "mlflow":
            raise ValueError(f"is an mlflow option; {info.data.get('name')!r} has no such field")
        return v

    @field_validator("project", "group")
    @classmethod
    def _wandb_only(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None and info.data.get("name") != "wandb":
            raise ValueError(f"is a wandb option; {info.data.get('name')!r} has no such field")
        return v


class FailureConfig(_Model):
    max_retries: int = Field(0, ge=-1)
    """Retries of a failed trial from its last checkpoint (-1: without limit)."""


class Experiment(_Model):
    """One NAS experiment: what to search, how, how to evaluate, with which resources.

    Example:
        >>> Experiment(space="nb201", space_args={"C": 8, "N": 1},
        ...            strategy={"name": "evolution"}, budget={"trials": 20})
    """

    name: str = "raynas"
    """The experiment's folder name under storage."""
    plugins: list[str] = Field(default_factory=list)
    """Python modules imported first (driver and workers); they register spaces, strategies or
    trainables, e.g. [my_space] for my_space.py beside the config."""
    plugin_path: list[str] = Field(default_factory=list)
    """Folders put on the import path of the driver and every worker before plugins are
    imported, relative to the config file; unset, a config that names plugins uses its own."""
    space: str = "nb201"
    """A built-in space (`raynas spaces`), a plugin's, or a YAML space file."""
    space_args: dict[str, Any] = Field(default_factory=dict)
    """Arguments of the space (nb201: C, N; see `raynas spaces`)."""
    trainable: str = "classify"
    """A registered trainable: classify (train each child), darts, enas, gdas, tabular."""
    trainable_args: dict[str, Any] = Field(default_factory=dict)
    """Arguments of the trainable (e.g. the tabular trainable's table, one-shot search_args)."""
    data: DataConfig = Field(default_factory=DataConfig)
    """The dataset."""
    train: TrainConfig = Field(default_factory=TrainConfig)
    """How each child is trained."""
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    """The search strategy."""
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    """The trial scheduler."""
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    """What to optimise and the hard constraints."""
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    """When the search stops and how many trials run at once."""
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    """Per-trial CPUs and GPUs."""
    seed: int = Field(0, ge=0)
    """Seeds the strategy, every child's weights and data order."""
    storage: str = "runs"
    """Folder (or pyarrow URI such as s3://bucket/raynas) holding experiments."""
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    """Trial checkpoints."""
    failure: FailureConfig = Field(default_factory=FailureConfig)
    """What a failed trial gets."""
    report: ReportConfig = Field(default_factory=ReportConfig)
    """The HTML report the run writes itself (`raynas report` writes one any time)."""
    reuse_actors: bool | None = None
    """Reuse Tune's trial actors between trials (no re-import of torch per trial); null: when
    the trainable implements reset_config."""
    callbacks: list[CallbackConfig] = Field(default_factory=list)
    """Experiment trackers, e.g. [mlflow] or [{name: wandb, mode: offline}]; each trial is a
    run with its arch string and cost as parameters."""

    @field_validator("callbacks", mode="before")
    @classmethod
    def _callback_names(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"name": x} if isinstance(x, str) else x for x in v]
        return v

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
        "plugin_path": list(exp.plugin_path),
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
    """The constraints (as written) that ``cost`` violates.

    A ``latency_pred_ms`` constraint is skipped where ``cost`` lacks that metric (a trainable
    that does not predict it): the driver checked it before proposing the candidate.
    """
    out = []
    for c in constraints:
        metric, op, bound = parse_constraint(c)
        if metric == LATENCY_PRED_METRIC and metric not in cost:
            continue
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


# --- what the trainable can do -----------------------------------------------------------
def trainable_capabilities(trainable: Any) -> tuple[bool, bool]:
    """``(saves checkpoints, resets for a new config)`` of a registered trainable.

    A class trainable can when it overrides Tune's ``save_checkpoint`` and
    ``load_checkpoint`` / ``reset_config`` (Tune's own raise or return False); a function
    trainable reports its checkpoints itself and Tune resets it, so it can both.
    """
    from ray.tune import Trainable

    if not (isinstance(trainable, type) and issubclass(trainable, Trainable)):
        return True, True
    saves = (
        trainable.save_checkpoint is not Trainable.save_checkpoint
        and trainable.load_checkpoint is not Trainable.load_checkpoint
    )
    return saves, trainable.reset_config is not Trainable.reset_config


def _capabilities(exp: Experiment) -> tuple[bool, bool]:
    from raynas.registry import TRAINABLES, RegistryError, load_plugins

    try:
        load_plugins(exp.plugins, exp.plugin_path)
        return trainable_capabilities(TRAINABLES.get(exp.trainable))
    except RegistryError:
        return True, True  # check_experiment names the unknown trainable


def checkpoint_every(exp: Experiment) -> int:
    """``checkpoint.every``, or for null 1 when the trainable can save checkpoints, else 0."""
    if exp.checkpoint.every is not None:
        return exp.checkpoint.every
    return 1 if _capabilities(exp)[0] else 0


def reuse_actors(exp: Experiment) -> bool:
    """``reuse_actors``, or for null whether the trainable implements ``reset_config``."""
    if exp.reuse_actors is not None:
        return exp.reuse_actors
    return _capabilities(exp)[1]


# --- latency tables ----------------------------------------------------------------------
def load_latency_model(path: str, space: str, space_args: Mapping[str, Any]) -> Any:
    """The predictor of ``objective.latency_model``: a :class:`raynas.latency.LatencyTable`
    checked to cover ``space`` with ``space_args``; ``predict_ms(arch)`` is latency_pred_ms.

    Raises:
        ValueError: (``raynas.latency.LatencyError``) a missing or unreadable file, not a
            table, or one profiled for another space.
    """
    from raynas.latency import LatencyTable

    return LatencyTable.load(path, space=space, space_args=space_args)


def latency_model_problems(exp: Experiment, *, load: bool = True) -> list[str]:
    """``field: message`` lines about latency_pred_ms and ``objective.latency_model``: a
    config that names the metric needs a table, and the table must load and cover the
    experiment's space (checked when ``load``: the space itself resolves)."""
    obj = exp.objective
    named = [
        *(
            f"objective.constraints ({c!r})"
            for c in obj.constraints
            if parse_constraint(c)[0] == LATENCY_PRED_METRIC
        ),
        *(["objective.metric"] if obj.metric == LATENCY_PRED_METRIC else []),
        *(["objective.also"] if any(o.metric == LATENCY_PRED_METRIC for o in obj.also) else []),
        *(["objective.scalarize"] if LATENCY_PRED_METRIC in (obj.scalarize or {}) else []),
    ]
    if obj.latency_model is None:
        if not named:
            return []
        return [
            f"objective.latency_model: {named[0]} names {LATENCY_PRED_METRIC}, which is "
            "predicted from a latency table; write one with `raynas latency profile --space "
            f"{exp.space} --device cpu --out lat.json` and set objective.latency_model: lat.json "
            "(or use the measured latency_ms)"
        ]
    if not load:
        return []
    try:
        load_latency_model(obj.latency_model, exp.space, exp.space_args)
    except ValueError as err:
        return [f"objective.latency_model: {err}"]
    return []


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
        load_plugins(exp.plugins, exp.plugin_path)
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

    errors.extend(latency_model_problems(exp, load=space is not None))
    if exp.callbacks:
        from raynas.tracking import check_tracking

        errors.extend(check_tracking(exp))

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

    from raynas.strategies import EXPERIMENT_ARGUMENTS

    for key in sorted(set(exp.strategy.args) & set(EXPERIMENT_ARGUMENTS)):
        errors.append(
            f"strategy.{key}: the experiment sets it from {EXPERIMENT_ARGUMENTS[key]}; "
            f"remove it from strategy and set {EXPERIMENT_ARGUMENTS[key]} instead"
        )
    if space is not None and not set(exp.strategy.args) & set(EXPERIMENT_ARGUMENTS):
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
    if trainable is not None:
        can_save, can_reset = trainable_capabilities(trainable)
        if exp.checkpoint.every and not can_save:
            errors.append(
                f"checkpoint.every: trainable {exp.trainable!r} does not implement "
                "save_checkpoint / load_checkpoint; set checkpoint.every: 0 (or leave it unset), "
                "or implement them"
            )
        if exp.reuse_actors and not can_reset:
            errors.append(
                f"reuse_actors: trainable {exp.trainable!r} does not implement reset_config; set "
                "reuse_actors: false (or leave it unset), or implement it to return True"
            )
        if exp.scheduler.name == "pbt_evolution" and not can_save:
            errors.append(
                f"scheduler.name: pbt_evolution clones trials through checkpoints and trainable "
                f"{exp.trainable!r} cannot save them; implement save_checkpoint / load_checkpoint"
            )
    if exp.scheduler.name == "pbt_evolution" and exp.checkpoint.every == 0:
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
