"""The scores strategies learn from: failures below every valid result, early-stopped trials
compared within their rung, both resolved at use time (``raynas.strategies.scores``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from raynas.registry import get_space
from raynas.strategies import get_strategy
from raynas.strategies.base import NASSearcher
from raynas.strategies.scores import resolve_values, rung_map, worst_below
from raynas.testing.strategies import small_space

SPACE = small_space()


def searcher(name: str, **kwargs: Any) -> NASSearcher:
    kwargs.setdefault("metric", "loss")
    kwargs.setdefault("mode", "min")
    return get_strategy(name, SPACE, seed=0, **kwargs)


def run_trial(
    s: NASSearcher, trial_id: str, final: Any, curve: dict[int, float] | None = None, **extra: Any
) -> dict[str, Any]:
    """Suggest, report ``curve`` (epoch -> metric) with on_trial_result, complete with
    ``final`` (a metric value, None = failed, or a result dict)."""
    out = s.suggest(trial_id)
    assert isinstance(out, dict), out
    for epoch, value in (curve or {}).items():
        s.on_trial_result(trial_id, {s.metric: value, "epoch": epoch, **extra})
    if isinstance(final, dict) or final is None:
        s.on_trial_complete(trial_id, final)
    else:
        s.on_trial_complete(trial_id, {s.metric: final, **extra})
    return out["arch"]  # type: ignore[no-any-return]


# --- failures ----------------------------------------------------------------------------
def test_worst_score_is_none_before_any_valid_result_then_below_every_one() -> None:
    s = searcher("random")
    run_trial(s, "t0", None)
    assert s.worst_score() is None  # v0.1: 0.0, the best score of a negative objective
    run_trial(s, "t1", 2.3)
    run_trial(s, "t2", 0.5)
    worst = s.worst_score()
    assert worst is not None and worst < -2.3
    assert math.isnan(s.values()[0]) and s.value(0) is None
    assert list(s.filled_values()) == [worst, -2.3, -0.5]


def test_worst_below_is_shift_invariant() -> None:
    v = np.array([0.2, np.nan, 0.7, 0.4])
    assert worst_below(v) == pytest.approx(0.2 - 0.5)
    assert worst_below(v - 3.0) == pytest.approx(worst_below(v) - 3.0)
    assert worst_below(np.array([np.nan])) is None
    assert worst_below(np.array([-2.0, np.nan])) == pytest.approx(-2.2)


def test_tpe_failure_before_any_valid_result_has_the_worst_loss() -> None:
    """The issue's case: a first failure, then valid losses 2.3 and 0.5 (mode min)."""
    s = searcher("tpe", n_initial_points=5)
    for i, final in enumerate([None, 2.3, 0.5]):
        run_trial(s, f"t{i}", final)
    losses = s.losses()
    assert losses[0] == math.inf  # v0.1: 0.0, below (better than) both valid losses
    assert losses[1] == pytest.approx(2.3) and losses[2] == pytest.approx(0.5)


def test_reinforce_failure_first_never_gets_a_made_up_reward() -> None:
    """A lone failure moves nothing; once valid rewards exist (-2.3, -0.5 in mode min), the
    failure's advantage in the update is below both, and the baseline holds valid rewards."""
    s = searcher("reinforce", batch_size=3)
    seen: list[list[float]] = []
    advantages = s.advantages
    s.advantages = lambda: seen.append(advantages()) or seen[-1]  # type: ignore[method-assign]
    before = s.logits.copy()
    run_trial(s, "t0", None)
    np.testing.assert_array_equal(s.logits, before)
    run_trial(s, "t1", 2.3)
    run_trial(s, "t2", 0.5)
    (adv,) = seen
    assert adv[0] < min(adv[1:])
    assert -2.3 <= s.ema_num / s.ema_den <= -0.5


def test_reinforce_waits_for_a_valid_reward_and_keeps_failures_on_policy() -> None:
    s = searcher("reinforce")
    before = s.logits.copy()
    for i in range(3):
        run_trial(s, f"t{i}", None)
    assert len(s.buffer) == 3 and s.adam_t == 0  # no update: the policy has not moved
    np.testing.assert_array_equal(s.logits, before)
    run_trial(s, "t3", 1.0)
    assert s.buffer == [] and s.adam_t == 1


def test_bo_targets_put_failures_below_negative_scores() -> None:
    s = searcher("bo", num_init=3)
    for i, final in enumerate([None, 2.3, None, 0.5, 1.0]):
        run_trial(s, f"t{i}", final)
    y = s._targets()
    assert y[0] == y[2] < min(y[1], y[3], y[4])
    assert np.argsort(y).tolist()[-1] == 3  # loss 0.5 is the best


