"""Identity across processes: ``arch_id`` and seeded ``sample`` agree in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from typing import Any

_CHILD = """
import json, sys
from raynas.registry import resolve_space
out = []
for spec in json.loads(sys.stdin.read()):
    space = resolve_space(spec["space"], spec["args"])
    out.append({
        "given": [space.arch_id(a) for a in spec["archs"]],
        "sampled": [space.sample(s) for s in spec["seeds"]],
    })
print("RAYNAS-IDS " + json.dumps(out))
"""


def check_arch_ids_stable_in_fresh_process(
    specs: Iterable[tuple[str, Mapping[str, Any] | None]],
    n: int = 5,
    *,
    seed: int = 0,
    timeout: float = 300.0,
) -> None:
    """:func:`check_arch_id_stable_in_fresh_process` for several spaces in one subprocess.

    Args:
        specs: ``(space, space_args)`` pairs; ``space`` is a registered name or the path of a
            YAML space file (whatever :func:`raynas.registry.resolve_space` accepts).
        n: Seeded archs per space.
        seed: First seed.
        timeout: Seconds the subprocess may take.
    """
    from raynas.registry import resolve_space

    plain = [(name, dict(args or {})) for name, args in specs]
    spaces = [resolve_space(name, args) for name, args in plain]
    seeds = list(range(seed, seed + n))
    archs = [[space.sample(s) for s in seeds] for space in spaces]
    payload = [
        {"space": name, "args": args, "archs": a, "seeds": seeds}
        for (name, args), a in zip(plain, archs)
    ]
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RAYNAS-IDS ")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(
            f"the fresh process failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
        )
    results = json.loads(lines[-1][len("RAYNAS-IDS ") :])
    for (name, _), space, given, res in zip(plain, spaces, archs, results):
        here = [space.arch_id(a) for a in given]
        if res["given"] != here:
            raise AssertionError(
                f"space {name!r}: arch_id differs in a fresh process: {here} here, "
                f"{res['given']} there"
            )
        if res["sampled"] != given:
            raise AssertionError(
                f"space {name!r}: sample(seed) differs in a fresh process for seeds {seeds}"
            )


def check_arch_id_stable_in_fresh_process(
    space_name: str,
    space_args: Mapping[str, Any] | None = None,
    n: int = 5,
    *,
    seed: int = 0,
    timeout: float = 300.0,
) -> None:
    """``arch_id`` and seeded ``sample`` are the same in a fresh Python process.

    Samples ``n`` seeded archs here, then runs ``python -c`` (``sys.executable``, a random
    ``PYTHONHASHSEED``) that rebuilds the space by name and computes their ids and its own
    seeded samples. Asserts both agree with this process.

    Args:
        space_name: A registered space name or the path of a YAML space file.
        space_args: Keyword arguments of the space.
        n: Number of seeded archs.
        seed: First seed.
        timeout: Seconds the subprocess may take.
    """
    check_arch_ids_stable_in_fresh_process(
        [(space_name, space_args)], n, seed=seed, timeout=timeout
    )
