"""``darts``: differentiable architecture search (Liu et al., ICLR 2019) as a Tune trainable.

Every search step alternates

1. an **architecture step** on a batch of the architecture half: Adam on the architecture
   weights ``alpha`` (one ``(edges, ops)`` tensor per cell type; the op weights are
   ``softmax(alpha)``) with the gradient of the validation loss, either first order
   (``order: 1``: ``dL_val(w, alpha)/dalpha``) or second order (``order: 2``: the gradient of
   the *unrolled* loss ``L_val(w', alpha)`` with ``w' = w - xi * (momentum * buf + dL_train/dw
   + weight_decay * w)`` one virtual SGD step ahead, ``xi`` the current learning rate; its
   Hessian-vector product is the finite difference of ``dL_train/dalpha`` at
   ``w +- eps * dL_val(w')/dw'`` with ``eps = 0.01 / ||dL_val(w')/dw'||``; the virtual step
   is plain momentum SGD, as in DARTS, also when ``train.nesterov`` is on);
2. a **weight step** on a batch of the weight half: SGD on the supernet weights with
   ``alpha`` fixed.

The derived arch is the argmax op per edge (``nb201``) or the DARTS rule (``darts``: per node
the two strongest incoming edges, ``none`` excluded).

**Collapse.** DARTS is known to drift to parameter-free cells (skip connections) on
NAS-Bench-201. Every epoch reports ``collapse`` (share of parameter-free ops in the derived
(normal) cell) and ``collapse_warning`` when it exceeds ``collapse_threshold`` (a warning is
logged too). ``remedy`` (off by default) picks a published counter-measure:

* ``early_stop`` (DARTS+, Liang et al. 2019, with our indicator): stop the search at the first
  epoch whose indicator exceeds the threshold, and report the last arch derived before it;
* ``darts_minus`` (DARTS-, Chu et al. ICLR 2021): add an auxiliary skip connection
  ``beta * x`` to every stride-1 edge, outside the architecture weights, with ``beta``
  decaying linearly from ``darts_minus_beta`` to 0 over the search, so skip connections
  lose their unfair advantage.

Options (``trainable_args``): see :class:`DartsOptions`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.func import functional_call

from trainables.oneshot.common import OneShotOptions, OneShotTrainable, TrainTally

__all__ = [
    "AlphaOptions",
    "AlphaTrainable",
    "DartsOptions",
    "DartsTrainable",
    "arch_entropy",
    "first_order_arch_grads",
    "search_loss",
    "second_order_arch_grads",
    "softmax_weights",
    "virtual_step",
]

Batch = tuple[torch.Tensor, torch.Tensor]
Beta = Annotated[float, Field(ge=0.0, lt=1.0)]
REMEDIES = ("early_stop", "darts_minus")


class AlphaOptions(OneShotOptions):
    """Options of the methods that learn architecture weights with Adam (DARTS, GDAS).

    Attributes:
        arch_lr: Adam learning rate of the architecture weights.
        arch_weight_decay: Adam (L2) weight decay of the architecture weights.
        arch_betas: Adam betas of the architecture weights.
        arch_init_scale: Architecture weights start as ``arch_init_scale * N(0, 1)``.
    """

    arch_lr: float = Field(3e-4, gt=0.0)
    arch_weight_decay: float = Field(1e-3, ge=0.0)
    arch_betas: tuple[Beta, Beta] = (0.5, 0.999)
    arch_init_scale: float = Field(1e-3, ge=0.0)


class DartsOptions(AlphaOptions):
    """Options of the ``darts`` trainable (keys of ``trainable_args``): :class:`AlphaOptions`'
    and these.

    Attributes:
        order: 1 (first-order DARTS) or 2 (second order, the unrolled architect step).
        remedy: Against collapse: None, ``"early_stop"`` or ``"darts_minus"``.
        darts_minus_beta: Initial weight of the DARTS- auxiliary skip connection.
    """

    order: Literal[1, 2] = 2
    remedy: Literal["early_stop", "darts_minus"] | None = None
    darts_minus_beta: float = Field(1.0, ge=0.0)


def softmax_weights(alphas: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The op weights of the architecture weights: per cell type, a softmax over each edge's
    ops, detached (no gradient to the alphas)."""
    return {k: a.detach().softmax(dim=-1) for k, a in alphas.items()}


def arch_entropy(alphas: Mapping[str, torch.Tensor]) -> float:
    """Mean entropy (nats) of the per-edge softmax of the architecture weights."""
    with torch.no_grad():
        rows = torch.cat([a.detach().reshape(-1, a.shape[-1]) for a in alphas.values()])
        logp = F.log_softmax(rows.double(), dim=-1)
        return float(-(logp.exp() * logp).sum(-1).mean())


