"""Mixed operations and the interface every weight-sharing supernet implements.

A :class:`MixedOp` holds every candidate operation of one edge, built from the same op tables
(:mod:`search_spaces.models.ops`) as the evaluation networks. It runs in one of two modes:

* **dense** (DARTS): ``sum_k w[k] * op_k(x)``, accumulated op by op (never a stacked
  ``(K, N, C, H, W)`` tensor); the ``none`` op is skipped (its term is zero), and operations that
  begin with a ReLU share a single ``relu(x)`` instead of one copy per op;
* **single path** (ENAS, GDAS): only ``op_k(x)`` for a chosen ``k``, optionally scaled by
  ``w[k]`` so that a straight-through Gumbel weight passes its gradient. With
  ``unselected_weights`` the other weights are added too (``w[k] * op_k(x) + sum_{j != k}
  w[j]``): for a straight-through one-hot their value is 0, so the output is still the
  selected op's, but each unselected weight stays in the gradient path (NAS-Bench-201's GDAS
  cell, ``NAS201SearchCell.forward_gdas``; its DARTS-space cell scales the selected op only).

``pool_bn`` appends a non-affine BatchNorm to the pooling ops, as DARTS' search ``MixedOp``
does (``nn.Sequential(pool, BatchNorm2d(C, affine=False))``): it puts the parameter-free pool
outputs on the scale of the ReLU-Conv-BN ops they compete with. NAS-Bench-201's search cells
run their pooling bare (its ``POOLING`` op adds a ReLU-Conv-BN only when the channels change,
never inside a cell), so the ``nb201`` supernet leaves it off.

Every BatchNorm of a supernet (cells, stem, reductions, head) uses batch statistics in
training *and* evaluation (``track_running_stats=False``, as NAS-Bench-201's search models can
be run): running statistics averaged over changing architecture weights or sampled paths
describe no single network, and evaluating one derived path with them fails.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.models.ops import OpTable

__all__ = [
    "PARAMETER_FREE_OPS",
    "MixedOp",
    "Supernet",
    "check_primitives",
    "parameter_free_share",
    "run_dag",
    "use_batch_statistics",
]

#: Operations without weights: a derived cell made of these has collapsed.
PARAMETER_FREE_OPS = frozenset({"none", "skip_connect", "avg_pool_3x3", "max_pool_3x3"})

Arch = dict[str, Any]
Weights = Mapping[str, torch.Tensor]
Sample = Mapping[str, Sequence[int]]
#: A cell type's ``(op weights, sampled path)``, either None (see :meth:`Supernet.forward`).
CellPath = Callable[[str], tuple[torch.Tensor | None, Sequence[int] | None]]


def parameter_free_share(ops: Sequence[str]) -> float:
    """Share of :data:`PARAMETER_FREE_OPS` among ``ops`` (a derived cell's), in [0, 1]."""
    return sum(op in PARAMETER_FREE_OPS for op in ops) / len(ops)


def check_primitives(
    primitives: Sequence[str], known: Collection[str], family: str, *, besides_none: bool = False
) -> tuple[str, ...]:
    """``primitives`` as a tuple: ops of ``known``, at least one (one other than ``none`` with
    ``besides_none``), else the ValueError ``"primitives: [...] must be {family} ops [...]"``."""
    unknown = [p for p in primitives if p not in known]
    chosen = [p for p in primitives if not (besides_none and p == "none")]
    if unknown or not chosen:
        raise ValueError(f"primitives: {list(primitives)!r} must be {family} ops {list(known)}")
    return tuple(primitives)


def use_batch_statistics(module: nn.Module) -> None:
    """Make every BatchNorm in ``module`` normalise with batch statistics, also in eval mode."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None


def _after_leading_relu(op: nn.Module) -> nn.Module | None:
    """``op`` without its first ReLU (sharing its modules), or None if it does not start so."""
    if not isinstance(op, nn.Sequential) or len(op) == 0:
        return None
    first = op[0]
    if isinstance(first, nn.ReLU):
        return nn.Sequential(*list(op)[1:])
    inner = _after_leading_relu(first)
    if inner is None:
        return None
    return nn.Sequential(inner, *list(op)[1:])


class MixedOp(nn.Module):
    """Every candidate operation of one edge.

    Args:
        primitives: Candidate op names, in the order of the architecture weights.
        table: The op table to build them from.
        C: Channels (kept by every op).
        stride: 1, or 2 on the reducing edges of a DARTS reduction cell.
        affine: Affine BatchNorm in the ops (supernets use False, as DARTS and NB201 do).
        pool_bn: Follow every ``*pool*`` op by ``BatchNorm2d(C, affine=False)`` (DARTS).
        unselected_weights: In single-path mode with weights, add the unselected ops'
            weights to the output (NAS-Bench-201's GDAS cell).
    """

    def __init__(
        self,
        primitives: Sequence[str],
        table: OpTable,
        C: int,
        stride: int = 1,
        affine: bool = False,
        *,
        pool_bn: bool = False,
        unselected_weights: bool = False,
    ) -> None:
        super().__init__()
        self.primitives = tuple(primitives)
        self.stride = stride
        self.unselected_weights = unselected_weights
        ops = []
        for p in self.primitives:
            op = table.build(p, C, stride, affine)
            if pool_bn and "pool" in p:
                op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)
        self._is_none = [p == "none" for p in self.primitives]
        # Plain list, not registered: these views share the modules of ``self.ops``.
        self._after_relu: list[nn.Module | None] = [_after_leading_relu(op) for op in self.ops]

    def forward(
        self,
        x: torch.Tensor,
        weights: torch.Tensor | None = None,
        index: int | None = None,
        aux_skip: float = 0.0,
    ) -> torch.Tensor:
        """Mix the ops (``index`` None) or run op ``index`` alone.

        Args:
            x: The edge's input.
            weights: ``(K,)`` weights of the ops; required in dense mode. In single-path mode
                the output is scaled by ``weights[index]`` when given (plus the sum of the
                other weights with ``unselected_weights``).
            index: Run only this op.
            aux_skip: Add ``aux_skip * x`` (DARTS- auxiliary skip; stride-1 edges only).

        Returns:
            The edge's output.
        """
        if index is not None:
            out = self.ops[index](x)
            if weights is not None:
                out = out * weights[index]
                if self.unselected_weights and weights.shape[0] > 1:
                    out = out + torch.cat([weights[:index], weights[index + 1 :]]).sum()
        else:
            if weights is None:
                raise ValueError("weights: a dense MixedOp needs one weight per op")
            out = self._dense(x, weights)
        if aux_skip and self.stride == 1:
            out = out + aux_skip * x
        return out

    def _dense(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        relu_x: torch.Tensor | None = None
        out: torch.Tensor | None = None
        for k, op in enumerate(self.ops):
            if self._is_none[k]:
                continue
            tail = self._after_relu[k]
            if tail is not None:
                if relu_x is None:
                    relu_x = F.relu(x)
                y = tail(relu_x)
            else:
                y = op(x)
            term = weights[k] * y
            out = term if out is None else out + term
        if out is None:  # only ``none`` on this edge
            out = self.ops[0](x)
        return out


class Supernet(nn.Module):
    """The interface of a weight-sharing supernet over one search space.

    Architecture weights live outside the module (so ``parameters()`` are the shared weights
    only): :meth:`init_alphas` creates them, one ``(edges, ops)`` tensor per cell type.

    Attributes:
        space_name: The space whose architectures :meth:`derive` returns.
        cell_types: Names of the cell types (``("cell",)`` or ``("normal", "reduce")``).
        primitives: Candidate op names, the columns of the architecture weights.
        edges: ``(source, target)`` node pairs, the rows of the architecture weights.
    """

    space_name: str = ""
    cell_types: tuple[str, ...] = ()
    primitives: tuple[str, ...] = ()
    edges: tuple[tuple[int, int], ...] = ()

    def init_alphas(
        self,
        *,
        scale: float = 1e-3,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> dict[str, torch.Tensor]:
        """Fresh architecture weights ``scale * N(0, 1)``, one per cell type (leaf tensors)."""
        shape = (len(self.edges), len(self.primitives))
        out = {}
        for ct in self.cell_types:
            alpha = scale * torch.randn(shape, generator=generator, dtype=dtype)
            out[ct] = alpha.to(device).requires_grad_(True)
        return out

    def forward(
        self,
        x: torch.Tensor,
        weights: Weights | None = None,
        sample: Sample | None = None,
        aux_skip: float = 0.0,
    ) -> torch.Tensor:
        """Class logits, mixing every op (``weights``) or running one path (``sample``).

        Args:
            x: Images ``(N, C, H, W)``.
            weights: Per cell type, its ``(edges, ops)`` op weights (e.g. a softmax of the
                alphas); see the space's :meth:`_logits` for the shapes.
            sample: Per cell type, an op index per edge (single-path mode).
            aux_skip: DARTS- auxiliary skip coefficient.

        Returns:
            Logits ``(N, num_classes)``.
        """
        if weights is None and sample is None:
            raise ValueError("weights, sample: pass architecture weights or a sampled path")

        def path(cell_type: str) -> tuple[torch.Tensor | None, Sequence[int] | None]:
            return (
                None if weights is None else weights[cell_type],
                None if sample is None else sample[cell_type],
            )

        return self._logits(x, path, aux_skip)

    def _logits(self, x: torch.Tensor, path: CellPath, aux_skip: float) -> torch.Tensor:
        """:meth:`forward` of the space's network, each cell run on ``path(its type)``."""
        raise NotImplementedError

    def derive(self, weights: Weights) -> Arch:
        """The discrete architecture the weights (or probabilities) select."""
        raise NotImplementedError

    def decision_sizes(self) -> list[int]:
        """Number of options of each categorical decision a controller makes (ENAS)."""
        raise NotImplementedError

    def sample_from_decisions(self, decisions: Sequence[int]) -> dict[str, list[int]]:
        """Per cell type and edge, the op index (``-1``: edge unused) of a decision sequence."""
        raise NotImplementedError

    def arch_from_sample(self, sample: Sample) -> Arch:
        """The architecture of a single-path sample."""
        raise NotImplementedError

    def sample_from_arch(self, arch: Arch) -> dict[str, list[int]]:
        """The single-path sample of an architecture (inverse of :meth:`arch_from_sample`)."""
        raise NotImplementedError

    def collapse_share(self, arch: Arch) -> float:
        """Share of parameter-free ops in the (normal) cell of ``arch``, in [0, 1]."""
        raise NotImplementedError


def run_dag(
    edges: Sequence[MixedOp],
    states: list[torch.Tensor],
    first_node: int,
    nodes: int,
    weights: torch.Tensor | None,
    sample: Sequence[int] | None,
    aux_skip: float,
) -> list[torch.Tensor]:
    """Run one cell's DAG: each node sums its (active) incoming edges.

    Args:
        edges: The cell's mixed ops, ordered by target node, then source node.
        states: The cell's input nodes (extended in place and returned).
        first_node: Index of the first intermediate node.
        nodes: Number of intermediate nodes.
        weights: ``(edges, ops)`` weights, or None in single-path mode without weights.
        sample: Per edge the op index to run (``-1``: skip the edge), or None (dense).
        aux_skip: DARTS- auxiliary skip coefficient.

    Returns:
        ``states`` with every intermediate node appended.
    """
    e = 0
    for node in range(first_node, first_node + nodes):
        acc: torch.Tensor | None = None
        for src in range(node):
            edge = edges[e]
            row = None if weights is None else weights[e]
            if sample is None:
                y = edge(states[src], row, None, aux_skip)
            elif sample[e] >= 0:
                y = edge(states[src], row, int(sample[e]), aux_skip)
            else:
                e += 1
                continue
            acc = y if acc is None else acc + y
            e += 1
        if acc is None:
            raise ValueError(f"sample: node {node} has no active input edge")
        states.append(acc)
    return states
