"""Run or resume an experiment: validate, locate its folder, start Ray, fit the Tuner, report.

Ray Tune is the execution engine; raynas only configures it (the Tune objects are built in
:mod:`raynas.experiment.tune_setup`, Ray is started by :mod:`raynas.experiment.ray_setup`). ``run``
validates the whole config before Ray starts (a bad config creates no experiment folder),
writes the config into the experiment folder, runs the Tuner and returns the analysis of the folder.

Example:
    >>> result = raynas.run("examples/quickstart.yaml", overrides=["budget.trials=4"])
    >>> result.top(5)
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from raynas.experiment.config import ConfigError, Experiment
from raynas.experiment.config_check import check_experiment
from raynas.experiment.config_load import load_config
from raynas.experiment.journal import apply_journal, install_snapshot
from raynas.experiment.lock import check_free, holding
from raynas.experiment.ray_setup import init_ray
from raynas.experiment.run_notes import _print_notes, _print_proxy_cost, _record_refusals
from raynas.experiment.storage import (
    _exists_non_empty,
    _local_path,
    _remote_fs,
    _write_config,
    atomic_uploads,
    drop_partials,
)
from raynas.experiment.tune_setup import _trainable, build_tuner, make_searcher, param_space
from raynas.files import CONFIG_FILE


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
    """Run a NAS experiment end to end and return its
    :class:`~raynas.results.analysis.ExperimentResult`.

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
            by the strategy before the search starts (:mod:`raynas.experiment.warm_start`).

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
        from raynas.experiment.warm_start import warm_start_records

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
    from raynas.experiment.progress import output_level

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
    # Held before Ray starts: a driver killed from here on leaves a lock that names its
    # process group, so the command that takes the folder over reaps the Ray it started.
    with holding(local):
        init_ray(address, exp.plugin_path)
        start = time.perf_counter()
        if not tune.Tuner.can_restore(uri):
            raise ConfigError(
                [
                    f"path: {uri!r} holds no Tune experiment state yet; start it again with "
                    "`raynas run ... --overwrite`"
                ]
            )
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
    from raynas.experiment.progress import output_level

    return output_level(verbose) in ("trials", "epochs")


def _set_printer_level(tuner: Any, verbose: bool | str, trials: int) -> None:
    """A restored Tuner brings the first run's callbacks; print at this call's level, and
    count to this call's ``budget.trials``."""
    from raynas.experiment.progress import TrialPrinter

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
    from raynas.experiment.journal import extend_trials

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
    from raynas.results.analysis import load

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

    local = _local_path(uri)
    if local is not None:
        drop_partials(local)  # a killed copy's leftovers (no copy runs yet)
    atomic_uploads()
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


def _finish(exp: Experiment, uri: str, wall_s: float, verbose: bool | str) -> Any:
    from raynas.experiment.progress import output_level
    from raynas.results.analysis import load

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
