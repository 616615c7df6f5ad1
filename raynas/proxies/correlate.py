"""Rank correlation of proxy scores with a recorded metric of a tabular benchmark."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raynas.proxies import ProxyError
from raynas.proxies.ensemble import oriented
from raynas.proxies.scoring import KEY_COLUMNS


def proxy_columns(scores: pd.DataFrame) -> list[str]:
    """The numeric score columns of a proxy table (everything but the key columns)."""
    return [
        c
        for c in scores.columns
        if c not in KEY_COLUMNS and pd.api.types.is_numeric_dtype(scores[c])
    ]


def correlate(scores: pd.DataFrame, table: Any, metric: str) -> pd.DataFrame:
    """Spearman's rho and Kendall's tau of each proxy column against ``metric``.

    Proxy rows are joined to the table's final ``metric`` (mean over recorded seeds) by arch
    id, recomputed from the ``arch`` JSON with the table's space; archs the table lacks, or
    whose metric is missing, are left out. Scores are oriented so that higher is better and a
    ``nan`` score ranks below every finite one (a proxy that cannot score an arch calls it the
    worst).

    Args:
        scores: A ``raynas proxies score`` table.
        table: A :class:`raynas.bench.table.BenchTable`.
        metric: A metric column of the table.

    Returns:
        One row per proxy: ``proxy``, ``n`` (archs joined), ``nan`` (its nan scores),
        ``spearman``, ``kendall``.

    Raises:
        ProxyError: the proxy table lacks ``arch`` or shares no arch with the table.
        TableError: ``metric`` is not a column of the table.
    """
    from scipy import stats

    table.require(metric, flag="--metric")
    if "arch" not in scores.columns:
        raise ProxyError("PROXY_TABLE: column 'arch' is missing; is it a `proxies score` table?")
    ids = [table.space.arch_id(json.loads(a)) for a in scores["arch"]]
    final = table.final()[metric]
    joined = scores.assign(_metric=final.reindex(ids).to_numpy()).dropna(subset=["_metric"])
    if joined.empty:
        raise ProxyError(
            f"PROXY_TABLE shares no arch with a recorded {metric!r} of BENCH_TABLE; score the "
            "table's space (same space and space args)"
        )
    rows = []
    for col in proxy_columns(scores):
        x = oriented(joined[col], col).to_numpy()
        y = joined["_metric"].to_numpy(float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rho = stats.spearmanr(x, y).statistic
            tau = stats.kendalltau(x, y).statistic
        rows.append(
            {
                "proxy": col,
                "n": len(joined),
                "nan": int(np.isnan(pd.to_numeric(joined[col], errors="coerce")).sum()),
                "spearman": float(rho),
                "kendall": float(tau),
            }
        )
    return pd.DataFrame(rows, columns=["proxy", "n", "nan", "spearman", "kendall"])


def plot_correlation(
    scores: pd.DataFrame, table: Any, metric: str, path: str | Path, result: pd.DataFrame
) -> Path:
    """Scatter of each proxy's rank against ``metric`` (one panel per proxy) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = [table.space.arch_id(json.loads(a)) for a in scores["arch"]]
    y = table.final()[metric].reindex(ids).to_numpy()
    cols = list(result["proxy"])
    n = max(len(cols), 1)
    width = min(n, 4)
    height = (n + width - 1) // width
    fig, axes = plt.subplots(height, width, figsize=(3 * width, 2.6 * height), squeeze=False)
    for ax, (_, r) in zip(axes.flat, result.iterrows()):
        x = oriented(scores[r["proxy"]], r["proxy"]).rank().to_numpy()
        ax.scatter(x, y, s=6, alpha=0.6)
        ax.set_title(f"{r['proxy']}: rho {r['spearman']:.2f}", fontsize=9)
        ax.set_xlabel("proxy rank", fontsize=8)
        ax.set_ylabel(metric, fontsize=8)
    for ax in list(axes.flat)[len(cols) :]:
        ax.axis("off")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
