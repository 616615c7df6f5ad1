"""Ensembles over a table of proxy scores: ``vote`` and ``rank_average``.

Both work on a whole table (one row per arch, one column per proxy), since a rank is relative
to the other archs scored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from raynas.proxies import ENSEMBLES, PROXIES, ProxyError

VOTE_MEMBERS: tuple[str, ...] = ENSEMBLES["vote"] or ()


def oriented(column: pd.Series, name: str) -> pd.Series:
    """Scores with "higher is better" for every proxy; ``nan`` becomes ``-inf`` (the worst).

    A column not in the registry (an ensemble) is taken as higher-is-better.
    """
    values = pd.to_numeric(column, errors="coerce").astype(float)
    spec = PROXIES.get(name)
    if spec is not None and not spec.higher_is_better:
        values = -values
    return values.fillna(-np.inf)


def rank_average(scores: pd.DataFrame, proxies: Sequence[str]) -> pd.Series:
    """Average rank of each row over ``proxies`` (1 = worst, ``len(scores)`` = best).

    Each proxy's column is ranked (ties share the mean rank) after :func:`oriented`, so a
    ``nan`` score ranks below every finite one; the ranks are averaged over the proxies.

    Args:
        scores: One row per arch, a column per proxy.
        proxies: The columns to combine (at least one).

    Returns:
        The average rank, indexed like ``scores`` (higher is better).

    Raises:
        ProxyError: no proxy given, or a column is missing.

    Example:
        >>> df = pd.DataFrame({"a": [1.0, 3.0, 2.0], "b": [3.0, 2.0, 1.0]})
        >>> rank_average(df, ["a", "b"]).tolist()
        [2.0, 2.5, 1.5]
    """
    if not proxies:
        raise ProxyError("rank_average: choose at least one proxy column")
    missing = [p for p in proxies if p not in scores.columns]
    if missing:
        raise ProxyError(
            f"rank_average: columns {missing} are missing; the table has {list(scores.columns)}"
        )
    ranks = pd.concat([oriented(scores[p], p).rank(method="average") for p in proxies], axis=1)
    return ranks.mean(axis=1)


def vote(scores: pd.DataFrame) -> pd.Series:
    """Abdelfattah et al.'s (ICLR 2021) vote of synflow, jacob_cov and snip, as a rank average.

    Their vote decides each pairwise comparison by the majority of the three proxies; for a
    whole table we score each arch by its average rank over the three (:func:`rank_average`),
    which orders archs as the number of proxies (and archs) each beats.

    Args:
        scores: One row per arch with columns ``synflow``, ``jacob_cov`` and ``snip``.

    Returns:
        The vote score (higher is better).
    """
    return rank_average(scores, VOTE_MEMBERS)
