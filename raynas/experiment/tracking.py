"""Experiment trackers from the config: ``callbacks: [tensorboard, csv, mlflow, wandb]``.

Every run already writes TensorBoard event files (Tune's ``TBXLoggerCallback``) and the
``result.json`` / ``progress.csv`` rows (:mod:`raynas.experiment.loggers`) into each trial folder,
so ``tensorboard``, ``csv`` and ``json`` are accepted and change nothing. ``mlflow`` and
``wandb`` add Tune's logger callbacks for those services (behind the extras
``raynas[mlflow]`` and ``raynas[wandb]``), with what a NAS user compares runs by: each
run is named by its trial folder, and carries the arch string (``arch_str``), the space and
the child's cost (``params``, ``flops``, ``latency_ms`` where reported) as parameters, its
per-epoch results as metrics.

- ``mlflow``: a SQLite store in the experiment folder by default
  (``sqlite:///<folder>/mlflow.db``; ``mlflow ui --backend-store-uri`` that URI shows it),
  or ``tracking_uri``. MLflow's plain file store (``./mlruns``) is in maintenance mode and
  refused by MLflow 3 unless ``MLFLOW_ALLOW_FILE_STORE=true``.
- ``wandb``: ``mode: offline`` by default, so nothing leaves the machine; ``wandb sync``
  uploads the runs later (``mode: online`` needs ``WANDB_API_KEY``).

Example:
    >>> callbacks = tracking_callbacks(exp, Path("runs/quickstart"))
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from raynas.experiment.config import ConfigError, Experiment

#: Written by every run whatever the config says.
ALWAYS_WRITTEN = ("tensorboard", "csv", "json")
#: Tracker -> (the module it needs, the extra that installs it).
_NEEDS = {"mlflow": ("mlflow", "mlflow"), "wandb": ("wandb", "wandb")}
_COSTS = ("params", "flops", "latency_ms", "latency_pred_ms")

__all__ = ["ALWAYS_WRITTEN", "check_tracking", "tracking_callbacks"]


def check_tracking(exp: Experiment) -> list[str]:
    """Config errors of ``exp.callbacks`` that need the environment (a missing package)."""
    errors = []
    for i, spec in enumerate(exp.callbacks):
        need = _NEEDS.get(spec.name)
        if need is not None and importlib.util.find_spec(need[0]) is None:
            errors.append(
                f"callbacks[{i}]: {spec.name!r} needs the {need[0]!r} package; "
                f"install the {need[1]!r} extra (pip install -e '.[{need[1]}]') or remove it "
                "from callbacks"
            )
    return errors


def _arch_params(exp: Experiment) -> Any:
    """``trial -> {arch_str, space}``: the parameters every tracker logs at a trial's start."""
    from raynas.registry import resolve_space

    space = resolve_space(exp.space, exp.space_args)

    def params(trial: Any) -> dict[str, str]:
        arch = trial.config.get("arch")
        try:
            text = space.to_string(arch)
        except Exception:  # an arch the space cannot print: its raw form
            text = str(arch)
        return {"arch_str": text[:500], "space": exp.space}  # MLflow keeps <= 500 characters

    return params


def _costs(result: dict[str, Any] | None) -> dict[str, Any]:
    return {k: result[k] for k in _COSTS if result and result.get(k) is not None}


def _mlflow_callback(spec: Any, exp: Experiment, folder: Path) -> Any:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    arch_params = _arch_params(exp)

    class NASMLflowLogger(MLflowLoggerCallback):  # type: ignore[misc]
        """Tune's MLflow logger, plus the arch string at a trial's start and its cost at
        its end, as parameters."""

        def log_trial_start(self, trial: Any) -> None:
            super().log_trial_start(trial)
            self.mlflow_util.log_params(
                run_id=self._trial_runs[trial], params_to_log=arch_params(trial)
            )

        def log_trial_end(self, trial: Any, failed: bool = False) -> None:
            costs = _costs(trial.last_result)
            if costs and trial in self._trial_runs:
                self.mlflow_util.log_params(run_id=self._trial_runs[trial], params_to_log=costs)
            super().log_trial_end(trial, failed=failed)

    uri = spec.tracking_uri or f"sqlite:///{(folder / 'mlflow.db').resolve()}"
    return NASMLflowLogger(
        tracking_uri=uri,
        experiment_name=spec.experiment_name or exp.name,
        tags={"raynas.space": exp.space, "raynas.strategy": exp.strategy.name},
        save_artifact=spec.save_artifact,
    )


def _wandb_callback(spec: Any, exp: Experiment, folder: Path) -> Any:
    from ray.air.integrations.wandb import WandbLoggerCallback

    arch_params = _arch_params(exp)

    class NASWandbLogger(WandbLoggerCallback):  # type: ignore[misc]
        """Tune's W&B logger with the arch string and space in each run's config and the
        child's cost logged at its end."""

        def _start_logging_actor(self, trial: Any, exclude_results: Any, **init: Any) -> None:
            # The trial's own config already holds the space (with its arguments).
            extra = {k: v for k, v in arch_params(trial).items() if k != "space"}
            init["config"] = {**init.get("config", {}), **extra}
            super()._start_logging_actor(trial, exclude_results, **init)

        def log_trial_end(self, trial: Any, failed: bool = False) -> None:
            costs = _costs(trial.last_result)
            if costs and trial in self._trial_logging_actors:
                self.log_trial_result(0, trial, {f"cost/{k}": v for k, v in costs.items()})
            super().log_trial_end(trial, failed=failed)

    if spec.mode != "online":
        # Tune asks for an API key unless the driver's WANDB_MODE says offline / disabled.
        os.environ.setdefault("WANDB_MODE", spec.mode)
    return NASWandbLogger(
        project=spec.project or exp.name,
        group=spec.group,
        mode=spec.mode,
        dir=str((folder / "wandb").resolve()),
    )


def tracking_callbacks(exp: Experiment, folder: Path | None) -> list[Any]:
    """Tune callbacks for ``exp.callbacks`` (none for the always-written ones).

    Raises:
        ConfigError: a tracker's package is missing, or the experiment has no local folder
            for a default store.
    """
    errors = check_tracking(exp)
    if errors:
        raise ConfigError(errors)
    out: list[Any] = []
    for i, spec in enumerate(exp.callbacks):
        if spec.name in ALWAYS_WRITTEN:
            continue
        if folder is None and (spec.name == "wandb" or not spec.tracking_uri):
            raise ConfigError(
                [f"callbacks[{i}]: {spec.name!r} keeps its runs in the experiment folder, and "
                 "storage is remote; set tracking_uri (mlflow) or use a local storage"]
            )  # fmt: skip
        build = _mlflow_callback if spec.name == "mlflow" else _wandb_callback
        out.append(build(spec, exp, Path(folder) if folder is not None else Path(".")))
    return out
