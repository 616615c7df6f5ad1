"""Multi-node runs on a simulated Ray cluster (``ray.cluster_utils.Cluster``).

Each test runs its driver in a subprocess: a Cluster is its own Ray runtime and must not
collide with the session's shared ``ray.init``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, VENV_BIN

DRIVER = r"""
import json, os, sys, threading, time
from pathlib import Path

# The worker nodes' GPUs are Ray resource counts: their trials train on the CPU on purpose
# (raynas fails a GPU trial on a worker without CUDA otherwise). Raylets and their workers
# inherit this process's environment.
os.environ["RAYNAS_SIMULATED_GPUS"] = "1"

from ray.cluster_utils import Cluster

import raynas

storage, mode = sys.argv[1], sys.argv[2]
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
workers = [cluster.add_node(num_cpus=2, num_gpus=2, resources={f"w{i}": 1}) for i in range(2)]
cluster.wait_for_nodes()
# Every worker node must start worker processes before the search (a node that cannot would
# silently take no trials): one task pinned to each.
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init(address=cluster.address, logging_level="ERROR")
pinned = [
    ray.remote(lambda: ray.get_runtime_context().get_node_id())
    .options(num_cpus=1, scheduling_strategy=NodeAffinitySchedulingStrategy(w.node_id, soft=False))
    .remote()
    for w in workers
]
assert ray.get(pinned, timeout=120) == [w.node_id for w in workers]
ray.shutdown()
exp = {
    "name": mode,
    "space": "nb201",
    "space_args": {"C": 4, "N": 1},
    "data": {"name": "digits"},
    "train": {"epochs": 3, "batch_size": 128,
              "latency_repeats": 2},
    "strategy": {"name": "random"},
    "budget": {"trials": 8, "concurrent": 4},
    "resources": {"cpu": 1, "gpu": 0.5},
    "failure": {"max_retries": 3},
    "checkpoint": {"every": 1, "keep": 1},
    # A fresh actor per trial: with reuse, Tune once retried a trial twice on the removed
    # node's cached actor (same actor id, "Connection reset by peer") and gave up on it.
    "reuse_actors": False,
    "storage": storage,
    "seed": 0,
}
removed = []
if mode == "node_loss":
    # Deterministic node loss: a trial that finished epoch 1 on the victim node holds before
    # epoch 2 (the plugin trainable below) and writes a marker; the driver removes the node
    # when it sees a marker, so the loss always interrupts a trial mid-way, however loaded
    # the machine is.
    marks = Path(storage) / "marks"
    marks.mkdir()
    (marks / "victim").write_text(workers[1].node_id)
    exp["plugins"] = ["hold_on_victim"]
    exp["trainable"] = "hold_on_victim"

    def kill_worker():
        deadline = time.time() + 300
        while time.time() < deadline:
            if any(marks.glob("held-*")):
                cluster.remove_node(workers[1], allow_graceful=False)
                removed.append(workers[1].node_id)
                (marks / "removed").write_text("1")
                return
            time.sleep(0.05)
    threading.Thread(target=kill_worker, daemon=True).start()
result = raynas.run(exp, address=cluster.address, verbose=False)
print("RESULT " + json.dumps({
    "statuses": list(result.trials["status"]),
    "arch_ids": list(result.trials["arch_id"]),
    "removed": removed,
    "worker_ids": [w.node_id for w in workers],
}))
"""


#: A plugin trainable for the node-loss run: on the victim node, after epoch 1, it marks
#: itself held and waits until the node's removal kills its process (it dies with the node,
#: mid-trial). It never goes on after the removal: a worker process can outlive its raylet by
#: a few seconds, and one that went on once finished its trial on the removed node (CI).
HOLD_PLUGIN = r"""
import os, time
from pathlib import Path

import ray

from raynas.registry import register_trainable
from trainables.classify import ClassifyTrainable

MARKS = Path(os.environ["RAYNAS_TEST_MARKS"])


@register_trainable("hold_on_victim")
class HoldOnVictim(ClassifyTrainable):
    def step(self):
        victim = (MARKS / "victim").read_text()
        if self.epoch == 1 and ray.get_runtime_context().get_node_id() == victim:
            (MARKS / f"held-{self.trial_id}").write_text("1")
            deadline = time.time() + 300
            while time.time() < deadline:  # until the removed node's process is killed
                time.sleep(0.05)
        return super().step()
"""


def _run(
    cmd: list[str], env: dict[str, str], cwd: Path | None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``cmd`` run to its end in ``cwd``, its output captured as text."""
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _assert_ok(proc: subprocess.CompletedProcess) -> None:
    """``proc`` exited 0; else the end of its output tells why."""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def run_driver(tmp_path: Path, mode: str) -> dict:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "hold_on_victim.py").write_text(HOLD_PLUGIN)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(plugins), str(REPO), os.environ.get("PYTHONPATH", "")]),
        "RAYNAS_TEST_MARKS": str(tmp_path / "marks"),
    }
    proc = _run([sys.executable, "-c", DRIVER, str(tmp_path), mode], env, cwd=REPO)
    _assert_ok(proc)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def results_of(folder: Path) -> list[dict]:
    out = []
    for res in sorted(folder.glob("*/result.json")):
        out.extend(json.loads(x) for x in res.read_text().splitlines())
    return out


