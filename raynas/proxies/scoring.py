"""Score many archs of a space with proxies: per-arch rows, chunked over Ray tasks, resumable.

A run writes each finished chunk of archs to ``OUT.parts/chunk-NNNNN.parquet`` (atomically)
beside a ``manifest.json`` of its settings; a rerun with the same settings skips the chunks
already there, and the final table (arch as JSON, ``arch_id``, one column per proxy and
ensemble, ``seconds`` per arch, ``error``) replaces ``OUT`` once every chunk is done, after
which the parts folder is removed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from raynas.proxies import ENSEMBLES, ProxyError

if TYPE_CHECKING:
    from raynas.experiment.config import Experiment

KEY_COLUMNS = ("arch", "arch_id", "seconds", "error")


class RunMismatch(ProxyError):
    """``OUT.parts`` holds a run with other settings."""


@dataclass(frozen=True)
class ScoreJob:
    """What every task needs to score archs.

    Attributes:
        space: Registered space name (or YAML path of a plugin space).
        space_args: Its arguments.
        proxies: Per-model proxies (keys of :data:`raynas.proxies.PROXIES`).
        input_shape: One input's shape, e.g. ``(3, 32, 32)``.
        num_classes: Classifier outputs.
        seed: Seeds each arch's init (with its arch id) and the proxies' noise.
        ensembles: Ensembles added when the table is merged (keys of ``ENSEMBLES``).
        plugins: Modules to import first (plugin spaces).
        plugin_path: Folders put on the import path first (``plugin_path:``); not part of
            the manifest (where a plugin lives does not change its scores).
        batch: One batch ``(inputs, labels)`` as numpy arrays, or None (data-free).
    """

    space: str
    space_args: dict[str, Any]
    proxies: tuple[str, ...]
    input_shape: tuple[int, ...]
    num_classes: int
    seed: int = 0
    ensembles: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()
    plugin_path: tuple[str, ...] = ()
    batch: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def manifest(self, archs: Sequence[str], chunk_size: int) -> dict[str, Any]:
        """A JSON-able fingerprint of the run (the batch and arch list by digest)."""
        data = asdict(self)
        data.pop("batch")
        data.pop("plugin_path")
        data["input_shape"] = list(self.input_shape)
        data["proxies"], data["ensembles"] = list(self.proxies), list(self.ensembles)
        data["plugins"] = list(self.plugins)
        digest = hashlib.sha256()
        if self.batch is not None:
            for a in self.batch:
                digest.update(np.ascontiguousarray(a).tobytes())
        data["batch"] = digest.hexdigest() if self.batch is not None else None
        data["archs"] = hashlib.sha256("\n".join(archs).encode()).hexdigest()
        data["chunk_size"] = chunk_size
        return json.loads(json.dumps(data, default=str))


def config_job(
    config: str | Path | Experiment,
    proxies: tuple[str, ...],
    ensembles: tuple[str, ...] = (),
    *,
    seed: int = 0,
    batch_size: int = 64,
) -> ScoreJob:
    """A job for an experiment YAML: its space and plugins, and one seeded, shuffled batch of
    ``batch_size`` examples of its training split (:mod:`trainables.data`).

    Raises:
        ConfigError: the config is missing or invalid.
        DatasetNotFound: the dataset's files are missing.
    """
    import torch

    from raynas.experiment.config_load import load_config
    from trainables.data import batches, load_dataset

    exp = load_config(config)
    data = load_dataset(
        exp.data.name,
        root=exp.data.root,
        download=exp.data.download,
        val_fraction=exp.data.val_fraction,
        seed=exp.seed,
        limit=exp.data.limit,
        load_test=False,
    )
    gen = torch.Generator().manual_seed(seed)
    x, y = next(
        batches(data.train_x, data.train_y, batch_size=batch_size, shuffle=True, generator=gen)
    )
    return ScoreJob(
        space=exp.space,
        space_args=dict(exp.space_args),
        proxies=proxies,
        input_shape=tuple(data.input_shape),
        num_classes=data.num_classes,
        seed=seed,
        ensembles=ensembles,
        plugins=tuple(exp.plugins),
        plugin_path=tuple(exp.plugin_path),
        batch=(x.cpu().numpy(), y.cpu().numpy()),
    )


def _space(job: ScoreJob) -> Any:
    from raynas.registry import load_plugins, resolve_space

    if job.plugins:
        load_plugins(list(job.plugins), list(job.plugin_path))
    return resolve_space(job.space, job.space_args)


def score_chunk(job: ScoreJob, archs: Sequence[str]) -> list[dict[str, Any]]:
    """Score each arch (JSON strings) with every proxy of ``job``; one row per arch.

    A member that fails to build or a proxy that raises scores ``nan`` and says why in the
    row's ``error`` (the run goes on).
    """
    import torch

    from raynas.proxies import score
    from trainables.child import build_child, trial_seed

    space = _space(job)
    batch = None
    if job.batch is not None:
        # torch.tensor copies: a job from Ray's object store holds read-only arrays
        batch = (torch.tensor(job.batch[0]).float(), torch.tensor(job.batch[1]).long())
    rows = []
    for text in archs:
        arch = space.canonical(json.loads(text))
        arch_id = space.arch_id(arch)
        seed = trial_seed(job.seed, arch_id)
        row: dict[str, Any] = {"arch": json.dumps(arch, sort_keys=True), "arch_id": arch_id}
        errors: list[str] = []
        start = time.perf_counter()
        try:
            torch.manual_seed(seed)
            model = build_child(space, arch, job.input_shape, job.num_classes)
        except Exception as err:  # a member that fails to build fails only its own row
            model, row["error"] = None, f"build: {type(err).__name__}: {err}"
        for name in job.proxies:
            if model is None:
                row[name] = math.nan
                continue
            try:
                row[name] = score(name, model, batch, input_shape=job.input_shape, seed=seed)
            except Exception as err:  # e.g. out of memory: this score only
                row[name] = math.nan
                errors.append(f"{name}: {type(err).__name__}: {err}")
        row["seconds"] = time.perf_counter() - start
        row.setdefault("error", "; ".join(errors))
        rows.append(row)
    return rows


def add_ensembles(df: pd.DataFrame, job: ScoreJob) -> pd.DataFrame:
    """Add a column per ensemble of ``job`` (``rank_average``: over ``job.proxies``)."""
    from raynas.proxies.ensemble import rank_average

    out = df.copy()
    for name in job.ensembles:
        members = ENSEMBLES[name] or job.proxies
        out[name] = rank_average(out, list(members)) if len(out) else []
    return out


def run_scoring(
    job: ScoreJob,
    archs: Sequence[str],
    *,
    out: str | Path | None,
    chunk_size: int = 8,
    use_ray: bool = True,
    num_cpus: float = 1.0,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Score ``archs`` (JSON strings) in chunks, on Ray tasks or in this process.

    Args:
        job: The settings.
        archs: The archs, as canonical JSON strings.
        out: The Parquet table to write (resumable through ``OUT.parts``), or None.
        chunk_size: Archs per task.
        use_ray: One Ray task per chunk on :func:`raynas.experiment.ray_setup.init_ray`'s Ray, at
        most twice the cluster's CPUs in flight; False scores in this process.
        num_cpus: The CPUs each task asks for. A live search passes 0: its trials (and the
            actors Tune keeps for reuse) may hold every CPU, and a task waiting for one would
            stall the driver that waits for the scores, for ever.
        log: Where progress lines go.

    Returns:
        The merged table, one row per arch in the order of ``archs``.

    Raises:
        RunMismatch: ``OUT.parts`` holds a run with other settings.
    """
    chunks = [list(archs[i : i + chunk_size]) for i in range(0, len(archs), chunk_size)]
    parts = Path(f"{out}.parts") if out is not None else None
    done: dict[int, pd.DataFrame] = {}
    if parts is not None:
        done = _open_parts(parts, job.manifest(archs, chunk_size), len(chunks), log)
    todo = [i for i in range(len(chunks)) if i not in done]
    started, finished = time.perf_counter(), 0

    def record(i: int, rows: list[dict[str, Any]]) -> None:
        nonlocal finished
        frame = pd.DataFrame(rows)
        done[i] = frame
        finished += len(rows)
        if parts is not None:
            _write_atomic(frame, parts / f"chunk-{i:05d}.parquet")
        rate = (time.perf_counter() - started) / max(finished, 1)
        log(
            f"proxies: {len(done)}/{len(chunks)} chunks, {finished} archs scored now "
            f"({rate:.2f} s/arch wall, {frame['seconds'].mean():.2f} s/arch per task)"
        )

    if todo and use_ray:
        import ray

        from raynas.experiment.ray_setup import init_ray

        init_ray(None)
        remote = ray.remote(num_cpus=num_cpus)(score_chunk)
        ref = ray.put(job)
        limit = max(1, 2 * int(ray.cluster_resources().get("CPU", 1)))
        queue = list(reversed(todo))
        pending: dict[Any, int] = {}
        while queue or pending:
            while queue and len(pending) < limit:
                i = queue.pop()
                pending[remote.remote(ref, chunks[i])] = i
            ready, _ = ray.wait(list(pending), num_returns=1)
            record(pending.pop(ready[0]), ray.get(ready[0]))
    else:
        for i in todo:
            record(i, score_chunk(job, chunks[i]))
    frames = [done[i] for i in range(len(chunks))]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=KEY_COLUMNS)
    table = add_ensembles(table, job)
    cols = ["arch", "arch_id", *job.proxies, *job.ensembles, "seconds", "error"]
    table = table[cols]
    if out is not None:
        _write_atomic(table, Path(out))
        if parts is not None:
            shutil.rmtree(parts, ignore_errors=True)
    return table


