"""Exact resume: raynas' own record of what finished, and of the scheduler's state.

Tune snapshots an experiment (trial statuses, searcher state) at most every few seconds and
copies it to the experiment folder in the background, and it does not save the scheduler at
all (``TuneController.__getstate__`` drops it). A driver killed between two snapshots would,
on resume, train again the trials that finished in between, and ASHA would start with empty
rungs. Two files close those gaps:

- ``raynas_journal.jsonl`` (:data:`~raynas.files.JOURNAL_FILE`): one JSON line per ended trial
  (``trial_id``, ``status``, ``config``, final ``result``), appended, flushed and fsynced when
  Tune reports the end, before the driver does anything else. :func:`apply_journal` writes
  those ends into Tune's newest snapshot before ``Tuner.restore`` reads it, so a finished trial
  is never queued again; :class:`Journal` then hands them to the restored searcher (which
  still counted them as running).
- ``raynas_snapshot.pkl`` (:data:`~raynas.files.SNAPSHOT_FILE`): Tune's own state files
  (trials, searcher, search generator, callbacks) as Tune wrote them at the end of a step,
  replaced atomically as one file. Tune copies them to the experiment folder one by one in the
  background, so a kill mid-copy leaves a trial list and a searcher from different moments
  (the searcher then waits forever for a trial Tune never heard of, or re-proposes one it
  did); :func:`install_snapshot` puts a consistent set back before the restore.
- ``raynas_state.pkl`` (:data:`~raynas.files.STATE_FILE`): the scheduler's state, written
  atomically after every result the scheduler saw; Tune's trials inside it are stored by id and
  bound to the restored trials at the first step of the resumed run.

PBT (``pbt_evolution``, :class:`raynas.experiment.pbt.ArchPBT`) is saved too: its population's
state, its synchronous barrier, its explorer's RNG and Python's ``random``. An exploit changes
Tune's trials (config, checkpoint) as well as the scheduler, so PBT's state is saved inside
``raynas_snapshot.pkl``, with the Tune state of the same step, and put back with it.

A line cut by a kill (the last one) is ignored with a warning. Reading the folder at any moment
gives one consistent view: every line before the last newline is whole.

Kept as one module (over 450 lines): the journal of finished trials and the scheduler-state
file are written during a run and read together on every resume.
"""

from __future__ import annotations

import glob
import io
import json
import logging
import math
import os
import pickle
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.tune import Callback

from raynas.experiment.loggers import rows_dir
from raynas.files import JOURNAL_FILE, SNAPSHOT_FILE, STATE_FILE, trial_dirs, trial_dirs_of

__all__ = ["Journal", "apply_journal", "install_snapshot", "read_journal"]

#: Tune's experiment-level state files, one per session (``<prefix><session time>.<ext>``).
TUNE_STATE_PREFIXES = (
    "experiment_state-",
    "searcher-state-",
    "search_gen_state-",
    "basic-variant-state-",
    "callback-states-",
)

log = logging.getLogger(__name__)

#: Statuses that end a trial for good (an errored trial is retried by ``raynas resume``).
FINISHED = "TERMINATED"


