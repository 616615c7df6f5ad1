"""The experiment schema: one config, YAML or Python, validated before Ray starts.

Every error names the field path, shows the bad value and says the fix::

    train.lr: must be > 0, got -1.0

Loading (YAML, ``--set`` overrides) is :mod:`raynas.experiment.config_load`; the checks that need
the registries, the file system or the hardware are :mod:`raynas.experiment.config_check`; the
constraint language and the dataset rules are :mod:`raynas.experiment.config_rules`.

Example:
    >>> exp = raynas.load_config("examples/quickstart.yaml", overrides=["budget.trials=4"])
    >>> exp.space, exp.budget.trials
    ('nb201', 4)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from raynas.experiment.config_rules import limit_problem, parse_constraint

SCHEDULERS = ("fifo", "asha", "hyperband", "median", "pbt_evolution")


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
