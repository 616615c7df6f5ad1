"""Model-building check: each arch builds a model that runs forward and backward."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from raynas.space import Space
from raynas.testing.spaces._common import (
    _fail,
)


def check_build_forward_backward(
    space: Space,
    archs: Sequence[Any],
    *,
    input_shape: Sequence[int],
    batch_size: int = 2,
    seed: int = 0,
    num_threads: int | None = 1,
    **build_kwargs: Any,
) -> None:
    """Each arch builds a model that runs forward and backward with finite values.

    Args:
        space: A space with a model builder.
        archs: Archs to build.
        input_shape: Shape of one input without the batch dimension, e.g. ``(3, 16, 16)``.
        batch_size: Inputs per forward pass.
        seed: Seed of the random input.
        num_threads: torch intra-op threads during the check (restored afterwards). One
            thread is fastest for these tiny models and immune to OpenMP oversubscription on a
            busy CI machine; None keeps the current setting.
        **build_kwargs: Passed to ``space.build``; must include ``num_classes``.

    Asserts: ``space.build(arch, **build_kwargs)`` is an ``nn.Module`` with parameters; in
    training mode its output has shape ``(batch_size, num_classes)`` and is finite; the loss
    (plus ``aux_logits`` when the model sets them) backpropagates to finite gradients, not
    all zero; in eval mode the output shape is the same.
    """
    import torch

    num_classes = build_kwargs.get("num_classes")
    if not isinstance(num_classes, int):
        raise TypeError("check_build_forward_backward needs num_classes=<int> in build_kwargs")
    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        x = torch.randn((batch_size, *input_shape), generator=torch.Generator().manual_seed(seed))
        for arch in archs:
            _forward_backward(space, arch, x, num_classes, build_kwargs)
    finally:
        torch.set_num_threads(threads)


def _forward_backward(
    space: Space, arch: Any, x: Any, num_classes: int, build_kwargs: Mapping[str, Any]
) -> None:
    import torch

    expected = (x.shape[0], num_classes)
    model = space.build(arch, **build_kwargs)
    if not isinstance(model, torch.nn.Module):
        raise _fail(space, f"build() returned {type(model).__name__}, not nn.Module", arch)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise _fail(space, "the built model has no trainable parameters", arch)
    model.train()
    out = model(x)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise _fail(space, f"output {shape} must be {expected}", arch)
    if not torch.isfinite(out).all():
        raise _fail(space, "the output has NaN or inf", arch)
    loss = out.square().mean()
    aux = getattr(model, "aux_logits", None)
    if isinstance(aux, torch.Tensor):
        loss = loss + aux.square().mean()
    loss.backward()
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or not all(bool(torch.isfinite(g).all()) for g in grads):
        raise _fail(space, "gradients are missing or not finite", arch)
    if not any(bool(g.abs().sum() > 0) for g in grads):
        raise _fail(space, "every gradient is zero", arch)
    model.eval()
    with torch.no_grad():
        shape = tuple(model(x).shape)
    if shape != expected:
        raise _fail(space, f"eval output {shape} must be {expected}", arch)
