"""NAS-Bench-201 evaluation network and architecture-string helpers.

A NAS-Bench-201 cell is a small DAG: node 0 is the cell input and node ``i`` (``i >= 1``)
sums one operation applied to each of the earlier nodes it lists. A *genotype* is the list
of nodes ``1..n``, each a list of ``(op_name, input_node_index)`` pairs; the cell output is
the last node. The benchmark's string form writes each node as ``|op~j|op~k|`` and joins
nodes with ``+``::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from search_spaces.models.genotypes import as_int
from search_spaces.models.ops import NB201_OPS, ReLUConvBN, conv_bn_stem

__all__ = [
    "NB201Cell",
    "NB201Genotype",
    "NB201Network",
    "ResidualReduction",
    "nb201_stages",
    "nb201_string",
    "normalize_nb201_genotype",
    "parse_nb201_string",
]

NB201Genotype = list[list[tuple[str, int]]]
"""Nodes ``1..n`` of a cell, each a list of ``(op_name, input_node_index)`` edges."""

_EDGE_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)~([0-9]+)$")


def normalize_nb201_genotype(genotype: str | Sequence[Sequence[Any]]) -> NB201Genotype:
    """Validate a genotype and return it as a list of lists of ``(str, int)`` tuples.

    Accepts the string form, or nested sequences (e.g. lists of ``[op, index]`` lists as
    they come back from JSON).

    Args:
        genotype: The genotype or its NAS-Bench-201 string.

    Returns:
        The normalized genotype.

    Raises:
        ValueError: If the structure is malformed, an op is unknown, or a node reads from
            itself or a later node.
    """
    if isinstance(genotype, str):
        return parse_nb201_string(genotype)
    if not isinstance(genotype, Sequence) or len(genotype) == 0:
        raise ValueError(f"NB201 genotype must be a non-empty list of nodes, got {genotype!r}")
    nodes: NB201Genotype = []
    for node_pos, node in enumerate(genotype, start=1):
        where = f"node {node_pos}"
        if isinstance(node, str) or not isinstance(node, Sequence) or len(node) == 0:
            raise ValueError(f"{where}: expected a non-empty list of (op, input) pairs")
        edges: list[tuple[str, int]] = []
        for edge in node:
            if isinstance(edge, str) or not isinstance(edge, Sequence) or len(edge) != 2:
                raise ValueError(f"{where}: edge {edge!r} is not an (op_name, input_index) pair")
            op_name, raw_index = edge
            if not isinstance(op_name, str):
                raise ValueError(f"{where}: op name must be a str, got {op_name!r}")
            if op_name not in NB201_OPS:
                raise ValueError(
                    f"{where}: unknown NAS-Bench-201 op {op_name!r}; "
                    f"known ops: {', '.join(NB201_OPS)}"
                )
            index = as_int(raw_index, where, "input node index must be an int")
            if not 0 <= index < node_pos:
                raise ValueError(
                    f"{where}: input index {index} out of range; node {node_pos} can only "
                    f"read nodes 0..{node_pos - 1}"
                )
            edges.append((op_name, index))
        nodes.append(edges)
    return nodes


def parse_nb201_string(s: str) -> NB201Genotype:
    """Parse a NAS-Bench-201 architecture string.

    Args:
        s: e.g. ``"|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"``.

    Returns:
        The genotype, one list of ``(op_name, input_index)`` pairs per node.

    Raises:
        ValueError: If the string is malformed or names an unknown op or invalid input.
    """
    if not isinstance(s, str):
        raise ValueError(f"NB201 architecture string must be a str, got {type(s).__name__}")
    text = s.strip()
    if not text:
        raise ValueError("empty NB201 architecture string")
    raw_nodes: list[list[tuple[str, int]]] = []
    for node_pos, chunk in enumerate(text.split("+"), start=1):
        if len(chunk) < 2 or not (chunk.startswith("|") and chunk.endswith("|")):
            raise ValueError(
                f"malformed NB201 string {s!r}: node {node_pos} ({chunk!r}) must look like "
                "'|op~j|op~k|'"
            )
        edges: list[tuple[str, int]] = []
        for token in chunk[1:-1].split("|"):
            match = _EDGE_RE.match(token)
            if match is None:
                raise ValueError(
                    f"malformed NB201 string {s!r}: edge {token!r} in node {node_pos} "
                    "must look like 'op_name~input_index'"
                )
            edges.append((match.group(1), int(match.group(2))))
        raw_nodes.append(edges)
    return normalize_nb201_genotype(raw_nodes)


def nb201_string(genotype: str | Sequence[Sequence[Any]]) -> str:
    """Format a genotype as its NAS-Bench-201 string.

    Args:
        genotype: The genotype (validated first).

    Returns:
        The canonical string, e.g. ``"|nor_conv_3x3~0|+|skip_connect~0|none~1|"``.
    """
    nodes = normalize_nb201_genotype(genotype)
    return "+".join("|" + "|".join(f"{op}~{j}" for op, j in node) + "|" for node in nodes)


class NB201Cell(nn.Module):
    """A NAS-Bench-201 cell for a fixed genotype (channel- and size-preserving).

    Args:
        genotype: Validated genotype.
        C: Channel count.
    """

    def __init__(self, genotype: NB201Genotype, C: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList()
        self._plan: list[list[int]] = []  # per node: the input node of each of its edges
        for node in genotype:
            inputs: list[int] = []
            for op_name, index in node:
                self.edges.append(NB201_OPS.build(op_name, C, 1, True))
                inputs.append(index)
            self._plan.append(inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [x]
        edge_iter = iter(self.edges)
        for inputs in self._plan:
            outs = [next(edge_iter)(states[index]) for index in inputs]
            states.append(sum(outs[1:], outs[0]))
        return states[-1]


class ResidualReduction(nn.Module):
    """Residual block that halves the spatial size (NAS-Bench-201 reduction block).

    Main path: two ReLU-Conv-BN 3x3 (the first with stride 2). Shortcut: 2x2 average pooling
    then a 1x1 convolution. The pooling uses ``ceil_mode`` so that odd sizes match the
    main path; for even sizes it is identical to plain 2x2 pooling.

    Args:
        C_in: Input channels.
        C_out: Output channels.
    """

    def __init__(self, C_in: int, C_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(C_in, C_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(C_out, C_out, 3, 1, 1)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, stride=2, ceil_mode=True),
            nn.Conv2d(C_in, C_out, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


def nb201_stages(C: int, N: int, cell: Callable[[int], nn.Module]) -> tuple[list[nn.Module], int]:
    """The body of a NAS-Bench-201 network and its output channels: three stages of ``N``
    cells ``cell(channels)``, a :class:`ResidualReduction` doubling the channels (and halving
    the size) between two stages."""
    blocks: list[nn.Module] = []
    channels = C
    for stage in range(3):
        if stage > 0:
            blocks.append(ResidualReduction(channels, channels * 2))
            channels *= 2
        blocks.extend(cell(channels) for _ in range(N))
    return blocks, channels


class NB201Network(nn.Module):
    """The NAS-Bench-201 evaluation network for one cell genotype.

    Layout: 3x3 conv stem + BN, then three stages of ``N`` cells with ``C``, ``2C`` and
    ``4C`` channels separated by residual reduction blocks, then BN-ReLU, global average
    pooling and a linear classifier. The parameter count matches the benchmark's network
    exactly (e.g. 1,288,506 for the best CIFAR-10 cell at ``C=16, N=5``). Any input size
    of at least 8x8 works.

    Args:
        genotype: The cell, as a genotype list or its NAS-Bench-201 string.
        C: Channels of the first stage.
        N: Cells per stage.
        num_classes: Classifier outputs.
        in_channels: Image channels.

    Raises:
        ValueError: On an invalid genotype or non-positive sizes.
    """

    def __init__(
        self,
        genotype: str | Sequence[Sequence[Any]],
        *,
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        for name, value, minimum in (
            ("C", C, 1),
            ("N", N, 0),
            ("num_classes", num_classes, 1),
            ("in_channels", in_channels, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
        self.genotype = normalize_nb201_genotype(genotype)
        self.arch_str = nb201_string(self.genotype)
        self.stem = conv_bn_stem(in_channels, C)
        blocks, channels = nb201_stages(C, N, lambda c: NB201Cell(self.genotype, c))
        self.cells = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits of shape ``(batch, num_classes)``."""
        return self.classifier(self.head(self.cells(self.stem(x))))

    def extra_repr(self) -> str:
        return f"arch={self.arch_str!r}"
