"""``enas``: efficient NAS by parameter sharing (Pham et al., ICML 2018) as a Tune trainable.

An LSTM controller emits the architecture as a sequence of categorical decisions (``nb201``:
one op per edge; ``darts``: per cell type and node, a first input, its op, a second, different
input and its op; see the supernets' ``decision_sizes``). Each epoch has two phases:

1. **shared weights**: for every batch of the weight half, sample a child from the controller
   and take an SGD step on the shared supernet weights along that single path;
2. **controller**: ``controller_steps`` REINFORCE steps. Each samples a child, scores it on a
   batch of the architecture half less the held-out part below (accuracy with the shared
   weights, plus ``entropy_weight`` times the policy's entropy, as ENAS adds the entropy to the
   reward), moves the baseline ``b <- decay * b + (1 - decay) * reward`` and minimises
   ``-(reward - b) * log p(child)`` with Adam.

The derived arch is the one the controller rates best: the greedy (argmax) child and
``derive_samples`` sampled children are scored with the shared weights on a **held-out**
part of the training split (``derive_portion`` of it, taken from the architecture half, used
by neither the weight steps nor the controller), each on the whole part, and the best one wins
(ties go to the greedy child). That costs ``1 + derive_samples`` forward passes over the part
per epoch.

Deviation from the reference, and why: Pham et al. (and NAS-Bench-201's ENAS, ``get_best_arch``
in D-X-Y/AutoDL-Projects) score each candidate on one minibatch of the validation set the
controller is trained on, so the ranking is biased towards what the controller has fitted on
those very examples, and one minibatch is too noisy to rank them (a 64-image accuracy has a
standard error of about 6 points). Scoring on held-out data makes the choice an
unbiased estimate; keeping it apart from the validation split keeps ``val_acc`` (the derived
child's accuracy on that split, the trial's objective) free of the selection too.

Options (``trainable_args``): see :class:`EnasOptions`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, ValidationInfo, field_validator
from torch import nn

from trainables.data import batches
from trainables.oneshot.common import METRICS, OneShotOptions, OneShotTrainable, TrainTally

__all__ = ["Controller", "EnasOptions", "EnasTrainable", "ReinforceState", "reinforce_step"]


class EnasOptions(OneShotOptions):
    """Options of the ``enas`` trainable (keys of ``trainable_args``).

    Attributes:
        controller_lr: Adam learning rate of the controller.
        controller_hidden: LSTM hidden size of the controller.
        controller_steps: REINFORCE steps per epoch.
        entropy_weight: Weight of the policy entropy added to the reward.
        baseline_decay: Decay of the reward's moving-average baseline.
        temperature: Controller logits are divided by this ...
        tanh_constant: ... then squashed to ``tanh_constant * tanh(logits)``.
        derive_samples: Sampled children scored, besides the greedy one, to derive the arch.
        derive_portion: Share of the training split held out (from the controller's part)
            to score those children; ``train_portion + derive_portion < 1``.
    """

    controller_lr: float = Field(3.5e-3, gt=0.0)
    controller_hidden: int = Field(64, ge=1)
    controller_steps: int = Field(30, ge=1)
    entropy_weight: float = Field(1e-4, ge=0.0)
    baseline_decay: float = Field(0.99, ge=0.0, lt=1.0)
    temperature: float = Field(5.0, gt=0.0)
    tanh_constant: float = Field(2.5, gt=0.0)
    derive_samples: int = Field(16, ge=0)
    derive_portion: float = Field(0.05, gt=0.0, lt=1.0)

    @field_validator("derive_portion")
    @classmethod
    def _leaves_controller_data(cls, value: float, info: ValidationInfo) -> float:
        train_portion = info.data.get("train_portion")
        if train_portion is not None and train_portion + value >= 1.0:
            raise ValueError(
                f"train_portion ({train_portion}) + derive_portion must be < 1 to leave data "
                "for the controller"
            )
        return value


class Controller(nn.Module):
    """An LSTM policy over a sequence of categorical decisions.

    Step ``t`` feeds the embedding of decision ``t - 1`` (a learned start vector at ``t = 0``)
    to an LSTM cell; a linear head gives the logits of decision ``t``, squashed to
    ``tanh_constant * tanh(logits / temperature)``.

    Args:
        sizes: Number of options of each decision.
        hidden: LSTM hidden size.
        temperature: Logit temperature.
        tanh_constant: Logit range.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        hidden: int = 64,
        temperature: float = 5.0,
        tanh_constant: float = 2.5,
    ) -> None:
        super().__init__()
        self.sizes = [int(s) for s in sizes]
        self.hidden = hidden
        self.temperature, self.tanh_constant = temperature, tanh_constant
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, s) for s in self.sizes)
        self.embeddings = nn.ModuleList(nn.Embedding(s, hidden) for s in self.sizes)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def forward(
        self, *, generator: torch.Generator | None = None, greedy: bool = False
    ) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """Sample (or take the argmax of) every decision.

        Args:
            generator: Random source for sampling (on the controller's device).
            greedy: Take the most likely option at every step instead of sampling.

        Returns:
            ``(decisions, log_prob, entropy)``: the decisions, the summed log-probability of
            the sequence and the summed entropy of the step distributions.
        """
        h = torch.zeros_like(self.start)
        c = torch.zeros_like(self.start)
        inp = self.start
        decisions: list[int] = []
        log_prob = self.start.new_zeros(())
        entropy = self.start.new_zeros(())
        for head, embed in zip(self.heads, self.embeddings):
            h, c = self.lstm(inp, (h, c))
            logits = self.tanh_constant * torch.tanh(head(h) / self.temperature)
            logp = F.log_softmax(logits, dim=-1)[0]
            if greedy:
                choice = int(logp.argmax())
            else:
                choice = int(torch.multinomial(logp.exp(), 1, generator=generator))
            decisions.append(choice)
            log_prob = log_prob + logp[choice]
            entropy = entropy - (logp.exp() * logp).sum()
            inp = embed(torch.tensor([choice], device=logp.device))
        return decisions, log_prob, entropy