def test_evolution_and_local_search_rank_failures_last_in_mode_min() -> None:
    evo = searcher("evolution", population_size=3, sample_size=3)
    for i, final in enumerate([None, 2.3, 0.5]):
        run_trial(evo, f"t{i}", final)
    best = evo.history[2][0]
    assert all(evo._tournament() == best for _ in range(5))
    ls = searcher("local_search")
    run_trial(ls, "c", None)
    assert ls.score(ls.center_id or "") is None


# --- early-stopped trials ----------------------------------------------------------------
def test_rung_map_is_quantile_matching_with_shifted_ends() -> None:
    pairs = [(0.6, 0.90), (0.7, 0.95), (0.8, 0.97)]
    out = rung_map(np.array([0.5, 0.6, 0.65, 0.75, 0.8, 0.9]), pairs)
    np.testing.assert_allclose(out, [0.80, 0.90, 0.925, 0.96, 0.97, 1.07])
    # quantiles, not pairs: the two columns are sorted separately
    np.testing.assert_allclose(rung_map(np.array([0.6]), [(0.6, 0.97), (0.8, 0.90)]), [0.90])
    ties = rung_map(np.array([0.6, 0.7]), [(0.6, 0.9), (0.6, 1.0)])
    np.testing.assert_allclose(ties, [0.95, 1.05])


def test_resolve_values_compares_within_the_rung() -> None:
    pairs = {1.0: [(0.60, 0.90), (0.70, 0.95)]}
    values = resolve_values([0.90, 0.95, 0.65, 0.50, None], [None, None, 1, 1, 1], pairs)
    # C (0.65 at epoch 1) beat A (0.60) there but not B (0.70); D (0.50) beat neither.
    assert values[0] < values[2] < values[1]
    assert values[3] == pytest.approx(0.80)
    assert math.isnan(values[4])


def test_without_curves_a_rung_ranks_below_the_rungs_above_and_keeps_its_order() -> None:
    # full 0.80, 0.70; stopped at epoch 1: 0.95 and 0.90; at epoch 3: 0.50; no curves
    values = resolve_values([0.80, 0.95, 0.70, 0.50, 0.90, None], [None, 1, None, 3, 1, 1], {})
    assert min(values[[0, 2]]) > values[3] > max(values[[1, 4]])
    assert values[1] - values[4] == pytest.approx(0.05)  # v0.1 tied both at 0.70
    assert values[0] == 0.80 and values[2] == 0.70  # full-budget scores as observed
    assert math.isnan(values[5])
    kept = resolve_values([0.90, 0.50, 0.95, 0.60, 0.70], [None, 1, None, 1, 2], {})
    np.testing.assert_allclose(kept, [0.90, 0.50, 0.95, 0.60, 0.70])  # already in order
    raw = resolve_values([0.60, 0.95, 0.40], [3, 1, 3], {})  # no full-budget result
    assert raw[0] == 0.60 and raw[2] == 0.40 and raw[1] < 0.40


TRIALS = {  # name: (curve, final score, stopped at; None = the full 3 epochs)
    "A": ({1: 0.60, 2: 0.80}, 0.90, None),
    "B": ({1: 0.70, 2: 0.85}, 0.95, None),
    "C": ({1: 0.65}, None, 1),
    "D": ({1: 0.50}, None, 1),
    "E": ({1: 0.68, 2: 0.83}, None, 2),
}


def _report(s: NASSearcher, tid: str, curve: dict[int, float], final: Any, stopped: Any) -> None:
    """A trial's curve as Tune reports it: every epoch but the last by on_trial_result."""
    if stopped is None:
        for epoch, acc in curve.items():
            s.on_trial_result(tid, {"acc": acc, "epoch": epoch, "epochs_total": 3})
        s.on_trial_complete(tid, {"acc": final, "epoch": 3, "epochs_total": 3})
    else:
        for epoch in sorted(curve)[:-1]:
            s.on_trial_result(tid, {"acc": curve[epoch], "epoch": epoch, "epochs_total": 3})
        s.on_trial_complete(tid, {"acc": curve[stopped], "epoch": stopped, "epochs_total": 3})


def _values_after(order: str) -> dict[str, float]:
    """Every trial suggested first, then completed in ``order`` (max accuracy, 3 epochs)."""
    s = get_strategy("random", SPACE, metric="acc", mode="max", seed=0)
    archs = {name: s.suggest(name)["arch"] for name in TRIALS}  # type: ignore[index]
    for name in order:
        _report(s, name, *TRIALS[name])
    by_arch = {SPACE.arch_id(a): name for name, a in archs.items()}
    return {by_arch[SPACE.arch_id(a)]: float(v) for (a, _), v in zip(s.history, s.values())}


def test_stopped_values_do_not_depend_on_the_order_results_arrive() -> None:
    first = _values_after("CDEAB")  # v0.1: C, D, E uncapped (no full result yet)
    for order in ("ABCDE", "EBDAC"):
        assert _values_after(order) == pytest.approx(first)
    assert first["A"] < first["C"] < first["B"]  # within rung 1: 0.60 < 0.65 < 0.70
    assert first["D"] < first["A"]
    assert first["A"] < first["E"] < first["B"]  # within rung 2: 0.80 < 0.83 < 0.85


