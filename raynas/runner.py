"""Experiment -> ``tune.Tuner``: resources, storage, searcher, scheduler, failures, checkpoints.

Ray Tune is the execution engine; this module only configures it. ``run`` validates the whole
config before Ray starts (a bad config creates no experiment folder), writes the config into
the experiment folder, runs the Tuner and returns the analysis of the folder.

Example:
    >>> result = raynas.run("examples/quickstart.yaml", overrides=["budget.trials=4"])
    >>> result.top(5)
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from raynas.config import ConfigError, Experiment, check_experiment, load_config

CONFIG_FILE = "raynas_experiment.yaml"
_ENV = {
    # A constraint-violated child reports no objective; Tune must not fail it for that.
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    "RAY_DEDUP_LOGS": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_TRAIN_V2_ENABLED": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}


def experiment_dir(exp: Experiment, *, storage: str | None = None, name: str | None = None) -> Path:
    """The folder an experiment writes: ``<storage>/<name>``."""
    return Path(storage or exp.storage).expanduser().resolve() / (name or exp.name)


def param_space(exp: Experiment) -> dict[str, Any]:
    """The constant part of every trial's config; the searcher adds ``arch``."""
    space = exp.space
    if space.endswith((".yaml", ".yml")):
        space = str(Path(space).expanduser().resolve())
    return {
        "space": {"name": space, "args": exp.space_args},
        "data": exp.data.model_dump(mode="json"),
        "train": exp.train.model_dump(mode="json"),
        "constraints": list(exp.objective.constraints),
        "objective": exp.objective.model_dump(mode="json"),
        "trainable_args": dict(exp.trainable_args),
        "resources": exp.resources.model_dump(mode="json"),
        "seed": exp.seed,
        "data_seed": exp.seed,
    }


def make_searcher(exp: Experiment) -> Any:
    """The experiment's strategy as a Tune searcher."""
    from raynas.registry import STRATEGIES, resolve_space
    from raynas.strategies import get_strategy, strategy_parameters

    space = resolve_space(exp.space, exp.space_args)
    args = dict(exp.strategy.args)
    if "objectives" in strategy_parameters(STRATEGIES.get(exp.strategy.name)):
        args.setdefault("objectives", exp.objective.objectives())
    return get_strategy(
        exp.strategy.name,
        space,
        metric=exp.objective.metric,
        mode=exp.objective.mode,
        seed=exp.seed,
        **args,
    )


def make_scheduler(exp: Experiment) -> Any:
    """The experiment's Tune trial scheduler (None for FIFO)."""
    from raynas.schedulers import build_scheduler

    return build_scheduler(exp)


def _trainable(exp: Experiment) -> Any:
    from ray import tune

    from raynas.registry import TRAINABLES

    cls = TRAINABLES.get(exp.trainable)
    return tune.with_resources(cls, {"cpu": exp.resources.cpu, "gpu": exp.resources.gpu})


def _init_ray(address: str | None) -> None:
    import ray

    for k, v in _ENV.items():
        os.environ.setdefault(k, v)
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": True,
        # Workers inherit these: quiet Ray/Tune INFO chatter (checkpoint notices).
        "runtime_env": {"env_vars": {"RAY_LOG_LEVEL": "WARNING", **_ENV}},
    }
    if address:
        kwargs["address"] = address
    ray.init(**kwargs)


def _tune_objects(exp: Experiment, path: Path, verbose: bool) -> dict[str, Any]:
    from ray import tune

    from raynas.progress import TrialPrinter

    return {
        "run_config": tune.RunConfig(
            name=path.name,
            storage_path=str(path.parent),
            verbose=0,
            callbacks=[TrialPrinter(exp, enabled=verbose)],
            failure_config=tune.FailureConfig(max_failures=exp.failure.max_retries),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=exp.checkpoint.keep,
                checkpoint_frequency=exp.checkpoint.every,
                checkpoint_at_end=exp.checkpoint.every > 0,
            ),
        ),
    }


