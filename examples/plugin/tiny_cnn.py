"""A plugin space: its decisions in ``tiny_cnn_space.yaml``, its model builder here.

An experiment loads it with ``plugins: [tiny_cnn]``; the config's folder is on the import
path of the driver and of every Ray worker, so this file needs no installing. Any search
strategy works on it (they see the space's genome), and the ``classify`` trainable trains
the networks :meth:`TinyCNNSpace.build` returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from raynas.registry import SPACES, register_space
from raynas.space import Space

DECLARATION = Path(__file__).with_name("tiny_cnn_space.yaml")
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


class TinyCNNSpace(Space):
    """The YAML declaration's decisions, and a builder that turns one into a network."""

    def __init__(self) -> None:
        declared = Space.from_yaml(DECLARATION)
        super().__init__(declared.root, name=declared.name, description=declared.description)

    def build(self, arch: Any, *, num_classes: int, in_channels: int = 3) -> nn.Module:
        arch = self.canonical(arch)
        act = ACTIVATIONS[arch["activation"]]
        layers: list[nn.Module] = []
        width = in_channels
        for block in arch["blocks"]:
            k = block["kernel"]
            layers += [
                nn.Conv2d(width, block["width"], k, padding=k // 2, bias=False),
                nn.BatchNorm2d(block["width"]),
                act(),
            ]
            width = block["width"]
        pool = nn.AdaptiveAvgPool2d(1) if arch["pool"] == "avg" else nn.AdaptiveMaxPool2d(1)
        return nn.Sequential(*layers, pool, nn.Flatten(), nn.Linear(width, num_classes))


if "tiny_cnn" not in SPACES:  # a module imported twice (driver and worker) registers once

    @register_space("tiny_cnn", description="a small CNN, 1-3 conv blocks (plugin example)")
    def tiny_cnn() -> TinyCNNSpace:
        return TinyCNNSpace()
