"""One checkpoint format for every trainable: model, optimizer, lr schedule, epoch, every RNG.

``classify`` and the one-shot trainables (``darts``, ``enas``, ``gdas``) save and restore
through this module, so a failure retry, ``raynas resume`` of a running trial, a PBT exploit
that keeps the architecture and a Hyperband pause/resume continue the same way on every
device.

Two rules make a restore work on a GPU as on the CPU:

* a checkpoint is always **loaded on the CPU** (``map_location="cpu"``). RNG states
  (``torch.Generator.set_state``, ``torch.set_rng_state``, ``torch.cuda.set_rng_state_all``)
  accept only CPU ``ByteTensor``s, whatever device the generator draws on;
* tensors that belong on the device reach it through the objects that own them:
  ``Module.load_state_dict`` copies into the parameters where they live, and
  ``Optimizer.load_state_dict`` casts its state to each parameter's device. Nothing else is
  moved.

Example:
    >>> state = capture(model=m, optimizer=opt, scheduler=sched, generator=gen, epoch=3)
    >>> save(checkpoint_dir, "state.pt", state)
    >>> epoch = restore(load(checkpoint_dir, "state.pt"), model=m, optimizer=opt,
    ...                 scheduler=sched, generator=gen, device=device)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["capture", "load", "restore", "restore_from", "restore_rng", "rng_state", "save"]


def rng_state(device: torch.device, generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every RNG a trial draws from: the trial's generator, torch's CPU and CUDA defaults,
    numpy's global RNG (as CPU tensors and plain data)."""
    cuda = device.type == "cuda" and torch.cuda.is_available()
    return {
        "generator": None if generator is None else generator.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if cuda else None,
        "numpy": np.random.get_state(),
    }


def restore_rng(
    state: dict[str, Any], device: torch.device, generator: torch.Generator | None = None
) -> None:
    """Put back what :func:`rng_state` captured. Tensors go in as CPU ByteTensors, the only
    form ``set_state`` / ``set_rng_state`` accept (also for a CUDA generator)."""
    if generator is not None and state.get("generator") is not None:
        generator.set_state(_cpu_bytes(state["generator"]))
    if state.get("torch") is not None:
        torch.set_rng_state(_cpu_bytes(state["torch"]))
    cuda_states = state.get("cuda")
    if cuda_states is not None and device.type == "cuda" and torch.cuda.is_available():
        cuda_states = [_cpu_bytes(s) for s in cuda_states]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:  # restored on a node with another GPU count: ours is index 0
            torch.cuda.set_rng_state(cuda_states[0])
    if state.get("numpy") is not None:
        np.random.set_state(state["numpy"])


def capture(
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    epoch: int,
    device: torch.device,
    generator: torch.Generator | None = None,
    scaler: torch.amp.GradScaler | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The training state of a trial as one picklable dict (``extra`` keys kept as given)."""
    return {
        "epoch": int(epoch),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": None if scaler is None else scaler.state_dict(),
        "rng": rng_state(device, generator),
        **extra,
    }


def save(checkpoint_dir: str | Path, filename: str, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``checkpoint_dir/filename`` atomically (a reader never sees half)."""
    path = Path(checkpoint_dir) / filename
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load(checkpoint_dir: str | Path, filename: str) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save`, on the CPU (see the module docstring)."""
    return torch.load(Path(checkpoint_dir) / filename, map_location="cpu", weights_only=False)


def restore(
    state: dict[str, Any],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    device: torch.device,
    generator: torch.Generator | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> int:
    """Load :func:`capture`'s state into live objects on ``device``; returns the epoch."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    restore_rng(state["rng"], device, generator)
    return int(state["epoch"])


def restore_from(
    checkpoint_dir: str | dict[str, Any] | None, filename: str, **objects: Any
) -> tuple[int, dict[str, Any]] | None:
    """A trainable's ``load_checkpoint``: :func:`load` ``checkpoint_dir/filename`` and
    :func:`restore` it into ``objects`` (:func:`restore`'s keyword arguments). Returns the
    epoch and the whole state, for the caller to put back its own extras; None, restoring
    nothing, when Tune passed no checkpoint directory (a dict or None)."""
    if not isinstance(checkpoint_dir, str):
        return None
    state = load(checkpoint_dir, filename)
    return restore(state, **objects), state


def _cpu_bytes(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", dtype=torch.uint8)