def _open_parts(
    parts: Path, manifest: dict[str, Any], n_chunks: int, log: Callable[[str], None]
) -> dict[int, pd.DataFrame]:
    """The chunks a previous run of the same settings finished (creates ``parts`` if new)."""
    path = parts / "manifest.json"
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != manifest:
            changed = sorted(k for k in manifest if previous.get(k) != manifest[k])
            raise RunMismatch(
                f"--out: {str(parts)!r} holds an unfinished run with other settings "
                f"({', '.join(changed)} differ); rerun it as it was, or delete that folder "
                "to start over"
            )
    else:
        parts.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    done = {}
    for i in range(n_chunks):
        chunk = parts / f"chunk-{i:05d}.parquet"
        if chunk.is_file():
            done[i] = pd.read_parquet(chunk)
    if done:
        log(f"proxies: resuming, {len(done)} of {n_chunks} chunks already in {parts}")
    return done


def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def select_archs(space: Any, *, every: bool, sample: int | None, seed: int) -> list[str]:
    """Archs as canonical JSON: every member (``every``) or ``sample`` distinct seeded draws.

    Raises:
        ProxyError: naming ``--all`` / ``--sample`` when the space cannot give them.
    """

    def text(arch: Any) -> str:
        return json.dumps(space.canonical(arch), sort_keys=True)

    if every:
        if space.cardinality is None:
            raise ProxyError(
                f"--all: space {space.name!r} is not finite (it has continuous or unbounded "
                "choices); use --sample N"
            )
        return [text(a) for a in space.enumerate()]
    if sample is None:
        raise ProxyError("--all / --sample: choose the archs: every member or N sampled")
    rng = np.random.default_rng(seed)
    seen: dict[str, str] = {}
    limit = sample if space.cardinality is None else min(sample, space.cardinality)
    for _ in range(50 * sample):
        if len(seen) >= limit:
            break
        arch = space.sample(rng)
        seen.setdefault(space.arch_id(arch), text(arch))
    return list(seen.values())
