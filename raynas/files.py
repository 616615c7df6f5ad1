"""The names of the files raynas writes into an experiment folder, defined once.

The runner writes them, the results layer (analysis, export, retrain) reads them; both import
the names from here and from nowhere else.
"""

from __future__ import annotations

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
