"""A plugin space whose children fail on purpose: raise, diverge, or run out of memory.

Loaded through the experiment's ``plugins:`` list (driver and Ray workers import it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from raynas.registry import SPACES, register_space
from raynas.space import Choice, Space

BEHAVIOURS = ("ok", "raise", "nan", "oom")


class _Child(nn.Module):
    def __init__(self, behaviour: str, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.behaviour = behaviour
        self.net = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
        self.net(torch.zeros(1, in_channels, 8, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.behaviour == "oom" and self.training:
            raise MemoryError("simulated: the child does not fit in memory")
        out = self.net(x)
        if self.behaviour == "nan" and self.training:
            out = out * float("nan")
        return out


class FaultySpace(Space):
    def __init__(self, behaviours: list[str] | None = None) -> None:
        super().__init__({"behaviour": Choice(list(behaviours or BEHAVIOURS))}, name="faulty")

    def build(self, arch: Any, *, num_classes: int, in_channels: int = 3) -> nn.Module:
        if arch["behaviour"] == "raise":
            raise RuntimeError("deliberate failure while building the child")
        return _Child(arch["behaviour"], in_channels, num_classes)


if "faulty" not in SPACES:

    @register_space("faulty", description="children that fail on purpose (tests)")
    def faulty(behaviours: list[str] | None = None) -> FaultySpace:
        return FaultySpace(behaviours)
