"""The learning-rate schedule every trainable uses: linear warm-up, then cosine decay."""

from __future__ import annotations

import math
from collections.abc import Callable


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
