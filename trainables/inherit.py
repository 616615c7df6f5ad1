"""Weight inheritance: start a mutated child from its parent's weights where they still fit.

Used when a trial restores a checkpoint whose architecture differs from its own (PBT-evolution
mutates architectures inside a live population): every parameter and buffer whose name and
shape match is copied; the rest keeps its fresh initialisation, and the optimizer's
per-parameter state (momentum, Adam moments) carries over the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


def param_names(model: nn.Module) -> list[str]:
    """Names of the parameters in the order the optimizer holds them."""
    return [name for name, p in model.named_parameters() if p.requires_grad]


def carry_optimizer_state(
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    parent_optimizer: dict[str, Any],
    parent_names: list[str] | None,
    parent_model: dict[str, torch.Tensor],
) -> int:
    """Copy the parent's per-parameter optimizer state into ``optimizer`` for every
    parameter whose name and shape fit; returns how many parameters got state."""
    if not parent_names:
        return 0
    # Optimizer state is keyed by the position of each parameter in its param groups.
    index = [i for group in parent_optimizer.get("param_groups", []) for i in group["params"]]
    by_name = {
        parent_names[pos]: parent_optimizer["state"][i]
        for pos, i in enumerate(index)
        if pos < len(parent_names) and i in parent_optimizer.get("state", {})
    }
    carried = 0
    for name, param in model.named_parameters():
        src = by_name.get(name)
        parent_param = parent_model.get(name)
        if src is None or parent_param is None or parent_param.shape != param.shape:
            continue
        optimizer.state[param] = {
            k: v.to(param.device) if torch.is_tensor(v) and v.dim() > 0 else v
            for k, v in src.items()
        }
        carried += 1
    return carried