# --- the architect --------------------------------------------------------------------------
def search_loss(
    net: nn.Module,
    alphas: Mapping[str, torch.Tensor],
    batch: Batch,
    *,
    params: Mapping[str, torch.Tensor] | None = None,
    aux_skip: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy of the supernet mixing ops with ``softmax(alphas)``.

    Args:
        net: The supernet.
        alphas: Architecture weights per cell type.
        batch: ``(inputs, labels)``.
        params: Replacement weights by parameter name (``torch.func.functional_call``), or
            None to use the module's own.
        aux_skip: DARTS- auxiliary skip coefficient.

    Returns:
        The mean loss (a scalar tensor).
    """
    x, y = batch
    weights = {k: a.softmax(dim=-1) for k, a in alphas.items()}
    kwargs = {"weights": weights, "aux_skip": aux_skip}
    logits = (
        net(x, **kwargs) if params is None else functional_call(net, dict(params), (x,), kwargs)
    )
    return F.cross_entropy(logits, y)


def _grads(
    loss: torch.Tensor, inputs: Sequence[torch.Tensor], *, create_graph: bool = False
) -> list[torch.Tensor]:
    """``d loss / d inputs``, zeros for inputs the loss does not depend on."""
    grads = torch.autograd.grad(loss, list(inputs), allow_unused=True, create_graph=create_graph)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads)]


def virtual_step(
    net: nn.Module,
    alphas: Mapping[str, torch.Tensor],
    batch: Batch,
    *,
    xi: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    momentum_buffers: Mapping[str, torch.Tensor] | None = None,
    aux_skip: float = 0.0,
) -> dict[str, torch.Tensor]:
    """``w' = w - xi * (momentum * buf + dL_train/dw + weight_decay * w)`` by parameter name.

    The result is detached from ``w`` (a new leaf per parameter, requiring grad).
    """
    names = [n for n, _ in net.named_parameters()]
    weights = [p for _, p in net.named_parameters()]
    grads = _grads(search_loss(net, alphas, batch, aux_skip=aux_skip), weights)
    buffers = momentum_buffers or {}
    out = {}
    with torch.no_grad():
        for name, w, g in zip(names, weights, grads):
            step = g + weight_decay * w
            if momentum and name in buffers:
                step = step + momentum * buffers[name]
            out[name] = (w - xi * step).requires_grad_(True)
    return out


def first_order_arch_grads(
    net: nn.Module, alphas: Mapping[str, torch.Tensor], val: Batch, *, aux_skip: float = 0.0
) -> dict[str, torch.Tensor]:
    """``dL_val(w, alpha) / dalpha`` per cell type (first-order DARTS)."""
    keys = list(alphas)
    grads = _grads(search_loss(net, alphas, val, aux_skip=aux_skip), [alphas[k] for k in keys])
    return dict(zip(keys, grads))


def second_order_arch_grads(
    net: nn.Module,
    alphas: Mapping[str, torch.Tensor],
    train: Batch,
    val: Batch,
    *,
    xi: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    momentum_buffers: Mapping[str, torch.Tensor] | None = None,
    aux_skip: float = 0.0,
    r: float = 0.01,
) -> dict[str, torch.Tensor]:
    """Gradient of the unrolled validation loss ``L_val(w', alpha)`` w.r.t. ``alpha``.

    ``dL_val(w', alpha)/dalpha - xi * H v`` where ``v = dL_val(w', alpha)/dw'`` and the mixed
    Hessian-vector product ``H v = d^2 L_train / (dalpha dw) v`` is the central difference
    ``(dL_train(w + eps v)/dalpha - dL_train(w - eps v)/dalpha) / (2 eps)`` with
    ``eps = r / ||v||``.

    Args:
        net: The supernet (its weights ``w`` are not changed).
        alphas: Architecture weights per cell type (leaf tensors).
        train: A batch of the weight half (for the virtual step and the Hessian term).
        val: A batch of the architecture half.
        xi: Virtual step size (DARTS uses the current weight learning rate).
        momentum: SGD momentum of the weight optimizer.
        weight_decay: SGD weight decay of the weight optimizer.
        momentum_buffers: The optimizer's momentum buffers by parameter name.
        aux_skip: DARTS- auxiliary skip coefficient.
        r: Finite-difference radius (DARTS: 0.01).

    Returns:
        The gradient per cell type.
    """
    keys = list(alphas)
    alpha_list = [alphas[k] for k in keys]
    unrolled = virtual_step(
        net,
        alphas,
        train,
        xi=xi,
        momentum=momentum,
        weight_decay=weight_decay,
        momentum_buffers=momentum_buffers,
        aux_skip=aux_skip,
    )
    names = list(unrolled)
    loss = search_loss(net, alphas, val, params=unrolled, aux_skip=aux_skip)
    grads = _grads(loss, alpha_list + [unrolled[n] for n in names])
    d_alpha, v = grads[: len(keys)], grads[len(keys) :]
    norm = torch.cat([g.reshape(-1) for g in v]).norm()
    eps = r / max(float(norm), 1e-12)
    own = dict(net.named_parameters())

    def shifted(sign: float) -> list[torch.Tensor]:
        with torch.no_grad():
            params = {n: own[n] + sign * eps * g for n, g in zip(names, v)}
        return _grads(search_loss(net, alphas, train, params=params, aux_skip=aux_skip), alpha_list)

    plus, minus = shifted(1.0), shifted(-1.0)
    return {k: d - xi * (p - m) / (2 * eps) for k, d, p, m in zip(keys, d_alpha, plus, minus)}


# --- the trainables ------------------------------------------------------------------------
class AlphaTrainable(OneShotTrainable):
    """Base of the methods that learn architecture weights ``alpha`` with Adam (DARTS, GDAS).

    ``alpha`` starts as ``arch_init_scale * N(0, 1)`` drawn on the CPU from the trial's seed;
    the alphas and their optimizer are the method's checkpointed state.
    """

    OPTIONS: ClassVar[type[OneShotOptions]] = AlphaOptions
    opts: AlphaOptions

    def _setup_method(self) -> None:
        self.alphas = self.net.init_alphas(
            scale=self.opts.arch_init_scale,
            generator=torch.Generator().manual_seed(self.seed),
            device=self.device,
        )
        self.arch_optimizer = torch.optim.Adam(
            list(self.alphas.values()),
            lr=self.opts.arch_lr,
            betas=self.opts.arch_betas,
            weight_decay=self.opts.arch_weight_decay,
        )

    def _method_state(self) -> dict[str, Any]:
        return {
            "alphas": {k: a.detach().cpu() for k, a in self.alphas.items()},
            "arch_optimizer": self.arch_optimizer.state_dict(),
        }

    def _load_method_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for key, alpha in self.alphas.items():
                alpha.copy_(state["alphas"][key])
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])


class DartsTrainable(AlphaTrainable):
    """First- or second-order DARTS on the ``nb201`` or ``darts`` supernet, an epoch a step."""

    METHOD = "darts"
    OPTIONS = DartsOptions
    opts: DartsOptions

    def _setup_method(self) -> None:
        super()._setup_method()
        self.total_steps = self.steps_per_epoch * int(self.train_cfg["epochs"])
        self.global_step = 0

    def aux_skip(self) -> float:
        """The DARTS- auxiliary skip weight now (0 unless ``remedy: darts_minus``)."""
        if self.opts.remedy != "darts_minus":
            return 0.0
        progress = min(self.global_step / max(self.total_steps, 1), 1.0)
        return self.opts.darts_minus_beta * (1.0 - progress)

    def _momentum_buffers(self) -> dict[str, torch.Tensor]:
        out = {}
        for name, p in self.net.named_parameters():
            buf = self.w_optimizer.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                out[name] = buf
        return out

    def arch_step(self, train: Batch, val: Batch) -> None:
        """One Adam step of the architecture weights (first or second order)."""
        aux = self.aux_skip()
        if self.opts.order == 2 and isinstance(self.w_optimizer, torch.optim.SGD):
            group = self.w_optimizer.param_groups[0]
            grads = second_order_arch_grads(
                self.net,
                self.alphas,
                train,
                val,
                xi=float(group["lr"]),
                momentum=float(group.get("momentum", 0.0)),
                weight_decay=float(group.get("weight_decay", 0.0)),
                momentum_buffers=self._momentum_buffers(),
                aux_skip=aux,
            )
        elif self.opts.order == 2:  # AdamW: unroll a plain gradient step
            xi = float(self.w_optimizer.param_groups[0]["lr"])
            grads = second_order_arch_grads(self.net, self.alphas, train, val, xi=xi, aux_skip=aux)
        else:
            grads = first_order_arch_grads(self.net, self.alphas, val, aux_skip=aux)
        self.arch_optimizer.zero_grad(set_to_none=True)
        for key, alpha in self.alphas.items():
            alpha.grad = grads[key].detach()
        self.arch_optimizer.step()

    def _search_epoch(self) -> dict[str, float]:
        self.net.train()
        tally = TrainTally()
        arch_batches = self.a_batches()
        for xt, yt in self.w_batches():
            self.arch_step((xt, yt), next(arch_batches))
            weights = softmax_weights(self.alphas)
            logits = self.net(xt, weights, aux_skip=self.aux_skip())
            loss = F.cross_entropy(logits, yt)
            if not torch.isfinite(loss):
                return {"train_loss": float("nan"), "train_acc": 0.0}
            self.weight_step(loss)
            self.global_step += 1
            tally.add(loss, logits, yt)
        return {
            **tally.metrics(),
            "arch_entropy": arch_entropy(self.alphas),
            "aux_skip": self.aux_skip(),
        }

    def _derive(self) -> dict[str, Any]:
        return self.net.derive(softmax_weights(self.alphas))

    def _eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, softmax_weights(self.alphas), aux_skip=self.aux_skip())

    def _method_state(self) -> dict[str, Any]:
        return {**super()._method_state(), "global_step": self.global_step}

    def _load_method_state(self, state: dict[str, Any]) -> None:
        super()._load_method_state(state)
        self.global_step = int(state["global_step"])
