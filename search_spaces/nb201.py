"""``nb201``: the NAS-Bench-201 cell space (Dong & Yang, ICLR 2020).

One cell with 4 nodes and 6 edges, each edge one of 5 ops: 5**6 = 15,625 architectures.
The arch is ``{"cell": {"edge_0_1": op, "edge_0_2": op, "edge_1_2": op, "edge_0_3": op,
"edge_1_3": op, "edge_2_3": op}}``; its canonical string is NAS-Bench-201's
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``, so results compare with the published tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from raynas.registry import register_space
from raynas.space import Cell, InvalidArchitecture, Space, SpaceDefinitionError

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


@register_space("nb201", description="NAS-Bench-201 cell: 6 edges x 5 ops (15,625 archs)")
class NB201Space(Space):
    """The NAS-Bench-201 space with stem width ``C``, ``N`` cells per stage, optional op
    subset; ``build`` gives the NAS-Bench-201 evaluation network."""

    def __init__(self, *, C: int = 16, N: int = 5, ops: Sequence[str] | None = None) -> None:
        ops = list(NB201_OPS if ops is None else ops)
        unknown = [o for o in ops if o not in NB201_OPS]
        if unknown:
            raise SpaceDefinitionError(
                f"nb201 ops {unknown} are unknown; choose a subset of {list(NB201_OPS)}"
            )
        for name, v in (("C", C), ("N", N)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpaceDefinitionError(f"nb201 {name} must be an integer >= 1, got {v!r}")
        self.C, self.N, self.ops = C, N, ops
        self.cell = Cell(ops, nodes=3, input_nodes=1, mode="edges")
        super().__init__(
            {"cell": self.cell},
            name="nb201",
            description="NAS-Bench-201 cell: 6 edges x 5 ops (15,625 archs)",
        )

    def genotype(self, arch: Any) -> list[list[tuple[str, int]]]:
        """NAS-Bench-201 genotype: per node ``j`` the list of ``(op, input)`` for ``i < j``."""
        cell = self.canonical(arch)["cell"]
        return [[(cell[f"edge_{i}_{j}"], i) for i in range(j)] for j in (1, 2, 3)]

    def to_string(self, arch: Any) -> str:
        return "+".join(
            "|" + "|".join(f"{op}~{i}" for op, i in node) + "|" for node in self.genotype(arch)
        )

    def from_string(self, text: str) -> dict[str, Any]:
        if not isinstance(text, str):
            raise InvalidArchitecture("arch", f"must be a NAS-Bench-201 string, got {text!r}")
        nodes = text.strip().split("+")
        cell: dict[str, Any] = {}
        if len(nodes) != 3:
            raise InvalidArchitecture(
                "arch", f"{text!r} must have 3 nodes separated by '+', like {EXAMPLE!r}"
            )
        for j, node in enumerate(nodes, start=1):
            parts = node.strip("|").split("|")
            if not node.startswith("|") or not node.endswith("|") or len(parts) != j:
                raise InvalidArchitecture(
                    "arch", f"node {j} of {text!r} must list {j} '|op~input|' entries"
                )
            for part in parts:
                op, _, src = part.partition("~")
                if not src.isdigit() or not 0 <= int(src) < j:
                    raise InvalidArchitecture(
                        "arch", f"{part!r} in {text!r} needs an input index below {j}"
                    )
                cell[f"edge_{int(src)}_{j}"] = op
        return self.canonical({"cell": cell})

    def build(self, arch: Any, *, num_classes: int, in_channels: int = 3) -> Any:
        from search_spaces.models.nb201_net import NB201Network

        return NB201Network(
            self.genotype(arch),
            C=self.C,
            N=self.N,
            num_classes=num_classes,
            in_channels=in_channels,
        )


EXAMPLE = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
