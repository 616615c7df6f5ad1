"""One-batch activation proxies: jacob_cov, nwot, meco (no loss needed)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from raynas.proxies.base import CONVS, INVALID, Batch, Loss, data_proxy, finite, on_device

#: jacob_cov's regulariser ``k`` (Mellor et al.'s code).
JACOB_K = 1e-5


@data_proxy
def jacob_cov(net: nn.Module, batch: Batch, loss: Loss | None) -> float:
    """Correlation of input Jacobians (Mellor et al. 2021, "Neural Architecture Search
    without Training", arXiv:2006.04647 v1, Eq. 2).

    ``J`` is the gradient of ``sum(output)`` with respect to each input (``y.backward(ones)``
    in the official code), flattened to one row per example; with ``Sigma`` the correlation
    matrix of the rows and ``lambda`` its eigenvalues,
    ``score = -sum(log(lambda + k) + 1 / (lambda + k))``, ``k = 1e-5``.

    Args:
        net: The working copy of the network.
        batch: ``(inputs, labels)``; labels are unused.
        loss: Unused.

    Returns:
        The score, or ``nan`` when a Jacobian row is constant (its correlation is undefined,
        e.g. a disconnected network) or the result is not finite.
    """
    x, _ = on_device(batch, net)
    x = x.clone().requires_grad_(True)
    net.train()
    out = net(x)
    if not out.requires_grad:
        return INVALID
    out.backward(torch.ones_like(out))
    if x.grad is None:
        return INVALID
    jac = x.grad.detach().reshape(x.shape[0], -1).double().cpu().numpy()
    with np.errstate(all="ignore"):
        corr = np.corrcoef(jac)
        if not np.isfinite(corr).all():
            return INVALID
        eig = np.linalg.eigvalsh(corr)
        return finite(-np.sum(np.log(eig + JACOB_K) + 1.0 / (eig + JACOB_K)))


@data_proxy
def nwot(net: nn.Module, batch: Batch, loss: Loss | None) -> float:
    """NASWOT: log-determinant of the activation-code kernel (Mellor et al., ICML 2021,
    "Neural Architecture Search without Training", Eq. 2).

    Every ``nn.ReLU`` module's input gives each example a binary code ``c = [x > 0]``;
    ``K_ij = N_A - d_H(c_i, c_j)`` summed over ReLUs, i.e. ``c c^T + (1 - c)(1 - c)^T`` as the
    official code accumulates it; the score is ``log|det K|`` (``slogdet``). The forward runs
    in train mode without gradients.

    Args:
        net: The working copy of the network.
        batch: ``(inputs, labels)``; labels are unused.
        loss: Unused.

    Returns:
        The score, or ``nan`` when the network has no ``nn.ReLU`` module (``F.relu`` calls
        are not seen) or ``K`` is singular (two examples with the same code everywhere).
    """
    x, _ = on_device(batch, net)
    kernel = torch.zeros((x.shape[0], x.shape[0]), dtype=torch.float64)
    seen = [0]

    def hook(_m: nn.Module, args: tuple[Tensor, ...]) -> None:
        code = (args[0].reshape(args[0].shape[0], -1) > 0).double().cpu()
        kernel.add_(code @ code.T + (1.0 - code) @ (1.0 - code).T)
        seen[0] += 1

    _hooked_forward(
        net, x, [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    )
    if not seen[0]:
        return INVALID
    _sign, logdet = torch.linalg.slogdet(kernel)
    return finite(logdet)


@data_proxy
def meco(net: nn.Module, batch: Batch, loss: Loss | None) -> float:
    """MeCo: minimum eigenvalue of feature-map correlation (Jiang et al., NeurIPS 2023,
    "Zero-Shot Neural Architecture Search via the Minimum Eigenvalue of Pearson
    Correlation", Eq. 6).

    For the output of every convolution layer on the batch (train mode, no gradients), the
    feature map of the *first* example, ``(C, H*W)``, gives the ``C x C`` Pearson correlation
    matrix between channels (NaN/inf entries set to 0, as the official code does); the score
    is the sum over layers of its minimum eigenvalue. The official code hooks every module
    (containers too, so a ``Sequential`` repeats its last child's value); we count each
    convolution once.

    Args:
        net: The working copy of the network.
        batch: ``(inputs, labels)``; labels are unused.
        loss: Unused.

    Returns:
        The score, or ``nan`` without convolutions, when a feature map holds NaN or inf, or
        when not finite.
    """
    x, _ = on_device(batch, net)
    mins: list[float] = []

    def hook(_m: nn.Module, _args: object, out: Tensor) -> None:
        fea = out[0].detach().double().cpu()
        fea = fea.reshape(fea.shape[0], -1)
        if not torch.isfinite(fea).all():  # a NaN/inf feature map: the score is invalid
            mins.append(INVALID)
            return
        corr = torch.corrcoef(fea) if fea.shape[0] > 1 else torch.ones((1, 1), dtype=fea.dtype)
        corr[~torch.isfinite(corr)] = 0.0
        mins.append(float(torch.linalg.eigvalsh(corr).min()))

    _hooked_forward(
        net, x, [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, CONVS)]
    )
    return finite(sum(mins)) if mins else INVALID


def _hooked_forward(net: nn.Module, x: Tensor, hooks: list[RemovableHandle]) -> None:
    """One train-mode forward of ``x`` without gradients, for ``hooks``; then removes them."""
    net.train()
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
