"""One-batch gradient proxies: snip, grasp, grad_norm, fisher, zico.

Each runs the working copy ``net`` in train mode on ``batch`` ``(inputs, labels)`` with
``loss(logits, labels)`` (default cross-entropy) and scores the prunable weights (conv and
linear ``weight``; see :mod:`raynas.proxies`); :func:`~raynas.proxies.base.data_proxy` gives
it the registry's signature.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import Tensor, autograd, nn

from raynas.proxies.base import (
    INVALID,
    Batch,
    Loss,
    backward_loss,
    data_proxy,
    finite,
    loss_fn,
    on_device,
    prunable,
    weights,
)

#: ZiCo's samples of the gradient: the batch is split into this many chunks (as NASLib's
#: ZiCo port does with one batch; the paper's code uses two batches).
ZICO_CHUNKS = 2


@data_proxy
def snip(net: nn.Module, batch: Batch, loss: Loss | None) -> float:
    """SNIP connection sensitivity (Lee et al., ICLR 2019).

    "SNIP: Single-shot Network Pruning based on Connection Sensitivity", Eq. 6 before
    normalisation: ``sum over prunable weights |dL/dtheta * theta|`` (the gradient of the
    loss with respect to a multiplicative mask of ones, as the zero-cost reference computes).

    Returns:
        The score (>= 0), or ``nan`` without prunable weights or when not finite.
    """
    return _summed(net, batch, loss, lambda w, g: float((g * w.detach()).abs().sum()))


@data_proxy
def grad_norm(net: nn.Module, batch: Batch, loss: Loss | None) -> float:
    """Gradient norm (Abdelfattah et al., ICLR 2021, "Zero-Cost Proxies for Lightweight NAS").

    ``sum over prunable layers ||dL/dW||_2``: the Euclidean norm of each layer's weight
    gradient, summed over layers.

    Returns:
        The score (>= 0), or ``nan`` without prunable weights or when not finite.
    """
    return _summed(net, batch, loss, lambda _w, g: float(g.norm()))


@data_proxy
def grasp(net: nn.Module, batch: Batch, loss: Loss | None) -> float:
    """GraSP gradient-signal preservation (Wang et al., ICLR 2020).

    "Picking Winning Tickets Before Training by Preserving Gradient Flow", Eq. 8:
    ``S = -theta * (H g)`` summed over prunable weights, with ``g = dL/dtheta`` (detached)
    and the Hessian-vector product ``H g = d(g^T dL/dtheta)/dtheta`` by double backprop, both
    on the whole batch (the reference's ``split_data=1``, temperature 1).

    Returns:
        The score (0 when the loss does not depend on the weights), or ``nan`` without
        prunable weights or when not finite.
    """
    ws = weights(prunable(net))
    if not ws:
        return INVALID
    x, y = on_device(batch, net)
    lf = loss_fn(loss)
    net.train()
    g = autograd.grad(lf(net(x), y), ws, allow_unused=True)
    grad_f = autograd.grad(lf(net(x), y), ws, create_graph=True, allow_unused=True)
    terms = [
        (gi.detach() * fi).sum()
        for gi, fi in zip(g, grad_f)
        if gi is not None and fi is not None and fi.requires_grad
    ]
    if not terms:
        return 0.0
    hg = autograd.grad(sum(terms[1:], terms[0]), ws, allow_unused=True)
    return finite(sum(float((-w.detach() * h).sum()) for w, h in zip(ws, hg) if h is not None))


@data_proxy
def fisher(net: nn.Module, batch: Batch, loss: Loss | None) -> float:
    """Fisher information of activations (Turner et al., ICLR 2020, "BlockSwap"; as
    Abdelfattah et al. 2021 compute it).

    On the output ``a`` of every prunable (conv or linear) layer, taken by a forward hook
    with its gradient ``g = dL/da`` taken by a tensor hook, per output channel ``k``:
    ``Delta_k = 1/2 * mean_n (sum over spatial positions of a_nk * g_nk)^2``; the score is
    the sum over layers and channels (a layer called twice counts twice).

    Returns:
        The score (>= 0), or ``nan`` without prunable weights or when not finite.
    """
    layers = prunable(net)
    if not layers:
        return INVALID
    total: list[float] = []

    def forward_hook(_m: nn.Module, _args: object, out: Tensor) -> None:
        if not out.requires_grad:
            return
        act = out.detach()

        def on_grad(grad: Tensor) -> None:
            prod = act * grad.detach()
            g_nk = prod.sum(dim=tuple(range(2, prod.dim()))) if prod.dim() > 2 else prod
            total.append(float(0.5 * g_nk.pow(2).mean(0).sum()))

        out.register_hook(on_grad)

    hooks = [m.register_forward_hook(forward_hook) for m in layers]
    try:
        backward_loss(net, batch, loss)
    finally:
        for h in hooks:
            h.remove()
    return finite(sum(total))


@data_proxy
def zico(net: nn.Module, batch: Batch, loss: Loss | None) -> float:
    """ZiCo: inverse coefficient of variation of gradients (Li et al., ICLR 2023).

    "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients", Eq. 10:
    the batch is split into ``ZICO_CHUNKS`` chunks in order; each chunk's weight gradient is
    one sample of ``g``. Per prunable layer ``l``, over its weights with nonzero std,
    ``log(sum_theta mean_chunks|g| / std_chunks(g))`` (population std); the score is the sum
    over layers. As the official ``caculate_zico``, a layer whose gradients have zero std
    everywhere contributes nothing (so a network with no gradient scores 0).

    Args:
        net: The working copy of the network.
        batch: ``(inputs, labels)`` with at least ``ZICO_CHUNKS`` examples.
        loss: ``loss(logits, labels)``; default cross-entropy.

    Returns:
        The score, or ``nan`` without prunable weights, with a batch too small to split, or
        when not finite.
    """
    layers = prunable(net)
    n = batch[0].shape[0]
    if not layers or n < ZICO_CHUNKS:
        return INVALID
    samples: list[list[Tensor]] = [[] for _ in layers]
    bounds = [i * n // ZICO_CHUNKS for i in range(ZICO_CHUNKS + 1)]
    for start, stop in itertools.pairwise(bounds):
        backward_loss(net, (batch[0][start:stop], batch[1][start:stop]), loss)
        for acc, w in zip(samples, weights(layers)):
            g = w.grad if w.grad is not None else torch.zeros_like(w)
            acc.append(g.detach().reshape(-1).double().clone())
    total = 0.0
    for acc in samples:
        grads = torch.stack(acc)
        std = grads.std(dim=0, unbiased=False)
        nonzero = std != 0
        ratio = float((grads.abs().mean(dim=0)[nonzero] / std[nonzero]).sum())
        if ratio != 0:
            total += math.log(ratio)
    return finite(total)


def _summed(
    net: nn.Module, batch: Batch, loss: Loss | None, term: Callable[[Tensor, Tensor], float]
) -> float:
    """``term(weight, grad)`` summed over the prunable weights after one loss backward.

    ``nan`` without prunable weights or when not finite; a weight that received no gradient
    (an unused layer) adds nothing.
    """
    layers = prunable(net)
    if not layers:
        return INVALID
    backward_loss(net, batch, loss)
    return finite(sum(term(w, w.grad) for w in weights(layers) if w.grad is not None))
