"""Data-free proxies: synflow, zen, params, flops.

They need no labels: ``batch`` (if given) only fixes the input shape.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from raynas.proxies.base import (
    INVALID,
    datafree_proxy,
    device_of,
    finite,
    prunable,
    replace_modules,
    weights,
    working_copy,
)

#: Zen-NAS's perturbation scale alpha and our Gaussian batch size (the reference uses 64).
ZEN_ALPHA = 0.01
ZEN_BATCH = 16
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
_GAP = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)


@datafree_proxy
def synflow(model: nn.Module, input_shape: tuple[int, ...], seed: int) -> float:
    """SynFlow: synaptic saliency of the linearised network (Tanaka et al., NeurIPS 2020).

    "Pruning neural networks without any data by iteratively conserving synaptic flow",
    Eq. 1-2, as the zero-cost reference computes it (Abdelfattah et al. 2021,
    ``compute_synflow_per_weight``): batch-norm layers are replaced by the identity, every
    parameter (and buffer) by its absolute value, the network runs in double precision in
    eval mode on one all-ones input, and with ``R = sum(output)`` the score is
    ``sum over prunable weights |theta * dR/dtheta|``.

    Args:
        model: The network (not changed).
        input_shape: One input's shape.
        seed: Unused (the proxy is deterministic).

    Returns:
        The score (>= 0; 0 for a network whose output does not depend on its weights), or
        ``nan`` without prunable weights or on overflow.
    """
    net = working_copy(model)
    replace_modules(net, lambda m: isinstance(m, nn.modules.batchnorm._BatchNorm), nn.Identity)
    net = net.double().eval()
    layers = prunable(net)
    if not layers:
        return INVALID
    with torch.no_grad():
        for t in (*net.parameters(), *net.buffers()):
            if t.is_floating_point():
                t.abs_()
    x = torch.ones((1, *input_shape), dtype=torch.float64)
    net(x.to(device_of(net))).sum().backward()
    total = sum(
        float((w.detach() * w.grad).abs().sum()) for w in weights(layers) if w.grad is not None
    )
    return finite(total)


@datafree_proxy
def zen(model: nn.Module, input_shape: tuple[int, ...], seed: int) -> float:
    """Zen-score: expressivity from a Gaussian input perturbation (Lin et al., ICCV 2021).

    "Zen-NAS: A Zero-Shot NAS for High-Performance Image Recognition", Eq. 5-6 / Alg. 1:
    the copy is re-initialised as the paper's ``network_weight_gaussian_init`` does
    (conv and linear weights ~ N(0, 1), biases 0, norm layers weight 1 bias 0), ``x`` and
    ``eps`` are drawn ~ N(0, 1) (``ZEN_BATCH`` inputs, seeded), and in train mode

    ``zen = log(E_n ||f(x)_n - f(x + alpha eps)_n||_F) + sum_i log(sqrt(mean_j var_ij))``

    where ``f`` is the feature map before global average pooling (the input of the last
    ``AdaptiveAvgPool*`` module; the network output when there is none, e.g. an MLP),
    ``alpha = 0.01`` and ``var_ij`` is the batch variance of channel ``j`` at the input of
    batch-norm layer ``i`` during the forward of ``x``.

    Simplifications, honestly: one draw of ``ZEN_BATCH = 16`` inputs (the reference averages
    ``repeat`` draws of 64); the Frobenius norm of the paper where the official code uses the
    entry-wise L1 norm; the paper's batch statistics for the BN term where the official code
    reads ``running_var`` after two forward passes (momentum mixes it with the initial 1s).

    Args:
        model: The network (not changed).
        input_shape: One input's shape.
        seed: Seeds the re-initialisation and the Gaussian inputs.

    Returns:
        The score, or ``nan`` when it is not finite (e.g. a feature map that does not change).
    """
    net = working_copy(model)
    gen = torch.Generator().manual_seed(seed)
    dev = device_of(net)
    with torch.no_grad():
        for m in net.modules():
            w, b = getattr(m, "weight", None), getattr(m, "bias", None)
            if isinstance(m, (*_NORMS,)):
                if isinstance(w, torch.Tensor):
                    w.fill_(1.0)
                if isinstance(b, torch.Tensor):
                    b.zero_()
            elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                if isinstance(w, torch.Tensor):
                    w.copy_(torch.randn(w.shape, generator=gen))
                if isinstance(b, torch.Tensor):
                    b.zero_()
    shape = (ZEN_BATCH, *input_shape)
    x = torch.randn(shape, generator=gen).to(dev)
    eps = torch.randn(shape, generator=gen).to(dev)
    feats: list[torch.Tensor] = []
    variances: list[torch.Tensor] = []
    recording = [True]

    def pre_gap(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        feats.append(args[0])

    def bn_var(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        if recording[0]:
            a = args[0].transpose(0, 1).reshape(args[0].shape[1], -1)
            variances.append(a.var(dim=1, unbiased=False).mean())

    hooks = [
        m.register_forward_pre_hook(pre_gap if isinstance(m, _GAP) else bn_var)
        for m in net.modules()
        if isinstance(m, (*_GAP, nn.modules.batchnorm._BatchNorm))
    ]
    net.train()
    with torch.no_grad():
        out = net(x)
        f1 = feats[-1] if feats else out
        feats.clear()
        recording[0] = False
        out2 = net(x + ZEN_ALPHA * eps)
        f2 = feats[-1] if feats else out2
    for h in hooks:
        h.remove()
    delta = (f1 - f2).reshape(shape[0], -1).double().norm(dim=1).mean()
    bn_term = sum(0.5 * math.log(float(v)) if float(v) > 0 else -math.inf for v in variances)
    return finite(math.log(float(delta)) + bn_term if float(delta) > 0 else INVALID)


@datafree_proxy
def params(model: nn.Module, input_shape: tuple[int, ...], seed: int) -> float:
    """Parameter count, :func:`trainables.cost.count_params` (a baseline proxy).

    Args:
        model: The network (read only).
        input_shape, seed: Unused.

    Returns:
        Every scalar parameter, trainable or not, as ``raynas`` reports ``params``.
    """
    from trainables.cost import count_params

    return float(count_params(model))


@datafree_proxy
def flops(model: nn.Module, input_shape: tuple[int, ...], seed: int) -> float:
    """Forward FLOPs of one input, :func:`trainables.cost.count_flops` (a baseline proxy).

    Args:
        model: The network (its training flags are restored; nothing else is touched).
        input_shape: One input's shape.
        seed: Unused.

    Returns:
        FLOPs as ``raynas`` reports ``flops`` (a multiply-add counts 2).
    """
    from trainables.cost import count_flops

    return float(count_flops(model, input_shape))
