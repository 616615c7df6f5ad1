"""``reinforce``: a policy-gradient controller that samples every decision (Williams, 1992).

The controller is the one of NAS-Bench-201's REINFORCE baseline (Dong & Yang, ICLR 2020,
``exps/algos/reinforce.py`` in D-X-Y/AutoDL-Projects): one vector of logits per decision,
independent categoricals, no recurrent network. Here a "decision" is a gene of the space's
genome (``space.genes``), so the same controller covers cells, macro chains and conditional
spaces: a sampled genome is decoded with ``space.decode``, and only the genes the
architecture actually uses (``space.active_mask``) enter its log-probability.

Why independent logits rather than an LSTM controller (Zoph & Le 2017, ENAS): with budgets of
hundreds of evaluations a factorised policy learns faster (fewer parameters, no credit
assignment through a recurrent state), and NAS-Bench-201's baseline, the reference number on
that benchmark, is exactly this policy.

The update, per finished trial (or per ``batch_size`` trials), is NAS-Bench-201's: the
exponential moving average baseline (momentum 0.9, bias-corrected) is updated with the reward
first, then ``advantage = reward - baseline``; Adam does the ascent step. Two additions:
the advantage is divided by a moving standard deviation of the rewards, so the step and the
entropy bonus mean the same whether the metric is an accuracy in [0, 1] or in %, and an
entropy bonus (default 1e-3) keeps the policy from collapsing early.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from raynas.space import Arch, Space
from raynas.strategies import register_strategy
from raynas.strategies.base import NASSearcher, StrategyError, check_int

ADAM_BETAS = (0.9, 0.999)
SAMPLE_TRIES = 64  # policy samples per proposal before falling back to a random member
MEMO_LIMIT = 20_000
ADAM_EPS = 1e-8


def _check_real(name: str, value: Any, *, low: float, high: float, low_open: bool) -> float:
    """``value`` as a float in ``[low, high]`` (``(low, high]`` if ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StrategyError(f"{name} must be a finite number, got {name}={value!r}")
    if value > high or value < low or (low_open and value == low):
        bound = f"> {low}" if low_open else f">= {low}"
        if math.isfinite(high):
            bound += f" and <= {high}"
        raise StrategyError(f"{name} must be {bound}, got {name}={value!r}")
    return float(value)


@register_strategy("reinforce", description="REINFORCE controller over every decision")
class Reinforce(NASSearcher):
    """A REINFORCE controller with one categorical per genome gene; needs a discrete space.

    Args:
        space: A discrete search space.
        learning_rate: Adam step size on the logits. NAS-Bench-201's baseline takes it as a
            script argument (its usage line shows 0.001; NATS-Bench's version uses 0.01) and
            runs thousands of tabular steps; 0.05 suits budgets of a few hundred real trials
            (Adam moves each logit by at most about ``learning_rate`` per update).
        baseline_decay: Momentum of the moving-average reward baseline (0.9 as in
            NAS-Bench-201).
        entropy_weight: Weight of the policy-entropy bonus (advantages are normalised, so
            1e-3 is comparable to ENAS' 1e-4 on rewards in [0, 1]). 0 disables it.
        batch_size: Finished trials per policy update (1 = update on every result).
        **kwargs: ``metric``, ``mode``, ``seed``, ``allow_repeats`` (see
            :class:`~raynas.strategies.base.NASSearcher`).

    Raises:
        StrategyError: An argument out of range, or a space with continuous decisions.

    Example:
        >>> searcher = Reinforce(raynas.get_space("nb201"), learning_rate=0.05,
        ...                      metric="val_acc", mode="max", seed=0)
        >>> searcher.suggest("trial_1")
        {'arch': {...}}
    """

    needs_discrete = True

    def __init__(
        self,
        space: Space,
        *,
        learning_rate: float = 0.05,
        baseline_decay: float = 0.9,
        entropy_weight: float = 1e-3,
        batch_size: int = 1,
        **kwargs: Any,
    ) -> None:
        lr = _check_real("learning_rate", learning_rate, low=0, high=math.inf, low_open=True)
        decay = _check_real("baseline_decay", baseline_decay, low=0, high=1, low_open=False)
        if decay == 1.0:
            raise StrategyError(f"baseline_decay must be below 1, got {baseline_decay=}")
        ent = _check_real("entropy_weight", entropy_weight, low=0, high=math.inf, low_open=False)
        check_int("batch_size", batch_size, 1)
        super().__init__(space, **kwargs)
        self.learning_rate, self.baseline_decay = lr, decay
        self.entropy_weight, self.batch_size = ent, batch_size
        self.sizes = [int(g.size or 1) for g in space.genes]
        width = max(self.sizes, default=1)
        # Logits of gene g live in row g, columns [0, size_g); the rest is masked to -inf.
        self.valid = np.arange(width)[None, :] < np.asarray(self.sizes)[:, None]
        self.logits = np.where(self.valid, 1e-3 * self.rng.standard_normal(self.valid.shape), 0)
        self.adam_m = np.zeros_like(self.logits)
        self.adam_v = np.zeros_like(self.logits)
        self.adam_t = 0
        # Bias-corrected moving averages of the reward and of its square deviation.
        self.ema_num, self.ema_den, self.var_num = 0.0, 0.0, 0.0
        #: (genome indices, active mask, reward) waiting for the next update.
        self.buffer: list[tuple[np.ndarray, np.ndarray, float]] = []
        #: Genome bytes -> (arch, arch_id); a memo, left out of checkpoints.
        self._memo: dict[bytes, tuple[Arch, str]] = {}

    # --- policy -----------------------------------------------------------------------
    def probabilities(self) -> np.ndarray:
        """The policy: one row of probabilities per gene (zero past the gene's size)."""
        z = np.where(self.valid, self.logits, -np.inf)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def propose(self) -> Arch | None:
        """A policy sample not yet seen; after ``SAMPLE_TRIES`` seen ones, a random member.

        A converged policy mostly samples architectures already evaluated; they are skipped
        here, cheaply (decoded architectures are memoised by genome), and get no new reward.
        """
        cum = np.cumsum(self.probabilities(), axis=1)
        u = self.rng.random((SAMPLE_TRIES, len(self.sizes)))
        idx = (u[:, :, None] >= cum[None, :, :]).sum(axis=2)
        genomes = np.minimum(idx, np.asarray(self.sizes) - 1)
        for genome in genomes:
            arch, key = self._decoded(genome)
            if self.allow_repeats or key not in self.seen:
                return arch
        return self.random_unseen()

    def _decoded(self, genome: np.ndarray) -> tuple[Arch, str]:
        raw = genome.tobytes()
        hit = self._memo.get(raw)
        if hit is None:
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            arch = self.space.decode(genome.tolist())
            hit = self._memo[raw] = (arch, self.space.arch_id(arch))
        return copy.deepcopy(hit[0]), hit[1]

    def observe(self, arch: Arch, score: float | None, result: Mapping[str, Any] | None) -> None:
        genome = np.asarray(self.space.encode(arch), dtype=np.int64)
        mask = np.asarray(self.space.active_mask(arch), dtype=bool)
        self.buffer.append((genome, mask, self.score_or_worst(score)))
        if len(self.buffer) >= self.batch_size:
            self._update()

    def get_state(self) -> dict[str, Any]:
        memo = self.__dict__.pop("_memo")
        try:
            return super().get_state()
        finally:
            self._memo = memo

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._memo = {}

    # --- learning ---------------------------------------------------------------------
    def _update(self) -> None:
        p = self.probabilities()
        grad = np.zeros_like(self.logits)
        rows = np.arange(len(self.sizes))
        for genome, mask, reward in self.buffer:
            advantage = self._advantage(reward)
            # d log p(a) / d z = onehot(a) - p, on the genes this architecture uses.
            g = -p.copy()
            g[rows, genome] += 1.0
            grad += advantage * (g * mask[:, None])
        grad /= len(self.buffer)
        if self.entropy_weight > 0:
            logp = np.log(np.where(self.valid, p, 1.0))
            entropy = -(p * logp).sum(axis=1, keepdims=True)
            # d H / d z_k = -p_k (log p_k + H) for each gene's categorical.
            grad += self.entropy_weight * (-p * (logp + entropy))
        self.buffer = []
        self._adam_ascent(np.where(self.valid, grad, 0.0))

    def _advantage(self, reward: float) -> float:
        """Update the baseline with ``reward``, then ``(reward - baseline) / reward std``."""
        d = self.baseline_decay
        self.ema_num = d * self.ema_num + (1 - d) * reward
        self.ema_den = d * self.ema_den + (1 - d)
        baseline = self.ema_num / self.ema_den
        diff = reward - baseline
        self.var_num = d * self.var_num + (1 - d) * diff * diff
        std = math.sqrt(self.var_num / self.ema_den)
        return diff / std if std > 1e-12 else 0.0

    def _adam_ascent(self, grad: np.ndarray) -> None:
        b1, b2 = ADAM_BETAS
        self.adam_t += 1
        self.adam_m = b1 * self.adam_m + (1 - b1) * grad
        self.adam_v = b2 * self.adam_v + (1 - b2) * grad * grad
        m_hat = self.adam_m / (1 - b1**self.adam_t)
        v_hat = self.adam_v / (1 - b2**self.adam_t)
        self.logits = self.logits + self.learning_rate * m_hat / (np.sqrt(v_hat) + ADAM_EPS)
