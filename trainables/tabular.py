"""``tabular``: a Tune trainable that replays a recorded benchmark instead of training.

Select it with ``trainable: tabular`` and point it at a table (see :mod:`raynas.bench.table`)::

    trainable: tabular
    trainable_args:
      table: benchmarks/data/nb201-3ops-digits.parquet
      seed_mode: by_seed          # or mean: the mean of the recorded runs
      metric_columns: [val_acc, test_acc, params, flops, latency_ms, train_time_s]
      time_column: train_time_s   # cumulative; default: train_time_s if the table has it

One Tune step replays one recorded epoch of ``config["arch"]``: it reports ``epoch``, every
metric column at that epoch (the cost columns included; a metric empty at that epoch, e.g.
``test_acc`` before the last, is left out), ``epochs_total`` (the recorded run's length, by
which the analysis tells completed from early-stopped replays), ``sim_time_s`` (the time
column's value, else the epoch number: a simulated clock for time budgets) and ``done`` at
the last recorded epoch, so
ASHA, Hyperband and PBT schedule it as they would a training run. ``seed_mode: by_seed``
replays the recorded run ``seeds[seed % len(seeds)]`` for the trial's ``seed``. An arch the
table does not hold fails the trial with a message naming it and the table.

The driver parses the table once (when it checks the config) and hands it to the workers
through Ray's object store (:meth:`TabularTrainable.shared_objects`); a trainable built
without Ray loads it from the file, once per process (cached by path and modification time).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from ray import tune

from raynas.bench.table import SEED_MODES, BenchTable, TableError, load_table
from raynas.experiment.config import SHARED_KEY
from raynas.registry import resolve_space

ARGS = ("table", "metric_columns", "seed_mode", "time_column")
_TABLES: dict[tuple[str, float, str, str], BenchTable] = {}
_SHARED: dict[str, BenchTable] = {}
_MET: set[str] = set()
#: The longest a worker process waits for its sibling actors, once (see meet_peers).
PEER_WAIT_S = 10.0


def table_path(raw: Any) -> Path:
    """The table path; a relative path is taken from the driver's working directory."""
    p = Path(str(raw)).expanduser()
    if not p.is_absolute():
        # Tune runs trainables in the trial folder; it remembers the original one.
        p = Path(os.environ.get("TUNE_ORIG_WORKING_DIR", os.getcwd())) / p
    return p


def cached_table(
    path: Path, space_name: str, space_args: dict[str, Any], metric_columns: list[str] | None
) -> BenchTable:
    """The table at ``path`` for the space, loaded once per process."""
    key = (
        str(path),
        path.stat().st_mtime,
        f"{space_name}:{sorted(space_args.items())}",
        str(metric_columns),
    )
    if key not in _TABLES:
        space = resolve_space(space_name, space_args)
        _TABLES[key] = load_table(path, space, metrics=metric_columns)
    return _TABLES[key]


def shared_table(ref: Any) -> BenchTable:
    """The table behind an ObjectRef from :meth:`TabularTrainable.shared_objects`, per process."""
    key = ref.hex()
    if key not in _SHARED:
        import ray

        _SHARED[key] = ray.get(ref)
    return _SHARED[key]


