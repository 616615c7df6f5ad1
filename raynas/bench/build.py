"""Build a tabular benchmark: evaluate every member of a small space, write the table.

Each seed is one normal raynas experiment (:func:`raynas.experiment.runner.run`) with the ``grid``
strategy over the whole space (``budget.trials`` = the space's cardinality), named
``<name>-seed<k>`` under the config's storage. The experiment folders are then read back
(every trial's ``params.json`` and ``result.json``) into one table with full learning curves:
``arch, seed, epoch``, the per-epoch metrics (``train_loss, train_acc, val_loss, val_acc``,
``test_loss, test_acc`` where recorded), the cost (``params, flops, latency_ms``) and
``train_time_s`` (the cumulative ``epoch_time_s``, training plus validation).

Resumable: run the same command again and a seed whose folder is complete is skipped, an
interrupted one continues with :func:`raynas.experiment.runner.resume` (completed trials are kept),
and the table is written once every arch of every seed has a complete record.

Example:
    >>> build_table("examples/bench-nb201-digits.yaml", "table.parquet", seeds=[0, 1])
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from raynas.experiment.config import ConfigError, Experiment
from raynas.experiment.config_load import load_config

#: Largest space ``bench build`` accepts (it trains every member once per seed).
BUILD_LIMIT = 50_000
EPOCH_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
COST_METRICS = ("params", "flops", "latency_ms")
_IGNORED_CONFIG_KEYS = ("storage",)


@dataclass
class BuildReport:
    """What :func:`build_table` did.

    Attributes:
        table: The path written.
        rows: Number of rows of the table.
        archs: Number of distinct architectures.
        seeds: The seeds built.
        folders: The experiment folder of each seed.
        actions: Per seed, ``"run"``, ``"resume"`` or ``"complete"`` (skipped).
        wall_s: Wall time of this call in seconds.
    """

    table: Path
    rows: int
    archs: int
    seeds: list[int]
    folders: list[Path] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def build_experiment(
    config: str | Path | Mapping[str, Any] | Experiment,
    *,
    overrides: Sequence[str] = (),
    storage: str | None = None,
) -> tuple[Experiment, Any]:
    """The experiment a build runs: grid over every member, no constraints; and its space.

    Raises:
        ConfigError: the config is invalid or the space is continuous or too large.
    """
    from raynas.registry import resolve_space

    exp = load_config(config, overrides=overrides)
    space = resolve_space(exp.space, exp.space_args)
    card = space.cardinality
    if card is None or card > BUILD_LIMIT:
        size = "continuous" if card is None else f"{card:,} archs"
        raise ConfigError(
            [
                f"space: bench build trains every member of the space, so it needs a discrete "
                f"space of at most {BUILD_LIMIT:,} archs; {exp.space!r} is {size} (restrict it "
                "with space_args, e.g. nb201 ops: [none, skip_connect, nor_conv_3x3])"
            ]
        )
    concurrent = exp.budget.concurrent
    fixed = [
        "strategy={name: grid}",
        f"budget.trials={card}",
        "budget.time_s=null",
        "objective.constraints=[]",
        "scheduler={name: fifo}",
    ]
    if concurrent is not None and concurrent > card:
        fixed.append(f"budget.concurrent={card}")
    if storage is not None:
        fixed.append(f"storage={storage}")
    return load_config(exp, overrides=fixed), space


def seed_experiment(exp: Experiment, seed: int) -> Experiment:
    """The per-seed experiment ``<name>-seed<k>``."""
    return load_config(exp, overrides=[f"seed={seed}", f"name={exp.name}-seed{seed}"])


def build_table(
    config: str | Path | Mapping[str, Any] | Experiment,
    out: str | Path,
    *,
    seeds: Iterable[int] | None = None,
    overrides: Sequence[str] = (),
    storage: str | None = None,
    verbose: bool = True,
) -> BuildReport:
    """Evaluate every member of the config's space once per seed and write the table.

    Args:
        config: The experiment (YAML path, mapping or :class:`Experiment`); its strategy,
            budget, scheduler and constraints are replaced by a grid over the whole space.
        out: The table to write (``.parquet``, with the space in its metadata, or ``.csv``).
        seeds: Seeds to build (each a separate experiment); default: the config's seed.
        overrides: ``a.b=value`` strings applied to the config.
        storage: Folder of the experiment folders; default: the config's storage.
        verbose: Print progress lines.

    Returns:
        A :class:`BuildReport`.

    Raises:
        ConfigError: a bad config, an experiment folder built from another config, or a build
            that ended with architectures missing (rerun to resume).
    """
    from raynas.bench.table import BenchTable, TableError, write_table
    from raynas.experiment.runner import experiment_dir

    start = time.perf_counter()
    out_path = Path(out)
    if out_path.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError([f"--out: a table is .parquet or .csv, got {str(out_path)!r}"])
    exp, space = build_experiment(config, overrides=overrides, storage=storage)
    seed_list = sorted({int(s) for s in seeds}) if seeds is not None else [exp.seed]
    report = BuildReport(out_path, 0, 0, seed_list)
    frames = []
    for seed in seed_list:
        sexp = seed_experiment(exp, seed)
        folder = experiment_dir(sexp)
        action = _run_or_resume(sexp, folder, space, verbose)
        report.folders.append(folder)
        report.actions.append(action)
        frame = collect_folder(folder, space, epochs=sexp.train.epochs)
        missing = (space.cardinality or 0) - frame["arch"].nunique()
        if missing:
            raise ConfigError(
                [
                    f"seed {seed}: {missing} of {space.cardinality} archs have no complete "
                    f"record in {str(folder)!r} (trials failed or the run was interrupted); "
                    "run the same command again to resume"
                ]
            )
        frames.append(frame.assign(seed=seed))
    df = pd.concat(frames, ignore_index=True)
    df = df[["arch", "seed", *[c for c in df.columns if c not in ("arch", "seed")]]]
    df = df.sort_values(["arch", "seed", "epoch"], kind="stable").reset_index(drop=True)
    for col in ("params", "flops"):
        if col in df and df[col].notna().all():
            df[col] = df[col].astype("int64")
    try:
        BenchTable(df, space)  # the same validation every reader applies
    except TableError as err:
        raise ConfigError([f"--out: the collected table is invalid: {err}"]) from err
    meta = {
        "space": exp.space,
        "space_args": exp.space_args,
        "seeds": seed_list,
        "built_by": "raynas bench build",
        "config": exp.to_dict(),
    }
    write_table(df, out_path, meta=meta)
    report.rows, report.archs = len(df), int(df["arch"].nunique())
    report.wall_s = time.perf_counter() - start
    if verbose:
        sys.stdout.write(
            f"wrote {out_path}: {report.rows} rows, {report.archs} archs, seeds {seed_list}, "
            f"{report.wall_s:.1f} s ({', '.join(report.actions)})\n"
        )
    return report


def _run_or_resume(exp: Experiment, folder: Path, space: Any, verbose: bool) -> str:
    """Run a seed's experiment, resume it, or skip it when it is complete."""
    from raynas.experiment.runner import resume, run
    from raynas.files import CONFIG_FILE

    cfg = folder / CONFIG_FILE
    if cfg.is_file():
        saved = load_config(cfg).to_dict()  # through today's schema: new fields defaulted
        want = exp.to_dict()
        diff = sorted(
            k
            for k in set(saved) | set(want)
            if k not in _IGNORED_CONFIG_KEYS and saved.get(k) != want.get(k)
        )
        if diff:
            raise ConfigError(
                [
                    f"name: {str(folder)!r} was built from another config (differs in {diff}); "
                    "delete that folder, or build into another --storage"
                ]
            )
        done = collect_folder(folder, space, epochs=exp.train.epochs)["arch"].nunique()
        if done >= (space.cardinality or 0):
            if verbose:
                sys.stdout.write(f"{folder}: complete ({done} archs), skipped\n")
            return "complete"
        from ray import tune

        if tune.Tuner.can_restore(str(folder)):
            if verbose:
                sys.stdout.write(f"{folder}: {done} archs done, resuming\n")
            resume(folder, verbose=verbose)
            return "resume"
    run(exp, overwrite=True, verbose=verbose)
    return "run"