def _jsonable(value: Any) -> Any:
    """``value`` with non-finite floats and non-JSON leaves made JSON-safe (strings)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return value  # json writes NaN / Infinity, and reads them back
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def read_journal(folder: Path, *, warn: bool = True) -> list[dict[str, Any]]:
    """The journal's whole lines, in order (empty without a journal).

    A last line without its newline (the driver was killed while writing it) is dropped, with a
    warning on stderr when ``warn``; so is any other line that does not parse.
    """
    path = Path(folder) / JOURNAL_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    entries: list[dict[str, Any]] = []
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        cut = i == len(lines) - 1  # no newline after it
        try:
            entry = json.loads(line)
            if cut or not isinstance(entry, dict) or "trial_id" not in entry:
                raise ValueError("incomplete")
        except ValueError:
            if warn:
                sys.stderr.write(
                    f"warning: {path}: line {i + 1} is incomplete (the driver was stopped "
                    "while writing it); ignored\n"
                )
            continue
        entries.append(entry)
    return entries


def finished_trials(folder: Path) -> dict[str, dict[str, Any]]:
    """``trial_id -> journal entry`` of the trials that finished (not errored)."""
    return {e["trial_id"]: e for e in read_journal(folder, warn=False) if e["status"] == FINISHED}


def _append(path: Path, entry: Mapping[str, Any]) -> None:
    line = json.dumps(_jsonable(entry), separators=(",", ":")) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _is_tune_state(name: str) -> bool:
    return name.startswith(TUNE_STATE_PREFIXES) and name.endswith((".json", ".pkl"))


def install_snapshot(folder: Path) -> int:
    """Replace Tune's state files in ``folder`` by raynas' last consistent copy of them.

    Other files of the same kinds (older sessions', or one a killed session was still
    copying) are removed, so Tune restores from the copy. Returns how many files were
    written (0 without a snapshot).
    """
    path = Path(folder) / SNAPSHOT_FILE
    try:
        files: dict[str, bytes] = pickle.loads(path.read_bytes())
    except FileNotFoundError:
        return 0
    for name, data in files.items():
        if name == STATE_FILE:  # a scheduler saved with the snapshot (PBT)
            _atomic_write(Path(folder) / name, data)
            continue
        prefix = next(p for p in TUNE_STATE_PREFIXES if name.startswith(p))
        for other in Path(folder).glob(f"{prefix}*"):
            if other.name != name:  # another session's, or a torn copy: Tune must not pick it
                other.unlink()
        _atomic_write(Path(folder) / name, data)
    return len(files)


def extend_trials(folder: Path, trials: int) -> int:
    """Raise the number of trials Tune's search generator will create to ``trials``.

    Tune keeps ``num_samples`` in its search generator's state (``search_gen_state-*``),
    which a restore reads back; this rewrites it (atomically) and clears the generator's
    "finished" flag, so a resumed search proposes the new trials. Call it after
    :func:`install_snapshot`. Returns how many trials the generator had created.

    Raises:
        FileNotFoundError: the folder has no search generator state (an experiment without
            a searcher, e.g. ``pbt_evolution``).
    """
    import ray.cloudpickle as cloudpickle

    found = sorted(Path(folder).glob("search_gen_state-*.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no search generator state in {folder}")
    path = found[-1]
    state = cloudpickle.loads(path.read_bytes())
    state["total_samples"] = int(trials)
    state["finished"] = False
    _atomic_write(path, cloudpickle.dumps(state))
    return int(state.get("counter", 0))


def _complete_result_file(
    folder: Path, entry: Mapping[str, Any], index: dict[str, list[Path]]
) -> None:
    """Append the journaled final result to the trial's ``result.json`` when the kill came
    between the journal line and Tune's logger writing that row (a stop is journaled when the
    scheduler decides it, before the row is written)."""
    result = entry.get("result")
    if not isinstance(result, Mapping):
        return
    found = trial_dirs_of(folder, str(entry["trial_id"]), index=index)
    if len(found) != 1:
        return
    path = found[0] / "result.json"
    data = path.read_bytes() if path.is_file() else b""
    iterations = set()
    for line in data.splitlines():
        try:
            iterations.add(json.loads(line).get("training_iteration"))
        except ValueError:
            continue
    if result.get("training_iteration") in iterations:
        return
    cut = bool(data) and not data.endswith(b"\n")
    with open(path, "a", encoding="utf-8") as f:
        # A line the kill cut stays a line of its own (unreadable, skipped), not glued.
        f.write(("\n" if cut else "") + json.dumps(_jsonable(result)) + "\n")


def drop_stale_rows(trial_dir: Path, iteration: Any) -> int:
    """Cut the rows of ``iteration`` and later from a resumed trial's ``result.json`` and
    ``progress.csv`` (in :func:`raynas.experiment.loggers.rows_dir`, where the loggers write them).

    A trial killed after reporting epoch k but before Tune recorded its epoch-k checkpoint
    resumes from an older checkpoint and reports epoch k again; Tune's logger appends, so the
    files would hold epoch k twice (the killed session's row, then the new one). Called with
    the first result of a resumed trial, before the logger writes it. Each file is cut in
    place (the logger holds it open for appending), only ever at the end, so a kill meanwhile
    leaves the earlier rows as they were. Returns how many rows were cut.
    """
    if not isinstance(iteration, int):
        return 0
    return _cut_json_rows(trial_dir / "result.json", iteration) + _cut_csv_rows(
        trial_dir / "progress.csv", iteration
    )


class _Unreadable(Exception):
    """A file the cut cannot read row by row: it is left as it is."""


def _cut_tail(path: Path, iteration: int, parse: Any, header: int = 0) -> int:
    """Truncate ``path`` before the run of rows at its end whose ``training_iteration`` is
    ``iteration`` or more (a last line a kill cut included); ``parse(line)`` gives a whole
    line's iteration (None: keep it and stop). The first ``header`` lines always stay. Only a
    tail is cut, so an earlier jump back in the iterations (a PBT clone) is never touched.
    Returns how many lines were cut."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    lines = data.splitlines(keepends=True)
    end = len(lines)
    try:
        while end > header:
            line = lines[end - 1]
            if line.endswith(b"\n"):
                seen = parse(line)
                if not isinstance(seen, int) or seen < iteration:
                    break
            end -= 1
    except _Unreadable:
        return 0
    offset = sum(len(line) for line in lines[:end])
    if offset < len(data):
        with open(path, "r+b") as f:
            f.truncate(offset)
    return len(lines) - end


def _json_iteration(line: bytes) -> Any:
    """A row's iteration; a line that is not JSON (one a kill cut, which the logger ended
    with a newline when it opened the file again) counts as after every iteration, so a
    tail of them is cut too."""
    try:
        row = json.loads(line)
    except ValueError:
        return sys.maxsize
    return row.get("training_iteration") if isinstance(row, dict) else None


def _cut_json_rows(path: Path, iteration: int) -> int:
    return _cut_tail(path, iteration, _json_iteration)


def _cut_csv_rows(path: Path, iteration: int) -> int:
    """The same for Tune's ``progress.csv`` (its header kept); a file it cannot read line by
    line (a value holding a newline) is left as it is."""
    import csv

    try:
        with open(path, "rb") as f:
            first = f.readline().decode(errors="replace")
    except FileNotFoundError:
        return 0
    header = next(csv.reader([first]), [])
    if "training_iteration" not in header:
        return 0
    column = header.index("training_iteration")

    def parse(line: bytes) -> int:
        fields = next(csv.reader([line.decode(errors="replace")]), [])
        if len(fields) != len(header):
            raise _Unreadable
        try:
            return int(fields[column])
        except ValueError:
            raise _Unreadable from None

    return _cut_tail(path, iteration, parse, header=1)


def apply_journal(folder: Path) -> int:
    """Write the journal's finished trials into Tune's newest snapshot in ``folder``.

    A trial the snapshot still lists as pending or running but the journal shows finished gets
    status ``TERMINATED`` and its final result, so ``Tuner.restore`` does not queue it again,
    and a trial folder whose ``result.json`` lacks that final row gets it. The snapshot is
    replaced atomically. Returns how many trials were updated in the snapshot.
    """
    finished = finished_trials(folder)
    index = trial_dirs(Path(folder)) if finished else {}
    for done in finished.values():
        _complete_result_file(Path(folder), done, index)
    states = sorted(glob.glob(str(Path(folder) / "experiment_state-*.json")))
    if not finished or not states:
        return 0
    path = Path(states[-1])
    state = json.loads(path.read_text())
    changed = 0
    for pair in state.get("trial_data", []):
        trial = json.loads(pair[0])
        entry = finished.get(trial.get("trial_id"))
        if entry is None or trial.get("status") == FINISHED:
            continue
        trial["status"] = FINISHED
        meta = json.loads(pair[1])
        meta["last_result"] = entry.get("result") or meta.get("last_result")
        pair[0], pair[1] = json.dumps(trial, indent=2), json.dumps(meta)
        changed += 1
    if changed:
        _atomic_write(path, json.dumps(state).encode())
    return changed


class _TrialPickler(pickle.Pickler):
    """Pickles Tune trials by id (the resumed run binds its own restored trials) and the
    journal itself by reference."""

    def persistent_id(self, obj: Any) -> Any:
        from ray.tune.experiment import Trial

        if isinstance(obj, Journal):
            return ("journal", None)
        return ("trial", obj.trial_id) if isinstance(obj, Trial) else None


class _TrialUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, trials: Mapping[str, Any], journal: Journal) -> None:
        super().__init__(io.BytesIO(data))
        self.trials, self.journal = trials, journal

    def persistent_load(self, pid: Any) -> Any:
        kind, trial_id = pid
        if kind == "journal":
            return self.journal
        if kind != "trial" or trial_id not in self.trials:
            raise pickle.UnpicklingError(f"unknown trial {trial_id!r} in the scheduler state")
        return self.trials[trial_id]


