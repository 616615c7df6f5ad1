"""``darts``: the DARTS cell space (Liu et al., ICLR 2019).

A normal and a reduction cell, each with 2 input nodes and 4 intermediate nodes; every
intermediate node picks 2 distinct earlier nodes and one of the 7 DARTS ops per input. The
arch is ``{"normal": {"node_2": {"inputs": [0, 1], "ops": [op, op]}, ... "node_5": ...},
"reduce": {...}}``. ``to_genotype`` / ``from_genotype`` convert to DARTS' ``Genotype``
notation, and ``build_genotype`` builds any published genotype (NASNet-A, AmoebaNet-A, ...)
including ones outside the searchable space.
"""

from __future__ import annotations

from typing import Any

from raynas.registry import register_space
from raynas.space import Cell, InvalidArchitecture, Space, SpaceDefinitionError

DARTS_OPS = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
CELL_NODES = (2, 3, 4, 5)


@register_space("darts", description="DARTS normal + reduction cells: 4 nodes x 2 inputs x 7 ops")
class DartsSpace(Space):
    """The DARTS cell space; ``build`` gives the DARTS CIFAR evaluation network."""

    def __init__(
        self,
        *,
        C: int = 36,
        layers: int = 20,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
    ) -> None:
        for name, v in (("C", C), ("layers", layers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpaceDefinitionError(f"darts {name} must be an integer >= 1, got {v!r}")
        if layers < 3:
            raise SpaceDefinitionError(f"darts layers must be >= 3 (two reductions), got {layers}")
        if not 0.0 <= float(drop_path_prob) < 1.0:
            raise SpaceDefinitionError(
                f"darts drop_path_prob must be in [0, 1), got {drop_path_prob}"
            )
        self.C, self.layers = C, layers
        self.auxiliary, self.drop_path_prob = bool(auxiliary), float(drop_path_prob)
        cell = {"mode": "nodes", "nodes": 4, "input_nodes": 2, "inputs_per_node": 2}
        super().__init__(
            {"normal": Cell(DARTS_OPS, **cell), "reduce": Cell(DARTS_OPS, **cell)},  # type: ignore[arg-type]
            name="darts",
            description="DARTS normal + reduction cells: 4 nodes x 2 inputs x 7 ops",
        )

    def to_genotype(self, arch: Any) -> Any:
        """DARTS' ``Genotype(normal=[(op, input), ...], normal_concat=[2..5], reduce=..., ...)``."""
        from search_spaces.models.genotypes import Genotype

        arch = self.canonical(arch)
        pairs = {
            kind: [
                (op, src)
                for j in CELL_NODES
                for src, op in zip(
                    arch[kind][f"node_{j}"]["inputs"], arch[kind][f"node_{j}"]["ops"]
                )
            ]
            for kind in ("normal", "reduce")
        }
        return Genotype(
            normal=pairs["normal"],
            normal_concat=list(CELL_NODES),
            reduce=pairs["reduce"],
            reduce_concat=list(CELL_NODES),
        )

    def from_genotype(self, genotype: Any) -> dict[str, Any]:
        """The arch of a genotype (a ``Genotype``, a dict with its keys, or its string form).

        Raises:
            InvalidArchitecture: the genotype is outside this space (other ops, repeated
                inputs, other concat); use :meth:`build_genotype` to build it anyway.
        """
        from search_spaces.models.genotypes import parse_genotype

        g = parse_genotype(genotype)
        arch: dict[str, Any] = {}
        for kind in ("normal", "reduce"):
            pairs = list(getattr(g, kind))
            concat = list(getattr(g, f"{kind}_concat"))
            if concat != list(CELL_NODES):
                raise InvalidArchitecture(
                    f"arch.{kind}", f"concat {concat} must be {list(CELL_NODES)} in this space"
                )
            if len(pairs) != 2 * len(CELL_NODES):
                raise InvalidArchitecture(
                    f"arch.{kind}",
                    f"needs {2 * len(CELL_NODES)} (op, input) pairs, got {len(pairs)}",
                )
            arch[kind] = {
                f"node_{j}": {
                    "inputs": [pairs[2 * k][1], pairs[2 * k + 1][1]],
                    "ops": [pairs[2 * k][0], pairs[2 * k + 1][0]],
                }
                for k, j in enumerate(CELL_NODES)
            }
        return self.canonical(arch)

    def to_string(self, arch: Any) -> str:
        g = self.to_genotype(arch)
        return (
            f"Genotype(normal={g.normal}, normal_concat={list(g.normal_concat)}, "
            f"reduce={g.reduce}, reduce_concat={list(g.reduce_concat)})"
        )

    def from_string(self, text: str) -> dict[str, Any]:
        return self.from_genotype(text)

    def build_genotype(self, genotype: Any, *, num_classes: int, in_channels: int = 3) -> Any:
        """Build any genotype in DARTS notation, inside this space or not."""
        from search_spaces.models.darts_net import DARTSNetwork
        from search_spaces.models.genotypes import parse_genotype

        return DARTSNetwork(
            parse_genotype(genotype),
            C=self.C,
            num_classes=num_classes,
            layers=self.layers,
            auxiliary=self.auxiliary,
            drop_path_prob=self.drop_path_prob,
            in_channels=in_channels,
        )

    def build(self, arch: Any, *, num_classes: int, in_channels: int = 3) -> Any:
        return self.build_genotype(
            self.to_genotype(arch), num_classes=num_classes, in_channels=in_channels
        )
