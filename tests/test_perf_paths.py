"""The fast paths of issue 18 keep their behaviour: the per-process cost cache, the
sync-free training loop, and small, exact searcher states (no timings asserted here)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray.tune.trainable.trainable as tune_trainable

import raynas
from raynas.experiment.config import trial_settings
from raynas.experiment.config_load import load_config
from raynas.space import Choice, Space
from raynas.strategies import get_strategy
from raynas.testing.strategies import HandDriver, hash_objective, small_space
from tests.conftest import QUICKSTART
from trainables import child, classify

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"


def _config() -> dict[str, Any]:
    exp = load_config(QUICKSTART, overrides=["train.epochs=1", "space_args={C: 4, N: 1}"])
    cfg = trial_settings(exp)
    cfg["arch"] = raynas.get_space("nb201", C=4, N=1).from_string(ARCH)
    return cfg


def _trainable(cfg: dict[str, Any], tmp_path: Path) -> classify.ClassifyTrainable:
    tune_trainable.DEFAULT_STORAGE_PATH = str(tmp_path)  # type: ignore[attr-defined]
    return classify.ClassifyTrainable(config=cfg)


def test_a_second_trial_of_the_same_arch_reuses_the_measured_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    measure = child.measure_cost

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return measure(*args, **kwargs)

    monkeypatch.setattr(child, "measure_cost", counted)
    child.clear_cost_cache()
    cfg = _config()
    trainable = _trainable(cfg, tmp_path)
    first = trainable.train()
    assert trainable.reset_config(dict(cfg)) is True  # the same arch again, reused actor
    second = trainable.train()
    assert len(calls) == 1
    for key in ("params", "flops", "latency_ms"):
        assert first[key] == second[key]
    other = dict(
        cfg,
        arch=raynas.get_space("nb201", C=4, N=1).from_string(ARCH.replace("none", "skip_connect")),
    )
    trainable.reset_config(other)  # another arch is measured
    assert len(calls) == 2
    other_space = dict(cfg, space={"name": "nb201", "args": {"C": 8, "N": 1}})
    trainable.reset_config(other_space)  # the same arch in another space is another child
    assert len(calls) == 3 and trainable.cost["params"] > first["params"]
    child.clear_cost_cache()


def test_a_loss_that_turns_nan_mid_epoch_ends_the_trial_as_diverged(tmp_path: Path) -> None:
    cfg = _config()
    trainable = _trainable(cfg, tmp_path)
    steps = {"n": 0}
    criterion = trainable.criterion

    def poisoned(logits: Any, target: Any) -> Any:
        steps["n"] += 1
        loss = criterion(logits, target)
        return loss * float("nan") if steps["n"] == 3 else loss

    trainable.criterion = poisoned  # type: ignore[assignment]
    result = trainable.train()
    assert result["status"] == "diverged" and result["done"] is True
    assert steps["n"] <= classify.FINITE_CHECK_EVERY  # checked within the next N steps


def _million() -> Space:
    return Space({"a": Choice(list(range(1000))), "b": Choice(list(range(1000)))}, name="m")


def test_grid_state_over_a_million_members_is_small_and_restores_the_same_order(
    tmp_path: Path,
) -> None:
    a: Any = get_strategy("grid", _million(), metric="score", mode="max", seed=3)
    small = len(pickle.dumps(a.space)) + 5_000  # the space's own description, a few numbers
    assert len(pickle.dumps(a.get_state())) < small
    path = tmp_path / "grid.pkl"
    a.cursor = 123_456
    a.save(str(path))
    assert path.stat().st_size < small
    b: Any = get_strategy("grid", _million(), metric="score", mode="max", seed=99)
    b.restore(str(path))
    assert b.cursor == 123_456
    np.testing.assert_array_equal(a.order, b.order)
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


def test_grid_order_is_the_seeded_shuffle_of_the_member_indices() -> None:
    space = small_space()
    grid: Any = get_strategy("grid", space, metric="score", mode="max", seed=5)
    expected = list(range(space.cardinality or 0))
    np.random.default_rng(5).shuffle(expected)
    assert grid.order.tolist() == expected


@pytest.mark.parametrize("name", ["bo", "tpe", "reinforce", "grid", "evolution"])
def test_get_state_is_an_independent_copy_and_restores_exactly(name: str, tmp_path: Path) -> None:
    space = small_space()
    args: dict[str, Any] = {"num_init": 4, "fit_steps": 2} if name == "bo" else {}
    a: Any = get_strategy(name, space, metric="score", mode="max", seed=1, **args)
    HandDriver(a, hash_objective).run(12)
    state = a.get_state()
    state["history"].clear()
    state["seen"].clear()
    assert len(a.history) >= 11 and len(a.seen) >= 11  # the live searcher is untouched
    for derived in ("rows", "_genomes", "_order", "_members", "_cache", "_memo"):
        assert derived not in a.get_state()  # rebuilt on restore, never saved
    a.save(str(tmp_path / "s.pkl"))
    b: Any = get_strategy(name, space, metric="score", mode="max", seed=7, **args)
    b.restore(str(tmp_path / "s.pkl"))
    c = get_strategy(name, space, metric="score", mode="max", seed=8, **args)
    c.set_state(a.get_state())
    if name == "bo":
        assert all(np.array_equal(x, y) for x, y in zip(a.rows, b.rows, strict=True))
    nxt = [s.suggest("next") for s in (a, b, c)]
    assert nxt[0] == nxt[1] == nxt[2]


def test_tpe_state_holds_no_hyperopt_trials_and_stays_small() -> None:
    space = raynas.get_space("nb201")
    s: Any = get_strategy("tpe", space, metric="score", mode="max", seed=0, n_initial_points=5)
    HandDriver(s, hash_objective).run(200)
    assert len(s._genomes) == len(s.history)
    assert len(pickle.dumps(s.get_state())) < 200 * 1000  # about 0.5 kB an observation
