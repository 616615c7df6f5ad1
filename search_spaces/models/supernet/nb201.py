"""The NAS-Bench-201 supernet: every cell edge mixes every candidate op.

The layout is the evaluation network's (:class:`~search_spaces.models.nb201_net.NB201Network`):
a 3x3 stem, three stages of ``N`` cells separated by residual reduction blocks, BN-ReLU,
pooling and a linear classifier. Every cell shares one set of architecture weights, a
``(6, K)`` tensor whose rows are the edges ``0->1, 0->2, 1->2, 0->3, 1->3, 2->3`` (the
``nb201`` space's ``edge_<i>_<j>`` order) and whose columns are the space's ops. The cell ops
are the evaluation network's ReLU-Conv-BN ops with ``affine=False``, as in NAS-Bench-201, and
its pooling runs without a BatchNorm, as in NAS-Bench-201's search cell (DARTS' own search
cell adds one; see :mod:`~search_spaces.models.supernet.mixed`). In single-path mode with
weights (GDAS) every unselected op's weight is added to the edge's output, as NAS-Bench-201's
GDAS cell does, so each stays in the gradient path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from search_spaces.models.genotypes import check_min_ints
from search_spaces.models.nb201_net import nb201_stages
from search_spaces.models.ops import NB201_OPS, NB201_PRIMITIVES, conv_bn_stem
from search_spaces.models.supernet.mixed import (
    Arch,
    CellPath,
    MixedOp,
    Sample,
    Supernet,
    Weights,
    check_primitives,
    parameter_free_share,
    run_dag,
    use_batch_statistics,
)

__all__ = ["NB201_EDGES", "NB201SearchCell", "NB201Supernet"]

NB201_EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for j in (1, 2, 3) for i in range(j))
"""Edges of a NAS-Bench-201 cell, ordered by target node, then source node."""


class NB201SearchCell(nn.Module):
    """A NAS-Bench-201 cell whose six edges are :class:`MixedOp` s.

    Args:
        C: Channels.
        primitives: Candidate ops.
    """

    def __init__(self, C: int, primitives: Sequence[str]) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            MixedOp(primitives, NB201_OPS, C, unselected_weights=True) for _ in NB201_EDGES
        )
        use_batch_statistics(self)

    def forward(
        self,
        x: torch.Tensor,
        weights: torch.Tensor | None,
        sample: Sequence[int] | None,
        aux_skip: float = 0.0,
    ) -> torch.Tensor:
        edges = [e for e in self.edges if isinstance(e, MixedOp)]
        return run_dag(edges, [x], 1, 3, weights, sample, aux_skip)[-1]


class NB201Supernet(Supernet):
    """Weight-sharing supernet of the ``nb201`` space.

    Args:
        C: Channels of the first stage.
        N: Cells per stage.
        primitives: Candidate ops (a subset of NAS-Bench-201's five, in any order).
        num_classes: Classifier outputs.
        in_channels: Image channels.

    Example:
        >>> net = NB201Supernet(C=8, N=1, num_classes=10, in_channels=1)
        >>> alphas = net.init_alphas()
        >>> logits = net(torch.randn(2, 1, 8, 8), {k: a.softmax(-1) for k, a in alphas.items()})
    """

    space_name = "nb201"
    cell_types = ("cell",)
    edges = NB201_EDGES

    def __init__(
        self,
        *,
        C: int = 16,
        N: int = 5,
        primitives: Sequence[str] = NB201_PRIMITIVES,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        check_min_ints(("C", C, 1), ("N", N, 1), ("num_classes", num_classes, 1))
        self.primitives = check_primitives(primitives, NB201_OPS, "NB201")
        self.stem = conv_bn_stem(in_channels, C)
        blocks, channels = nb201_stages(C, N, lambda c: NB201SearchCell(c, self.primitives))
        self.cells = nn.ModuleList(blocks)
        self.head = nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.classifier = nn.Linear(channels, num_classes)
        use_batch_statistics(self)

    def _logits(self, x: torch.Tensor, path: CellPath, aux_skip: float) -> torch.Tensor:
        """The stages, every cell on the one path: ``weights`` is ``{"cell": (6, K)}``,
        ``sample`` ``{"cell": [k_0, ..., k_5]}`` (an op index per edge); ``aux_skip`` weighs
        every edge's auxiliary skip."""
        w, s = path("cell")
        h = self.stem(x)
        for block in self.cells:
            h = block(h, w, s, aux_skip) if isinstance(block, NB201SearchCell) else block(h)
        return self.classifier(self.head(h))

    def derive(self, weights: Weights) -> Arch:
        """Argmax op per edge (``none`` included, as NAS-Bench-201's DARTS does)."""
        best = weights["cell"].detach().argmax(dim=-1).tolist()
        return self.arch_from_sample({"cell": best})

    def decision_sizes(self) -> list[int]:
        return [len(self.primitives)] * len(self.edges)

    def sample_from_decisions(self, decisions: Sequence[int]) -> dict[str, list[int]]:
        if len(decisions) != len(self.edges):
            raise ValueError(f"decisions: expected {len(self.edges)}, got {len(decisions)}")
        return {"cell": [int(d) for d in decisions]}

    def arch_from_sample(self, sample: Sample) -> Arch:
        ops = [self.primitives[int(k)] for k in sample["cell"]]
        return {"cell": {f"edge_{i}_{j}": op for (i, j), op in zip(self.edges, ops)}}

    def sample_from_arch(self, arch: Arch) -> dict[str, list[int]]:
        cell = arch["cell"]
        return {"cell": [self.primitives.index(cell[f"edge_{i}_{j}"]) for i, j in self.edges]}

    def collapse_share(self, arch: Arch) -> float:
        return parameter_free_share(list(arch["cell"].values()))
