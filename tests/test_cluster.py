"""Multi-node runs on a simulated Ray cluster (``ray.cluster_utils.Cluster``).

Each test runs its driver in a subprocess: a Cluster is its own Ray runtime and must not
collide with the session's shared ``ray.init``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

DRIVER = r"""
import json, sys, threading, time
from pathlib import Path

from ray.cluster_utils import Cluster

import raynas

storage, mode = sys.argv[1], sys.argv[2]
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
workers = [cluster.add_node(num_cpus=2, num_gpus=2, resources={f"w{i}": 1}) for i in range(2)]
cluster.wait_for_nodes()
exp = {
    "name": mode,
    "space": "nb201",
    "space_args": {"C": 4, "N": 1},
    "data": {"name": "digits"},
    "train": {"epochs": 3 if mode == "node_loss" else 1, "batch_size": 128,
              "latency_repeats": 2},
    "strategy": {"name": "random"},
    "budget": {"trials": 8, "concurrent": 4},
    "resources": {"cpu": 1, "gpu": 0.5},
    "failure": {"max_retries": 3},
    "checkpoint": {"every": 1, "keep": 1},
    "storage": storage,
    "seed": 0,
}
removed = []
if mode == "node_loss":
    def kill_worker():
        folder = Path(storage) / mode
        deadline = time.time() + 240
        victim = workers[1].node_id
        while time.time() < deadline:
            for res in folder.glob("*/result.json"):
                if victim in res.read_text():  # a trial is running on it, mid-way
                    cluster.remove_node(workers[1], allow_graceful=False)
                    removed.append(victim)
                    return
            time.sleep(0.1)
    threading.Thread(target=kill_worker, daemon=True).start()
result = raynas.run(exp, address=cluster.address, verbose=False)
print("RESULT " + json.dumps({
    "statuses": list(result.trials["status"]),
    "arch_ids": list(result.trials["arch_id"]),
    "removed": removed,
    "worker_ids": [w.node_id for w in workers],
}))
"""


def run_driver(tmp_path: Path, mode: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path), mode],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def results_of(folder: Path) -> list[dict]:
    out = []
    for res in sorted(folder.glob("*/result.json")):
        out.extend(json.loads(x) for x in res.read_text().splitlines())
    return out


@pytest.mark.slow
def test_trials_spread_over_nodes_with_fractional_gpus(tmp_path: Path) -> None:
    info = run_driver(tmp_path, "spread")
    assert info["statuses"] == ["completed"] * 8
    results = results_of(tmp_path / "spread")
    nodes = {r["node_id"] for r in results}
    assert nodes == set(info["worker_ids"]), "trials must run on both worker nodes"
    for r in results:
        assert len(r["gpu_ids"]) == 1, "gpu: 0.5 must be granted a share of one GPU"
    # every trial's results and checkpoints ended up in the experiment's storage
    assert len(list((tmp_path / "spread").glob("*/checkpoint_*/state.pt"))) == 8


@pytest.mark.slow
def test_losing_a_worker_node_retries_its_trials_elsewhere(tmp_path: Path) -> None:
    info = run_driver(tmp_path, "node_loss")
    assert info["removed"], "the worker node was never removed"
    assert info["statuses"] == ["completed"] * 8
    assert len(set(info["arch_ids"])) == 8
    victim = info["removed"][0]
    moved = []
    for res in (tmp_path / "node_loss").glob("*/result.json"):
        nodes = [json.loads(x)["node_id"] for x in res.read_text().splitlines()]
        if victim in nodes and nodes[-1] != victim:
            moved.append(res.parent.name)
    assert moved, "a trial interrupted on the lost node must finish on another node"
