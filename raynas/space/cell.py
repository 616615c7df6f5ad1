"""``Cell``: a DAG whose edges (NAS-Bench-201) or node inputs (DARTS / NASNet) pick operations.

A cell has ``input_nodes`` inputs numbered ``0 .. input_nodes-1`` and ``nodes`` intermediate
nodes numbered after them. Two modes:

- ``mode="edges"`` (NAS-Bench-201): every intermediate node ``j`` has an edge from every
  earlier node ``i``, and every edge picks one op. The value is
  ``{"edge_0_1": "nor_conv_3x3", "edge_0_2": ..., "edge_1_2": ..., ...}`` (``edge_<from>_<to>``).
- ``mode="nodes"`` (DARTS): every intermediate node picks ``inputs_per_node`` distinct earlier
  nodes and one op per chosen input. The value is
  ``{"node_2": {"inputs": [0, 1], "ops": ["sep_conv_3x3", "skip_connect"]}, ...}``; inputs are
  kept sorted in the canonical form (ops move with their inputs).

The cell compiles itself into a tree of ``Choice`` / dict / list nodes and delegates to it, so
every space operation (sampling, genomes, mutation, Tune / hyperopt compilation) works on it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from raynas.space.errors import SpaceDefinitionError
from raynas.space.primitives import (
    Choice,
    Const,
    DecisionPoint,
    DictNode,
    Gene,
    ListNode,
    Node,
    PathKey,
)

CELL_MODES = ("edges", "nodes")


class Cell(Node):
    """A cell DAG whose edges or node inputs pick operations.

    Args:
        ops: Candidate operation names.
        nodes: Number of intermediate nodes.
        input_nodes: Number of cell inputs (1 for NAS-Bench-201, 2 for DARTS).
        mode: ``"edges"`` (an op per edge) or ``"nodes"`` (pick inputs, an op per input).
        inputs_per_node: Inputs each node picks in ``"nodes"`` mode.

    Example:
        >>> Cell(["none", "skip_connect", "nor_conv_3x3"], nodes=3)  # NAS-Bench-201 style
    """

    type_name = "cell"

    def __init__(
        self,
        ops: Sequence[str],
        *,
        nodes: int,
        input_nodes: int = 1,
        mode: str = "edges",
        inputs_per_node: int = 2,
    ) -> None:
        if mode not in CELL_MODES:
            raise SpaceDefinitionError(f"Cell mode must be one of {list(CELL_MODES)}, got {mode!r}")
        if isinstance(ops, str) or not ops or not all(isinstance(o, str) for o in ops):
            raise SpaceDefinitionError(f"Cell ops must be a non-empty list of names, got {ops!r}")
        if len(set(ops)) != len(ops):
            raise SpaceDefinitionError(f"Cell ops must be distinct, got {list(ops)!r}")
        for name, v in (("nodes", nodes), ("input_nodes", input_nodes)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpaceDefinitionError(f"Cell {name} must be an integer >= 1, got {v!r}")
        if mode == "nodes" and (
            not isinstance(inputs_per_node, int) or not 1 <= inputs_per_node <= input_nodes
        ):
            raise SpaceDefinitionError(
                "Cell inputs_per_node must be between 1 and input_nodes (the first node "
                f"can only pick among the inputs), got {inputs_per_node=}, {input_nodes=}"
            )
        self.ops = list(ops)
        self.nodes, self.input_nodes, self.mode = nodes, input_nodes, mode
        self.inputs_per_node = inputs_per_node
        self.tree = self._compile()

    @property
    def node_ids(self) -> list[int]:
        """Ids of the intermediate nodes."""
        return list(range(self.input_nodes, self.input_nodes + self.nodes))

    def edge_names(self) -> list[str]:
        """Edge keys in ``"edges"`` mode, ordered by target node then source."""
        return [f"edge_{i}_{j}" for j in self.node_ids for i in range(j)]

    def _compile(self) -> DictNode:
        if self.mode == "edges":
            return DictNode({e: Choice(self.ops) for e in self.edge_names()})
        fields: dict[str, Any] = {}
        for j in self.node_ids:
            # Constants, so a bad pair is reported as a whole ("[2, 2] is not one of ...").
            pairs = [Const(list(c)) for c in itertools.combinations(range(j), self.inputs_per_node)]
            fields[f"node_{j}"] = DictNode(
                {
                    "inputs": Choice(pairs),
                    "ops": ListNode([Choice(self.ops) for _ in range(self.inputs_per_node)]),
                }
            )
        return DictNode(fields)

    def _sorted(self, value: Any) -> Any:
        """Sort each node's inputs (ops follow) so equal cells have one form."""
        if self.mode != "nodes" or not isinstance(value, Mapping):
            return value
        out = dict(value)
        for key, node in value.items():
            if (
                isinstance(node, Mapping)
                and isinstance(node.get("inputs"), list | tuple)
                and isinstance(node.get("ops"), list | tuple)
                and len(node["inputs"]) == len(node["ops"])
            ):
                try:
                    pairs = sorted(zip(node["inputs"], node["ops"]), key=lambda p: p[0])
                except TypeError:
                    continue
                out[key] = {
                    **node,
                    "inputs": [p[0] for p in pairs],
                    "ops": [p[1] for p in pairs],
                }
        return out

    # Delegation to the compiled tree -----------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Any:
        return self.tree.sample(rng)

    def validate(self, value: Any, path: str) -> None:
        self.tree.validate(self._sorted(value), path)

    def canonical(self, value: Any) -> Any:
        return self.tree.canonical(self._sorted(value))

    def default(self) -> Any:
        return self.tree.default()

    @property
    def cardinality(self) -> int | None:
        return self.tree.cardinality

    def enumerate(self) -> Iterator[Any]:
        return self.tree.enumerate()

    def genes(self, path: str) -> list[Gene]:
        return self.tree.genes(path)

    def encode(self, value: Any, out: list[float], mask: list[bool], active: bool) -> None:
        self.tree.encode(self._sorted(value), out, mask, active)

    def decode(self, genome: Iterator[float]) -> Any:
        return self.tree.decode(genome)

    @property
    def feature_size(self) -> int:
        return self.tree.feature_size

    def features(self, value: Any, out: list[float]) -> None:
        self.tree.features(self._sorted(value), out)

    def decisions(self, value: Any, path: tuple[PathKey, ...]) -> list[DecisionPoint]:
        return self.tree.decisions(self._sorted(value), path)

    def crossover(self, a: Any, b: Any, rng: np.random.Generator) -> Any:
        return self.tree.crossover(self._sorted(a), self._sorted(b), rng)

    def from_external(self, value: Any) -> Any:
        return self._sorted(self.tree.from_external(value))

    def to_dict(self) -> Any:
        d: dict[str, Any] = {
            "_type": "cell",
            "ops": list(self.ops),
            "nodes": self.nodes,
            "input_nodes": self.input_nodes,
            "mode": self.mode,
        }
        if self.mode == "nodes":
            d["inputs_per_node"] = self.inputs_per_node
        return d
