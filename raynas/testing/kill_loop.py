"""The SIGKILL loop: crash an experiment's driver again and again, resume it each time, and
compare the result with an uninterrupted run of the same config.

Used by ``tests/test_resume.py`` (a few kills) and ``benchmarks/kill_loop.py`` (ten and more).
The kills land at moments chosen from what the experiment has *recorded* (the n-th epoch result
written by any trial, for a seeded random n), plus a seeded random delay of up to
``jitter_s``, so they fall anywhere in Tune's loop without the test depending on the machine's
speed. Each kill is a SIGKILL of the driver process alone, as a crash or an OOM kill would be.

What is compared (:class:`KillLoopReport`):

- ``rerun``: trials that had finished (journaled) before a kill and trained again after it
  (their ``result.json`` changed) plus architectures evaluated twice; must be 0;
- ``lost``: trials of the uninterrupted run missing from the killed one (budget not met);
- ``same_sequence``: the architectures, in trial order, equal the uninterrupted run's, and so
  do the epochs each trial trained (a scheduler's stops and promotions) and, epoch by epoch,
  the architecture each trial trained and the trial it was cloned from (PBT's lineage);
- ``seconds_lost_per_kill``: (wall time of all the killed run's segments - the uninterrupted
  run's) / kills;
- ``leaked_processes``: Ray processes of a killed driver still running 5 s after the kill
  (summed over kills), and ``not_reaped``: those still running after the next ``raynas
  resume`` took the folder over (it kills them; must be 0);
- ``gaps``: trials of the killed run whose ``result.json`` does not hold each training
  iteration from 1 to its last exactly once (a row lost to a kill, or an epoch reported
  twice by a trial resumed from an older checkpoint); must be 0 (synchronous PBT clones at
  the barrier, so a clone's iterations go on from its own);
- ``unreadable``: times ``raynas.load`` (``raynas analyze``) failed on the folder, read just
  before each kill (mid-write) and just after it; must be 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from raynas.files import parse_trial_dir_name, trial_index

__all__ = ["KillLoopReport", "kill_loop", "lineage", "small_search", "trial_sequence"]


def small_search(strategy: str, scheduler: str, trials: int = 8, epochs: int = 3) -> dict[str, Any]:
    """A small search for a kill loop: nb201 C=4 N=1 on digits, one trial at a time (so the
    uninterrupted order is deterministic), ``strategy`` with ``scheduler``.

    ``pbt_evolution`` is synchronous (who clones whom depends on the results, not on their
    timing), its population of ``trials`` trained together, checkpointed every epoch.
    """
    args: dict[str, Any] = {"name": strategy}
    if strategy == "evolution":
        args.update(population_size=4, sample_size=2)
    config: dict[str, Any] = {
        "name": f"{strategy}-{scheduler}",
        "space": "nb201",
        "space_args": {"C": 4, "N": 1},
        "data": {"name": "digits"},
        "train": {"epochs": epochs, "batch_size": 128, "lr": 0.1, "latency_repeats": 2},
        "strategy": args,
        "scheduler": {"name": scheduler},
        "budget": {"trials": trials, "concurrent": 1},
        "seed": 0,
    }
    if scheduler == "pbt_evolution":
        config["scheduler"]["synch"] = True
        config["budget"]["concurrent"] = None
        config["checkpoint"] = {"every": 1}
    return config


@dataclass
class KillLoopReport:
    """What one kill loop measured (see the module docstring)."""

    config: str
    kills: int
    resumes: int
    rerun: int
    lost: int
    same_sequence: bool
    reference_wall_s: float
    killed_wall_s: float
    seconds_lost_per_kill: float
    leaked_processes: int
    not_reaped: int
    unreadable: int
    gaps: int = 0
    differences: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _trial_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "params.json").is_file())


def _rows(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        with contextlib.suppress(ValueError):  # a line being written
            out.append(json.loads(line))
    return out


def _epochs_recorded(folder: Path) -> int:
    """Distinct (trial, epoch) results written so far."""
    if not folder.is_dir():
        return 0
    seen = set()
    for trial in _trial_dirs(folder):
        for row in _rows(trial / "result.json"):
            seen.add((trial.name, row.get("epoch")))
    return len(seen)


def trial_sequence(folder: Path) -> list[tuple[str, Any, int]]:
    """``(arch_str, final epoch, trial index)`` per trial, in the order Tune created them."""
    out = []
    for trial in _trial_dirs(folder):
        rows = _rows(trial / "result.json")
        if not rows:
            continue
        last = rows[-1]
        index = parse_trial_dir_name(trial.name)[0]
        out.append((str(last.get("arch_str")), last.get("epoch"), -1 if index is None else index))
    return sorted(out, key=lambda t: t[2])


def lineage(folder: Path) -> dict[int, list[tuple[Any, str, int | None]]]:
    """``trial index -> [(training_iteration, arch_str, index of the trial cloned from)]``,
    one entry per row (the parent is None before a trial's first clone)."""
    out = {}
    for trial in _trial_dirs(folder):
        index = parse_trial_dir_name(trial.name)[0]
        out[-1 if index is None else index] = [
            (
                row.get("training_iteration"),
                str(row.get("arch_str")),
                trial_index(row.get("parent")),
            )
            for row in _rows(trial / "result.json")
        ]
    return out


def _journaled(folder: Path) -> dict[str, str]:
    """``trial folder -> result.json text`` of the trials the journal shows finished."""
    from raynas.experiment.journal import finished_trials

    done = finished_trials(folder)
    out = {}
    for trial in _trial_dirs(folder):
        rows = _rows(trial / "result.json")
        trial_id = rows[-1].get("trial_id") if rows else None
        if trial_id in done:
            out[trial.name] = (trial / "result.json").read_text()
    return out


def _group(pgid: int) -> set[int]:
    """The live processes of process group ``pgid`` (zombies excluded)."""
    from raynas.experiment.lock import group_members

    return set(group_members(pgid))


def _raynas(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "raynas"
    return subprocess.Popen(
        [str(exe), *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _finish(proc: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    if proc.returncode == 2 and b"is finished" in err:
        return 0  # the kill came after the last trial ended: `raynas resume` has nothing to do
    if proc.returncode != 0:
        raise RuntimeError(f"raynas exited {proc.returncode}: {err.decode()[-3000:]}")
    return proc.returncode


def _retrained(before: str, after: str) -> int:
    """1 when a trial that had ended trained again: its earlier rows changed, or an epoch
    was reported twice. (A last row appended from the journal, when the kill came before
    Tune's logger wrote it, is not a re-run.)"""
    old, new = before.splitlines(), after.splitlines()
    iterations = [_iteration(line) for line in new]
    return int(new[: len(old)] != old or len(iterations) != len(set(iterations)))


def _iteration(line: str) -> Any:
    try:
        return json.loads(line).get("training_iteration")
    except ValueError:
        return None


def _gaps(folder: Path) -> int:
    """Trials whose rows are not iterations 1, 2, ..., last, each once."""
    out = 0
    for trial in _trial_dirs(folder):
        seen = [row.get("training_iteration") for row in _rows(trial / "result.json")]
        out += int(bool(seen) and seen != list(range(1, len(seen) + 1)))
    return out


def _unreadable(folder: Path) -> int:
    """1 when ``raynas.load`` (what ``raynas analyze`` reads) fails on ``folder`` now, else 0."""
    from raynas.results.analysis import load

    try:
        load(folder)
    except Exception:  # counted: the report says how often it failed
        return 1
    return 0


def _left_behind(pgid: int, grace_s: float = 5.0) -> int:
    """Ray processes of the killed driver's process group still running after ``grace_s``."""
    deadline = time.monotonic() + grace_s
    left = _group(pgid)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _group(pgid)
    return len(left)


def kill_loop(
    config: dict[str, Any],
    workdir: Path,
    *,
    kills: int = 10,
    seed: int = 0,
    jitter_s: float = 0.5,
    timeout_s: float = 900.0,
) -> KillLoopReport:
    """Run ``config`` once uninterrupted and once with ``kills`` SIGKILLs, and compare.

    Args:
        config: An experiment mapping (``budget.concurrent: 1`` for a deterministic order).
        workdir: An empty folder for both experiments.
        kills: SIGKILLs to aim for (fewer when the run ends first).
        seed: Seed of the kill moments.
        jitter_s: Up to this many seconds of extra (seeded) delay after each chosen event.
        timeout_s: Limit for each segment of a run.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_path = workdir / "experiment.yaml"
    cfg_path.write_text(yaml.safe_dump({**config, "storage": str(workdir)}, sort_keys=False))
    repo = Path.cwd()

    start = time.monotonic()
    _finish(_raynas(["run", str(cfg_path), "--name", "reference"], repo), timeout_s)
    reference_wall = time.monotonic() - start
    reference = trial_sequence(workdir / "reference")
    reference_lineage = lineage(workdir / "reference")
    total = max(2, _epochs_recorded(workdir / "reference"))

    rng = random.Random(seed)
    targets = sorted(rng.sample(range(1, total), min(kills, total - 1)))
    folder = workdir / "killed"
    kept: dict[str, str] = {}
    rerun = leaked = done_kills = resumes = unreadable = 0
    groups: list[int] = []
    killed_wall = 0.0
    args = ["run", str(cfg_path), "--name", "killed"]
    for target in [*targets, None]:
        seg_start = time.monotonic()
        proc = _raynas(args, repo)
        if target is None:
            _finish(proc, timeout_s)
            killed_wall += time.monotonic() - seg_start
            break
        while _epochs_recorded(folder) < target and proc.poll() is None:
            if time.monotonic() - seg_start > timeout_s:
                os.killpg(proc.pid, signal.SIGKILL)
                raise TimeoutError(f"no progress to {target} recorded epochs in {timeout_s} s")
            time.sleep(0.02)
        if proc.poll() is not None:  # the run ended before this kill
            _finish(proc, timeout_s)
            killed_wall += time.monotonic() - seg_start
            break
        time.sleep(rng.uniform(0, jitter_s))
        unreadable += _unreadable(folder)  # a live folder, mid-write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_wall += time.monotonic() - seg_start
        done_kills += 1
        unreadable += _unreadable(folder)  # the folder the crash left
        leaked += _left_behind(proc.pid)  # `raynas resume` must reap them
        groups.append(proc.pid)
        for name, text in kept.items():  # finished before an earlier kill: untouched since
            rerun += _retrained(text, (folder / name / "result.json").read_text())
        kept.update({k: v for k, v in _journaled(folder).items() if k not in kept})
        args = ["resume", str(folder)]
        resumes += 1

    for name, text in kept.items():
        rerun += _retrained(text, (folder / name / "result.json").read_text())
    not_reaped = sum(len(_group(g)) for g in groups)
    for g in groups:  # whatever the resumes left, so nothing outlives the loop
        with contextlib.suppress(ProcessLookupError):
            os.killpg(g, signal.SIGKILL)
    got = trial_sequence(folder)
    archs = [a for a, _, _ in got]
    rerun += len(archs) - len(set(archs))
    differences = [
        f"trial {i}: reference {r[:2]}, killed {g[:2]}"
        for i, (r, g) in enumerate(zip(reference, got))
        if r[:2] != g[:2]
    ]
    if len(got) != len(reference):
        differences.append(f"{len(got)} trials, reference {len(reference)}")
    got_lineage = lineage(folder)
    differences += [
        f"trial {i}: epochs (iteration, arch, parent) {rows} in the reference, "
        f"{got_lineage.get(i)} killed"
        for i, rows in sorted(reference_lineage.items())
        if got_lineage.get(i) != rows
    ]
    return KillLoopReport(
        config=str(config.get("name", "")),
        kills=done_kills,
        resumes=resumes,
        rerun=rerun,
        lost=max(0, len(reference) - len(got)),
        same_sequence=not differences,
        reference_wall_s=round(reference_wall, 2),
        killed_wall_s=round(killed_wall, 2),
        seconds_lost_per_kill=round((killed_wall - reference_wall) / max(1, done_kills), 2),
        leaked_processes=leaked,
        not_reaped=not_reaped,
        unreadable=unreadable,
        gaps=_gaps(folder),
        differences=differences,
    )
