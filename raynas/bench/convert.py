"""Official NAS-Bench-201 / NATS-Bench (topology) files -> the raynas table format.

The benchmark files are read through their own API packages (``pip install
'raynas[nasbench]'``: ``nas-bench-201`` gives ``nas_201_api.NASBench201API``, ``nats_bench``
gives ``nats_bench.create(path, "tss")``); both expose, per architecture index, ``arch(i)``
(the NAS-Bench-201 string), ``query_meta_info_by_index(i, hp)`` (its recorded runs:
``get_dataset_seeds(dataset)``, ``get_total_epoch(dataset)``), ``get_more_info(i, dataset,
iepoch, hp, is_random=seed)`` and ``get_cost_info(i, dataset, hp)``. The conversion only uses
those calls, so any object with them converts (the tests use a small stand-in).

Columns written (accuracies as fractions in [0, 1], the APIs give percent):
``arch, seed, epoch`` (1-based), ``train_loss, train_acc, val_loss, val_acc, test_loss,
test_acc`` (``valtest_*`` too where the dataset has it), ``params`` (count; the APIs give
millions), ``flops`` (the API's MFLOPs x 1e6; note NAS-Bench-201 counts a multiply-add once,
raynas's own ``flops`` counts it twice), ``latency_ms`` and ``train_time_s`` (cumulative).
The NATS-Bench size space (``sss``) has no raynas space, so it is not converted.

Example:
    >>> convert("NAS-Bench-201-v1_1-096897.pth", "nb201-c10.parquet", dataset="cifar10-valid")
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

BENCHMARKS = ("nb201", "nats-tss")
DATASETS = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")
#: API key -> (column, scale) for the per-epoch metrics of ``get_more_info``.
_FIELDS = {
    "train-loss": ("train_loss", 1.0),
    "train-accuracy": ("train_acc", 0.01),
    "valid-loss": ("val_loss", 1.0),
    "valid-accuracy": ("val_acc", 0.01),
    "test-loss": ("test_loss", 1.0),
    "test-accuracy": ("test_acc", 0.01),
    "valtest-loss": ("valtest_loss", 1.0),
    "valtest-accuracy": ("valtest_acc", 0.01),
    "train-all-time": ("train_time_s", 1.0),
}
_INSTALL = "pip install 'raynas[nasbench]' (the nas-bench-201 and nats_bench packages)"


class ConvertError(ValueError):
    """A conversion that cannot run: missing package or file, bad dataset or schedule."""


def open_api(source: str | Path, benchmark: str = "nb201") -> Any:
    """The official API object over ``source``.

    Raises:
        ConvertError: unknown benchmark, API package not installed, or no such file.
    """
    if benchmark not in BENCHMARKS:
        raise ConvertError(f"--benchmark: {benchmark!r} is not one of {list(BENCHMARKS)}")
    path = Path(source).expanduser()
    if not path.exists():
        raise ConvertError(
            f"source: {str(path)!r} does not exist; download the official benchmark file "
            "(e.g. NAS-Bench-201-v1_1-096897.pth, or the NATS-tss-v1_0-3ffb9 folder) first"
        )
    try:
        if benchmark == "nb201":
            from nas_201_api import NASBench201API

            return NASBench201API(str(path), verbose=False)
        from nats_bench import create

        return create(str(path), "tss", fast_mode=True, verbose=False)
    except ImportError as err:
        raise ConvertError(
            f"--benchmark {benchmark}: the API package is missing; {_INSTALL}"
        ) from err


def default_hp(benchmark: str) -> str:
    """The longest recorded schedule: ``"200"`` epochs for nb201 and NATS-Bench tss."""
    return "200"


def api_to_frame(
    api: Any,
    *,
    dataset: str = "cifar10-valid",
    hp: str = "200",
    limit: int | None = None,
    final_only: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Every recorded run of every architecture of ``api`` as table rows.

    Args:
        api: A NAS-Bench-201 / NATS-Bench topology API object (see the module docstring).
        dataset: One of :data:`DATASETS`.
        hp: The training schedule (``"12"`` or ``"200"``).
        limit: Convert only the first ``limit`` architectures.
        final_only: One row per run (its last epoch) instead of the full curve.
        progress: Called with ``(done, total)`` after each architecture.

    Raises:
        ConvertError: the dataset or schedule is not recorded.
    """
    if dataset not in DATASETS:
        raise ConvertError(f"--dataset: {dataset!r} is not one of {list(DATASETS)}")
    total = len(api) if limit is None else min(int(limit), len(api))
    rows: list[dict[str, Any]] = []
    for index in range(total):
        try:
            meta = api.query_meta_info_by_index(index, hp=str(hp))
            seeds = list(meta.get_dataset_seeds(dataset))
            epochs = int(meta.get_total_epoch(dataset))
            cost = api.get_cost_info(index, dataset, hp=str(hp))
        except (KeyError, ValueError, AssertionError) as err:
            raise ConvertError(
                f"--dataset/--hp: arch {index} has no {dataset!r} record with hp {hp!r} ({err})"
            ) from err
        base = _cost_columns(cost)
        arch = str(api.arch(index))
        wanted = [epochs - 1] if final_only else list(range(epochs))
        for seed in seeds:
            for iepoch in wanted:
                try:
                    info = api.get_more_info(
                        index, dataset, iepoch=iepoch, hp=str(hp), is_random=seed
                    )
                except (KeyError, ValueError, AssertionError):
                    continue  # an epoch the benchmark did not evaluate
                row = {"arch": arch, "seed": int(seed), "epoch": iepoch + 1, **base}
                for key, (col, scale) in _FIELDS.items():
                    value = info.get(key)
                    if value is not None:
                        row[col] = float(value) * scale
                rows.append(row)
        if progress is not None:
            progress(index + 1, total)
    return pd.DataFrame(rows)


