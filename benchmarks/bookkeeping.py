"""Driver bookkeeping at scale: per-trial overhead, driver memory and Tune's snapshot time.

N trivial tabular trials (each replays one recorded epoch of a synthetic NAS-Bench-201 table
holding all 15,625 cells, see ``overhead.py``), 2 at a time with reused actors on 2 CPUs, for
each N of ``--sizes`` (default 1,000, 5,000 and 10,000):

- raynas: ``raynas.run`` with ``trainable: tabular`` and ``strategy: random`` (searcher,
  journal, trial printer and the final analysis included);
- plain Tune: a function trainable that looks the arch up in the same table (loaded once per
  worker process), fed by a ``grid_search`` over the archs raynas ran.

Each run is a fresh driver process with its own Ray runtime; the two sides alternate at each
size. Measured in the driver: wall time of the run per trial (``ray.init`` excluded), the
driver's peak RSS at the end of the N-trial run, and every experiment snapshot Tune took
(``TuneController.save_to_dir``: trial states, searcher and callbacks; raynas sets
``TUNE_GLOBAL_CHECKPOINT_S=0``, a snapshot at every step of Tune's loop, plain Tune keeps
its default adaptive period): count, mean and the last one's time (it grows with N).

The last line printed is JSON. CI runs it with ``--sizes 20``.

Usage: .venv/bin/python benchmarks/bookkeeping.py [--sizes 1000 5000 10000] [--concurrent 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import (  # noqa: E402  (a sibling script)
    marked,
    seeded_archs,
    tabular_config,
    write_synthetic_table,
)

#: Times every ``TuneController.save_to_dir`` and reports the driver's peak RSS; run first.
PROBE = r"""
import resource, time
from ray.tune.execution.tune_controller import TuneController

SNAPSHOTS = []
_save = TuneController.save_to_dir

def _timed_save(self, *args, **kwargs):
    t0 = time.perf_counter()
    try:
        return _save(self, *args, **kwargs)
    finally:
        SNAPSHOTS.append(time.perf_counter() - t0)

TuneController.save_to_dir = _timed_save

def probe_report():
    n = len(SNAPSHOTS)
    return {
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "snapshots": n,
        "snapshot_ms_mean": 1000 * sum(SNAPSHOTS) / n if n else 0.0,
        "snapshot_ms_last": 1000 * SNAPSHOTS[-1] if n else 0.0,
        "snapshot_s_total": sum(SNAPSHOTS),
    }
"""

RAYNAS = (
    PROBE
    + r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import raynas
from raynas.experiment.ray_setup import init_ray

config = json.loads(sys.argv[2])
init_ray(None)
wall0 = time.perf_counter()
result = raynas.run(config, verbose=False)
wall = time.perf_counter() - wall0
done = int((result.trials["status"] == "completed").sum())
out = {"wall_s": wall, "done": done, "archs": list(result.trials["arch"]), **probe_report()}
print("RAYNAS_OK " + json.dumps(out))
"""
)

PLAIN = (
    PROBE
    + r"""
import json, sys
import ray
from ray import tune

with open(sys.argv[1]) as f:  # a file: the arch list is too long for a command line
    ARGS = json.load(f)
_LOOKUP = {}

def replay(config):
    if not _LOOKUP:  # once per worker process
        import pandas as pd
        df = pd.read_parquet(ARGS["table"])
        _LOOKUP.update(zip(df["arch"], df[["val_acc", "params"]].to_dict("records")))
    row = _LOOKUP[config["arch"]]
    tune.report({"val_acc": row["val_acc"], "params": row["params"], "epoch": 1})

ray.init(address="local", include_dashboard=False, logging_level="WARNING")
wall0 = time.perf_counter()
tuner = tune.Tuner(
    tune.with_resources(replay, {"cpu": 1}),
    param_space={"arch": tune.grid_search(ARGS["archs"])},
    tune_config=tune.TuneConfig(max_concurrent_trials=ARGS["concurrent"], reuse_actors=True),
    run_config=tune.RunConfig(storage_path=ARGS["storage"], name="plain", verbose=0),
)
grid = tuner.fit()
wall = time.perf_counter() - wall0
done = sum(1 for r in grid if r.error is None)
print("PLAIN_OK " + json.dumps({"wall_s": wall, "done": done, **probe_report()}))
"""
)


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


