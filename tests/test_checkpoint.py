"""The one checkpoint module every trainable uses (``trainables.checkpoint``).

A restored training run must continue bit for bit, and a checkpoint must restore on the
device the trial now runs on: RNG states go back as CPU ByteTensors (the only form
``Generator.set_state`` / ``set_rng_state`` accept, also for a CUDA generator). The CUDA test
runs wherever a GPU is present.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from trainables import checkpoint
from trainables.schedule import make_lr_schedule, make_optimizer

TRAIN = {"epochs": 4, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "warmup_epochs": 1}


class _Run:
    """A small training run whose every step draws from all the RNGs a trial uses."""

    def __init__(self, device: torch.device, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.device = device
        self.model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
        self.model.to(device)
        self.optimizer = make_optimizer(self.model.parameters(), TRAIN)
        self.scheduler = make_lr_schedule(self.optimizer, 5, TRAIN)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.epoch = 0
        data = torch.Generator().manual_seed(123)
        self.x = torch.randn(40, 8, generator=data).to(device)
        self.y = torch.randint(0, 3, (40,), generator=data).to(device)

    def epoch_losses(self) -> list[float]:
        losses = []
        order = torch.randperm(40, generator=self.generator, device=self.device)
        for i in range(5):
            idx = order[i * 8 : (i + 1) * 8]
            noise = float(np.random.rand())  # numpy's global RNG is part of the state too
            loss = nn.functional.cross_entropy(self.model(self.x[idx] + noise), self.y[idx])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            losses.append(float(loss))
        self.epoch += 1
        return losses

    def state(self) -> dict:
        return checkpoint.capture(
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            generator=self.generator,
            device=self.device,
            epoch=self.epoch,
            note="kept",
        )

    def restore(self, state: dict) -> None:
        self.epoch = checkpoint.restore(
            state,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            generator=self.generator,
            device=self.device,
        )


def _continues_bit_for_bit(tmp_path: Path, device: torch.device) -> None:
    np.random.seed(7)
    a = _Run(device)
    a.epoch_losses()
    checkpoint.save(tmp_path, "state.pt", a.state())
    expected = [a.epoch_losses(), a.epoch_losses()]

    np.random.seed(99)  # the restore must put numpy's state back, not rely on this one
    b = _Run(device, seed=5)  # other weights and generator: all must come from the file
    state = checkpoint.load(tmp_path, "state.pt")
    b.restore(state)
    assert b.epoch == 1 and state["note"] == "kept"
    assert [b.epoch_losses(), b.epoch_losses()] == expected
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert a.optimizer.param_groups[0]["lr"] == b.optimizer.param_groups[0]["lr"]


def test_a_restored_run_continues_bit_for_bit_on_the_cpu(tmp_path: Path) -> None:
    _continues_bit_for_bit(tmp_path, torch.device("cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_restored_run_continues_bit_for_bit_on_cuda(tmp_path: Path) -> None:
    torch.backends.cudnn.deterministic = True
    _continues_bit_for_bit(tmp_path, torch.device("cuda", 0))


def test_a_checkpoint_loads_on_the_cpu_with_rng_states_as_byte_tensors(tmp_path: Path) -> None:
    run = _Run(torch.device("cpu"))
    checkpoint.save(tmp_path, "state.pt", run.state())
    state = checkpoint.load(tmp_path, "state.pt")
    rng = state["rng"]
    for key in ("generator", "torch"):
        assert rng[key].device.type == "cpu" and rng[key].dtype == torch.uint8
    assert all(t.device.type == "cpu" for t in state["model"].values())
    assert not (tmp_path / "state.pt.tmp").exists()  # written atomically


def test_rng_states_are_accepted_whatever_tensor_they_arrive_as() -> None:
    """A state that went through another device or dtype (as ``map_location=device`` did
    before) still restores: ``set_state`` gets CPU bytes."""
    gen = torch.Generator().manual_seed(3)
    state = checkpoint.rng_state(torch.device("cpu"), gen)
    expected = torch.rand(4, generator=gen)
    state["generator"] = state["generator"].to(torch.int64)  # not a ByteTensor any more
    fresh = torch.Generator().manual_seed(11)
    checkpoint.restore_rng(state, torch.device("cpu"), fresh)
    assert torch.equal(torch.rand(4, generator=fresh), expected)
