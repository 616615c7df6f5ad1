"""``mobilenet``: a macro chain space in the style of MnasNet / ProxylessNAS / Once-for-All.

Per stage a depth (``Repeat``), per block a kernel size {3, 5, 7}, an expansion ratio
{3, 4, 6} and optional squeeze-and-excitation; one width multiplier for the whole network.
The stage plan (output channels, stride) is a space argument; the model is an
inverted-residual network with global pooling, so any input size >= 8x8 works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from raynas.registry import register_space
from raynas.space import Choice, Repeat, Space, SpaceDefinitionError

#: (out_channels, stride) per stage, suited to 32x32 inputs.
DEFAULT_STAGES: tuple[tuple[int, int], ...] = ((24, 1), (32, 2), (64, 2), (96, 1), (160, 2))


@register_space(
    "mobilenet", description="MobileNet-style chain: depth, kernel, expansion, SE per stage, width"
)
class MobileNetSpace(Space):
    """A MobileNet-style macro space: depth per stage, kernel / expansion / SE per block, and
    a width multiplier."""

    def __init__(
        self,
        *,
        stages: Sequence[Sequence[int]] = DEFAULT_STAGES,
        min_depth: int = 1,
        max_depth: int = 4,
        kernels: Sequence[int] = (3, 5, 7),
        expands: Sequence[int] = (3, 4, 6),
        se: bool = True,
        width_mults: Sequence[float] = (0.75, 1.0, 1.25),
    ) -> None:
        try:
            self.stages = [(int(c), int(s)) for c, s in stages]
        except (TypeError, ValueError) as err:
            raise SpaceDefinitionError(
                f"mobilenet stages must be (out_channels, stride) pairs, got {stages!r}"
            ) from err
        if not self.stages or any(c < 1 or s not in (1, 2) for c, s in self.stages):
            raise SpaceDefinitionError(
                f"mobilenet stages need out_channels >= 1 and stride 1 or 2, got {stages!r}"
            )
        bad = [k for k in kernels if k not in (3, 5, 7)]
        if bad:
            raise SpaceDefinitionError(f"mobilenet kernels {bad} unsupported; use 3, 5 or 7")
        block: dict[str, Any] = {
            "kernel": Choice(list(kernels)),
            "expand": Choice(list(expands)),
            "se": Choice([False, True]) if se else False,
        }
        super().__init__(
            {
                "width_mult": Choice([float(w) for w in width_mults]),
                "stages": [Repeat(block, min=min_depth, max=max_depth) for _ in self.stages],
            },
            name="mobilenet",
            description="MobileNet-style chain: depth, kernel, expansion, SE per stage, width",
        )

    def build(self, arch: Any, *, num_classes: int, in_channels: int = 3) -> Any:
        from search_spaces.models.mobilenet_net import MobileNetNetwork

        arch = self.canonical(arch)
        blocks = [
            {"out_channels": c, "stride": s, "layers": layers}
            for (c, s), layers in zip(self.stages, arch["stages"])
        ]
        return MobileNetNetwork(
            blocks,
            width_mult=arch["width_mult"],
            num_classes=num_classes,
            in_channels=in_channels,
        )