def run_size(n: int, concurrent: int, table: Path, tmp: Path, plain_first: bool) -> dict:
    """Both sides at ``n`` trials (raynas picks the archs; plain Tune runs the same ones)."""
    config = tabular_config(f"bookkeeping-{n}", table, n, concurrent, 0, tmp / f"raynas-{n}")

    def ours() -> dict:
        cmd = [sys.executable, "-c", RAYNAS, str(REPO), json.dumps(config)]
        return marked(_run(cmd), "RAYNAS_OK", f"raynas run ({n} trials)")

    def plain(archs: list[str]) -> dict:
        args = {
            "table": str(table),
            "archs": archs,
            "concurrent": concurrent,
            "storage": str(tmp / f"plain-{n}"),
        }
        path = tmp / f"plain-{n}.json"
        path.write_text(json.dumps(args))
        return marked(_run([sys.executable, "-c", PLAIN, str(path)]), "PLAIN_OK", "plain Tune")

    if plain_first:  # the archs raynas's seeded search picks, without running it first
        archs = seeded_archs(n, seed=0)
        theirs = plain(archs)
        mine = ours()
        mine.pop("archs")
    else:
        mine = ours()
        archs = mine.pop("archs")
        theirs = plain(archs)
    return {"raynas": mine, "plain": theirs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 5000, 10000])
    parser.add_argument("--concurrent", type=int, default=2)
    args = parser.parse_args()
    if min(args.sizes) < 1 or max(args.sizes) > 15625 or args.concurrent < 1:
        parser.error("--sizes must be in [1, 15625] (the table's cells), --concurrent >= 1")
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        table = write_synthetic_table(Path(tmp) / "nb201-synthetic.parquet")
        for k, n in enumerate(sorted(args.sizes)):
            both = run_size(n, args.concurrent, table, Path(tmp), plain_first=k % 2 == 1)
            for side in both.values():
                side["ms_per_trial"] = 1000 * side["wall_s"] / n
            extra = both["raynas"]["ms_per_trial"] - both["plain"]["ms_per_trial"]
            rows[str(n)] = {**both, "extra_ms_per_trial": extra}
            print(f"{n} trials, {args.concurrent} at a time:")
            for name in ("raynas", "plain"):
                s = both[name]
                print(
                    f"  {name:6s}: {s['ms_per_trial']:6.1f} ms/trial, driver peak RSS "
                    f"{s['peak_rss_mb']:6.0f} MB, {s['snapshots']} snapshots (mean "
                    f"{s['snapshot_ms_mean']:.1f} ms, last {s['snapshot_ms_last']:.1f} ms), "
                    f"completed {s['done']}"
                )
            print(f"  raynas - plain: {extra:+.1f} ms/trial", flush=True)

    def pick(side: str, key: str, digits: int = 1) -> dict[str, float]:
        return {
            n: (round(float(r[side][key]), digits) if digits else round(float(r[side][key])))
            for n, r in rows.items()
        }

    summary = {
        "benchmark": "bookkeeping",
        "concurrent": args.concurrent,
        "sizes": sorted(args.sizes),
        "raynas_ms_per_trial": pick("raynas", "ms_per_trial"),
        "plain_ms_per_trial": pick("plain", "ms_per_trial"),
        "extra_ms_per_trial": {n: round(r["extra_ms_per_trial"], 1) for n, r in rows.items()},
        "raynas_driver_peak_rss_mb": pick("raynas", "peak_rss_mb", 0),
        "plain_driver_peak_rss_mb": pick("plain", "peak_rss_mb", 0),
        "raynas_snapshots": pick("raynas", "snapshots", 0),
        "plain_snapshots": pick("plain", "snapshots", 0),
        "raynas_snapshot_ms_last": pick("raynas", "snapshot_ms_last", 2),
        "plain_snapshot_ms_last": pick("plain", "snapshot_ms_last", 2),
        "raynas_snapshot_s_total": pick("raynas", "snapshot_s_total", 2),
        "plain_snapshot_s_total": pick("plain", "snapshot_s_total", 2),
        "completed": {n: [r["raynas"]["done"], r["plain"]["done"]] for n, r in rows.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
