"""A plugin space whose children fail on purpose: raise, diverge, run out of memory, or (with
``die_after``) have their process killed once mid-training.

Loaded through the experiment's ``plugins:`` list (driver and Ray workers import it).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import torch
from torch import nn

from raynas.registry import SPACES, register_space
from raynas.space import Choice, Space

BEHAVIOURS = ("ok", "raise", "nan", "oom")


class _Child(nn.Module):
    def __init__(
        self,
        behaviour: str,
        in_channels: int,
        num_classes: int,
        die_after: int = 0,
        marker: str | None = None,
    ) -> None:
        super().__init__()
        self.behaviour = behaviour
        self.net = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
        self.net(torch.zeros(1, in_channels, 8, 8))
        self.die_after, self.marker, self.steps = die_after, marker, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.behaviour == "oom" and self.training:
            raise MemoryError("simulated: the child does not fit in memory")
        if self.die_after and self.training:
            self.steps += 1
            # SIGKILL of the trial's own process after `die_after` training batches, once per
            # `marker` file (a node loss or an OOM kill mid-epoch, as Ray sees it).
            if self.steps > self.die_after and self.marker and not Path(self.marker).exists():
                Path(self.marker).touch()
                os.kill(os.getpid(), signal.SIGKILL)
        out = self.net(x)
        if self.behaviour == "nan" and self.training:
            out = out * float("nan")
        return out


class FaultySpace(Space):
    """One choice, ``behaviour``: how the child fails (``ok`` trains normally)."""

    def __init__(
        self, behaviours: list[str] | None = None, die_after: int = 0, marker: str | None = None
    ) -> None:
        super().__init__({"behaviour": Choice(list(behaviours or BEHAVIOURS))}, name="faulty")
        self.die_after, self.marker = die_after, marker

    def build(self, arch: Any, *, num_classes: int, in_channels: int = 3) -> nn.Module:
        if arch["behaviour"] == "raise":
            raise RuntimeError("deliberate failure while building the child")
        return _Child(arch["behaviour"], in_channels, num_classes, self.die_after, self.marker)


if "faulty" not in SPACES:  # a second import (driver and workers) registers nothing new
    register_space("faulty", description="children that fail on purpose (tests)")(FaultySpace)
