"""Pareto search efficiency: hypervolume of the front ``moea`` finds vs ``random``, equal budget.

Both strategies are driven by hand (``suggest`` / ``on_trial_complete``, no Ray runtime) over a
tabular benchmark: each proposed architecture is "evaluated" by looking up its final
validation accuracy (last epoch, mean over the recorded seeds) and its parameter count. After
``--budget`` evaluations, the hypervolume of the non-dominated set found (accuracy up,
parameters down) is measured in the table's normalised objective space: accuracy and params
scaled to [0, 1] by the table's own minimum and maximum, reference point (worst accuracy, most
parameters), so 1.0 is unreachable and the table's true front gives the ceiling. Repeated over
``--seeds`` seeds; a one-sided Mann-Whitney U test says whether ``moea`` is larger.

Usage:
    .venv/bin/python benchmarks/pareto.py [--table benchmarks/data/nb201-3ops-digits.parquet]
        [--budget 100] [--seeds 20] [--population 12]

The last line printed is JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_TABLE = REPO / "benchmarks" / "data" / "nb201-3ops-digits.parquet"
OBJECTIVES = [("val_acc", "max"), ("params", "min")]


def load_objectives(path: str | Path, metric: str = "val_acc") -> pd.DataFrame:
    """Per architecture: ``metric`` at the last epoch averaged over seeds, and ``params``.

    Raises:
        FileNotFoundError: No table at ``path``.
        ValueError: The table lacks ``arch``, ``metric`` or ``params``.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"--table: {str(p)!r} does not exist; build it with `raynas bench build "
            "examples/bench-nb201-digits.yaml --out ...` or pass another table"
        )
    df = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
    missing = [c for c in ("arch", metric, "params") if c not in df]
    if missing:
        raise ValueError(f"--table: {str(p)!r} lacks the columns {missing}; it has {list(df)}")
    if "epoch" in df:
        df = df[df["epoch"] == df.groupby(["arch", *(["seed"] if "seed" in df else [])])[
            "epoch"
        ].transform("max")]  # fmt: skip
    out = df.groupby("arch", sort=True).agg({metric: "mean", "params": "mean"})
    return out.rename(columns={metric: "acc"}).dropna()


def space_for(archs: Sequence[str]) -> Any:
    """The nb201 space over the ops the table's NAS-Bench-201 strings use."""
    from raynas.registry import get_space

    parts = (p for a in archs for p in a.replace("+", "|").split("|") if p)
    ops = sorted({p.split("~")[0] for p in parts})
    return get_space("nb201", C=4, N=1, ops=ops)


def hypervolume_2d(points: np.ndarray, ref: Sequence[float]) -> float:
    """Area dominated by ``points`` (both columns minimised) up to ``ref``."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    pts = pts[(pts[:, 0] < ref[0]) & (pts[:, 1] < ref[1])]
    area, best_y = 0.0, float(ref[1])
    for x, y in pts[np.lexsort((pts[:, 1], pts[:, 0]))]:
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return area


def normalised(table: pd.DataFrame, archs: Sequence[str]) -> np.ndarray:
    """``(1 - acc, params)`` scaled to [0, 1] by the table's ranges (both minimised)."""
    rows = table.loc[list(archs)]
    acc_lo, acc_hi = table["acc"].min(), table["acc"].max()
    p_lo, p_hi = table["params"].min(), table["params"].max()
    x = (acc_hi - rows["acc"]) / max(acc_hi - acc_lo, 1e-12)
    y = (rows["params"] - p_lo) / max(p_hi - p_lo, 1e-12)
    return np.column_stack([x.to_numpy(), y.to_numpy()])


def search(
    strategy: str, table: pd.DataFrame, space: Any, *, budget: int, seed: int, **kwargs: Any
) -> list[str]:
    """The architecture strings ``strategy`` evaluates in ``budget`` trials (one at a time)."""
    from raynas.strategies import get_strategy

    if strategy == "moea":
        kwargs.setdefault("objectives", OBJECTIVES)
    searcher = get_strategy(strategy, space, metric="val_acc", mode="max", seed=seed, **kwargs)
    seen: list[str] = []
    for i in range(budget):
        out = searcher.suggest(f"t{i}")
        if not isinstance(out, dict):
            break
        arch = space.to_string(out["arch"])
        row = table.loc[arch]
        result = {"val_acc": float(row["acc"]), "params": float(row["params"]), "status": "ok"}
        searcher.on_trial_result(f"t{i}", result)
        searcher.on_trial_complete(f"t{i}", result)
        seen.append(arch)
    return seen


def run(
    table_path: str | Path = DEFAULT_TABLE,
    *,
    budget: int = 100,
    seeds: int = 20,
    population: int = 12,
    verbose: bool = True,
) -> dict[str, Any]:
    """The benchmark; returns every figure (also printed when ``verbose``)."""
    from scipy.stats import mannwhitneyu

    start = time.perf_counter()
    table = load_objectives(table_path)
    space = space_for(list(table.index))
    table.index = [space.to_string(space.from_string(a)) for a in table.index]
    missing = (space.cardinality or 0) - len(table)
    if missing:
        raise ValueError(f"--table: {missing} architectures of the space have no record")
    ref = (1.0, 1.0)
    ceiling = hypervolume_2d(normalised(table, list(table.index)), ref)
    hv: dict[str, list[float]] = {"moea": [], "random": []}
    for seed in range(seeds):
        for name in hv:
            args = {"population_size": population} if name == "moea" else {}
            found = search(name, table, space, budget=budget, seed=seed, **args)
            hv[name].append(hypervolume_2d(normalised(table, found), ref))
    test = mannwhitneyu(hv["moea"], hv["random"], alternative="greater")
    figures: dict[str, Any] = {
        "table": str(table_path),
        "archs": len(table),
        "budget": budget,
        "seeds": seeds,
        "population": population,
        "true_front_hv": ceiling,
        **{f"{k}_hv_mean": float(np.mean(v)) for k, v in hv.items()},
        **{f"{k}_hv_std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in hv.items()},
        "p_value": float(test.pvalue),
        "wall_s": time.perf_counter() - start,
    }
    if verbose:
        print(f"table: {table_path} ({len(table)} archs, objectives val_acc max, params min)")
        print(
            f"budget: {budget} evaluations per search, {seeds} seeds; moea population {population}"
        )
        print(f"hypervolume of the table's true front: {ceiling:.4f}")
        for k, v in hv.items():
            print(f"{k:>6}: hypervolume {np.mean(v):.4f} +- {figures[f'{k}_hv_std']:.4f}")
        verdict = "larger" if test.pvalue < 0.05 else "not significantly larger"
        print(f"moea vs random: one-sided Mann-Whitney U p = {test.pvalue:.2g} ({verdict})")
        print(json.dumps(figures))
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", default=str(DEFAULT_TABLE), help="tabular benchmark (Parquet/CSV)")
    p.add_argument("--budget", type=int, default=100, help="evaluations per search")
    p.add_argument("--seeds", type=int, default=20, help="searches per strategy")
    p.add_argument("--population", type=int, default=12, help="moea population size")
    args = p.parse_args(argv)
    try:
        run(args.table, budget=args.budget, seeds=args.seeds, population=args.population)
    except (FileNotFoundError, ValueError) as err:
        print(f"pareto: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
