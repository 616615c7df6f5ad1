"""Latency you can trust: per-device lookup tables of block latencies, and a predictor.

``raynas latency profile`` times every distinct block of a space on the target device
(:func:`profile_space`) and writes a JSON table; ``objective.latency_model`` names it, and
the driver then predicts ``latency_pred_ms`` of each candidate before proposing it
(:mod:`raynas.experiment.constraints`), while each trial reports it. Only ``mobilenet`` has a block
decomposition so far (:mod:`raynas.latency.blocks` says how a space adds one).

Module-level imports stay light (no torch).
"""

from __future__ import annotations

from raynas.latency.blocks import (
    DECOMPOSITIONS,
    Block,
    BlockDecomposition,
    LatencyError,
    decomposition_for,
    register_decomposition,
)
from raynas.latency.table import LatencyTable, Timing, profile_space, time_network

__all__ = [
    "DECOMPOSITIONS",
    "Block",
    "BlockDecomposition",
    "LatencyError",
    "LatencyTable",
    "Timing",
    "decomposition_for",
    "profile_space",
    "register_decomposition",
    "time_network",
]
