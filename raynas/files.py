"""The names of the files raynas writes into an experiment folder, and of the metrics in them,
defined once.

The runner and the trainables write them, the results layer (analysis, export) and retrain read
them; all import the names from here and from nowhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The experiment config as ``raynas run`` resolved it (YAML).
CONFIG_FILE = "raynas_experiment.yaml"
#: ``{trial_id: reason}`` for trials raynas' driver stopped itself (``budget.time_s``), JSON.
STOPS_FILE = "raynas_stops.json"
#: ``{pid, host, started}`` of the driver running the experiment now (removed when it ends).
LOCK_FILE = "raynas_driver.json"
#: ``{refused, examples}``: candidates the driver's constraint check refused (never trials).
REFUSED_FILE = "raynas_refused.json"
#: One JSON line per ended trial (id, status, config, final result), fsynced (``journal``).
JOURNAL_FILE = "raynas_journal.jsonl"
#: The scheduler's state (pickle, trials by id), replaced atomically after each result.
STATE_FILE = "raynas_state.pkl"
#: Tune's state files of one step (``{name: bytes}`` pickle), a consistent set for resume.
SNAPSHOT_FILE = "raynas_snapshot.pkl"
#: A one-shot trial's derived architecture (JSON), in its folder and in each checkpoint.
DERIVED_ARCH_FILE = "derived_arch.json"
#: The metrics the ``classify`` trainable reports each epoch (the results tables' fixed columns).
CLASSIFY_METRICS = ("val_acc", "val_loss", "train_acc", "train_loss", "test_acc", "test_loss")


def trial_dir_name(index: int | None, trial_id: str, arch_id: str | None) -> str:
    """A trial's folder: ``trial<index>-<first 8 hex of the arch id>-<trial id>``.

    E.g. ``trial00003-3f2a9c1d-dad2bb44``: sorts in creation order, names the architecture
    by the id the trial reports (``arch_id``), and keeps Tune's unique trial id (ids hold
    ``_``, never ``-``). Without an index or an arch, that part is left out.
    """
    head = "trial" if index is None else f"trial{index:05d}"
    return "-".join([head, *([arch_id[:8]] if arch_id else []), trial_id])


def parse_trial_dir_name(name: str) -> tuple[int | None, str | None]:
    """``(index, trial id)`` from a trial folder's name, raynas' or Tune's default form.

    Tune's default is ``<Trainable>_<trial id>_<index>_<config>_<date>``; its trial id is
    only reliable from results (``_`` is in both), so that form gives the second part.
    """
    if name.startswith("trial") and "-" in name:
        parts = name.split("-")
        digits = parts[0][len("trial") :]
        return (int(digits) if digits.isdigit() else None), parts[-1]
    parts = name.split("_")
    index = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
    return index, (parts[1] if len(parts) > 1 else None)


def trial_index(trial_id: Any) -> int | None:
    """The index Tune gave a trial, from its id ``<experiment hex>_<index>`` (e.g.
    ``e6d7f_00002`` -> 2); None for anything else."""
    suffix = str(trial_id).rsplit("_", 1)[-1] if trial_id and "_" in str(trial_id) else ""
    return int(suffix) if suffix.isdigit() else None


def trial_dirs(folder: Path) -> dict[str, list[Path]]:
    """``{trial id: [its folders]}`` of an experiment ``folder``, from one listing.

    raynas' names are split by :func:`parse_trial_dir_name`. Tune's default names
    (``<Trainable>_<trial id>_<index>_...``) cannot be split reliably (trial ids may hold
    ``_``); they are listed under the key ``""`` and :func:`trial_dirs_of` matches them by
    ``_<trial id>_``.
    """
    out: dict[str, list[Path]] = {}
    for path in Path(folder).iterdir():
        if not path.is_dir():
            continue
        ours = path.name.startswith("trial") and "-" in path.name
        key = (parse_trial_dir_name(path.name)[1] or "") if ours else ""
        out.setdefault(key, []).append(path)
    return out


def trial_dirs_of(
    folder: Path, trial_id: str, *, index: dict[str, list[Path]] | None = None
) -> list[Path]:
    """The folders of ``trial_id`` in an experiment ``folder``; pass ``index`` (from
    :func:`trial_dirs`) to look up many trials with one listing."""
    by_id = trial_dirs(folder) if index is None else index
    found = list(by_id.get(trial_id, []))
    found += [p for p in by_id.get("", []) if f"_{trial_id}_" in p.name]
    return found
