"""Weight inheritance: start a mutated child from its parent's weights where they still fit.

Used when a trial restores a checkpoint whose architecture differs from its own (PBT-evolution
mutates architectures inside a live population): every parameter and buffer whose name and
shape match is copied; the rest keeps its fresh initialisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Inheritance:
    """What a child took from its parent.

    Attributes:
        tensors: Parameters and buffers copied.
        params: Scalars of *parameters* copied (buffers not counted).
        total_params: Scalars of the child's parameters.
    """

    tensors: int
    params: int
    total_params: int

    @property
    def fraction(self) -> float:
        """Share of the child's parameters inherited (1.0 for an identical architecture)."""
        return self.params / self.total_params if self.total_params else 1.0


def inherit_weights(model: nn.Module, parent_state: Mapping[str, torch.Tensor]) -> Inheritance:
    """Copy every tensor of ``parent_state`` whose name and shape fit into ``model``."""
    own = model.state_dict()
    param_names = {name for name, _ in model.named_parameters()}
    copied: dict[str, torch.Tensor] = {}
    params = 0
    for name, tensor in own.items():
        src = parent_state.get(name)
        if src is None or tuple(src.shape) != tuple(tensor.shape) or src.dtype != tensor.dtype:
            continue
        copied[name] = src.to(tensor.device)
        if name in param_names:
            params += tensor.numel()
    model.load_state_dict(copied, strict=False)
    total = sum(p.numel() for p in model.parameters())
    return Inheritance(tensors=len(copied), params=params, total_params=total)