def test_a_poor_full_budget_trial_no_longer_ties_every_stopped_one() -> None:
    """The first trial under ASHA always reaches the full budget, however poor (a dead
    cell at 0.10): v0.1 capped every later stopped trial at 0.10, one tie."""
    s = get_strategy("random", SPACE, metric="acc", mode="max", seed=0)
    plan = [({1: 0.10, 2: 0.10}, 0.10, None), ({1: 0.70}, None, 1), ({1: 0.60}, None, 1)]
    for i, trial in enumerate(plan):
        s.suggest(f"t{i}")
        _report(s, f"t{i}", *trial)
    values = s.values()
    assert values[0] < values[2] < values[1]


def test_stopped_result_carries_fidelity_and_censored() -> None:
    got: list[Any] = []
    s = get_strategy("random", SPACE, metric="acc", mode="max", seed=0)
    s.observe = lambda arch, score, result: got.append(result)  # type: ignore[method-assign]
    s.suggest("t")
    s.on_trial_complete("t", {"acc": 0.5, "epoch": 1, "epochs_total": 3})
    assert got[0]["fidelity"] == 1 and got[0]["censored"] is True
    assert s.fidelities == [1.0] and s.history[0][1] == 0.5  # the raw score, at epoch 1


def _feed(s: NASSearcher, plan: list[tuple[dict[int, float], Any, Any]]) -> None:
    for i, trial in enumerate(plan):
        assert isinstance(s.suggest(f"t{i}"), dict)
        _report(s, f"t{i}", *trial)


#: A trial stopped at epoch 1 comes first, then two full-budget trials; the stopped one beat
#: the first of them at epoch 1 (0.65 > 0.60) but not the second (0.70).
PLAN = [
    ({1: 0.65}, None, 1),
    ({1: 0.60, 2: 0.80}, 0.90, None),
    ({1: 0.70, 2: 0.85}, 0.95, None),
]


def test_evolution_tournament_compares_a_stopped_member_within_its_rung() -> None:
    s = get_strategy(
        "evolution", SPACE, metric="acc", mode="max", seed=0, population_size=2, sample_size=2
    )
    _feed(s, [({1: 0.95}, None, 1), PLAN[1]])
    # v0.1: 0.95 after one epoch, uncapped (it came first), beat 0.90 after three; now it
    # beat A's 0.60 at epoch 1, so it maps above A: by 0.35, not by 0.05.
    assert s._tournament() == s.history[0][0]
    assert s.value(0) == pytest.approx(0.90 + 0.35)
    _feed(s, PLAN[2:])  # the population is now (A, B): B wins
    assert s._tournament() == s.history[2][0]


def test_tpe_rewrites_losses_when_a_rung_gains_full_budget_comparisons() -> None:
    s = get_strategy("tpe", SPACE, metric="acc", mode="max", seed=0, n_initial_points=3)
    _feed(s, PLAN)
    s.propose()  # each TPE step ranks the losses resolved now
    losses = s.losses()
    assert losses[0] == pytest.approx(-s.value(0))  # v0.1 kept -0.65 forever
    assert losses[2] < losses[0] < losses[1]


def test_bo_fits_the_rung_resolved_values() -> None:
    s = get_strategy("bo", SPACE, metric="acc", mode="max", seed=0, num_init=2)
    _feed(s, PLAN)
    y = s._targets()
    assert y[1] < y[0] < y[2]


def test_moea_primary_objective_is_resolved_at_ranking() -> None:
    s = get_strategy("moea", SPACE, metric="acc", mode="max", seed=0, objectives=[("acc", "max")])
    _feed(s, PLAN)
    assert [vec[0] for _, vec in s.population] == pytest.approx(list(s.values()))
    assert s.keys[2][0] < s.keys[0][0] < s.keys[1][0]


def test_reinforce_rewards_a_stopped_trial_with_its_resolved_value() -> None:
    s = get_strategy("reinforce", SPACE, metric="acc", mode="max", seed=0, batch_size=3)
    rewards: list[float] = []
    fold = s._fold
    s._fold = lambda r: rewards.append(r) or fold(r)  # type: ignore[method-assign]
    _feed(s, PLAN)
    assert rewards == pytest.approx(list(s.values()))
    assert 0.90 < rewards[0] < 0.95


def test_local_search_compares_by_resolved_value() -> None:
    s = get_strategy("local_search", get_space("nb201", ops=["none", "skip_connect"]), metric="acc")
    s.set_search_properties(None, "max", {})
    _feed(s, PLAN)
    by_value = sorted(s.index, key=lambda k: s.score(k) or -math.inf)
    assert [s.index[k] for k in by_value] == [1, 0, 2]
