"""The config's semantic checks: what the registries, the files and the hardware say.

The schema (:mod:`raynas.experiment.config`) checks each field alone; :func:`check_experiment`
checks the whole experiment before Ray starts (the space resolves, the strategy takes its arguments,
the trainable reports the metrics, the dataset and the resources exist), and the trainable's
capabilities decide ``checkpoint.every`` and ``reuse_actors`` left null. The registries and
the strategies are imported inside the functions: they are a higher layer than the config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from raynas.experiment.config import ConfigError, Experiment
from raynas.experiment.config_load import yaml_problem
from raynas.experiment.config_rules import EMBEDDED_DATASETS, LATENCY_PRED_METRIC, parse_constraint


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
        from raynas.experiment.tracking import check_tracking

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
        from raynas.experiment.schedulers import build_scheduler

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
