"""The DARTS supernet: normal and reduction search cells whose 14 edges mix every op.

Layout as in the DARTS search network: a 3x3 stem with ``3 * C`` channels, ``layers`` cells
with reduction cells (doubling the channels) at ``layers // 3`` and ``2 * layers // 3``,
global pooling and a linear classifier. A cell has two inputs (the outputs of the two previous
cells, preprocessed to ``C`` channels) and four intermediate nodes; node ``j`` (2..5) receives
an edge from every earlier node, so a cell has 2 + 3 + 4 + 5 = 14 edges, ordered by target,
then source. Normal cells share one ``(14, K)`` weight tensor, reduction cells another. The
candidate ops are DARTS' eight (``none`` included) with ``affine=False``, and, as in DARTS'
search ``MixedOp``, each pooling op is followed by a non-affine BatchNorm. In single-path mode
with weights (GDAS) only the selected op's weight scales the edge, as in the DARTS-space
(NASNet) GDAS cell of the reference code.

:meth:`DartsSupernet.derive` applies the DARTS rule: per node keep the two incoming edges
whose strongest non-``none`` op weighs most, each with that op.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from search_spaces.models.genotypes import check_min_ints
from search_spaces.models.ops import DARTS_OPS, DARTS_PRIMITIVES, conv_bn_stem, darts_cell_inputs
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

__all__ = ["DARTS_EDGES", "DartsSearchCell", "DartsSupernet"]

STEPS = 4
NODES = tuple(range(2, 2 + STEPS))
DARTS_EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for j in NODES for i in range(j))
"""Edges of a DARTS cell, ordered by target node, then source node."""


class DartsSearchCell(nn.Module):
    """A DARTS normal or reduction cell whose edges are :class:`MixedOp` s.

    Args:
        primitives: Candidate ops.
        C_prev_prev: Channels of the input two cells back.
        C_prev: Channels of the previous cell's output.
        C: Channels of each node.
        reduction: Halve the spatial size (edges from the inputs have stride 2).
        reduction_prev: The previous cell reduced (the older input is reduced on the way in).
    """

    def __init__(
        self,
        primitives: Sequence[str],
        C_prev_prev: int,
        C_prev: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = darts_cell_inputs(
            C_prev_prev, C_prev, C, reduction_prev, affine=False
        )
        self.edges = nn.ModuleList(
            MixedOp(primitives, DARTS_OPS, C, 2 if reduction and i < 2 else 1, pool_bn=True)
            for i, _ in DARTS_EDGES
        )
        use_batch_statistics(self)

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        weights: torch.Tensor | None,
        sample: Sequence[int] | None,
        aux_skip: float = 0.0,
    ) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        edges = [e for e in self.edges if isinstance(e, MixedOp)]
        states = run_dag(edges, states, 2, STEPS, weights, sample, aux_skip)
        return torch.cat(states[2:], dim=1)


class DartsSupernet(Supernet):
    """Weight-sharing supernet of the ``darts`` space.

    Args:
        C: Initial channels (the stem has ``3 * C``).
        layers: Number of cells (>= 3).
        primitives: Candidate ops; DARTS' eight by default (``none`` included).
        num_classes: Classifier outputs.
        in_channels: Image channels.
    """

    space_name = "darts"
    cell_types = ("normal", "reduce")
    edges = DARTS_EDGES

    def __init__(
        self,
        *,
        C: int = 16,
        layers: int = 8,
        primitives: Sequence[str] = DARTS_PRIMITIVES,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        check_min_ints(("C", C, 1), ("layers", layers, 3), ("num_classes", num_classes, 1))
        self.primitives = check_primitives(primitives, DARTS_PRIMITIVES, "DARTS", besides_none=True)
        self._choices = [k for k, p in enumerate(self.primitives) if p != "none"]
        C_stem = 3 * C
        self.stem = conv_bn_stem(in_channels, C_stem)
        C_pp, C_p, C_curr = C_stem, C_stem, C
        reduction_prev = False
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            cell = DartsSearchCell(self.primitives, C_pp, C_p, C_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            C_pp, C_p = C_p, STEPS * C_curr
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)
        use_batch_statistics(self)

    def _logits(self, x: torch.Tensor, path: CellPath, aux_skip: float) -> torch.Tensor:
        """The cells in order, each on its type's path: ``weights`` is ``{"normal": (14, K),
        "reduce": (14, K)}``; ``sample`` ``{"normal": [...], "reduce": [...]}``, per edge an
        op index, ``-1`` for an unused edge (each node needs an active edge); ``aux_skip``
        weighs every stride-1 edge's auxiliary skip."""
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            w, s = path("reduce" if cell.reduction else "normal")
            s0, s1 = s1, cell(s0, s1, w, s, aux_skip)
        return self.classifier(torch.flatten(self.pool(s1), 1))

    def derive(self, weights: Weights) -> Arch:
        """The DARTS rule: per node the two strongest incoming edges, each its best op."""
        arch: Arch = {}
        for ct in self.cell_types:
            w = weights[ct].detach()[:, self._choices]
            strength, best = w.max(dim=-1)
            sample = [-1] * len(self.edges)
            for j in NODES:
                rows = [e for e, (_, dst) in enumerate(self.edges) if dst == j]
                top = sorted(rows, key=lambda e: -float(strength[e]))[:2]
                for e in top:
                    sample[e] = self._choices[int(best[e])]
            arch[ct] = sample
        return self.arch_from_sample(arch)

    def decision_sizes(self) -> list[int]:
        ops = len(self._choices)
        per_cell = [size for j in NODES for size in (j, ops, j - 1, ops)]
        return per_cell * len(self.cell_types)

    def sample_from_decisions(self, decisions: Sequence[int]) -> dict[str, list[int]]:
        """Decisions per cell type and node: first input, its op, second input, its op.

        The second input indexes the earlier nodes *other than* the first input, so the two
        inputs always differ (as the ``darts`` space requires).
        """
        per_cell = 4 * STEPS
        if len(decisions) != per_cell * len(self.cell_types):
            raise ValueError(
                f"decisions: expected {per_cell * len(self.cell_types)}, got {len(decisions)}"
            )
        out: dict[str, list[int]] = {}
        for c, ct in enumerate(self.cell_types):
            sample = [-1] * len(self.edges)
            for n, j in enumerate(NODES):
                first, op1, second, op2 = (int(d) for d in decisions[per_cell * c + 4 * n :][:4])
                others = [i for i in range(j) if i != first]
                for src, op in ((first, op1), (others[second], op2)):
                    sample[self.edges.index((src, j))] = self._choices[op]
            out[ct] = sample
        return out

    def arch_from_sample(self, sample: Sample) -> Arch:
        arch: Arch = {}
        for ct in self.cell_types:
            cell = {}
            for j in NODES:
                pairs = [
                    (i, self.primitives[int(sample[ct][e])])
                    for e, (i, dst) in enumerate(self.edges)
                    if dst == j and int(sample[ct][e]) >= 0
                ]
                if len(pairs) != 2:
                    raise ValueError(f"sample: {ct} node {j} needs 2 active edges, got {pairs}")
                cell[f"node_{j}"] = {"inputs": [i for i, _ in pairs], "ops": [o for _, o in pairs]}
            arch[ct] = cell
        return arch

    def sample_from_arch(self, arch: Arch) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for ct in self.cell_types:
            sample = [-1] * len(self.edges)
            for j in NODES:
                node = arch[ct][f"node_{j}"]
                for i, op in zip(node["inputs"], node["ops"]):
                    sample[self.edges.index((int(i), j))] = self.primitives.index(op)
            out[ct] = sample
        return out

    def collapse_share(self, arch: Arch) -> float:
        """Share of parameter-free ops in the normal cell (reduction cells pool by design)."""
        return parameter_free_share([op for node in arch["normal"].values() for op in node["ops"]])
