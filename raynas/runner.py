"""Experiment -> ``tune.Tuner``: resources, storage, searcher, scheduler, failures, checkpoints.

Ray Tune is the execution engine; this module only configures it. ``run`` validates the whole
config before Ray starts (a bad config creates no experiment folder), writes the config into
the experiment folder, runs the Tuner and returns the analysis of the folder.

Example:
    >>> result = raynas.run("examples/quickstart.yaml", overrides=["budget.trials=4"])
    >>> result.top(5)
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from raynas.config import (
    SHARED_KEY,
    ConfigError,
    Experiment,
    check_experiment,
    checkpoint_every,
    load_config,
    reuse_actors,
    trial_settings,
)
from raynas.files import CONFIG_FILE, REFUSED_FILE, STOPS_FILE
from raynas.journal import apply_journal, install_snapshot
from raynas.lock import check_free, holding

_ENV = {
    # A constraint-violated child reports no objective; Tune must not fail it for that.
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    "RAY_DEDUP_LOGS": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_TRAIN_V2_ENABLED": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # Snapshot the experiment at every step of Tune's loop (not every >= 10 s): a trial then
    # appears in a snapshot before it can finish, and the journal (raynas.journal) covers
    # the rest, so a resume after a kill trains nothing twice.
    "TUNE_GLOBAL_CHECKPOINT_S": "0",
}


def experiment_dir(exp: Experiment, *, storage: str | None = None, name: str | None = None) -> Path:
    """The local folder an experiment writes: ``<storage>/<name>`` (``file://`` URIs too).

    Raises:
        ConfigError: ``storage`` is a remote URI (use :func:`experiment_uri`).
    """
    uri = experiment_uri(exp, storage=storage, name=name)
    local = _local_path(uri)
    if local is None:
        raise ConfigError([f"storage: {uri!r} is not on this machine's file system"])
    return local


def experiment_uri(exp: Experiment, *, storage: str | None = None, name: str | None = None) -> str:
    """Where the experiment lives: a local absolute path, or ``scheme://.../<name>``."""
    root = storage or exp.storage
    if "://" in root:
        return root.rstrip("/") + "/" + (name or exp.name)
    return str(Path(root).expanduser().resolve() / (name or exp.name))


def _local_path(uri: str) -> Path | None:
    """The local folder of a path or ``file://`` URI; None for a remote file system."""
    if "://" not in uri:
        return Path(uri)
    if uri.startswith("file://"):
        return Path(uri[len("file://") :]).expanduser().resolve()
    return None


def _remote_fs(uri: str) -> tuple[Any, str]:
    """pyarrow's file system and path for a remote URI; ConfigError naming storage if not."""
    from pyarrow import fs

    try:
        return fs.FileSystem.from_uri(uri)
    except Exception as err:  # pyarrow raises several types for bad or unsupported URIs
        raise ConfigError(
            [
                f"storage: {uri!r} is not a file system pyarrow can open ({err}); use a local "
                "path, file://, or a URI of an installed pyarrow file system (s3://, gs://, ...)"
            ]
        ) from None


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
    from raynas.constraints import ConstraintCheck

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
        table = run_scoring(job, encoded, out=None, use_ray=True, log=lambda _: None)
        return [float(v) for v in table[name]]

    searcher.set_proxy_scorer(BatchScorer(score_many))


def make_scheduler(exp: Experiment) -> Any:
    """The experiment's Tune trial scheduler (None for FIFO)."""
    from raynas.schedulers import build_scheduler

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


def init_ray(address: str | None, plugin_path: Sequence[str] = ()) -> None:
    """Start an embedded Ray, or join the cluster at ``address`` (refused when unreachable).

    ``plugin_path`` (the experiment's ``plugin_path``) goes first on the workers'
    ``PYTHONPATH``, so a plugin trainable's class can be unpickled there. A Ray that is
    already running keeps its workers' environment: start it with that path yourself.
    """
    import ray

    for k, v in _ENV.items():
        os.environ.setdefault(k, v)
    if ray.is_initialized():
        return
    env = {"RAY_LOG_LEVEL": "WARNING", **_ENV}
    if plugin_path:
        env["PYTHONPATH"] = os.pathsep.join(
            [*plugin_path, *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": True,
        # Workers inherit these: quiet Ray/Tune INFO chatter (checkpoint notices).
        "runtime_env": {"env_vars": env},
    }
    # No address: the cluster of a `ray job submit` (RAY_ADDRESS), else a fresh embedded
    # Ray, never a cluster that happens to be running on this machine (which a bare
    # ray.init() would attach to).
    kwargs["address"] = address or os.environ.get("RAY_ADDRESS") or "local"
    if address:
        _probe(address)
    # Ray's notice that token authentication is on, printed on every start; it stays on
    # (the embedded Ray listens on this machine only), the notice goes.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR
    )
    # Tune's result grid (unused: raynas reads the folder) warns about a trial the budget
    # stopped before it wrote a result.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    try:
        ray.init(**kwargs)
    except ConnectionError as err:
        raise ConfigError(
            [
                f"--address: no Ray cluster at {address or kwargs['address']!r} ({err}); start "
                "one with `ray start --head`, or leave --address out for an embedded Ray"
            ]
        ) from None


#: Seconds to wait for a cluster's head to accept a connection before giving up.
CONNECT_TIMEOUT_S = 5.0


def _probe(address: str) -> None:
    """Refuse an address whose head does not answer within :data:`CONNECT_TIMEOUT_S`.

    ``ray.init`` retries an unreachable head for minutes; a ``host:port`` address (also
    ``ray://host:port``) is tried once with a bounded TCP connect first. ``auto`` and ``local``
    are Ray's own words and left to it.
    """
    import socket

    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or address in ("auto", "local"):
        return
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        raise ConfigError(
            [
                f"--address: cannot reach a Ray head at {address!r} within "
                f"{CONNECT_TIMEOUT_S:g} s ({err.strerror or err}); check the address and that "
                "`ray start --head` runs there"
            ]
        ) from None


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


#: The argument that sets each strategy's warm-up: the trials it samples at random before
#: it starts to learn from results.
WARMUP_ARGUMENTS = {
    "bo": "num_init",
    "bohb": "min_points_in_model",
    "evolution": "population_size",
    "moea": "population_size",
    "tpe": "n_initial_points",
}


def _budget_warnings(exp: Experiment) -> list[str]:
    """A budget the strategy or the space cannot use as asked, one warning line each."""
    from raynas.registry import STRATEGIES, RegistryError, resolve_space
    from raynas.space import SpaceDefinitionError
    from raynas.strategies import strategy_arguments

    out = []
    trials, name = exp.budget.trials, exp.strategy.name
    warmup = WARMUP_ARGUMENTS.get(name)
    if warmup is not None and exp.scheduler.name != "pbt_evolution":
        try:
            size = exp.strategy.args.get(warmup, strategy_arguments(STRATEGIES.get(name))[warmup])
        except (RegistryError, KeyError):
            size = None
        if size is None and name == "bohb":  # null: one more than the space's genes
            try:
                size = len(resolve_space(exp.space, exp.space_args).genes) + 1
            except (RegistryError, SpaceDefinitionError, TypeError, ValueError):
                size = None
        if isinstance(size, int) and size >= trials:
            out.append(
                f"warning: strategy.{warmup}: {size} is not below budget.trials ({trials}), so "
                f"every trial is drawn at random and {name} never learns; raise budget.trials "
                f"or lower strategy.{warmup}"
            )
    try:
        cardinality = resolve_space(exp.space, exp.space_args).cardinality
    except (RegistryError, SpaceDefinitionError, TypeError, ValueError):
        cardinality = None
    repeats = bool(exp.strategy.args.get("allow_repeats", False))
    if cardinality is not None and cardinality < trials and not repeats:
        out.append(
            f"warning: budget.trials: {trials} is above the {cardinality:,} architectures of "
            f"the space, and {name} never repeats one; the search ends after {cardinality:,}"
        )
    return out


def run_notes(exp: Experiment) -> list[str]:
    """What raynas changed or warns about in ``exp`` as it runs it, one line each.

    The run prints them before the first trial; nothing here stops the run.
    """
    notes = []
    if exp.budget.concurrent is not None and exp.budget.concurrent > exp.budget.trials:
        notes.append(
            f"budget.concurrent: {exp.budget.concurrent} is above budget.trials "
            f"({exp.budget.trials}); running at most {exp.budget.trials} at once"
        )
    if exp.scheduler.name == "pbt_evolution":
        if exp.checkpoint.keep is not None:
            notes.append(
                f"checkpoint.keep: {exp.checkpoint.keep} -> every checkpoint is kept under "
                "pbt_evolution (a trial clones the checkpoint its donor had when it was ranked)"
            )
        cap = concurrency(exp)
        if cap is not None and cap < exp.budget.trials:
            notes.append(
                f"budget.concurrent: under pbt_evolution at most {cap} population members are "
                f"alive at once (Tune's variant generator), so the {exp.budget.trials} trials "
                f"evolve as successive populations of {cap}; unset budget.concurrent to evolve "
                "them as one population (resources then decide how many train at once)"
            )
    if exp.budget.sync_batch is not None and exp.scheduler.name == "pbt_evolution":
        notes.append(
            "budget.sync_batch: ignored under pbt_evolution, which proposes no candidates; "
            "scheduler.synch: true ranks its population synchronously"
        )
    notes += _budget_warnings(exp)
    if exp.checkpoint.every is None and checkpoint_every(exp) == 0:
        notes.append(
            f"checkpoint.every: 0, as trainable {exp.trainable!r} cannot save checkpoints (a "
            "retried or resumed trial starts over)"
        )
    if exp.reuse_actors is None and not reuse_actors(exp):
        notes.append(
            f"reuse_actors: false, as trainable {exp.trainable!r} has no reset_config (each "
            "trial starts a new actor)"
        )
    for metric in dict.fromkeys(m for m, _ in exp.objective.objectives()):
        if metric.startswith("test_"):
            notes.append(
                f"warning: objective metric {metric!r} selects architectures on the test split, "
                "so its test score is no longer an unbiased estimate; select on val_* and "
                "report test_* (data.evaluate_test: true)"
            )
    return notes


def stop_targets(exp: Experiment) -> tuple[dict[str, float], dict[str, str]] | None:
    """``budget.stop`` and each metric's mode (the objective's, else a guess from its name:
    losses, costs and times are minimised), or None without targets."""
    if not exp.budget.stop:
        return None
    from raynas.analysis import metric_mode

    declared = dict(exp.objective.objectives())
    modes = {m: declared.get(m) or metric_mode(m) for m in exp.budget.stop}
    return dict(exp.budget.stop), modes


def _tune_objects(exp: Experiment, uri: str, verbose: bool | str, tune_cfg: Any) -> dict[str, Any]:
    from ray import tune

    from raynas.journal import Journal
    from raynas.loggers import result_loggers
    from raynas.progress import StopRecorder, TargetStop, TrialPrinter
    from raynas.strategies.base import NASSearcher
    from raynas.tracking import tracking_callbacks

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


def fit_experiment(
    exp: Experiment, uri: str, *, verbose: bool | str = True, search_alg: Any = None
) -> Any:
    """Run a prepared experiment (Ray initialised, its config written to ``uri``) to the end.

    Holds the folder for this driver, prints the run's notes, turns Ctrl-C into
    :class:`Interrupted`, and returns the analysis of the folder (see :func:`run`).
    """
    if search_alg is None and exp.scheduler.name != "pbt_evolution":
        search_alg = make_searcher(exp)
    with holding(_local_path(uri)):
        start = time.perf_counter()
        tuner = build_tuner(exp, uri, verbose=verbose, search_alg=search_alg)
        _print_notes(exp, _chatty(verbose))
        _fit(tuner, uri)
        _record_refusals(search_alg, uri, _chatty(verbose))
        _print_proxy_cost(search_alg, _chatty(verbose))
        return _finish(exp, uri, time.perf_counter() - start, verbose)


def _print_proxy_cost(searcher: Any, verbose: bool) -> None:
    """What a strategy's zero-cost proxy cost (``strategy.proxy``); not in budget.trials."""
    if not verbose or getattr(searcher, "proxy", None) is None:
        return
    stats = getattr(searcher, "proxy_stats", None)
    if isinstance(stats, dict):
        sys.stdout.write(
            f"proxy {stats['proxy']}: {stats['archs_scored']} archs scored in "
            f"{stats['seconds']:.1f} s (no trial of budget.trials)\n"
        )


def _record_refusals(searcher: Any, uri: str, verbose: bool) -> None:
    """Write the candidates the driver refused (constraints) to ``raynas_refused.json``."""
    refused = int(getattr(searcher, "refused", 0) or 0)
    local = _local_path(uri)
    if not refused or local is None:
        return
    examples = [
        {"arch": e["arch"], "violations": list(e["violations"])}
        for e in getattr(searcher, "refused_examples", [])
    ]
    (local / REFUSED_FILE).write_text(
        json.dumps({"refused": refused, "examples": examples}, indent=1, default=str)
    )
    if verbose:
        sys.stdout.write(
            f"constraints: {refused} candidate(s) refused on the driver, never trained and "
            f"not counted in budget.trials (examples in {REFUSED_FILE})\n"
        )


def prepare(
    config: str | Path | Mapping[str, Any] | Experiment,
    *,
    overrides: Sequence[str] = (),
    storage: str | None = None,
    name: str | None = None,
    address: str | None = None,
    overwrite: bool = False,
) -> tuple[Experiment, str]:
    """Validate everything and locate the experiment folder; nothing is written yet.

    Returns:
        The experiment and its location (a local path or a URI).

    Raises:
        ConfigError: a bad field (named), or an existing experiment folder without overwrite.
    """
    exp = load_config(config, overrides=overrides)
    if name is not None:
        exp = load_config(exp, overrides=[f"name={name}"])
    if storage is not None:
        exp = load_config(exp, overrides=[f"storage={storage}"])
    check_experiment(exp, address=address)
    uri = experiment_uri(exp)
    local = _local_path(uri)
    if local is not None:
        check_free(local)  # never replace, or write into, a folder another driver is running
    if _exists_non_empty(uri) and not overwrite:
        raise ConfigError(
            [
                f"name: experiment folder {uri!r} already exists; continue it with "
                f"`raynas resume {uri}` (raynas.resume), pick another name (--name, or "
                "name= in Python), or replace it (--overwrite, or overwrite=True)"
            ]
        )
    return exp, uri


def _exists_non_empty(uri: str) -> bool:
    local = _local_path(uri)
    if local is not None:
        return local.exists() and any(local.iterdir())
    from pyarrow import fs

    filesystem, path = _remote_fs(uri)
    info = filesystem.get_file_info(path)
    if info.type == fs.FileType.NotFound:
        return False
    return bool(filesystem.get_file_info(fs.FileSelector(path, allow_not_found=True)))


def _write_config(exp: Experiment, uri: str, overwrite: bool) -> None:
    text = yaml.safe_dump(exp.to_dict(), sort_keys=False)
    local = _local_path(uri)
    if local is not None:
        if local.exists() and overwrite:
            shutil.rmtree(local)
        try:
            local.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(
                [
                    f"storage: cannot create the experiment folder {str(local)!r} "
                    f"({err.strerror or err}); use a writable folder (storage: or --storage)"
                ]
            ) from None
        (local / CONFIG_FILE).write_text(text)
        return
    filesystem, path = _remote_fs(uri)
    if overwrite:
        filesystem.delete_dir_contents(path, missing_dir_ok=True)
    filesystem.create_dir(path, recursive=True)
    with filesystem.open_output_stream(f"{path}/{CONFIG_FILE}") as f:
        f.write(text.encode())


def run(
    config: str | Path | Mapping[str, Any] | Experiment,
    *,
    overrides: Sequence[str] = (),
    storage: str | None = None,
    name: str | None = None,
    address: str | None = None,
    overwrite: bool = False,
    verbose: bool | str = True,
    warm_start: str | Path | None = None,
) -> Any:
    """Run a NAS experiment end to end and return its :class:`~raynas.analysis.ExperimentResult`.

    Args:
        config: An :class:`Experiment`, a mapping, or a YAML path.
        overrides: ``a.b=value`` strings applied on top of the config.
        storage: Folder or pyarrow file-system URI (``file://``, ``s3://``...) holding
            experiments; overrides ``config.storage``.
        name: Experiment name (its folder); overrides ``config.name``.
        address: Ray cluster address (``auto`` for an existing cluster); None: local Ray.
        overwrite: Replace an existing experiment folder of the same name.
        verbose: What to print: True or ``"trials"``, a line per finished trial (with a live
            status line on a terminal) and the top-5 table; ``"epochs"``, also a line per
            epoch; ``"summary"``, only the table; False or ``"quiet"``, nothing.
        warm_start: An earlier experiment folder of the same space: its trials are observed
            by the strategy before the search starts (:mod:`raynas.warm_start`).

    Returns:
        The analysis of the experiment folder; None when the storage is remote (analyse a
        local copy with ``raynas.load``).

    Raises:
        ConfigError: the config is invalid (nothing was started or written).
        ValueError: ``verbose`` is none of the values above.
    """
    _chatty(verbose)  # a bad value is refused before anything starts
    exp, uri = prepare(
        config,
        overrides=overrides,
        storage=storage,
        name=name,
        address=address,
        overwrite=overwrite,
    )
    # Built before anything is written: a strategy's bad arguments are the user's, exit 2.
    searcher: Any = make_searcher(exp) if exp.scheduler.name != "pbt_evolution" else None
    if warm_start is not None:
        from raynas.warm_start import warm_start_records

        records = warm_start_records(warm_start, exp)
        try:
            fed = searcher.warm_start(records)
        except ValueError as err:
            raise ConfigError([f"--warm-start: {err}"]) from None
        if _chatty(verbose):
            sys.stdout.write(f"warm start: {fed} trial(s) of {warm_start} observed\n")
    init_ray(address, exp.plugin_path)  # an unreachable cluster is refused before writing
    _write_config(exp, uri, overwrite)
    return fit_experiment(exp, uri, verbose=verbose, search_alg=searcher)


#: The fields ``raynas resume --set`` may change: a budget, never what a trial is.
RESUME_OVERRIDES = ("budget.trials",)


def resume(
    path: str | Path,
    *,
    address: str | None = None,
    verbose: bool | str = True,
    overrides: Sequence[str] = (),
) -> Any:
    """Continue an interrupted experiment: finished trials kept, searcher state restored.

    ``verbose`` is that of :func:`run`; the count of finished trials goes on from the
    trials the experiment already has. ``overrides`` may raise ``budget.trials``
    (:data:`RESUME_OVERRIDES`), which also extends a finished search: the strategy goes on
    from its state and proposes the new trials.
    """
    from raynas.progress import output_level

    output_level(verbose)  # a bad value is refused before anything starts
    from ray import tune

    uri = str(path)
    local = _local_path(uri)
    if local is not None:
        local = local.expanduser().resolve()
        uri = str(local)
        cfg = local / CONFIG_FILE
        if not cfg.is_file():
            raise ConfigError([f"path: {uri!r} is not a raynas experiment (no {CONFIG_FILE})"])
        exp = load_config(cfg)
        check_free(local)
        extended = _extended(exp, overrides)
        _refuse_finished(local, extended)
    else:
        if overrides:
            raise ConfigError(["--set: a remote experiment cannot be extended on resume"])
        filesystem, rpath = _remote_fs(uri)
        with filesystem.open_input_stream(f"{rpath}/{CONFIG_FILE}") as f:
            exp = load_config(yaml.safe_load(f.read().decode()))
    init_ray(address, exp.plugin_path)
    start = time.perf_counter()
    if not tune.Tuner.can_restore(uri):
        raise ConfigError(
            [
                f"path: {uri!r} holds no Tune experiment state yet; start it again with "
                "`raynas run ... --overwrite`"
            ]
        )
    with holding(local):
        if local is not None:
            install_snapshot(local)  # one consistent step of Tune's state, not a torn copy
            apply_journal(local)  # trials that ended after that step stay ended
            if extended.budget.trials != exp.budget.trials:
                _extend(local, exp, extended)
                exp = extended
        tuner = tune.Tuner.restore(
            uri,
            trainable=_trainable(exp),
            resume_unfinished=True,
            resume_errored=True,
            param_space=param_space(exp),
        )
        _set_printer_level(tuner, verbose, exp.budget.trials)
        _fit(tuner, uri)
        return _finish(exp, uri, time.perf_counter() - start, verbose)


def _chatty(verbose: bool | str) -> bool:
    """Whether ``verbose`` asks for the notes and a line per trial (not only the summary)."""
    from raynas.progress import output_level

    return output_level(verbose) in ("trials", "epochs")


def _set_printer_level(tuner: Any, verbose: bool | str, trials: int) -> None:
    """A restored Tuner brings the first run's callbacks; print at this call's level, and
    count to this call's ``budget.trials``."""
    from raynas.progress import TrialPrinter

    run_config = getattr(getattr(tuner, "_local_tuner", None), "_run_config", None)
    for callback in getattr(run_config, "callbacks", None) or ():
        if isinstance(callback, TrialPrinter):
            callback.set_level(verbose)
            callback.total = trials


def _extended(exp: Experiment, overrides: Sequence[str]) -> Experiment:
    """``exp`` with a resume's ``--set`` applied; only :data:`RESUME_OVERRIDES` may change."""
    if not overrides:
        return exp
    new = load_config(exp.to_dict(), overrides=overrides)
    old_fields, new_fields = _dotted(exp.to_dict()), _dotted(new.to_dict())
    changed = sorted(
        k
        for k in old_fields.keys() | new_fields.keys()
        if old_fields.get(k) != new_fields.get(k)
        and not any(k == a or k.startswith(a + ".") for a in RESUME_OVERRIDES)
    )
    if changed:
        raise ConfigError(
            [f"--set {key}: a resume can change only {', '.join(RESUME_OVERRIDES)}; start a "
             "new experiment (`raynas run CONFIG --name NEW`) to change the rest"
             for key in changed]
        )  # fmt: skip
    if new.budget.trials < exp.budget.trials:
        raise ConfigError(
            [f"budget.trials: {new.budget.trials} is below the experiment's "
             f"{exp.budget.trials}; a resume can only raise it"]
        )  # fmt: skip
    if new.budget.trials != exp.budget.trials and exp.scheduler.name == "pbt_evolution":
        raise ConfigError(
            ["budget.trials: a pbt_evolution population cannot grow on resume; start a new "
             "experiment with --warm-start"]
        )  # fmt: skip
    return new


def _dotted(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A config dict's leaves by dotted path (``budget.trials``); lists are leaves."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_dotted(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _extend(folder: Path, exp: Experiment, new: Experiment) -> None:
    """Write ``new``'s config and let Tune's search generator create its extra trials."""
    from raynas.journal import extend_trials

    try:
        extend_trials(folder, new.budget.trials)
    except FileNotFoundError:
        raise ConfigError(
            [f"budget.trials: {str(folder)!r} has no searcher state to extend"]
        ) from None
    tmp = folder / (CONFIG_FILE + ".tmp")
    tmp.write_text(yaml.safe_dump(new.to_dict(), sort_keys=False))
    os.replace(tmp, folder / CONFIG_FILE)


def _refuse_finished(folder: Path, exp: Experiment) -> None:
    """A resume of an experiment whose every trial ended, none with an error, is a mistake."""
    from raynas.analysis import load

    result = load(folder)
    ended = result.finished and len(result.trials) >= exp.budget.trials
    if ended and not (result.trials["status"] == "error").any():
        raise ConfigError(
            [
                f"path: experiment {str(folder)!r} is finished ({len(result.trials)} trials "
                "ended, none with an error); nothing to resume. Start another with "
                "`raynas run CONFIG --name NEW`"
            ]
        )


class Interrupted(KeyboardInterrupt):
    """The user stopped the run (Ctrl-C); Tune saved its state and ``path`` can be resumed."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class _TuneAdvice(logging.Filter):
    """Drop Tune's ``Tuner.restore(...)`` advice: raynas users continue with ``raynas resume``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Resume experiment with" not in record.getMessage()


def _fit(tuner: Any, uri: str) -> None:
    """``tuner.fit()``, turning the first Ctrl-C into Tune's graceful stop and then
    :class:`Interrupted` (a second Ctrl-C stops at once, as Python's default does).

    Tune's own SIGINT handler is off (``TUNE_DISABLE_SIGINT_HANDLER``); raynas's asks Tune to
    stop through SIGUSR1, the signal Tune always handles the same way, so Tune still saves the
    experiment one last time, and raynas knows the run was interrupted.
    """
    interrupted = threading.Event()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None

    def on_sigint(sig: int, frame: Any) -> None:
        interrupted.set()
        signal.signal(signal.SIGINT, previous or signal.default_int_handler)
        os.kill(os.getpid(), signal.SIGUSR1)

    def before_tune_listens(sig: int, frame: Any) -> None:
        raise KeyboardInterrupt  # Ctrl-C before Tune's loop started: nothing to save yet

    advice = _TuneAdvice()
    logging.getLogger("ray.tune.tune").addFilter(advice)
    hooked = main and hasattr(signal, "SIGUSR1")
    if hooked:
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        previous_usr1 = signal.signal(signal.SIGUSR1, before_tune_listens)  # Tune replaces it
        signal.signal(signal.SIGINT, on_sigint)
    from raynas.strategies.base import InfeasibleSpaceError

    try:
        tuner.fit()
    except InfeasibleSpaceError as err:  # a user's constraints, not a bug: no traceback
        raise ConfigError([f"objective.constraints: {err}"]) from None
    finally:
        logging.getLogger("ray.tune.tune").removeFilter(advice)
        if hooked:
            signal.signal(signal.SIGINT, previous or signal.default_int_handler)
            signal.signal(signal.SIGUSR1, previous_usr1 or signal.SIG_DFL)
    if interrupted.is_set():
        raise Interrupted(uri)


def _print_notes(exp: Experiment, verbose: bool) -> None:
    if verbose:
        for line in run_notes(exp):
            sys.stdout.write((line if line.startswith("warning:") else f"note: {line}") + "\n")
        sys.stdout.flush()


def _finish(exp: Experiment, uri: str, wall_s: float, verbose: bool | str) -> Any:
    from raynas.analysis import load
    from raynas.progress import output_level

    verbose = output_level(verbose) != "quiet"  # the summary is printed from level summary on
    path = _local_path(uri)
    if path is None:
        if verbose:
            sys.stdout.write(f"\nexperiment folder: {uri}\nwall time: {wall_s:.1f} s\n")
        return None
    result = load(path)
    if verbose:
        out = sys.stdout
        out.write(f"\nexperiment folder: {path}\n")
        out.write(f"wall time: {wall_s:.1f} s, trials: {len(result.trials)}\n")
        counts = result.status_counts()
        out.write("status: " + ", ".join(f"{k}={v}" for k, v in counts.items()) + "\n")
        if len(result.trials) and counts.get("constraint_violated") == len(result.trials):
            out.write(
                "warning: every trial violated objective.constraints "
                f"({', '.join(exp.objective.constraints)}); loosen them or pick a smaller "
                "space (space_args)\n"
            )
        if counts.get("stopped_at_target"):
            out.write(
                f"budget.stop ({exp.budget.stop}) was met: {counts['stopped_at_target']} "
                "trial(s) were cut while training (status stopped_at_target)\n"
            )
        if counts.get("timed_out"):
            out.write(
                f"budget.time_s ({exp.budget.time_s:g} s) ended the run: "
                f"{counts['timed_out']} trial(s) were cut while training (status timed_out)\n"
            )
        errors = result.format_errors()
        if errors:
            out.write(errors + "\n")
        out.write(result.format_top(5) + "\n")
        out.flush()
    return result