def build_tuner(exp: Experiment, path: Path, *, verbose: bool = True) -> Any:
    """A ``tune.Tuner`` for ``exp`` writing to ``path`` (Ray must be initialised)."""
    from ray import tune

    tune_config = tune.TuneConfig(
        metric=exp.objective.metric,
        mode=exp.objective.mode,
        search_alg=make_searcher(exp),
        scheduler=make_scheduler(exp),
        num_samples=exp.budget.trials,
        time_budget_s=exp.budget.time_s,
        max_concurrent_trials=exp.budget.concurrent,
        reuse_actors=exp.reuse_actors,
    )
    return tune.Tuner(
        _trainable(exp),
        param_space=param_space(exp),
        tune_config=tune_config,
        **_tune_objects(exp, path, verbose),
    )


def prepare(
    config: str | Path | Mapping[str, Any] | Experiment,
    *,
    overrides: Sequence[str] = (),
    storage: str | None = None,
    name: str | None = None,
    address: str | None = None,
    overwrite: bool = False,
) -> tuple[Experiment, Path]:
    """Validate everything and pick the experiment folder; nothing is written yet.

    Raises:
        ConfigError: a bad field (named), or an existing experiment folder without overwrite.
    """
    exp = load_config(config, overrides=overrides)
    if name is not None:
        exp = load_config(exp, overrides=[f"name={name}"])
    if storage is not None:
        exp = load_config(exp, overrides=[f"storage={storage}"])
    check_experiment(exp, address=address)
    path = experiment_dir(exp)
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise ConfigError(
            [
                f"name: experiment folder {str(path)!r} already exists; continue it with "
                f"`raynas resume {path}`, pick another --name, or pass --overwrite to replace it"
            ]
        )
    return exp, path


def run(
    config: str | Path | Mapping[str, Any] | Experiment,
    *,
    overrides: Sequence[str] = (),
    storage: str | None = None,
    name: str | None = None,
    address: str | None = None,
    overwrite: bool = False,
    verbose: bool = True,
) -> Any:
    """Run a NAS experiment end to end and return its :class:`~raynas.analysis.ExperimentResult`.

    Args:
        config: An :class:`Experiment`, a mapping, or a YAML path.
        overrides: ``a.b=value`` strings applied on top of the config.
        storage: Folder (or URI) holding experiments; overrides ``config.storage``.
        name: Experiment name (its folder); overrides ``config.name``.
        address: Ray cluster address (``auto`` for an existing cluster); None: local Ray.
        overwrite: Replace an existing experiment folder of the same name.
        verbose: Print a line per finished trial and the top-5 table.

    Raises:
        ConfigError: the config is invalid (nothing was started or written).
    """
    exp, path = prepare(
        config,
        overrides=overrides,
        storage=storage,
        name=name,
        address=address,
        overwrite=overwrite,
    )
    if path.exists() and overwrite:
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_FILE).write_text(yaml.safe_dump(exp.to_dict(), sort_keys=False))
    _init_ray(address)
    start = time.perf_counter()
    tuner = build_tuner(exp, path, verbose=verbose)
    tuner.fit()
    return _finish(exp, path, time.perf_counter() - start, verbose)


def resume(path: str | Path, *, address: str | None = None, verbose: bool = True) -> Any:
    """Continue an interrupted experiment: finished trials kept, searcher state restored."""
    from ray import tune

    path = Path(path).expanduser().resolve()
    cfg = path / CONFIG_FILE
    if not cfg.is_file():
        raise ConfigError([f"path: {str(path)!r} is not a raynas experiment (no {CONFIG_FILE})"])
    exp = load_config(cfg)
    _init_ray(address)
    start = time.perf_counter()
    if not tune.Tuner.can_restore(str(path)):
        raise ConfigError(
            [
                f"path: {str(path)!r} holds no Tune experiment state yet; start it again with "
                "`raynas run ... --overwrite`"
            ]
        )
    tuner = tune.Tuner.restore(
        str(path),
        trainable=_trainable(exp),
        resume_unfinished=True,
        resume_errored=True,
        param_space=param_space(exp),
    )
    tuner.fit()
    return _finish(exp, path, time.perf_counter() - start, verbose)


def _finish(exp: Experiment, path: Path, wall_s: float, verbose: bool) -> Any:
    from raynas.analysis import load

    result = load(path)
    if verbose:
        out = sys.stdout
        out.write(f"\nexperiment folder: {path}\n")
        out.write(f"wall time: {wall_s:.1f} s, trials: {len(result.trials)}\n")
        counts = result.status_counts()
        out.write("status: " + ", ".join(f"{k}={v}" for k, v in counts.items()) + "\n")
        out.write(result.format_top(5) + "\n")
        out.flush()
    return result