def _trial_rows(results: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """The per-epoch rows of one trial's latest attempt, and whether it completed."""
    rows: list[dict[str, Any]] = []
    done = False
    for r in results:
        epoch = r.get("epoch")
        if not isinstance(epoch, int) or epoch < 1:
            continue
        if rows and epoch <= rows[-1]["epoch"]:
            rows = []  # a restarted attempt (no checkpoint): keep the latest only
        if r.get("status", "ok") not in ("ok", "diverged"):
            continue
        rows.append(r)
        done = bool(r.get("done")) or r.get("status") == "diverged"
    return rows, done


def collect_folder(folder: str | Path, space: Any, *, epochs: int | None = None) -> pd.DataFrame:
    """One row per (arch, epoch) of the completed trials of an experiment folder.

    A trial counts when its last result says ``done`` (or reaches ``epochs``); when one arch
    was trained by several trials, the last completed one (by folder name) is kept.
    """
    from raynas.results.analysis_read import read_json, read_results

    by_arch: dict[str, list[dict[str, Any]]] = {}
    for params_file in sorted(Path(folder).glob("*/params.json")):
        params = read_json(params_file)  # None: a file a kill cut (a trial just created)
        if not isinstance(params, dict) or "arch" not in params:
            continue
        rows, done = _trial_rows(read_results(params_file.parent / "result.json"))
        if not rows or not (done or (epochs is not None and rows[-1]["epoch"] >= epochs)):
            continue
        arch = space.to_string(params["arch"])
        clock = 0.0
        out = []
        for r in rows:
            clock += float(r.get("epoch_time_s") or r.get("time_this_iter_s") or 0.0)
            row: dict[str, Any] = {"arch": arch, "epoch": int(r["epoch"])}
            for key in (*EPOCH_METRICS, *COST_METRICS):
                value = r.get(key)
                row[key] = float(value) if isinstance(value, int | float) else float("nan")
            row["train_time_s"] = clock
            out.append(row)
        by_arch[arch] = out
    columns = ["arch", "epoch", *EPOCH_METRICS, *COST_METRICS, "train_time_s"]
    flat = [row for rows in by_arch.values() for row in rows]
    df = pd.DataFrame(flat, columns=columns)
    # Columns that no trial reported (e.g. test_* without data.evaluate_test) are dropped.
    empty = [c for c in (*EPOCH_METRICS, *COST_METRICS) if c in df and df[c].isna().all()]
    return df.drop(columns=empty) if len(df) else df