@dataclasses.dataclass
class ReinforceState:
    """The moving-average reward baseline (None before the first reward)."""

    baseline: float | None = None


def reinforce_step(
    controller: Controller,
    optimizer: torch.optim.Optimizer,
    reward_fn: Callable[[list[int]], float],
    state: ReinforceState,
    *,
    entropy_weight: float = 1e-4,
    baseline_decay: float = 0.99,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """One REINFORCE step of the controller with a moving-average baseline.

    Args:
        controller: The policy.
        optimizer: Its optimizer.
        reward_fn: ``decisions -> reward`` (higher is better).
        state: The baseline, updated in place.
        entropy_weight: Weight of the policy entropy added to the reward.
        baseline_decay: Baseline decay.
        generator: Random source for sampling.

    Returns:
        ``(reward, entropy)`` of the sampled child (entropy per decision).
    """
    decisions, log_prob, entropy = controller(generator=generator)
    reward = float(reward_fn(decisions)) + entropy_weight * float(entropy.detach())
    if state.baseline is None:
        state.baseline = reward
    state.baseline = baseline_decay * state.baseline + (1.0 - baseline_decay) * reward
    loss = -(reward - state.baseline) * log_prob
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return reward, float(entropy.detach()) / max(len(decisions), 1)


class EnasTrainable(OneShotTrainable):
    """ENAS on the ``nb201`` or ``darts`` supernet, one epoch a step."""

    METHOD = "enas"
    OPTIONS = EnasOptions
    METRICS = (*METRICS, "reward")
    opts: EnasOptions

    def _setup_method(self) -> None:
        o = self.opts
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.controller = Controller(
                self.net.decision_sizes(),
                hidden=o.controller_hidden,
                temperature=o.temperature,
                tanh_constant=o.tanh_constant,
            ).to(self.device)
        self.controller_optimizer = torch.optim.Adam(
            self.controller.parameters(), lr=o.controller_lr, betas=(0.0, 0.999)
        )
        self.reinforce = ReinforceState()
        self.best_decisions: list[int] | None = None
        self._hold_out()

    def _hold_out(self) -> None:
        """Move ``derive_portion`` of the training split from the controller's part to
        ``d_x, d_y``, the data that scores the derive candidates."""
        n_arch = int(self.a_x.shape[0])
        if n_arch < 2:
            raise ValueError(
                f"trainable_args.derive_portion: the architecture half has {n_arch} example(s); "
                "ENAS needs one for the controller and one to score candidates (lower "
                "train_portion or use more data)"
            )
        n = int(self.w_x.shape[0]) + n_arch
        hold = min(max(1, round(self.opts.derive_portion * n)), n_arch - 1)
        self.d_x, self.d_y = self.a_x[n_arch - hold :], self.a_y[n_arch - hold :]
        self.a_x, self.a_y = self.a_x[: n_arch - hold], self.a_y[: n_arch - hold]

    @torch.no_grad()
    def _accuracy(self, decisions: list[int], x: torch.Tensor, y: torch.Tensor) -> float:
        logits = self.net(x, sample=self.net.sample_from_decisions(decisions))
        return float((logits.argmax(1) == y).float().mean())

    def _search_epoch(self) -> dict[str, float]:
        tally = TrainTally()
        self.net.train()
        for xt, yt in self.w_batches():
            with torch.no_grad():
                decisions, _, _ = self.controller(generator=self.generator)
            logits = self.net(xt, sample=self.net.sample_from_decisions(decisions))
            loss = F.cross_entropy(logits, yt)
            if not torch.isfinite(loss):
                return {"train_loss": float("nan"), "train_acc": 0.0}
            self.weight_step(loss)
            tally.add(loss, logits, yt)
        self.net.eval()
        rewards, entropies = [], []
        arch_batches = self.a_batches()
        for _ in range(self.opts.controller_steps):
            xv, yv = next(arch_batches)
            reward, entropy = reinforce_step(
                self.controller,
                self.controller_optimizer,
                functools.partial(self._accuracy, x=xv, y=yv),
                self.reinforce,
                entropy_weight=self.opts.entropy_weight,
                baseline_decay=self.opts.baseline_decay,
                generator=self.generator,
            )
            rewards.append(reward)
            entropies.append(entropy)
        self.net.train()
        return {
            **tally.metrics(),
            "reward": sum(rewards) / len(rewards),
            "baseline": float(self.reinforce.baseline or 0.0),
            "arch_entropy": sum(entropies) / len(entropies),
        }

    def _held_out_accuracy(self, decisions: list[int]) -> float:
        """Accuracy of a child with the shared weights on the whole held-out part."""
        size = int(self.train_cfg.get("eval_batch_size", 512))
        correct = 0.0
        for xb, yb in batches(self.d_x, self.d_y, batch_size=size, shuffle=False, generator=None):
            correct += self._accuracy(decisions, xb, yb) * int(yb.shape[0])
        return correct / int(self.d_y.shape[0])

    def _derive(self) -> dict[str, Any]:
        self.net.eval()
        with torch.no_grad():
            candidates = [self.controller(greedy=True)[0]]
            candidates += [
                self.controller(generator=self.generator)[0]
                for _ in range(self.opts.derive_samples)
            ]
            scores = [self._held_out_accuracy(d) for d in candidates]
        self.net.train()
        self.best_decisions = candidates[scores.index(max(scores))]
        return self.net.arch_from_sample(self.net.sample_from_decisions(self.best_decisions))

    def _eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        decisions = self.best_decisions
        if decisions is None:
            decisions = self.controller(greedy=True)[0]
        return self.net(x, sample=self.net.sample_from_decisions(decisions))

    def _method_state(self) -> dict[str, Any]:
        return {
            "controller": self.controller.state_dict(),
            "controller_optimizer": self.controller_optimizer.state_dict(),
            "baseline": self.reinforce.baseline,
            "best_decisions": self.best_decisions,
        }

    def _load_method_state(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.controller_optimizer.load_state_dict(state["controller_optimizer"])
        self.reinforce.baseline = state["baseline"]
        self.best_decisions = state["best_decisions"]
