"""The scores strategies learn from: failures and early-stopped trials, resolved at use time.

Pure functions over a searcher's observations; :class:`~raynas.strategies.base.NASSearcher`
calls them and caches the result until the next observation.

Failures (score None) rank below every valid result, whatever the metric's sign and mode. A
strategy that needs a number for them asks :func:`worst_below` *when it uses the number*, over
every valid value observed by then, so a failure seen before any valid result is never stuck
with an arbitrary value that a later result falls below.

Early-stopped trials (the rule that replaced v0.1's "cap at the worst full-budget score seen
so far"): a trial that a scheduler stopped after ``f`` epochs has a score at fidelity ``f``,
comparable only with other scores at fidelity ``f``. So it is compared *within its rung*:
every full-budget trial also reported a score at epoch ``f`` on its way (``on_trial_result``),
and the pairs ``(score at f, full-budget score)`` of those trials give a monotone map from the
rung-``f`` scale to the full-budget scale by quantile matching (the k-th best rung-``f`` score
of the full-budget trials maps to their k-th best full-budget score; linear in between;
shifted by the gap at the nearest end beyond them). A stopped trial's value is its rung score
read through that map: it outranks a full-budget trial about when it beat that trial at epoch
``f``, and it keeps its order against every other trial stopped at ``f``. A poor trial that
reached the full budget only because it met no competition (the first trials under ASHA) no
longer outranks, or ties, every stopped trial. The map is rebuilt from all the data at each
use, so no value depends on the order results arrived in.

Where no full-budget trial reported at epoch ``f`` (a trainable that reports once), nothing
links the two scales; the observations are then ranked the way successive halving ranks them,
by the fidelity reached, then by score: such a rung keeps its scores if its best already lies
below every value above it, else the whole rung is shifted down until it does (differences
within the rung kept). With no full-budget result at all, stopped scores are used as they are.

Measured against v0.1 on the shipped NB201 table under ASHA replays
(``benchmarks/fidelity_rule.py``, 200 seeds of 100 trials): with 4 trials in flight, where
v0.1 left trials stopped before the first full-budget result uncapped, BO and REINFORCE
gained about 0.1 point of test accuracy (one-sided p about 0.05); one trial at a time no
strategy differs significantly (within +-0.06 points; evolution -0.06 at eta 3, +0.03 at
eta 2). The table has 3 epochs, so ASHA has two rungs and the two rules order about 95% of
trial pairs alike. Rankings without the map (by fidelity reached, then score) did no better
than v0.1, and worse for REINFORCE: they rank every stopped trial below a poor one that
reached the full budget unopposed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

#: Margin below the lowest valid value when all valid values are equal (relative, absolute).
TIE_MARGIN = (0.1, 1e-3)
#: Gap between a shifted rung's best and the lowest value above it, as a share of the spread
#: of all valid scores: no tie across rungs, even for a surrogate fitting in float32.
RUNG_GAP = 1e-3


def worst_below(values: np.ndarray) -> float | None:
    """A value below every finite entry of ``values`` (NaN = failed); None when there is none.

    ``lo - (hi - lo)``: a failure sits one spread below the worst valid value, which is
    invariant to shifting all scores (a strategy behaves the same on ``f`` and ``f + c``).
    When every valid value is equal, ``max(0.1 * |lo|, 1e-3)`` below it.
    """
    valid = values[np.isfinite(values)]
    if not valid.size:
        return None
    lo, hi = float(valid.min()), float(valid.max())
    if hi > lo:
        return lo - (hi - lo)
    return lo - max(abs(lo) * TIE_MARGIN[0], TIE_MARGIN[1])


def rung_map(scores: np.ndarray, pairs: Sequence[tuple[float, float]]) -> np.ndarray:
    """Rung scores mapped to the full-budget scale by quantile matching against ``pairs``.

    Args:
        scores: Scores at one fidelity (higher is better).
        pairs: ``(score at that fidelity, full-budget score)`` of trials that had both.

    Returns:
        The mapped values: non-decreasing in ``scores``; inside the range of the pairs' rung
        scores, linear between quantiles; outside, shifted by the gap at the nearest end.
    """
    low = np.sort(np.asarray([p[0] for p in pairs], dtype=float))
    high = np.sort(np.asarray([p[1] for p in pairs], dtype=float))
    xs, where = np.unique(low, return_inverse=True)
    ys = np.bincount(where, weights=high) / np.bincount(where)  # ties: the mean quantile
    out = np.interp(scores, xs, ys)
    out = np.where(scores < xs[0], ys[0] - (xs[0] - scores), out)
    return np.where(scores > xs[-1], ys[-1] + (scores - xs[-1]), out)


def resolve_values(
    scores: Sequence[float | None],
    fidelities: Sequence[float | None],
    rung_pairs: Mapping[float, Sequence[tuple[float, float]]],
) -> np.ndarray:
    """The comparable value of each observation (NaN for a failure).

    Args:
        scores: Each observation's score (higher is better; None = failed) at its fidelity.
        fidelities: Epochs trained by each early-stopped observation; None = full budget.
        rung_pairs: Per fidelity, ``(score there, full-budget score)`` of full-budget trials.

    Returns:
        Full-budget scores as they are; stopped ones through :func:`rung_map` where their
        rung has pairs, else ranked below the rungs above (see the module docstring).
    """
    raw = np.asarray([math.nan if s is None else s for s in scores], dtype=float)
    out = raw.copy()
    rungs: dict[float, list[int]] = {}
    for i, f in enumerate(fidelities):
        if f is not None and math.isfinite(raw[i]):
            rungs.setdefault(float(f), []).append(i)
    if not rungs:
        return out
    valid = raw[np.isfinite(raw)]
    gap = RUNG_GAP * float(valid.max() - valid.min())
    full = [raw[i] for i, f in enumerate(fidelities) if f is None and math.isfinite(raw[i])]
    floor = min(full) if full else None
    for f in sorted(rungs, reverse=True):
        idx = np.asarray(rungs[f])
        pairs = rung_pairs.get(f)
        if pairs:
            block = rung_map(raw[idx], pairs)
        else:
            block = raw[idx]
            if floor is not None:
                block = block - max(0.0, float(block.max()) - floor + gap)
        out[idx] = block
        floor = float(block.min()) if floor is None else min(floor, float(block.min()))
    return out