@pytest.mark.slow
def test_trials_spread_and_survive_losing_a_worker_node(tmp_path: Path) -> None:
    """One 3-node run checks both: trials run on both worker nodes with a GPU share each,
    and a trial interrupted on a removed node finishes on the other (failure.max_retries)."""
    info = run_driver(tmp_path, "node_loss")
    assert info["removed"], "the worker node was never removed"
    assert info["statuses"] == ["completed"] * 8
    assert len(set(info["arch_ids"])) == 8
    results = results_of(tmp_path / "node_loss")
    nodes = {r["node_id"] for r in results}
    assert nodes == set(info["worker_ids"]), "trials must run on both worker nodes"
    for r in results:
        assert len(r["gpu_ids"]) == 1, "gpu: 0.5 must be granted a share of one GPU"
    # every trial's results and checkpoints ended up in the experiment's storage
    assert len(list((tmp_path / "node_loss").glob("*/checkpoint_*/state.pt"))) == 8
    victim = info["removed"][0]
    moved = []
    for res in (tmp_path / "node_loss").glob("*/result.json"):
        trail = [json.loads(x)["node_id"] for x in res.read_text().splitlines()]
        if victim in trail and trail[-1] != victim:
            moved.append(res.parent.name)
    assert moved, "a trial interrupted on the lost node must finish on another node"


# --- cluster.yaml and a cluster started with `ray start` ----------------------------------


def test_cluster_yaml_passes_ray_up_validation() -> None:
    """``ray up`` first fills in the provider defaults and validates against Ray's schema."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    validate_config(prepare_config(config))
    setup = " ".join(config["setup_commands"])
    assert "raynas[cluster]" in setup, "nodes must install the job server and the autoscaler"
    for cmd in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        assert cmd.startswith("~/raynas-venv/bin/ray "), f"{cmd!r}: use the venv's ray"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_job_server(url: str, head: subprocess.Popen, timeout: float = 120) -> None:
    """Until the head's job server answers (with Ray's token, which `ray start` wrote)."""
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert head.poll() is None, "`ray start --head` exited"
        headers = {}
        if token_file.is_file():
            headers["Authorization"] = f"Bearer {token_file.read_text().strip()}"
        try:
            request = urllib.request.Request(f"{url}/api/version", headers=headers)
            with urllib.request.urlopen(request, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"no job server at {url} after {timeout} s")


def _submit(
    cmd: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess:
    """``ray job submit``, again while the head's job agent is still starting."""
    deadline = time.time() + timeout
    while True:
        proc = _run(cmd, env, cwd=REPO)
        if "No available agent" not in proc.stderr + proc.stdout or time.time() > deadline:
            return proc
        time.sleep(3)


@pytest.mark.slow
def test_job_submit_and_address_auto_on_a_started_head(tmp_path: Path) -> None:
    """The README's cluster commands against a real head: `ray job submit -- raynas run`
    and `raynas run --address auto` both run on that cluster, not on an embedded Ray."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    # Ray 2.60 protects a cluster with a token (~/.ray/auth_token); clients must use it too.
    env["RAY_AUTH_MODE"] = "token"
    port, dash, agent = _free_port(), _free_port(), _free_port()
    head = subprocess.Popen(
        [
            str(VENV_BIN / "ray"),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            f"--dashboard-port={dash}",
            # not the default 52365, which the test session's own Ray runtime may hold
            f"--dashboard-agent-listen-port={agent}",
            "--include-dashboard=true",
            "--num-cpus=2",
            "--disable-usage-stats",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    small = ["--set", "budget.trials=2", "--set", "train.epochs=1"]
    small += ["--set", "space_args={C: 4, N: 1}", "--storage", str(tmp_path / "runs")]
    try:
        url = f"http://127.0.0.1:{dash}"
        _wait_for_job_server(url, head)
        job = _submit(
            [
                *(str(VENV_BIN / "ray"), "job", "submit", "--address", url, "--working-dir", "."),
                *("--", "raynas", "run", "examples/quickstart.yaml", "--name", "job", *small),
            ],
            env,
        )
        _assert_ok(job)
        auto = _run(
            [
                *(str(VENV_BIN / "raynas"), "run", str(REPO / "examples" / "quickstart.yaml")),
                *("--address", "auto", "--name", "auto", *small),
            ],
            env,
            cwd=tmp_path,
        )
        _assert_ok(auto)
        probe = _run(
            [sys.executable, "-c", _NODE_ID, f"127.0.0.1:{port}"], env, cwd=None, timeout=120
        )
        head_node = probe.stdout.strip().splitlines()[-1]
    finally:
        head.terminate()  # `ray start --block` stops what it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
    for name in ("job", "auto"):
        results = results_of(tmp_path / "runs" / name)
        assert len({r["trial_id"] for r in results}) == 2
        assert {r["node_id"] for r in results} == {head_node}, f"{name} ran off the cluster"


_NODE_ID = """
import sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR")
print(ray.get_runtime_context().get_node_id())
"""
