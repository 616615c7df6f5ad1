"""``gdas``: gradient-based search with differentiable sampling (Dong & Yang, CVPR 2019).

Every forward pass runs a *single* path: on each edge one op is drawn from
``softmax((log_softmax(alpha) + gumbel) / tau)`` and weighted by the straight-through
one-hot ``hard - soft.detach() + soft`` (value 1 at the drawn op, 0 elsewhere, gradient of
the soft sample), so ``alpha`` gets gradients although only the drawn ops run. On the
``nb201`` supernet the unselected weights are added to each edge's output too (their value is
0, so the output is the drawn op's alone, but each stays in the gradient path), as
NAS-Bench-201's GDAS cell (``NAS201SearchCell.forward_gdas`` in D-X-Y/AutoDL-Projects) does;
on the ``darts`` supernet only the drawn op's weight scales the edge, as the reference's
DARTS-space cell (``NASNetSearchCell`` / ``MixedOp.forward_gdas``) does.

Each search step follows the reference loop (``exps/NAS-Bench-201-algos/GDAS.py``): first a
**weight step** (SGD on a batch of the weight half, on a freshly drawn path), then an
**architecture step** (Adam on ``alpha``, on a batch of the architecture half, on another
drawn path, with the weights just updated). ``tau`` decays linearly from ``tau_max`` to
``tau_min`` over the epochs, as in the reference. The derived arch follows the DARTS rules
(argmax per edge for ``nb201``, two strongest inputs per node for ``darts``); ``val_acc`` is
measured on that derived path.

Deviations from the reference, and why:

* the weight lr follows the shared cosine schedule to 0 over all search steps
  (:mod:`trainables.schedule`; the reference's cosine, also updated every step, ends at a
  floor ``eta_min`` set in its config): one schedule for every raynas trainable, set by
  ``train``;
* the architecture batches come from endless shuffled passes over the architecture half
  (the reference draws a random validation example per training example): the same
  distribution, without replacement within a pass.

Options (``trainable_args``): see :class:`GdasOptions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field, ValidationInfo, field_validator

from trainables.oneshot.common import TrainTally
from trainables.oneshot.darts import AlphaOptions, AlphaTrainable, arch_entropy, softmax_weights

Beta = Annotated[float, Field(ge=0.0, lt=1.0)]

__all__ = ["GdasOptions", "GdasTrainable", "gumbel_path"]


class GdasOptions(AlphaOptions):
    """Options of the ``gdas`` trainable (keys of ``trainable_args``): :class:`AlphaOptions`'
    and these.

    Attributes:
        tau_max: Gumbel-softmax temperature at the first epoch.
        tau_min: Temperature at the last epoch.
    """

    tau_max: float = Field(10.0, gt=0.0)
    tau_min: float = Field(0.1, gt=0.0)

    @field_validator("tau_min")
    @classmethod
    def _tau_decreases(cls, value: float, info: ValidationInfo) -> float:
        tau_max = info.data.get("tau_max")
        if tau_max is not None and value > tau_max:
            raise ValueError(f"must not exceed tau_max ({tau_max})")
        return value


def gumbel_path(
    alphas: Mapping[str, torch.Tensor], tau: float, generator: torch.Generator | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, list[int]]]:
    """Draw one op per edge by Gumbel-max and its straight-through weights.

    Args:
        alphas: Architecture weights per cell type, ``(edges, ops)``.
        tau: Softmax temperature.
        generator: Random source (on the alphas' device).

    Returns:
        ``(weights, sample)``: per cell type the straight-through one-hot weights (value 1 at
        the drawn op) and the drawn op index per edge.
    """
    weights, sample = {}, {}
    for key, alpha in alphas.items():
        u = torch.rand(alpha.shape, generator=generator, device=alpha.device, dtype=alpha.dtype)
        gumbel = -torch.log((-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20))
        soft = ((F.log_softmax(alpha, dim=-1) + gumbel) / tau).softmax(dim=-1)
        index = soft.argmax(dim=-1)
        hard = F.one_hot(index, alpha.shape[-1]).to(soft.dtype)
        weights[key] = hard - soft.detach() + soft
        sample[key] = [int(i) for i in index.tolist()]
    return weights, sample


class GdasTrainable(AlphaTrainable):
    """GDAS on the ``nb201`` or ``darts`` supernet, one epoch a step."""

    METHOD = "gdas"
    OPTIONS = GdasOptions
    opts: GdasOptions

    def _setup_method(self) -> None:
        super()._setup_method()
        self.eval_sample: dict[str, list[int]] | None = None

    def tau(self) -> float:
        """The temperature of the current epoch (linear from ``tau_max`` to ``tau_min``)."""
        epochs = int(self.train_cfg["epochs"])
        progress = self.epoch / max(epochs - 1, 1)
        return self.opts.tau_max - (self.opts.tau_max - self.opts.tau_min) * min(progress, 1.0)

    def _path_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights, sample = gumbel_path(self.alphas, self.tau(), self.generator)
        logits = self.net(x, weights, sample)
        return F.cross_entropy(logits, y), logits

    def _search_epoch(self) -> dict[str, float]:
        self.net.train()
        tally = TrainTally()
        arch_batches = self.a_batches()
        for xt, yt in self.w_batches():
            loss, logits = self._path_loss(xt, yt)  # weights first, as the reference
            if not torch.isfinite(loss):
                return {"train_loss": float("nan"), "train_acc": 0.0}
            self.weight_step(loss)
            xv, yv = next(arch_batches)
            arch_loss, _ = self._path_loss(xv, yv)
            grads = torch.autograd.grad(arch_loss, list(self.alphas.values()), allow_unused=True)
            self.arch_optimizer.zero_grad(set_to_none=True)
            for alpha, grad in zip(self.alphas.values(), grads):
                alpha.grad = None if grad is None else grad.detach()
            self.arch_optimizer.step()
            tally.add(loss, logits, yt)
        return {
            **tally.metrics(),
            "arch_entropy": arch_entropy(self.alphas),
            "tau": self.tau(),
        }

    def _derive(self) -> dict[str, Any]:
        arch = self.net.derive(softmax_weights(self.alphas))
        self.eval_sample = self.net.sample_from_arch(arch)
        return arch

    def _eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.eval_sample is None:
            self._derive()
        return self.net(x, sample=self.eval_sample)
