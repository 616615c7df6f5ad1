"""ENAS: the controller, its REINFORCE step, and real searches on digits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import raynas
from raynas.experiment.config import ConfigError
from raynas.experiment.config_check import check_experiment
from raynas.experiment.config_load import load_config
from tests.conftest import small_experiment
from tests.oneshot_harness import make_oneshot_trainable, run_oneshot
from trainables.oneshot.common import DERIVED_ARCH_FILE
from trainables.oneshot.enas import Controller, EnasTrainable, ReinforceState, reinforce_step

torch.set_num_threads(1)


def test_controller_samples_valid_decisions_with_their_log_probability() -> None:
    torch.manual_seed(0)
    sizes = [5, 2, 3, 4]
    controller = Controller(sizes, hidden=16)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        decisions, log_prob, entropy = controller(generator=g)
        assert len(decisions) == len(sizes)
        assert all(0 <= d < s for d, s in zip(decisions, sizes))
        assert float(log_prob.detach()) < 0 and float(entropy.detach()) > 0
    greedy = controller(greedy=True)[0]
    assert greedy == controller(greedy=True)[0]


def test_controller_logits_are_bounded_by_the_tanh_constant() -> None:
    torch.manual_seed(0)
    controller = Controller([5] * 6, hidden=8, temperature=1.0, tanh_constant=1.0)
    for p in controller.parameters():
        torch.nn.init.normal_(p, std=10.0)  # raw logits far apart
    _, log_prob, _ = controller(greedy=True)
    # with logits in [-1, 1], no option of 5 has a probability above e / (e + 4 / e)
    bound = torch.log(torch.tensor(torch.e / (torch.e + 4 / torch.e)))
    assert float(log_prob.detach()) <= 6 * float(bound) + 1e-5


def test_reinforce_improves_the_reward_of_a_tiny_task() -> None:
    """Reward: the share of decisions equal to a target sequence; REINFORCE must learn it."""
    torch.manual_seed(0)
    sizes = [5] * 6
    target = [3, 1, 4, 1, 0, 2]
    controller = Controller(sizes, hidden=32)
    optimizer = torch.optim.Adam(controller.parameters(), lr=0.02)
    state = ReinforceState()
    g = torch.Generator().manual_seed(0)

    def reward(decisions: list[int]) -> float:
        return sum(d == t for d, t in zip(decisions, target)) / len(target)

    rewards = [
        reinforce_step(
            controller,
            optimizer,
            reward,
            state,
            entropy_weight=1e-4,
            baseline_decay=0.9,
            generator=g,
        )[0]
        for _ in range(300)
    ]
    first, last = sum(rewards[:30]) / 30, sum(rewards[-30:]) / 30
    assert first < 0.4 and last > first + 0.3, (first, last)
    assert controller(greedy=True)[0] == target


# --- the trainable -----------------------------------------------------------------------------
def make_trainable(tmp_path: Path, epochs: int = 2, **sections: Any) -> EnasTrainable:
    sections.setdefault("trainable_args", {"controller_steps": 5, "derive_samples": 4})
    trainable: EnasTrainable = make_oneshot_trainable(
        EnasTrainable, tmp_path, epochs=epochs, **sections
    )
    return trainable


def test_enas_trains_the_controller_and_derives_a_valid_arch(tmp_path: Path) -> None:
    trainable = make_trainable(tmp_path)
    before = [p.detach().clone() for p in trainable.controller.parameters()]
    results = [trainable.train() for _ in range(2)]
    assert [r["epoch"] for r in results] == [1, 2] and results[-1]["done"] is True
    after = list(trainable.controller.parameters())
    assert any(not torch.equal(a.detach(), b) for a, b in zip(after, before))
    for r in results:
        trainable.space.validate(r["arch"])
        assert 0.0 <= r["reward"] <= 1.1 and r["arch_entropy"] > 0
        assert r["arch_str"] == trainable.space.to_string(r["arch"])
    assert (
        json.loads((Path(trainable.logdir) / DERIVED_ARCH_FILE).read_text()) == results[-1]["arch"]
    )


def test_enas_checkpoint_restores_controller_and_baseline(tmp_path: Path) -> None:
    a = make_trainable(tmp_path / "a", epochs=3)
    a.train()
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    a.save_checkpoint(str(ckpt))
    b = make_trainable(tmp_path / "b", epochs=3)
    b.load_checkpoint(str(ckpt))
    assert b.reinforce.baseline == a.reinforce.baseline and b.epoch == 1
    for pa, pb in zip(a.controller.parameters(), b.controller.parameters()):
        assert torch.equal(pa, pb)


def test_enas_on_the_darts_space_derives_a_valid_genotype(tmp_path: Path) -> None:
    trainable = make_trainable(
        tmp_path,
        epochs=1,
        space="darts",
        space_args={"C": 4, "layers": 5},
        trainable_args={
            "controller_steps": 5,
            "derive_samples": 4,
            "search_args": {"C": 2, "layers": 3},
        },
    )
    assert len(trainable.net.cells) == 3  # the search size, not space_args
    result = trainable.train()
    trainable.space.validate(result["arch"])
    assert result["arch_str"].startswith("Genotype(normal=[")


def test_enas_config_errors_name_the_field(tmp_path: Path) -> None:
    exp = load_config(
        small_experiment(
            tmp_path,
            trainable="enas",
            trainable_args={"controller_steps": 0, "baseline_decay": 1.0, "order": 2},
        )
    )
    with pytest.raises(ConfigError) as info:
        check_experiment(exp)
    errors = info.value.errors
    assert any(e.startswith("trainable_args.order: unknown option") for e in errors), errors
    exp = load_config(
        small_experiment(
            tmp_path,
            trainable="enas",
            trainable_args={"controller_steps": 0, "baseline_decay": 1.0},
        )
    )
    with pytest.raises(ConfigError) as info:
        check_experiment(exp)
    assert (
        "trainable_args.controller_steps: input should be greater than or equal to 1, got 0"
        in info.value.errors
    )
    assert (
        "trainable_args.baseline_decay: input should be less than 1, got 1.0" in info.value.errors
    )


@pytest.mark.slow
def test_enas_end_to_end_through_raynas_run(tmp_path: Path, local_ray: None) -> None:
    _result, lasts = run_oneshot(tmp_path, "enas", {"controller_steps": 5, "derive_samples": 4})
    space = raynas.get_space("nb201", C=4, N=1)
    for tdir, last in lasts:
        space.validate(last["arch"])
        assert json.loads(Path(tdir, DERIVED_ARCH_FILE).read_text()) == last["arch"]
        assert {"reward", "baseline", "arch_entropy", "collapse"} <= last.keys()
