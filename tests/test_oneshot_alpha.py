"""The architecture weights that DARTS and GDAS share (:class:`AlphaTrainable`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.oneshot_harness import make_oneshot_trainable
from trainables.oneshot.darts import AlphaTrainable, DartsTrainable
from trainables.oneshot.gdas import GdasTrainable

torch.set_num_threads(1)


@pytest.mark.parametrize("cls", [DartsTrainable, GdasTrainable])
def test_alphas_start_from_the_seed_and_their_adam_takes_the_arch_options(
    cls: type[AlphaTrainable], tmp_path: Path
) -> None:
    args = {"arch_lr": 0.02, "arch_betas": [0.4, 0.9], "arch_weight_decay": 0.0}
    a, b = (make_oneshot_trainable(cls, tmp_path / n, epochs=1, trainable_args=args) for n in "ab")
    assert a.alphas.keys() == b.alphas.keys()
    assert all(torch.equal(a.alphas[k], b.alphas[k]) for k in a.alphas)
    group = a.arch_optimizer.param_groups[0]
    assert isinstance(a.arch_optimizer, torch.optim.Adam)
    assert (group["lr"], group["betas"], group["weight_decay"]) == (0.02, (0.4, 0.9), 0.0)


def test_gdas_method_state_round_trips_the_alphas_and_their_optimizer(tmp_path: Path) -> None:
    source = make_oneshot_trainable(
        GdasTrainable, tmp_path / "source", epochs=2, trainable_args={"arch_lr": 0.01}
    )
    source.train()
    state = source._method_state()
    assert set(state) == {"alphas", "arch_optimizer"}
    target = make_oneshot_trainable(
        GdasTrainable, tmp_path / "target", epochs=2, trainable_args={"arch_lr": 0.01}
    )
    target._load_method_state(state)
    for key, alpha in source.alphas.items():
        assert torch.equal(target.alphas[key].detach(), alpha.detach().cpu())
    restored = target.arch_optimizer.state_dict()["state"]
    assert restored.keys() == source.arch_optimizer.state_dict()["state"].keys()
    assert all(int(s["step"]) > 0 for s in restored.values())
