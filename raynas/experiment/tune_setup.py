"""Experiment -> Tune's objects: trainable, param space, searcher, scheduler, configs, Tuner.

Everything here builds; nothing starts Ray or runs a trial (:mod:`raynas.experiment.runner` does).
:func:`build_tuner` puts the pieces together for a run, ``raynas retrain`` with its own
``search_alg``.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from raynas.experiment.config import SHARED_KEY, ConfigError, Experiment, trial_settings
from raynas.experiment.config_check import checkpoint_every, reuse_actors
from raynas.experiment.storage import _local_path
from raynas.files import STOPS_FILE


def param_space(exp: Experiment) -> dict[str, Any]:
    """The per-trial part of the config that Tune carries; the searcher adds ``arch``.

    PBT evolution has no searcher: its initial ``arch`` is sampled from the space's Tune form,
    and ``train`` is per trial because PBT perturbs the learning rate.
    """
    if exp.scheduler.name != "pbt_evolution":
        return {}
    from raynas.registry import resolve_space

    return {
        "arch": resolve_space(exp.space, exp.space_args).to_tune(),
        "train": exp.train.model_dump(mode="json"),
    }


def make_searcher(exp: Experiment) -> Any:
    """The experiment's strategy as a Tune searcher."""
    from raynas.registry import STRATEGIES, resolve_space
    from raynas.strategies import get_strategy, strategy_parameters

    space = resolve_space(exp.space, exp.space_args)
    args = dict(exp.strategy.args)
    if "objectives" in strategy_parameters(STRATEGIES.get(exp.strategy.name)):
        args.setdefault("objectives", exp.objective.objectives())
    searcher = get_strategy(
        exp.strategy.name,
        space,
        metric=exp.objective.metric,
        mode=exp.objective.mode,
        seed=exp.seed,
        **args,
    )
    # A trial that stops before this many epochs was early-stopped (lower fidelity).
    searcher.max_fidelity = exp.train.epochs
    from raynas.experiment.constraints import ConstraintCheck

    check = ConstraintCheck.for_experiment(exp)
    if check is not None:  # violators are redrawn on the driver and never cost a trial
        searcher.set_constraint_check(check)
    searcher.set_sync_batch(exp.budget.sync_batch)
    _wire_proxy(exp, searcher)
    return searcher


def _wire_proxy(exp: Experiment, searcher: Any) -> None:
    """Hand a strategy with ``proxy:`` a scorer: the pool is scored by Ray tasks
    (``raynas.proxies.scoring``), on one seeded batch of the experiment's training split."""
    from raynas.strategies.proxy import BatchScorer, ProxyGuided

    settings = getattr(searcher, "proxy", None)
    if not isinstance(searcher, ProxyGuided) or settings is None or searcher._proxy_scorer:
        return
    from raynas.proxies import list_proxies
    from raynas.proxies.scoring import config_job, run_scoring

    name = settings.name
    if name not in list_proxies() or name in ("vote", "rank_average"):
        raise ConfigError(
            [
                f"strategy.proxy.name: {name!r} cannot score a live search (an ensemble needs "
                "a table: `raynas bench search --proxy-table`); use one proxy, e.g. synflow"
            ]
        )
    job = config_job(exp, (name,), seed=exp.seed)

    def score_many(archs: list[Any]) -> list[float]:
        encoded = [json.dumps(a, sort_keys=True) for a in archs]
        # num_cpus=0: the trials may hold every CPU while the driver waits for these scores
        table = run_scoring(job, encoded, out=None, use_ray=True, num_cpus=0, log=lambda _: None)
        return [float(v) for v in table[name]]

    searcher.set_proxy_scorer(BatchScorer(score_many))


def make_scheduler(exp: Experiment) -> Any:
    """The experiment's Tune trial scheduler (None for FIFO)."""
    from raynas.experiment.schedulers import build_scheduler

    return build_scheduler(exp)


