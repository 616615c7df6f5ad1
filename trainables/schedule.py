"""The optimizer and learning-rate schedule every trainable builds from its ``train`` section.

``classify`` and the one-shot trainables share these, so ``train.optimizer``, ``lr``,
``momentum``, ``nesterov``, ``weight_decay`` and ``warmup_epochs`` mean the same everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

__all__ = ["cosine_schedule", "make_lr_schedule", "make_optimizer"]


def cosine_schedule(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """``step -> lr factor``: linear warm-up, then cosine decay to 0 at ``total_steps``.

    Example:
        >>> torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_schedule(1000, 50))
    """

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def make_optimizer(
    params: Iterable[torch.nn.Parameter], train: Mapping[str, Any]
) -> torch.optim.Optimizer:
    """``train.optimizer`` over ``params``: ``sgd`` (Nesterov if ``momentum > 0``) or ``adamw``."""
    params = [p for p in params if p.requires_grad]
    if train.get("optimizer", "sgd") == "adamw":
        return torch.optim.AdamW(
            params, lr=float(train["lr"]), weight_decay=float(train.get("weight_decay", 0.0))
        )
    momentum = float(train.get("momentum", 0.9))
    return torch.optim.SGD(
        params,
        lr=float(train["lr"]),
        momentum=momentum,
        weight_decay=float(train.get("weight_decay", 0.0)),
        nesterov=bool(train.get("nesterov", True)) and momentum > 0,
    )


def make_lr_schedule(
    optimizer: torch.optim.Optimizer, steps_per_epoch: int, train: Mapping[str, Any]
) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up then cosine decay, stepped once per optimizer step.

    Args:
        optimizer: The optimizer whose lr follows the schedule.
        steps_per_epoch: Optimizer steps the trainable really takes per epoch (the schedule
            reaches 0 after ``train.epochs`` such epochs).
        train: The ``train`` section (``epochs``, ``warmup_epochs``).
    """
    steps = max(1, int(steps_per_epoch)) * int(train["epochs"])
    warmup = int(float(train.get("warmup_epochs", 0)) * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_schedule(steps, warmup))
