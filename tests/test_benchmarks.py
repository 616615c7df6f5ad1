"""Every benchmark script runs to the end on tiny arguments and prints its JSON line last.

The figures themselves are not checked here (targets live in the benchmarks and the notes);
this keeps the scripts from rotting as the code changes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

TINY = {
    "overhead.py": [
        *("--kind", "train", "--trials", "2", "--epochs", "1", "--C", "4"),
        *("--repeats", "1", "--default-repeats", "0"),
    ],
    "bookkeeping.py": ["--sizes", "20"],
    "report_size.py": ["--trials", "20", "--repeats", "1"],
    "searcher_latency.py": [
        *("--strategies", "random", "evolution"),
        *("--checkpoints", "20", "--window", "5", "--max-seconds", "20"),
    ],
    "search_efficiency.py": [
        *("--seeds", "2", "--budgets", "10", "--strategies", "random", "evolution"),
    ],
    "pareto.py": ["--budget", "20", "--seeds", "2", "--population", "6"],
    "asha_vs_full.py": ["--trials", "3", "--epochs", "2", "--reduction", "2"],
    "pbt_survival.py": ["--trials", "2", "--epochs", "3", "--seeds", "0"],
    "kill_loop.py": [
        *("--kills", "1", "--trials", "3", "--epochs", "2", "--pairs", "evolution:fifo"),
    ],
    "fidelity_rule.py": [
        *("--seeds", "2", "--budget", "10", "--strategies", "evolution", "--rules", "cap,rung"),
    ],
    "latency_model.py": [
        *("--space-arg", "stages=[[16,1],[24,2]]", "--space-arg", "max_depth=2"),
        *("--repeats", "3", "--warmup", "1", "--networks", "3", "--archs", "3"),
        *("--input-shape", "3,16,16"),
    ],
    "multifidelity.py": ["--seeds", "2", "--budgets", "10", "--full", "evolution,tpe"],
    "subnet_ranking.py": [
        *("--limit", "200", "--archs", "3", "--supernet-epochs", "1", "--scratch-epochs", "1"),
    ],
    "real_search.py": [
        *("--minutes", "0.3", "--epochs", "1", "--retrain-epochs", "1", "--retrain-seeds", "0"),
        *("--limit", "200", "--retrain-limit", "200", "--max-trials", "2"),
    ],
    "gpu_throughput.py": ["--epochs", "1", "--C", "4", "--N", "1"],
    "proxies.py": [
        *("--archs", "1", "--table-archs", "6", "--batch", "8"),
        *("--proxies", "synflow", "snip", "jacob_cov", "nwot"),
    ],
    "table_signal.py": [],  # the shipped tables, seconds
    "proxy_search.py": [
        *("--tables", "digits", "--seeds", "2", "--budgets", "10"),
        *("--strategies", "evolution", "bo", "--proxies", "synflow"),
        *("--score-archs", "20", "--jobs", "1"),
    ],
    "oneshot_cost.py": [
        *("--methods", "darts-1", "--spaces", "nb201"),
        *("--steps", "1", "--repeats", "1", "--devices", "cpu"),
    ],
}


#: Scripts that read the real Fashion-MNIST files (never downloaded).
NEEDS_FASHION_MNIST = {"real_search.py", "subnet_ranking.py"}
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def test_every_benchmark_has_a_tiny_run() -> None:
    scripts = {p.name for p in (REPO / "benchmarks").glob("*.py")}
    assert scripts == set(TINY), "add tiny arguments for the new script"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY))
def test_benchmark_runs_and_ends_with_json(script: str) -> None:
    if script in NEEDS_FASHION_MNIST and not FASHION_MNIST.is_dir():
        pytest.skip(f"{script} needs {FASHION_MNIST} (apt-get install dataset-fashion-mnist)")
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *TINY[script]],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines, f"{script} printed nothing"
    summary = json.loads(lines[-1])
    assert isinstance(summary, dict | list) and summary, lines[-1]
