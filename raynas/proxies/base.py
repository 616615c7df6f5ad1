"""Helpers every proxy shares: the working copy, prunable weights, the invalid value."""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Batch = tuple[Tensor, Tensor]
Loss = Callable[[Tensor, Tensor], Tensor]
#: A registered proxy: ``proxy(model, batch, loss, *, input_shape=None, seed=0) -> float``.
Proxy = Callable[..., float]
#: What a proxy decorator calls: ``(model, batch, loss, input_shape, seed) -> float``.
_Call = Callable[[nn.Module, Batch | None, Loss | None, tuple[int, ...] | None, int], float]

#: Layers whose ``weight`` a weight-based proxy scores (the zero-cost reference's choice).
PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
INVALID = math.nan


def working_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with gradients cleared and in-place ReLUs made out-of-place.

    In-place activations would overwrite the outputs that hooks keep (fisher, nwot).
    """
    net = copy.deepcopy(model)
    for m in net.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
        for p in m.parameters(recurse=False):
            p.grad = None
    return net


def prunable(net: nn.Module) -> list[nn.Module]:
    """Conv and linear layers whose weight requires grad, in module order."""
    return [m for m in net.modules() if isinstance(m, PRUNABLE) and _weight(m).requires_grad]


def _weight(m: nn.Module) -> Tensor:
    w = m.weight  # conv and linear layers always have one
    if not isinstance(w, Tensor):
        raise TypeError(f"{type(m).__name__} has no weight tensor")
    return w


def weights(layers: list[nn.Module]) -> list[Tensor]:
    """The ``weight`` tensor of each layer."""
    return [_weight(m) for m in layers]


def loss_fn(loss: Loss | None) -> Loss:
    """The given loss, or cross-entropy."""
    return loss if loss is not None else F.cross_entropy


def input_shape_of(batch: Batch | None, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """Shape of one input: from the batch when there is one, else ``input_shape``."""
    if batch is not None:
        return tuple(batch[0].shape[1:])
    if input_shape is None:
        raise ValueError("input_shape: needed when no batch is given")
    return tuple(int(d) for d in input_shape)


def device_of(net: nn.Module) -> torch.device:
    """Device of the first parameter or buffer (CPU for an empty module)."""
    for t in (*net.parameters(), *net.buffers()):
        return t.device
    return torch.device("cpu")


def on_device(batch: Batch, net: nn.Module) -> Batch:
    """The batch on the network's device, inputs as float (detached)."""
    dev = device_of(net)
    x, y = batch
    return x.detach().to(dev, torch.float32), y.detach().to(dev)


def finite(value: Any) -> float:
    """``float(value)`` if finite, else :data:`INVALID` (``nan``)."""
    try:
        v = float(value)
    except (TypeError, ValueError, RuntimeError):
        return INVALID
    return v if math.isfinite(v) else INVALID


def replace_modules(
    net: nn.Module, match: Callable[[nn.Module], bool], make: Callable[[], nn.Module]
) -> None:
    """Replace every submodule ``match`` accepts by ``make()`` (in place, on a copy)."""
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if match(child):
                setattr(parent, name, make())


def backward_loss(net: nn.Module, batch: Batch, loss: Loss | None) -> Tensor:
    """Train-mode forward of ``batch``, loss, backward; returns the loss."""
    x, y = on_device(batch, net)
    net.train()
    net.zero_grad(set_to_none=True)
    value = loss_fn(loss)(net(x), y)
    value.backward()
    return value


def data_proxy(fn: Callable[[nn.Module, Batch, Loss | None], float]) -> Proxy:
    """Give ``fn(net, batch, loss)`` the registry's signature (:data:`Proxy`).

    The proxy raises ``ValueError`` without a batch; ``fn`` gets a :func:`working_copy` of
    the model, the batch and the loss (None: cross-entropy); ``input_shape`` and ``seed``
    are unused.
    """

    def call(
        model: nn.Module, batch: Batch | None, loss: Loss | None, _shape: object, _seed: int
    ) -> float:
        if batch is None:
            raise ValueError(f"batch: {fn.__name__} needs (inputs, labels)")
        return fn(working_copy(model), batch, loss)

    return _with_signature(fn, call)


def datafree_proxy(fn: Callable[[nn.Module, tuple[int, ...], int], float]) -> Proxy:
    """Give ``fn(model, input_shape, seed)`` the registry's signature (:data:`Proxy`).

    ``fn`` gets the caller's model (not a copy: it makes one if it changes it), one input's
    shape (:func:`input_shape_of` the batch or ``input_shape``) and the seed; the loss and
    the labels are unused.
    """
    return _with_signature(
        fn, lambda model, batch, _loss, shape, seed: fn(model, input_shape_of(batch, shape), seed)
    )


def _with_signature(fn: Callable[..., float], call: _Call) -> Proxy:
    """``call`` behind the registry's signature, named and documented as ``fn``."""

    @functools.wraps(fn)
    def proxy(
        model: nn.Module,
        batch: Batch | None = None,
        loss: Loss | None = None,
        *,
        input_shape: tuple[int, ...] | None = None,
        seed: int = 0,
    ) -> float:
        return call(model, batch, loss, input_shape, seed)

    return proxy