def _trainable(exp: Experiment) -> Any:
    from ray import tune

    from raynas.registry import TRAINABLES

    cls = TRAINABLES.get(exp.trainable)
    settings = trial_settings(exp)
    shared = getattr(cls, "shared_objects", None)
    objects = shared(exp) if callable(shared) else None
    if objects:
        import ray

        # Built once here, read by each worker process from the object store.
        settings[SHARED_KEY] = {name: ray.put(obj) for name, obj in objects.items()}
    bound = with_settings(cls, settings)
    return tune.with_resources(bound, {"cpu": exp.resources.cpu, "gpu": exp.resources.gpu})


def with_settings(cls: type, settings: Mapping[str, Any]) -> type:
    """A subclass of the trainable ``cls`` whose ``config`` is ``settings`` + the trial's config.

    The settings travel once, with the class Tune registers, instead of inside every trial's
    config. Each trial gets its own deep copy; the trial's keys win (PBT's perturbed ``train``).
    """
    shared = copy.deepcopy(dict(settings))

    class WithSettings(cls):  # type: ignore[misc, valid-type]
        def setup(self, config: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            self.config = {**copy.deepcopy(shared), **config}
            return super().setup(self.config, *args, **kwargs)

        def reset_config(self, new_config: dict[str, Any]) -> bool:
            self.config = {**copy.deepcopy(shared), **new_config}
            return bool(super().reset_config(self.config))

    # Tune names trial folders after the trainable: keep the registered class's name.
    WithSettings.__name__ = cls.__name__
    WithSettings.__doc__ = cls.__doc__
    return WithSettings


def concurrency(exp: Experiment) -> int | None:
    """Trials at once: ``budget.concurrent`` clamped to ``budget.trials`` (None: no cap)."""
    if exp.budget.concurrent is None:
        return None
    return min(exp.budget.concurrent, exp.budget.trials)


def checkpoints_to_keep(exp: Experiment) -> int | None:
    """``checkpoint.keep``, except under PBT, which keeps every checkpoint (None).

    PBT clones a trial from the checkpoint its donor had at its last perturbation; with few
    kept, the donor's next checkpoints delete that one before the clone restores it ("Could
    not recover from checkpoint as it does not exist on storage anymore").
    """
    return None if exp.scheduler.name == "pbt_evolution" else exp.checkpoint.keep


def stop_targets(exp: Experiment) -> tuple[dict[str, float], dict[str, str]] | None:
    """``budget.stop`` and each metric's mode (the objective's, else a guess from its name:
    losses, costs and times are minimised), or None without targets."""
    if not exp.budget.stop:
        return None
    from raynas.results.analysis import metric_mode

    declared = dict(exp.objective.objectives())
    modes = {m: declared.get(m) or metric_mode(m) for m in exp.budget.stop}
    return dict(exp.budget.stop), modes


def _tune_objects(exp: Experiment, uri: str, verbose: bool | str, tune_cfg: Any) -> dict[str, Any]:
    from ray import tune

    from raynas.experiment.journal import Journal
    from raynas.experiment.loggers import result_loggers
    from raynas.experiment.progress import StopRecorder, TargetStop, TrialPrinter
    from raynas.experiment.tracking import tracking_callbacks
    from raynas.strategies.base import NASSearcher

    root, _, name = uri.rstrip("/").rpartition("/")
    callbacks: list[Any] = [TrialPrinter(exp, level=verbose)]
    local = _local_path(uri)
    if local is not None:
        searcher = tune_cfg.search_alg if isinstance(tune_cfg.search_alg, NASSearcher) else None
        # Before the result loggers: a trial's last result is journaled before its row.
        callbacks.append(Journal(local, tune_cfg.scheduler, searcher))
    callbacks += result_loggers()
    callbacks += tracking_callbacks(exp, local)
    if exp.report.live and local is not None:
        from raynas.report.callback import LiveReport

        callbacks.append(LiveReport(local, exp.report.interval_s, exp.report.top))
    targets = stop_targets(exp)
    every = checkpoint_every(exp)
    if (exp.budget.time_s is not None or targets is not None) and local is not None:
        callbacks.append(
            StopRecorder(local / STOPS_FILE, exp.budget.time_s, exp.train.epochs, targets)
        )
    return {
        "run_config": tune.RunConfig(
            name=name,
            storage_path=root,
            verbose=0,
            callbacks=callbacks,
            stop=None if targets is None else TargetStop(*targets),
            failure_config=tune.FailureConfig(max_failures=exp.failure.max_retries),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=checkpoints_to_keep(exp),
                checkpoint_frequency=every,
                checkpoint_at_end=every > 0,
            ),
        ),
    }