def _cost_columns(cost: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, col, scale in (
        ("params", "params", 1e6),
        ("flops", "flops", 1e6),
        ("latency", "latency_ms", 1e3),
    ):
        value = cost.get(key)
        if value is not None and math.isfinite(float(value)):
            out[col] = float(value) * scale
    return out


def convert(
    source: str | Path,
    out: str | Path,
    *,
    benchmark: str = "nb201",
    dataset: str = "cifar10-valid",
    hp: str | None = None,
    limit: int | None = None,
    final_only: bool = False,
    api: Any = None,
) -> dict[str, Any]:
    """Convert an official benchmark file into a table at ``out`` (validated on the way).

    Args:
        source: The benchmark file (or NATS-Bench folder).
        out: The table to write (``.parquet`` with the space in its metadata, or ``.csv``).
        benchmark: ``"nb201"`` or ``"nats-tss"``.
        dataset: One of :data:`DATASETS`.
        hp: Training schedule; default: :func:`default_hp`.
        limit: Convert only the first ``limit`` architectures.
        final_only: Last epoch only (much faster for ``hp="200"``).
        api: An already open API object (skips :func:`open_api`; used by tests).

    Returns:
        ``{"out", "rows", "archs"}``.

    Raises:
        ConvertError: see :func:`open_api` and :func:`api_to_frame`.
        TableError: the converted rows do not validate.
    """
    from raynas.bench.table import BenchTable, write_table
    from raynas.registry import resolve_space

    api = api if api is not None else open_api(source, benchmark)
    hp = str(hp or default_hp(benchmark))
    df = api_to_frame(api, dataset=dataset, hp=hp, limit=limit, final_only=final_only)
    if df.empty:
        raise ConvertError(f"source: no {dataset!r} record with hp {hp!r} in {str(source)!r}")
    space = resolve_space("nb201", {})
    table = BenchTable(df, space)  # validates archs, duplicates and columns
    meta = {
        "space": "nb201",
        "space_args": {},
        "built_by": f"raynas bench convert ({benchmark}, {dataset}, hp {hp})",
        "source": str(source),
    }
    write_table(df, out, meta=meta)
    return {"out": str(out), "rows": len(df), "archs": len(table)}
