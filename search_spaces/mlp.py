"""``mlp``: multi-layer perceptrons for tabular data: depth 1-6, a width per layer, activation,
dropout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from raynas.registry import register_space
from raynas.space import Choice, Repeat, Space, SpaceDefinitionError

ACTIVATIONS = ("relu", "gelu", "tanh", "silu")


@register_space("mlp", description="MLP: depth 1-6, width per layer, activation, dropout")
class MLPSpace(Space):
    """An MLP space for tabular data: depth (``Repeat`` of layers), width per layer,
    activation and dropout."""

    def __init__(
        self,
        *,
        min_depth: int = 1,
        max_depth: int = 6,
        widths: Sequence[int] = (16, 32, 64, 128, 256),
        activations: Sequence[str] = ("relu", "gelu", "tanh"),
        dropouts: Sequence[float] = (0.0, 0.1, 0.2, 0.3),
    ) -> None:
        bad = [a for a in activations if a not in ACTIVATIONS]
        if bad:
            raise SpaceDefinitionError(f"mlp activations {bad} unknown; use {list(ACTIVATIONS)}")
        super().__init__(
            {
                "layers": Repeat({"width": Choice(list(widths))}, min=min_depth, max=max_depth),
                "activation": Choice(list(activations)),
                "dropout": Choice([float(d) for d in dropouts]),
            },
            name="mlp",
            description="MLP: depth 1-6, width per layer, activation, dropout",
        )

    def build(
        self,
        arch: Any,
        *,
        num_classes: int,
        in_features: int | None = None,
        in_channels: int | None = None,
    ) -> Any:
        """The MLP for ``arch``; ``in_features`` is the input width (``in_channels`` alias)."""
        import torch.nn as nn

        width_in = in_features if in_features is not None else in_channels
        if width_in is None:
            raise TypeError("mlp.build needs in_features (the number of input features)")
        arch = self.canonical(arch)
        act = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}
        layers: list[nn.Module] = [nn.Flatten()]
        for layer in arch["layers"]:
            layers += [nn.Linear(width_in, layer["width"]), act[arch["activation"]]()]
            if arch["dropout"] > 0:
                layers.append(nn.Dropout(arch["dropout"]))
            width_in = layer["width"]
        layers.append(nn.Linear(width_in, num_classes))
        return nn.Sequential(*layers)