def tune_config(exp: Experiment, search_alg: Any = None) -> Any:
    """The ``tune.TuneConfig`` of ``exp``: metric, searcher, scheduler, budget, concurrency.

    ``search_alg`` replaces the experiment's strategy (``raynas retrain`` proposes one arch).
    """
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    max_concurrent = concurrency(exp)
    if exp.scheduler.name == "pbt_evolution":
        # Tune's PBT refuses searchers: the initial population is sampled from the space's
        # Tune form (see param_space) by a seeded variant generator, and PBT evolves it. The
        # generator itself caps the live trials (Tune ignores max_concurrent_trials here).
        search_alg = BasicVariantGenerator(
            random_state=exp.seed, max_concurrent=max_concurrent or 0
        )
        max_concurrent = None
    elif search_alg is None:
        search_alg = make_searcher(exp)
    return tune.TuneConfig(
        metric=exp.objective.metric,
        mode=exp.objective.mode,
        search_alg=search_alg,
        scheduler=make_scheduler(exp),
        num_samples=exp.budget.trials,
        time_budget_s=exp.budget.time_s,
        max_concurrent_trials=max_concurrent,
        reuse_actors=reuse_actors(exp),
        trial_dirname_creator=TrialDirName(exp.space, exp.space_args),
    )


class TrialDirName:
    """Tune's ``trial_dirname_creator``: :func:`raynas.files.trial_dir_name` of a trial.

    Tune's default name spells out the whole config (about 150 characters of
    ``edge_0_1=none,...`` for NAS-Bench-201); this one is short, sorts by trial, and names
    the architecture by the id the trial reports, so ``ls`` and the result tables can be
    matched by eye.
    """

    def __init__(self, space: str, space_args: Mapping[str, Any]) -> None:
        self.space_name, self.space_args = space, dict(space_args)
        self._space: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_space": None}  # the space is rebuilt where it is needed

    def __call__(self, trial: Any) -> str:
        from raynas.files import trial_dir_name
        from raynas.space import InvalidArchitecture

        tag = str(getattr(trial, "experiment_tag", "") or "").split("_", 1)[0]
        index = int(tag) if tag.isdigit() else None
        arch = (trial.config or {}).get("arch")
        arch_id = None
        if isinstance(arch, Mapping):
            if self._space is None:
                from raynas.registry import resolve_space

                self._space = resolve_space(self.space_name, self.space_args)
            # An arch the space refuses is the trial's error to report, not the name's.
            with contextlib.suppress(InvalidArchitecture, KeyError, TypeError, ValueError):
                arch_id = self._space.arch_id(arch)
        return trial_dir_name(index, str(trial.trial_id), arch_id)


def build_tuner(
    exp: Experiment, uri: str | Path, *, verbose: bool | str = True, search_alg: Any = None
) -> Any:
    """A ``tune.Tuner`` for ``exp`` writing to ``uri`` (Ray must be initialised)."""
    from ray import tune

    tune_cfg = tune_config(exp, search_alg)
    return tune.Tuner(
        _trainable(exp),
        param_space=param_space(exp),
        tune_config=tune_cfg,
        **_tune_objects(exp, str(uri), verbose, tune_cfg),
    )