def unflatten(result: Mapping[str, Any]) -> dict[str, Any]:
    """Tune's flattened result (``config/train/lr``) as the nested dict a trial reports."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        parts = str(key).split("/")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return out


def _forget_raynas_files(staging: Path) -> None:
    """Remove raynas' own files from Tune's staging folder of a resumed run.

    ``Tuner.restore`` copies every ``.json`` / ``.pkl`` of the experiment folder there, and Tune
    uploads that folder back after every step: stale copies of the lock, the stop records, the
    scheduler state or the snapshot would overwrite the live ones. This runs at the first step,
    before the first upload.
    """
    if not staging.is_dir():
        return
    for path in staging.iterdir():
        if path.name.startswith("raynas_") and path.is_file():
            path.unlink(missing_ok=True)


def _knows(scheduler: Any, trial: Any) -> bool:
    """Whether one of ``scheduler``'s tables has ``trial`` (by object or by id)."""
    for table in vars(scheduler).values():
        if isinstance(table, dict) and (trial in table or trial.trial_id in table):
            return True
    return False


class Journal(Callback):
    """The Tune callback that keeps :data:`JOURNAL_FILE` and :data:`STATE_FILE` (see module).

    Args:
        folder: The experiment folder (local).
        scheduler: The run's Tune scheduler; saved and restored when it is one of raynas'
            stopping schedulers (:class:`raynas.experiment.schedulers.DurableStops`), else
            left to Tune.
        searcher: The raynas searcher (None under PBT), told about journaled trials on resume.
    """

    def __init__(self, folder: Path, scheduler: Any = None, searcher: Any = None) -> None:
        self.folder = Path(folder)
        # raynas' schedulers are saved and restored: the stopping ones (DurableStops: ASHA,
        # HyperBand, median) and PBT (ArchPBT); another one is left to Tune.
        durable = scheduler is not None and hasattr(scheduler, "journal")
        self.scheduler = scheduler if durable else None
        #: PBT's state is saved inside the snapshot, at the end of each step, so that it always
        #: matches Tune's trials (an exploit changes a trial's config and checkpoint there).
        self._with_snapshot = durable and getattr(scheduler, "save_with_snapshot", False)
        self.searcher = searcher
        if durable:
            scheduler.journal = self  # its stops are journaled when decided (DurableStops)
        self._started = False
        self._copied: dict[str, bytes] = {}
        #: Trials journaled as finished in this session: Tune's end of the trial that follows
        #: (``on_trial_complete``) is not written again (each line is an fsync).
        self._finished: set[str] = set()
        #: Why the scheduler's state could not be saved (None: it was, or there is none).
        self.unsaved: str | None = None
        #: Trials restored unfinished whose first result of this session is still to come.
        self._resumed: set[str] = set()

    # -- resume -----------------------------------------------------------------------
    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if self._started:
            return
        self._started = True
        if trials:
            _forget_raynas_files(Path(trials[0].storage.experiment_driver_staging_path))
        by_id = {t.trial_id: t for t in trials}
        self._resumed = {t.trial_id for t in trials if t.status not in (FINISHED, "ERROR")}
        self._restore_scheduler(by_id)
        self._replay(by_id)

    def _restore_scheduler(self, by_id: Mapping[str, Any]) -> None:
        path = self.folder / STATE_FILE
        if self.scheduler is None or not path.is_file():
            return
        state = _TrialUnpickler(path.read_bytes(), by_id, self).load()
        if type(state.get("scheduler")) is not type(self.scheduler):
            return
        self.scheduler.__dict__.update(state["scheduler"].__dict__)
        after_restore = getattr(self.scheduler, "after_restore", None)
        if callable(after_restore):
            after_restore()
        # Trials created after the last save: the scheduler meets them as new ones.
        for trial in by_id.values():
            if trial.status not in ("TERMINATED", "ERROR") and not _knows(self.scheduler, trial):
                self.scheduler.on_trial_add(None, trial)

    def _replay(self, by_id: Mapping[str, Any]) -> None:
        """Finished trials the restored searcher still counts as running: complete them."""
        running = getattr(self.searcher, "live", None)  # NASSearcher: trial id -> arch
        if not isinstance(running, dict):
            return
        for entry in read_journal(self.folder):
            trial_id = entry["trial_id"]
            if trial_id in running and trial_id in by_id:
                error = entry["status"] != FINISHED
                self.searcher.on_trial_complete(trial_id, entry.get("result"), error=error)

    # -- recording ----------------------------------------------------------------------
    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        """Keep a consistent copy of the state Tune saved in this step (see module)."""
        if not trials:
            return
        staging = Path(trials[0].storage.experiment_driver_staging_path)
        try:
            states = [p for p in staging.iterdir() if p.is_file() and _is_tune_state(p.name)]
            newest = max(
                (p for p in states if p.name.startswith("experiment_state-")),
                key=lambda p: p.stat().st_mtime_ns,
                default=None,
            )
            if newest is None:
                return
            # This step's files share the session name of the experiment state Tune just
            # wrote; the staging folder also holds older sessions' files (a resume copies
            # them in).
            session = newest.name[len("experiment_state-") : -len(".json")]
            files = {
                p.name: p.read_bytes()
                for p in states
                if p.name[: -len(p.suffix)].endswith(session)
                and p.name.startswith(TUNE_STATE_PREFIXES)
            }
        except OSError:
            return
        if self._with_snapshot:
            state = self._scheduler_bytes()
            if state is not None:
                files[STATE_FILE] = state
        if files == self._copied:
            return
        data = pickle.dumps(files, protocol=pickle.HIGHEST_PROTOCOL)
        tmp = self.folder / (SNAPSHOT_FILE + ".tmp")
        tmp.write_bytes(data)  # atomic against a kill (not against power loss: no fsync)
        os.replace(tmp, self.folder / SNAPSHOT_FILE)
        self._copied = files

    def _scheduler_bytes(self) -> bytes | None:
        """The scheduler pickled with its trials by id (None: it cannot be, said once)."""
        if self.scheduler is None or self.unsaved is not None:
            return None
        buf = io.BytesIO()
        try:
            _TrialPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump({"scheduler": self.scheduler})
        except Exception as err:
            self.unsaved = f"{type(err).__name__}: {err}"
            sys.stderr.write(
                f"warning: the {type(self.scheduler).__name__} state cannot be saved "
                f"({self.unsaved}); `raynas resume` would restart its bookkeeping\n"
            )
            return None
        return buf.getvalue()

    def _save_scheduler(self) -> None:
        if self._with_snapshot:
            return  # saved with the snapshot at the end of the step
        data = self._scheduler_bytes()
        if data is not None:
            _atomic_write(self.folder / STATE_FILE, data)

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any
    ) -> None:
        if trial.trial_id in self._resumed:
            self._resumed.discard(trial.trial_id)
            drop_stale_rows(rows_dir(trial), result.get("training_iteration"))
        if result.get("done"):
            # The trial's last result: journaled now, before Tune's logger writes its row (the
            # runner puts this callback first) and before Tune ends the trial, so a kill in
            # between never trains its last epoch again (the resume appends a missing row).
            self._record(trial, FINISHED, unflatten(result))
            return
        self._save_scheduler()

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._save_scheduler()

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial retried in this session (``failure.max_retries``) restarts from its last
        checkpoint, as a resumed one does: its rows past that checkpoint are cut at its next
        result (:func:`drop_stale_rows`), so no epoch is reported twice."""
        self._resumed.add(trial.trial_id)

    def _record(self, trial: Any, status: str, result: Mapping[str, Any] | None = None) -> None:
        if status == FINISHED:
            self._finished.add(trial.trial_id)
        _append(
            self.folder / JOURNAL_FILE,
            {
                "trial_id": trial.trial_id,
                "status": status,
                "config": trial.config,
                "result": trial.last_result if result is None else result,
            },
        )
        self._save_scheduler()

    def record_stop(self, trial: Any, result: Mapping[str, Any]) -> None:
        """The scheduler stopped ``trial`` at ``result``: it has ended, whatever happens next."""
        self._record(trial, FINISHED, unflatten(result))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if trial.trial_id in self._finished:  # its done result or its stop is journaled
            self._save_scheduler()
            return
        self._record(trial, FINISHED)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._record(trial, "ERROR")
