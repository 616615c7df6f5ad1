"""REINFORCE learns only from samples its policy drew, importance-weighted when stale."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raynas.strategies import get_strategy
from raynas.strategies.reinforce import Reinforce
from raynas.testing.strategies import HandDriver, hash_objective, small_space, tiny_space


def peaked(space_fn=tiny_space, **kwargs: object) -> Reinforce:  # type: ignore[no-untyped-def]
    """A REINFORCE whose policy puts (almost) all its mass on gene value 0 everywhere."""
    s = get_strategy("reinforce", space_fn(), metric="score", mode="max", seed=0, **kwargs)
    assert isinstance(s, Reinforce)
    s.logits = np.where(s.valid, 0.0, 0.0)
    s.logits[:, 0] = 60.0
    return s


def test_a_fallback_sample_the_policy_did_not_draw_stays_out_of_the_gradient() -> None:
    s = peaked()
    first = s.suggest("t0")
    assert isinstance(first, dict) and s.space.arch_id(first["arch"]) in s.behaviour
    s.on_trial_complete("t0", {"score": 0.5})
    assert s.off_policy == 0 and s.adam_t == 1
    logits = s.logits.copy()
    # Every policy sample is now the evaluated arch: the proposal is a uniform fallback.
    fallback = s.suggest("t1")
    assert isinstance(fallback, dict) and fallback["arch"] != first["arch"]
    assert s.behaviour == {}
    s.on_trial_complete("t1", {"score": 1.0})
    assert s.off_policy == 1 and s.buffer == [] and s.adam_t == 1  # v0.1: an update
    np.testing.assert_array_equal(s.logits, logits)


def test_the_base_random_fallback_is_off_policy_too() -> None:
    s = peaked()
    s.suggest("t0")
    s.on_trial_complete("t0", {"score": 0.5})
    s.propose = lambda: s.history[0][0]  # type: ignore[method-assign]  # duplicates only
    out = s.suggest("t1")  # the base draws a random unseen member after MAX_REPROPOSE
    assert isinstance(out, dict)
    s.on_trial_complete("t1", {"score": 0.9})
    assert s.off_policy == 1 and s.adam_t == 1


def test_importance_weight_is_one_at_concurrency_one() -> None:
    s = get_strategy("reinforce", small_space(), metric="score", mode="max", seed=1)
    weights: list[float] = []
    iw = s.importance_weights
    s.importance_weights = lambda p: weights.extend(iw(p)) or iw(p)  # type: ignore[method-assign]
    HandDriver(s, hash_objective).run(20)
    assert len(weights) == 19 and all(w == 1.0 for w in weights)  # 19 updates (the 20th runs)


@pytest.mark.parametrize(("seed", "truncated"), [(0, False), (2, True)])
def test_a_stale_sample_is_weighted_by_the_truncated_probability_ratio(
    seed: int, truncated: bool
) -> None:
    s = get_strategy("reinforce", small_space(), metric="score", mode="max", seed=seed)
    a, b, c = (s.suggest(t) for t in "abc")
    assert isinstance(a, dict) and isinstance(b, dict) and isinstance(c, dict)
    logp_old = s.behaviour[s.space.arch_id(c["arch"])][0]
    s.on_trial_complete("a", {"score": 0.2})
    s.on_trial_complete("b", {"score": 0.9})  # the policy moved toward b since c was drawn
    p = s.probabilities()
    genome, mask = s._genome_and_mask(c["arch"])
    ratio = math.exp(s._log_prob(p, genome, mask) - logp_old)
    weights: list[float] = []
    iw = s.importance_weights
    s.importance_weights = lambda q: weights.extend(iw(q)) or iw(q)  # type: ignore[method-assign]
    s.on_trial_complete("c", {"score": 0.5})
    assert (ratio > 1.0) is truncated  # seed 2: c shares b's genes, which gained mass
    assert weights == [pytest.approx(min(1.0, ratio))]


def test_log_prob_counts_only_the_genes_an_architecture_uses() -> None:
    s = peaked()
    p = s.probabilities()
    genome = np.zeros(len(s.sizes), dtype=np.int64)
    all_on = np.ones(len(s.sizes), dtype=bool)
    assert s._log_prob(p, genome, all_on) == pytest.approx(float(np.log(p[:, 0]).sum()))
    assert s._log_prob(p, genome, np.zeros(len(s.sizes), dtype=bool)) == 0.0


def test_a_refused_sample_is_forgotten() -> None:
    s = get_strategy("reinforce", small_space(), metric="score", mode="max", seed=0)
    refused: list[str] = []

    def check(arch: dict) -> list[str]:  # type: ignore[type-arg]
        if not refused:
            refused.append(s.space.arch_id(arch))
            return ["first one"]
        return []

    s.set_constraint_check(check)
    out = s.suggest("t0")
    assert isinstance(out, dict) and s.refused == 1
    assert refused[0] not in s.behaviour and s.space.arch_id(out["arch"]) in s.behaviour
