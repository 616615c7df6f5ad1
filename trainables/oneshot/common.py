"""What every one-shot trainable shares: options, data halves, the epoch report, checkpoints.

A one-shot trial trains a weight-sharing supernet of ``config["space"]`` (``nb201`` or
``darts``) and searches *inside* the trial. The outer Tune search proposes an ``arch`` from the
same space as for any trainable, but a one-shot trial never trains it: the arch only picks the
trial's seed (:func:`trainables.child.trial_seed` of the experiment seed and the arch id),
so ``budget.trials`` differently seeded one-shot runs are made, and the outer strategy must be
``random`` or ``grid``.

**Search size and evaluation size.** ``space_args`` is the network that is *evaluated*: the
derived child whose ``params``/``flops``/``latency_ms`` the final result reports, and what
``raynas retrain`` trains. ``trainable_args.search_args`` sizes the *supernet*, with the
space's own argument names, validated per space (:class:`DartsSearchArgs`,
:class:`NB201SearchArgs`). The defaults are the papers': DARTS searches 8 cells of ``C=16``
and evaluates 20 cells of ``C=36`` (the ``darts`` space's defaults); NAS-Bench-201 searches
and evaluates the same network (``C=16, N=5``), so for ``nb201`` the search size defaults to
``space_args``.

Method options come from ``config["trainable_args"]``, one frozen pydantic model per method
(:mod:`trainables.oneshot.options`); unknown keys and bad values are reported with their
field path (``trainable_args.arch_lr: must be > 0, got -1``) by ``check_config`` before Ray
starts, and raised by the trainable as a ``ValueError`` otherwise.

Each Tune step is one search epoch and reports ``epoch, train_loss, train_acc, val_loss,
val_acc, lr, arch_entropy, collapse, collapse_warning, arch_str, arch_id, derived_arch`` (the
derived arch as canonical JSON), ``arch`` (the same as a nested dict), ``status``, plus the
method's own metrics. The derived arch is also written to ``derived_arch.json`` in the trial
folder (and into every checkpoint). The final result adds the derived child's ``params``,
``flops`` and ``latency_ms`` of its evaluation network (``space_args``, not the search size).

The search runs in float32 (``train.amp`` and ``train.channels_last`` are not used: the
second-order step differentiates through a virtual step, and search cost is dominated by the
many small ops of the supernet). ``train`` otherwise applies as for ``classify``: optimizer,
lr with cosine decay over all search steps, momentum, weight decay, grad clipping, batch size.
Every method takes one weight step per batch of the weight half (``train_portion`` of the
training split), so the schedule is sized on those: the lr reaches 0 at the last step of the
last epoch, whatever the split.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from raynas.files import DERIVED_ARCH_FILE
from trainables.base import ReusableTrainable
from trainables.child import (
    build_child,
    configure_determinism,
    data_from_config,
    seed_trial,
    space_from_config,
    trial_device,
    trial_seed,
    use_trial_threads,
)
from trainables.cost import measure_cost
from trainables.data import batches
from trainables.oneshot.options import (
    SEARCH_ARGS,
    DartsSearchArgs,
    NB201SearchArgs,
    OneShotOptions,
    check_oneshot_config,
    options_from_config,
    parse_options,
    parse_search_args,
)
from trainables.schedule import make_lr_schedule, make_optimizer

__all__ = [
    "DERIVED_ARCH_FILE",
    "METRICS",
    "SEARCH_ARGS",
    "DartsSearchArgs",
    "NB201SearchArgs",
    "OneShotOptions",
    "OneShotTrainable",
    "TrainTally",
    "check_oneshot_config",
    "parse_options",
    "parse_search_args",
]

CHECKPOINT_FILE = "oneshot.pt"
METRICS = (
    "val_acc",
    "val_loss",
    "train_acc",
    "train_loss",
    "arch_entropy",
    "collapse",
    "params",
    "flops",
    "latency_ms",
)
logger = logging.getLogger("raynas.oneshot")


@dataclass
class TrainTally:
    """A search epoch's running training loss and accuracy, each batch weighed by its size."""

    total: float = 0.0
    correct: int = 0
    seen: int = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Count one batch: its mean ``loss`` and the ``logits`` it scored for labels ``y``."""
        self.total += float(loss.detach()) * int(y.shape[0])
        self.correct += int((logits.argmax(1) == y).sum())
        self.seen += int(y.shape[0])

    def metrics(self) -> dict[str, float]:
        """``train_loss`` and ``train_acc`` over the batches counted (0 before any)."""
        return {
            "train_loss": self.total / max(self.seen, 1),
            "train_acc": self.correct / max(self.seen, 1),
        }


# --- helpers ------------------------------------------------------------------------------
class OneShotTrainable(ReusableTrainable):
    """Base of the one-shot trainables: one search epoch per Tune step.

    Subclasses set :attr:`OPTIONS` and implement :meth:`_setup_method`, :meth:`_search_epoch`,
    :meth:`_derive`, :meth:`_eval_logits`, :meth:`_method_state`, :meth:`_load_method_state`.
    """

    METRICS: ClassVar[tuple[str, ...]] = METRICS
    OPTIONS: ClassVar[type[OneShotOptions]] = OneShotOptions
    CHECKPOINT_FILE = CHECKPOINT_FILE
    epoch: int
    arch: dict[str, Any] | None
    previous_arch: dict[str, Any] | None

    # --- Tune API ---------------------------------------------------------------------
    def step(self) -> dict[str, Any]:
        start = time.perf_counter()
        metrics = self._search_epoch()
        self.epoch += 1
        lr = self.w_optimizer.param_groups[0]["lr"]
        base = {"status": "ok", "epoch": self.epoch, "lr": lr, **metrics}
        if not all(math.isfinite(float(v)) for v in metrics.values()):
            return {**base, "status": "diverged", "done": True}
        arch = self.space.canonical(self._derive())
        val_loss, val_acc = self._evaluate(self.data.val_x, self.data.val_y)
        collapse = self.net.collapse_share(arch)
        warn = collapse > self.opts.collapse_threshold
        done = self.epoch >= int(self.train_cfg["epochs"])
        result: dict[str, Any] = {
            **base,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "collapse": collapse,
            "collapse_warning": warn,
            "stop_reason": "epochs" if done else "",
        }
        if warn:
            logger.warning(
                "one-shot %s, epoch %d: %.0f%% of the derived cell's ops are parameter-free "
                "(threshold %.0f%%): the search may be collapsing to skip connections%s",
                self.METHOD,
                self.epoch,
                100 * collapse,
                100 * self.opts.collapse_threshold,
                "; see trainable_args.remedy" if hasattr(self.opts, "remedy") else "",
            )
            if getattr(self.opts, "remedy", None) == "early_stop":
                done = True
                result["stop_reason"] = "collapse"
                if self.previous_arch is not None:  # the last arch before the collapse
                    arch = self.previous_arch
        if not warn:
            self.previous_arch = arch
        if not math.isfinite(val_loss):
            result.update(status="diverged")
            done = True
        self.arch = arch
        result.update(self._arch_fields(arch), epoch_time_s=time.perf_counter() - start)
        if done:
            result.update(self._child_cost(arch))
        result["done"] = done
        self._write_trial_file(DERIVED_ARCH_FILE, self._arch_json(arch))
        return result

    def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any] | None:
        self._save_training_state(
            checkpoint_dir,
            previous_arch=self.previous_arch,
            arch=self.arch,
            method=self._method_state(),
        )
        if self.arch is not None:
            (Path(checkpoint_dir) / DERIVED_ARCH_FILE).write_text(self._arch_json(self.arch))
        return None

    def load_checkpoint(self, checkpoint_dir: str | dict[str, Any] | None) -> None:
        state = self._restore_training_state(checkpoint_dir)
        if state is not None:
            self.previous_arch, self.arch = state["previous_arch"], state["arch"]
            self._load_method_state(state["method"])

    def _training_objects(self) -> dict[str, Any]:
        """What a checkpoint saves and restores (see :mod:`trainables.checkpoint`)."""
        return {
            "model": self.net,
            "optimizer": self.w_optimizer,
            "scheduler": self.scheduler,
            "generator": self.generator,
            "device": self.device,
        }

    @classmethod
    def check_config(cls, exp: Any) -> list[str]:
        """Config checks before Ray starts; one ``field.path: message`` line each."""
        return check_oneshot_config(exp, cls.OPTIONS)

    # --- subclass hooks -----------------------------------------------------------------
    METHOD: ClassVar[str] = "oneshot"

    def _setup_method(self) -> None:
        """Create the method's state (architecture weights, controller, optimizers)."""
        raise NotImplementedError

    def _search_epoch(self) -> dict[str, float]:
        """One search epoch; returns ``train_loss``, ``train_acc`` and method metrics."""
        raise NotImplementedError

    def _derive(self) -> dict[str, Any]:
        """The architecture the search currently selects."""
        raise NotImplementedError

    def _eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Supernet logits for evaluation (called after :meth:`_derive`)."""
        raise NotImplementedError

    def _method_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_method_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # --- internals ----------------------------------------------------------------------
    def _init(self, config: dict[str, Any]) -> None:
        from search_spaces.models.supernet import build_supernet

        self.config = config
        use_trial_threads(config)
        self.opts = options_from_config(self.OPTIONS, config)
        self.space = space_from_config(config)
        size, errors = parse_search_args(self.space.name, self.opts.search_args)
        if size is None:
            raise ValueError("; ".join(errors))
        self.search_size = {k: getattr(self.space, k) if v is None else v for k, v in size.items()}
        outer = self.space.arch_id(config["arch"]) if "arch" in config else "oneshot"
        self.seed = trial_seed(int(config.get("seed", 0)), outer)
        self.device = trial_device(config)
        configure_determinism(self.device, bool(config["train"].get("deterministic", True)))
        self.train_cfg: dict[str, Any] = dict(config["train"])
        data_cfg = config["data"]
        self.data = data_from_config(config, self.device)
        if len(self.data.input_shape) != 3:
            raise ValueError(f"data.name: one-shot supernets need images, got {data_cfg['name']}")
        self._split_train(int(config.get("data_seed", 0)))
        self.generator = seed_trial(self.seed, self.device)
        self.net = build_supernet(
            self.space,
            num_classes=self.data.num_classes,
            in_channels=self.data.input_shape[0],
            size=self.search_size,
        ).to(self.device)
        self.w_optimizer = make_optimizer(self.net.parameters(), self.train_cfg)
        self.scheduler = make_lr_schedule(self.w_optimizer, self.steps_per_epoch, self.train_cfg)
        self.epoch = 0
        self.arch = None
        self.previous_arch = None
        self._setup_method()

    def _split_train(self, seed: int) -> None:
        """Split the training split into the weight half and the architecture half."""
        n = int(self.data.train_x.shape[0])
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        cut = min(max(1, round(self.opts.train_portion * n)), n - 1)
        w_idx, a_idx = order[:cut].to(self.device), order[cut:].to(self.device)
        self.w_x, self.w_y = self.data.train_x[w_idx], self.data.train_y[w_idx]
        self.a_x, self.a_y = self.data.train_x[a_idx], self.data.train_y[a_idx]
        # Every method takes one weight step per batch of the weight half, whatever the size
        # of the other half (its batches repeat or go unused): the lr schedule counts these.
        self.steps_per_epoch = max(1, math.ceil(cut / int(self.train_cfg["batch_size"])))

    def w_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One shuffled pass over the weight half."""
        return self._shuffled_pass(self.w_x, self.w_y)

    def a_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless shuffled passes over the architecture half."""
        while True:
            yield from self._shuffled_pass(self.a_x, self.a_y)

    def _shuffled_pass(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One shuffled, augmented pass over ``(x, y)`` in batches of ``train.batch_size``."""
        return batches(
            x,
            y,
            batch_size=int(self.train_cfg["batch_size"]),
            shuffle=True,
            generator=self.generator,
            augment=self.data.augment,
        )

    def weight_step(self, loss: torch.Tensor) -> None:
        """Backward, clip (``train.grad_clip``), step the shared weights and the lr schedule."""
        self.w_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.train_cfg.get("grad_clip")
        if clip:
            nn.utils.clip_grad_norm_(self.net.parameters(), float(clip))
        self.w_optimizer.step()
        self.scheduler.step()

    @torch.no_grad()
    def _evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        self.net.eval()
        total, correct = 0.0, 0
        size = int(self.train_cfg.get("eval_batch_size", 512))
        for xb, yb in batches(x, y, batch_size=size, shuffle=False, generator=None):
            logits = self._eval_logits(xb).float()
            total += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
        self.net.train()
        n = max(int(y.shape[0]), 1)
        return total / n, correct / n

    def _arch_fields(self, arch: dict[str, Any]) -> dict[str, Any]:
        return {
            "arch": arch,
            "arch_str": self.space.to_string(arch),
            "arch_id": self.space.arch_id(arch),
            "derived_arch": self._arch_json(arch),
        }

    @staticmethod
    def _arch_json(arch: dict[str, Any]) -> str:
        return json.dumps(arch, sort_keys=True, separators=(",", ":"))

    def _child_cost(self, arch: dict[str, Any]) -> dict[str, Any]:
        """Cost of the derived child's evaluation network (``space_args``, not the search size)."""
        child = build_child(
            self.space, arch, tuple(self.data.input_shape), self.data.num_classes
        ).to(self.device)
        repeats = int(self.train_cfg.get("latency_repeats", 10))
        return measure_cost(
            child, tuple(self.data.input_shape), device=self.device, latency_repeats=repeats
        ).as_dict()

    def _write_trial_file(self, name: str, text: str) -> None:
        """Write ``name`` into the trial folder of the experiment (or the logdir outside Tune)."""
        storage = getattr(self, "_storage", None)
        if storage is not None and getattr(storage, "trial_dir_name", None):
            fs = storage.storage_filesystem
            fs.create_dir(storage.trial_fs_path, recursive=True)
            with fs.open_output_stream(f"{storage.trial_fs_path}/{name}") as fh:
                fh.write(text.encode())
            return
        Path(self.logdir, name).write_text(text)