def concurrent_actors(exp: Any) -> int:
    """How many trials of ``exp`` can run at once: its concurrency, its budget and what the
    Ray cluster's CPUs and GPUs hold (Ray must be initialised)."""
    import ray

    total = ray.cluster_resources()
    n = min(exp.budget.concurrent or exp.budget.trials, exp.budget.trials)
    for key, need in (("CPU", exp.resources.cpu), ("GPU", exp.resources.gpu)):
        if need and need > 0:
            n = min(n, int(total.get(key, 0) // need))
    return max(n, 1)


def meet_peers(run_key: str, peers_ref: Any) -> None:
    """Once per worker process: wait until the run's other replay actors are up too.

    A replay takes milliseconds, far less than an actor takes to start. With ``reuse_actors``,
    Tune hands each pending trial to the first actor that is free and cancels the actor it had
    requested for that trial; if one actor is up before its siblings, it takes every trial and
    Tune requests and cancels a new actor per trial (a placement group, a class fetch and an
    actor creation each time). So each process's first replay waits, at most
    :data:`PEER_WAIT_S` seconds once, until as many actors as the run can hold at once have
    checked in (a key each in Ray's internal key-value store).
    """
    if run_key in _MET:
        return
    _MET.add(run_key)
    import ray
    from ray.experimental import internal_kv

    peers = int(ray.get(peers_ref))
    if peers <= 1:
        return
    prefix = f"raynas-peers-{run_key}-"
    me = ray.get_runtime_context().get_actor_id() or f"pid{os.getpid()}"
    internal_kv._internal_kv_put(prefix + me, b"1")
    deadline = time.monotonic() + PEER_WAIT_S
    while time.monotonic() < deadline and len(internal_kv._internal_kv_list(prefix)) < peers:
        time.sleep(0.02)


def pick_time_column(table: BenchTable, time_column: str | None) -> str | None:
    """The simulated clock's column: the one given, else ``train_time_s`` if present."""
    if time_column:
        return time_column
    return "train_time_s" if "train_time_s" in table.metrics else None


class TabularTrainable(tune.Trainable):
    """Replay ``config["arch"]``'s recorded curve from ``trainable_args.table``, an epoch a step.

    The metrics depend on the table, so ``METRICS`` is empty and :meth:`check_config` checks
    the objective against the table's columns instead.
    """

    METRICS: tuple[str, ...] = ()

    def setup(self, config: dict[str, Any]) -> None:
        # Everything happens at the first step (see _ready).
        self.config = config
        self.curve: Any = None

    def _ready(self) -> None:
        if self.curve is None:
            shared = self.config.get(SHARED_KEY) or {}
            if "table" in shared and "peers" in shared:
                meet_peers(shared["table"].hex(), shared["peers"])
            self._init(self.config)

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        self._init(new_config)
        return True

    def _init(self, config: dict[str, Any]) -> None:
        self.config = config
        args = dict(config.get("trainable_args") or {})
        spec = config["space"]
        metrics = args.get("metric_columns")
        ref = (config.get(SHARED_KEY) or {}).get("table")
        if ref is not None:  # parsed once by the driver (see shared_objects)
            self.table = shared_table(ref)
        else:
            self.table = cached_table(
                table_path(args["table"]),
                spec["name"],
                dict(spec.get("args") or {}),
                list(metrics) if metrics else None,
            )
        self.arch = self.table.space.canonical(config["arch"])
        self.arch_id = self.table.space.arch_id(self.arch)
        self.arch_str = self.table.space.to_string(self.arch)
        seed_mode = args.get("seed_mode") or "mean"
        # columns: epoch, *table.metrics; one row per recorded epoch
        self.curve = self.table.curve_array(
            self.arch, seed_mode=seed_mode, seed=int(config.get("seed", 0))
        )
        self.time_column = pick_time_column(self.table, args.get("time_column"))
        self.epoch_index = 0

    def step(self) -> dict[str, Any]:
        self._ready()
        row = self.curve[self.epoch_index]
        self.epoch_index += 1
        result: dict[str, Any] = {
            m: float(v) for m, v in zip(self.table.metrics, row[1:]) if not math.isnan(v)
        }
        epoch = int(row[0])
        clock = result.get(self.time_column) if self.time_column else None
        scalarize = (self.config.get("objective") or {}).get("scalarize")
        if scalarize and all(m in result for m in scalarize):
            result["objective"] = sum(float(w) * result[m] for m, w in scalarize.items())
        result.update(
            epoch=epoch,
            epochs_total=int(self.curve[-1, 0]),
            sim_time_s=float(clock) if clock is not None else float(epoch),
            status="ok",
            arch_id=self.arch_id,
            arch_str=self.arch_str,
            done=self.epoch_index >= len(self.curve),
        )
        return result

    def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any]:
        self._ready()
        return {"epoch_index": self.epoch_index, "arch": self.arch}

    def load_checkpoint(self, checkpoint: Any) -> None:
        # PBT may hand over another trial's checkpoint with a new arch: keep our arch and
        # continue its curve from the epoch reached.
        self._ready()
        if isinstance(checkpoint, dict):
            self.epoch_index = min(int(checkpoint.get("epoch_index", 0)), len(self.curve) - 1)

    @staticmethod
    def shared_objects(exp: Any) -> dict[str, Any]:
        """The parsed table, which the runner hands to every worker through the object store
        (a worker unpickles it in milliseconds instead of parsing the file again: seconds for
        the 15,625 NAS-Bench-201 cells; worker nodes need no copy of the file), and how many
        replay actors the run holds at once (see :func:`meet_peers`)."""
        args = dict(exp.trainable_args)
        metrics = args.get("metric_columns")
        table = cached_table(
            table_path(args["table"]), exp.space, dict(exp.space_args), metrics or None
        )
        return {"table": table, "peers": concurrent_actors(exp)}

    # --- config checks (before Ray starts) ------------------------------------------
    @staticmethod
    def check_config(exp: Any) -> list[str]:
        """Check ``trainable_args`` and load the table; ``path: message`` lines."""
        args = dict(exp.trainable_args)
        errors = [
            f"trainable_args.{k}: unknown argument of 'tabular'; its arguments are {list(ARGS)}"
            for k in args
            if k not in ARGS
        ]
        if "table" not in args:
            return [*errors, "trainable_args.table: required: the path of the table to replay"]
        path = table_path(args["table"])
        if not path.is_file():
            return [*errors, f"trainable_args.table: file {str(path)!r} does not exist"]
        seed_mode = args.get("seed_mode", "mean")
        if seed_mode not in SEED_MODES:
            errors.append(
                f"trainable_args.seed_mode: must be one of {list(SEED_MODES)}, got {seed_mode!r}"
            )
        metrics = args.get("metric_columns")
        if metrics is not None and (
            not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics)
        ):
            return [*errors, "trainable_args.metric_columns: must be a list of column names"]
        try:
            table = cached_table(path, exp.space, dict(exp.space_args), metrics or None)
        except (TableError, FileNotFoundError) as err:
            return [*errors, f"trainable_args.table: {err}"]
        except Exception:  # a bad space: check_experiment reports it under `space`
            return errors
        time_column = args.get("time_column")
        if time_column is not None and time_column not in table.metrics:
            errors.append(
                f"trainable_args.time_column: {time_column!r} is not a metric column of the "
                f"table; its metrics are {table.metrics}"
            )
        known = [*table.metrics, "epoch", "sim_time_s", "objective"]
        objectives = [("objective.metric", exp.objective.metric)]
        objectives += [("objective.also", o.metric) for o in exp.objective.also]
        objectives += [(f"objective.scalarize.{m}", m) for m in exp.objective.scalarize or {}]
        for field, metric in objectives:
            if metric not in known:
                errors.append(
                    f"{field}: the table has no column {metric!r}; its metrics are {table.metrics}"
                )
        return errors
