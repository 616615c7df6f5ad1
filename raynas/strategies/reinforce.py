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

The algorithm, exactly. The policy ``p`` is a product of one softmax per gene. A proposal
draws genomes from ``p`` (``SAMPLE_TRIES`` at a time) and returns the first whose architecture
is not yet evaluated, in flight or refused; its log-probability under the policy of that
moment, ``log p_old(a)`` (a sum over the genes the architecture uses), is remembered. Only
such samples are *on-policy* and enter the gradient. Anything else that gets evaluated (the
uniform random member this strategy falls back to when every sample was already seen, the
base's random fallback after repeated duplicates, an architecture a scheduler changed) is
off-policy: it updates nothing here (``off_policy`` counts them). A refused candidate
(constraint check) is forgotten, never rewarded.

Every ``batch_size`` on-policy results, one update (NAS-Bench-201's, with three additions):

1. rewards are the base's :meth:`~raynas.strategies.base.NASSearcher.value` of each result,
   read at update time (an early-stopped trial compared within its rung); a failure's reward
   is :meth:`~raynas.strategies.base.NASSearcher.worst_score` at update time, below every
   valid value seen so far. While no valid value exists the update waits (the policy does not
   move, so the samples it holds stay on-policy);
2. the valid rewards of the batch, in order, update the bias-corrected moving averages
   (momentum ``baseline_decay``, 0.9 as in NAS-Bench-201) of the reward (the baseline ``b``)
   and of its squared deviation (``s^2``); failures do not enter them. Then for every sample
   ``advantage = (reward - b) / s`` (while ``s`` is 0: 0 for a valid reward, -1 for a
   failure), so a failure's advantage is below every valid one of the same update, and the
   step means the same for an accuracy in [0, 1] or in %;
3. the gradient is ``mean_i rho_i * advantage_i * grad log p(a_i)`` with the truncated
   importance weight ``rho_i = min(1, p(a_i) / p_old(a_i))`` (IMPALA's V-trace truncation):
   1 exactly when no update happened between the sample's proposal and this update (one
   trial at a time), below 1 for a stale sample the policy has since moved away from. Plus
   ``entropy_weight`` times the gradient of the policy's entropy (default 1e-3), against
   early collapse; Adam does the ascent step.

Rejecting already-seen samples makes ``a`` a draw from ``p`` restricted to the unseen set,
``q(a) = p(a) / (1 - p(S))``; the update uses ``grad log p(a)``, which differs from
``grad log q(a)`` by ``grad log(1 - p(S))``, the same vector for every sample: its weight in
the update, the mean advantage, is zero on average, so the restriction adds no systematic
direction.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
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
        #: (genome, active mask, history index, log p_old) of on-policy results not yet
        #: learned from.
        self.buffer: list[tuple[np.ndarray, np.ndarray, int, float]] = []
        #: Arch id -> log-probabilities of the policy samples proposed for it, not yet back.
        self.behaviour: dict[str, list[float]] = {}
        #: Evaluated architectures this policy did not sample (left out of the gradient).
        self.off_policy = 0
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
        The random member is off-policy: its result will not enter the gradient.
        """
        p = self.probabilities()
        cum = np.cumsum(p, axis=1)
        u = self.rng.random((SAMPLE_TRIES, len(self.sizes)))
        idx = (u[:, :, None] >= cum[None, :, :]).sum(axis=2)
        genomes = np.minimum(idx, np.asarray(self.sizes) - 1)
        for genome in genomes:
            arch, key = self._decoded(genome)
            if key not in self.refused_ids and (self.allow_repeats or key not in self.seen):
                logp = self._log_prob(p, *self._genome_and_mask(arch))
                self.behaviour.setdefault(key, []).append(logp)
                return arch
        return self.random_unseen()

    def _genome_and_mask(self, arch: Arch) -> tuple[np.ndarray, np.ndarray]:
        genome = np.asarray(self.space.encode(arch), dtype=np.int64)
        return genome, np.asarray(self.space.active_mask(arch), dtype=bool)

    def _log_prob(self, p: np.ndarray, genome: np.ndarray, mask: np.ndarray) -> float:
        """``log p(a)`` under the policy ``p``: the genes the architecture uses."""
        rows = np.arange(len(self.sizes))
        return float(np.log(p[rows, genome])[mask].sum())

    def on_infeasible(self, arch: Arch, violations: Sequence[str]) -> None:
        self._take_behaviour(self.space.arch_id(arch))

    def _take_behaviour(self, key: str) -> float | None:
        """The log-probability of one pending policy sample of ``key`` (None: off-policy)."""
        pending = self.behaviour.get(key)
        if not pending:
            return None
        logp = pending.pop(0)
        if not pending:
            del self.behaviour[key]
        return logp

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
        logp = self._take_behaviour(self.space.arch_id(arch))
        if logp is None:
            self.off_policy += 1
            return
        genome, mask = self._genome_and_mask(arch)
        self.buffer.append((genome, mask, len(self.history) - 1, logp))
        if len(self.buffer) >= self.batch_size and self.worst_score() is not None:
            self._update()

    def _state(self) -> dict[str, Any]:
        state = super()._state()
        state.pop("_memo", None)  # a memo of pure functions of the genome
        return state

    def _load_state(self, state: dict[str, Any]) -> None:
        super()._load_state(state)
        self._memo = {}

    # --- learning ---------------------------------------------------------------------
    def _update(self) -> None:
        p = self.probabilities()
        grad = np.zeros_like(self.logits)
        rows = np.arange(len(self.sizes))
        values = self.values()
        for _, _, index, _ in self.buffer:
            if np.isfinite(values[index]):
                self._fold(float(values[index]))
        advantages = self.advantages()
        for (genome, mask, _, _), advantage, rho in zip(
            self.buffer, advantages, self.importance_weights(p)
        ):
            # d log p(a) / d z = onehot(a) - p, on the genes this architecture uses.
            g = -p.copy()
            g[rows, genome] += 1.0
            grad += rho * advantage * (g * mask[:, None])
        grad /= len(self.buffer)
        if self.entropy_weight > 0:
            logp = np.log(np.where(self.valid, p, 1.0))
            entropy = -(p * logp).sum(axis=1, keepdims=True)
            # d H / d z_k = -p_k (log p_k + H) for each gene's categorical.
            grad += self.entropy_weight * (-p * (logp + entropy))
        self.buffer = []
        self._adam_ascent(np.where(self.valid, grad, 0.0))

    def _fold(self, reward: float) -> None:
        """Update the moving averages of the reward and of its squared deviation."""
        d = self.baseline_decay
        self.ema_num = d * self.ema_num + (1 - d) * reward
        self.ema_den = d * self.ema_den + (1 - d)
        diff = reward - self.ema_num / self.ema_den
        self.var_num = d * self.var_num + (1 - d) * diff * diff

    def advantages(self) -> list[float]:
        """``(reward - baseline) / std`` of each buffered sample, rewards resolved now."""
        values, worst = self.values(), self.worst_score()
        baseline = self.ema_num / self.ema_den if self.ema_den > 0 else None
        std = math.sqrt(self.var_num / self.ema_den) if self.ema_den > 0 else 0.0
        out = []
        for _, _, index, _ in self.buffer:
            failed = not np.isfinite(values[index])
            reward = worst if failed else float(values[index])
            if reward is None or baseline is None or std <= 1e-12:
                # No spread yet: a valid reward is the baseline; a failure is below it.
                out.append(-1.0 if failed else 0.0)
            else:
                out.append((reward - baseline) / std)
        return out

    def importance_weights(self, p: np.ndarray) -> list[float]:
        """``min(1, p(a) / p_old(a))`` of each buffered sample under the policy ``p``."""
        return [
            min(1.0, math.exp(self._log_prob(p, genome, mask) - logp_old))
            for genome, mask, _, logp_old in self.buffer
        ]

    def _adam_ascent(self, grad: np.ndarray) -> None:
        b1, b2 = ADAM_BETAS
        self.adam_t += 1
        self.adam_m = b1 * self.adam_m + (1 - b1) * grad
        self.adam_v = b2 * self.adam_v + (1 - b2) * grad * grad
        m_hat = self.adam_m / (1 - b1**self.adam_t)
        v_hat = self.adam_v / (1 - b2**self.adam_t)
        self.logits = self.logits + self.learning_rate * m_hat / (np.sqrt(v_hat) + ADAM_EPS)
