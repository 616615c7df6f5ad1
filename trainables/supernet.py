"""``supernet`` and ``subnet``: train a ``mobilenet`` supernet once, then search it many times.

**supernet** trains :class:`~search_spaces.models.supernet.mobilenet.MobileNetSupernet`, one
epoch a Tune step. Per batch it samples one sub-network uniformly (single-path, SPOS), or with
``trainable_args.sandwich: true`` the sandwich rule: the largest, the smallest and
``num_random`` random sub-networks, gradients summed into one step, the largest learning from
the labels and the others from the largest's soft predictions (in-place distillation, as in
BigNAS; ``distill: false`` uses the labels for all). The optimizer and lr schedule come from
``train`` (:mod:`trainables.schedule`), checkpoints from :mod:`trainables.checkpoint`, so a
retried or resumed trial continues where it was (the arch sampler's state included). Each
epoch reports ``epoch, train_loss, train_acc, val_acc, val_loss`` (of the largest sub-network),
``val_acc_largest, val_acc_smallest`` (each after BN recalibration on ``eval_bn_batches``
training batches), ``params`` (the supernet's), ``lr, epoch_time_s``. The arch a trial gets
from the outer strategy only seeds it (use ``random`` with ``budget.trials: 1``).

**Checkpoint format.** ``CHECKPOINT_DIR/supernet.pt``: the :func:`trainables.checkpoint.capture`
dict (``model`` is the supernet's state dict) plus ``supernet``: ``{"space": {name, args},
"num_classes", "in_channels", "input_shape", "data", "sandwich"}``, enough to rebuild it.

**subnet** evaluates ``config["arch"]`` with weights inherited from a supernet checkpoint
(``trainable_args.supernet``: a ``supernet.pt`` file, a checkpoint folder holding one, or a
trial or experiment folder with exactly one trial's checkpoints, of which the latest is used;
a relative path is taken from the driver's working directory). The sub-network is extracted
as the space's own network, its BN statistics are re-estimated on ``bn_batches`` shuffled
training batches, and one step reports ``val_acc, val_loss`` (and ``test_acc, test_loss`` with
``data.evaluate_test``), ``params, flops, latency_ms``, ``status``, ``arch_id``, ``arch_str``.
The loaded supernet is cached per worker process, so a reused actor evaluates many subnets
without reading the checkpoint again; ``driver_cost`` lets the driver check ``params`` /
``flops`` constraints before a candidate is proposed, as for ``classify``. A subnet trial's
checkpoint holds the evaluated child (its weights with the recalibrated BN statistics) in
``classify``'s ``state.pt`` layout, so ``raynas export DIR --best`` writes the best sub-network
as a standalone module.

Kept as one module (over 450 lines): the supernet and subnet trainables share their options,
checkpoint layout and BN recalibration; the supernet network itself is in
search_spaces.models.supernet.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from raynas.experiment.config import trial_settings
from raynas.experiment.config_rules import violated_constraints
from search_spaces.models.supernet.mobilenet import MobileNetSupernet, recalibrate_bn
from trainables import checkpoint
from trainables.base import ReusableTrainable
from trainables.child import (
    child_cost,
    configure_determinism,
    data_from_config,
    seed_trial,
    space_from_config,
    space_key,
    trial_device,
    trial_seed,
    use_trial_threads,
)
from trainables.classify import CHECKPOINT_FILE as CHILD_FILE
from trainables.classify import ClassifyTrainable
from trainables.data import batches
from trainables.oneshot.options import options_from_config, parse_options, seed_only_errors
from trainables.schedule import make_lr_schedule, make_optimizer
from trainables.tabular import table_path

__all__ = [
    "CHECKPOINT_FILE",
    "SubnetOptions",
    "SubnetTrainable",
    "SupernetOptions",
    "SupernetTrainable",
    "evaluate",
    "find_supernet_checkpoint",
    "load_supernet",
]

CHECKPOINT_FILE = "supernet.pt"
SUPERNET_METRICS = (
    "val_acc",
    "val_loss",
    "train_acc",
    "train_loss",
    "val_acc_largest",
    "val_acc_smallest",
    "params",
)
SUBNET_METRICS = ("val_acc", "val_loss", "test_acc", "test_loss", "params", "flops", "latency_ms")

#: Supernets loaded by this worker process: (resolved file, mtime, device) -> (net, meta).
_LOADED: dict[tuple[str, float, str], tuple[MobileNetSupernet, dict[str, Any]]] = {}


# --- options --------------------------------------------------------------------------------
class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: Any) -> Any:
        field = cls.model_fields[info.field_name]
        if isinstance(value, bool) and field.annotation is int:
            raise ValueError("must be an integer, not true/false")
        return value


class SupernetOptions(_Options):
    """``trainable_args`` of ``supernet``.

    Attributes:
        sandwich: Sandwich rule (largest, smallest, ``num_random`` random per batch) instead
            of one uniformly sampled sub-network per batch.
        num_random: Random sub-networks per batch under the sandwich rule.
        distill: Under the sandwich rule, train the other sub-networks on the largest's soft
            predictions (in-place distillation) rather than on the labels.
        eval_bn_batches: Training batches that recalibrate BN before each epoch's evaluation
            of the largest and smallest sub-networks.
    """

    sandwich: bool = False
    num_random: int = Field(2, ge=0)
    distill: bool = True
    eval_bn_batches: int = Field(10, ge=1)


class SubnetOptions(_Options):
    """``trainable_args`` of ``subnet``.

    Attributes:
        supernet: The supernet checkpoint (see :func:`find_supernet_checkpoint`).
        bn_batches: Shuffled training batches that re-estimate the sub-network's BN statistics.
    """

    supernet: str
    bn_batches: int = Field(20, ge=1)

    @field_validator("supernet")
    @classmethod
    def _readable(cls, value: str) -> str:
        return str(find_supernet_checkpoint(value))


def find_supernet_checkpoint(raw: str | os.PathLike[str]) -> Path:
    """The ``supernet.pt`` that ``raw`` names: the file, a folder holding it, or a trial or
    experiment folder with one trial's checkpoints (the latest checkpoint is used).

    Raises:
        ValueError: Nothing readable there, or checkpoints of more than one trial.
    """
    path = table_path(raw)
    if path.is_file():
        return path
    if (path / CHECKPOINT_FILE).is_file():
        return path / CHECKPOINT_FILE
    if not path.is_dir():
        raise ValueError(f"no file or folder {str(path)!r}; give a supernet trial's checkpoint")
    found = sorted(path.rglob(f"checkpoint_*/{CHECKPOINT_FILE}"))
    trials = sorted({p.parent.parent for p in found})
    if not found:
        raise ValueError(
            f"{str(path)!r} holds no {CHECKPOINT_FILE}; give a checkpoint folder of a "
            "`trainable: supernet` trial"
        )
    if len(trials) > 1:
        raise ValueError(
            f"{str(path)!r} holds checkpoints of {len(trials)} trials; name one of "
            f"{[str(t) for t in trials[:5]]}"
        )
    return max(found, key=lambda p: int(p.parent.name.rsplit("_", 1)[-1]))


def _common_checks(exp: Any, options: type[_Options]) -> list[str]:
    errors = []
    if exp.space != "mobilenet":
        errors.append(
            f"space: trainable {exp.trainable!r} needs the mobilenet space, got {exp.space!r}"
        )
    option_errors = parse_options(options, exp.trainable_args)[1]
    errors.extend(option_errors)
    if exp.data.val_fraction == 0:
        errors.append(f"data.val_fraction: {exp.trainable!r} reports val_acc; set it > 0")
    if not errors:
        errors.extend(ClassifyTrainable.check_config(exp))
    return errors


# --- shared pieces --------------------------------------------------------------------------
@torch.no_grad()
def evaluate(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    transform: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 512,
) -> tuple[float, float]:
    """``(mean cross-entropy, accuracy)`` of ``forward`` on ``(x, y)`` (summed on the device)."""
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    for xb, yb in batches(
        x, y, batch_size=batch_size, shuffle=False, generator=None, transform=transform
    ):
        logits = forward(xb).float()
        total += F.cross_entropy(logits, yb, reduction="sum").double()
        correct += (logits.argmax(1) == yb).sum()
    n = max(int(y.shape[0]), 1)
    return float(total) / n, int(correct) / n


def _bn_inputs(data: Any, n: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """``n`` shuffled training batches of ``train.batch_size`` (no augmentation) for BN
    recalibration."""
    gen = torch.Generator(device=data.train_x.device).manual_seed(seed)
    it = batches(
        data.train_x,
        data.train_y,
        batch_size=batch_size,
        shuffle=True,
        generator=gen,
        transform=data.as_inputs,
    )
    for i, (xb, _) in enumerate(it):
        if i >= n:
            return
        yield xb


def load_supernet(
    path: str | os.PathLike[str], device: torch.device
) -> tuple[MobileNetSupernet, dict[str, Any]]:
    """The supernet of a checkpoint and its metadata, loaded once per worker process."""
    file = find_supernet_checkpoint(path)
    key = (str(file.resolve()), file.stat().st_mtime, str(device))
    if key not in _LOADED:
        from raynas.registry import resolve_space

        state = checkpoint.load(file.parent, file.name)
        meta = dict(state["supernet"])
        space = resolve_space(meta["space"]["name"], meta["space"].get("args") or {})
        net = MobileNetSupernet(
            space, num_classes=int(meta["num_classes"]), in_channels=int(meta["in_channels"])
        )
        net.load_state_dict(state["model"])
        _LOADED.clear()  # one supernet per process is what a search uses
        _LOADED[key] = (net.to(device).eval(), meta)
    return _LOADED[key]


# --- supernet -------------------------------------------------------------------------------
class SupernetTrainable(ReusableTrainable):
    """Train the ``mobilenet`` supernet of ``config["space"]``, one epoch a Tune step."""

    METRICS: ClassVar[tuple[str, ...]] = SUPERNET_METRICS
    CHECKPOINT_FILE = CHECKPOINT_FILE

    def _init(self, config: dict[str, Any]) -> None:
        use_trial_threads(config)
        self.config = config
        self.opts = options_from_config(SupernetOptions, config)
        self.space = space_from_config(config)
        outer = self.space.arch_id(config["arch"]) if "arch" in config else "supernet"
        self.seed = trial_seed(int(config.get("seed", 0)), outer)
        self.device = trial_device(config)
        configure_determinism(self.device, bool(config["train"].get("deterministic", True)))
        self.train_cfg: dict[str, Any] = dict(config["train"])
        self.data = data_from_config(config, self.device, compact=True)
        if len(self.data.input_shape) != 3:
            raise ValueError(f"data.name: a supernet needs images, got {config['data']['name']}")
        self.generator = seed_trial(self.seed, self.device)
        self.arch_rng = np.random.default_rng(self.seed)
        self.net = MobileNetSupernet(
            self.space, num_classes=self.data.num_classes, in_channels=self.data.input_shape[0]
        ).to(self.device)
        n = int(self.data.train_x.shape[0])
        self.steps_per_epoch = max(1, math.ceil(n / int(self.train_cfg["batch_size"])))
        self.optimizer = make_optimizer(self.net.parameters(), self.train_cfg)
        self.scheduler = make_lr_schedule(self.optimizer, self.steps_per_epoch, self.train_cfg)
        self.criterion = nn.CrossEntropyLoss(
            label_smoothing=float(self.train_cfg.get("label_smoothing", 0.0))
        )
        self.epoch = 0

    def _archs(self) -> list[dict[str, Any]]:
        if not self.opts.sandwich:
            return [self.net.sample(self.arch_rng)]
        randoms = [self.net.sample(self.arch_rng) for _ in range(self.opts.num_random)]
        return [self.net.largest(), self.net.smallest(), *randoms]

    def _train_epoch(self) -> tuple[float, float]:
        self.net.train()
        total, correct, seen = 0.0, 0, 0
        clip = self.train_cfg.get("grad_clip")
        for xb, yb in batches(
            self.data.train_x,
            self.data.train_y,
            batch_size=int(self.train_cfg["batch_size"]),
            shuffle=True,
            generator=self.generator,
            augment=self.data.augment,
            transform=self.data.as_inputs,
        ):
            self.optimizer.zero_grad(set_to_none=True)
            teacher = None
            for i, arch in enumerate(self._archs()):
                logits = self.net(xb, arch)
                if teacher is not None:  # in-place distillation from the largest
                    loss = F.kl_div(F.log_softmax(logits, 1), teacher, reduction="batchmean")
                else:
                    loss = self.criterion(logits, yb)
                if i == 0:  # the reported loss: the sampled (SPOS) or the largest (sandwich)
                    total += float(loss.detach()) * int(yb.shape[0])
                    correct += int((logits.detach().argmax(1) == yb).sum())
                    if self.opts.sandwich and self.opts.distill:
                        teacher = F.softmax(logits.detach(), 1)
                loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(self.net.parameters(), float(clip))
            self.optimizer.step()
            self.scheduler.step()
            seen += int(yb.shape[0])
            if not math.isfinite(total):
                return float("nan"), 0.0
        return total / max(seen, 1), correct / max(seen, 1)

    def evaluate_arch(self, arch: Mapping[str, Any], bn_batches: int) -> tuple[float, float]:
        """``(val_loss, val_acc)`` of a sub-network with inherited weights, BN recalibrated."""
        child = self.net.extract(arch)
        size = int(self.train_cfg.get("eval_batch_size", 512))
        batch = int(self.train_cfg["batch_size"])
        recalibrate_bn(child, _bn_inputs(self.data, bn_batches, batch, self.seed + self.epoch))
        return evaluate(
            child,
            self.data.val_x,
            self.data.val_y,
            transform=self.data.as_inputs,
            batch_size=size,
        )

    def step(self) -> dict[str, Any]:
        start = time.perf_counter()
        train_loss, train_acc = self._train_epoch()
        self.epoch += 1
        base = {
            "status": "ok",
            "epoch": self.epoch,
            "lr": self.optimizer.param_groups[0]["lr"],
            "params": sum(p.numel() for p in self.net.parameters()),
            "train_loss": train_loss,
            "train_acc": train_acc,
        }
        if not math.isfinite(train_loss):
            return {**base, "status": "diverged", "done": True}
        n = self.opts.eval_bn_batches
        val_loss, val_acc = self.evaluate_arch(self.net.largest(), n)
        _, small_acc = self.evaluate_arch(self.net.smallest(), n)
        return {
            **base,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "val_acc_largest": val_acc,
            "val_acc_smallest": small_acc,
            "epoch_time_s": time.perf_counter() - start,
            "done": self.epoch >= int(self.train_cfg["epochs"]),
        }

    def _training_objects(self) -> dict[str, Any]:
        return {
            "model": self.net,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "generator": self.generator,
            "device": self.device,
        }

    def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any] | None:
        meta = {
            "space": dict(self.config["space"]),
            "num_classes": self.data.num_classes,
            "in_channels": int(self.data.input_shape[0]),
            "input_shape": list(self.data.input_shape),
            "data": self.config["data"]["name"],
            "sandwich": self.opts.sandwich,
        }
        self._save_training_state(
            checkpoint_dir, arch_rng=self.arch_rng.bit_generator.state, supernet=meta
        )
        (Path(checkpoint_dir) / "supernet.json").write_text(json.dumps(meta, sort_keys=True))
        return None

    def load_checkpoint(self, checkpoint_dir: str | dict[str, Any] | None) -> None:
        state = self._restore_training_state(checkpoint_dir)
        if state is not None:
            self.arch_rng.bit_generator.state = state["arch_rng"]

    @staticmethod
    def check_config(exp: Any) -> list[str]:
        """Config checks before Ray starts; one ``field.path: message`` line each."""
        return _common_checks(exp, SupernetOptions) + seed_only_errors(
            exp,
            strategy="a supernet trial only takes its seed from the proposed arch",
            constraints="a supernet trial trains every sub-network; put constraints on the "
            "subnet search instead",
        )


# --- subnet ---------------------------------------------------------------------------------
class SubnetTrainable(ReusableTrainable):
    """Evaluate ``config["arch"]`` with weights inherited from a trained supernet, one step."""

    METRICS: ClassVar[tuple[str, ...]] = SUBNET_METRICS

    def _init(self, config: dict[str, Any]) -> None:
        use_trial_threads(config)
        self.config = config
        self.opts = options_from_config(SubnetOptions, config)
        self.space = space_from_config(config)
        self.arch = self.space.canonical(config["arch"])
        self.arch_id = self.space.arch_id(self.arch)
        self.device = trial_device(config)
        self.train_cfg: dict[str, Any] = dict(config["train"])
        self.data = data_from_config(config, self.device, compact=True)
        self.supernet, meta = load_supernet(self.opts.supernet, self.device)
        self.child: nn.Module | None = None
        if meta["space"] != config["space"]:
            raise ValueError(
                f"trainable_args.supernet: trained for space {meta['space']}, this experiment "
                f"searches {config['space']}"
            )

    def step(self) -> dict[str, Any]:
        start = time.perf_counter()
        child = self.child = self.supernet.extract(self.arch)
        shape = tuple(self.data.input_shape)
        cost = child_cost(
            child,
            space_key=space_key(self.config),
            arch_id=self.arch_id,
            input_shape=shape,
            device=self.device,
            latency_repeats=int(self.train_cfg.get("latency_repeats", 10)),
        )
        base = {
            **cost,
            "status": "ok",
            "epoch": 1,
            "arch_id": self.arch_id,
            "arch_str": self.space.to_string(self.arch),
            "done": True,
        }
        violations = violated_constraints(self.config.get("constraints", []), cost)
        if violations:
            return {**base, "status": "constraint_violated", "violations": "; ".join(violations)}
        size = int(self.train_cfg.get("eval_batch_size", 512))
        seed = trial_seed(int(self.config.get("seed", 0)), self.arch_id)
        batch = int(self.train_cfg["batch_size"])
        recalibrate_bn(child, _bn_inputs(self.data, self.opts.bn_batches, batch, seed))
        result = dict(base)
        splits = [("val", self.data.val_x, self.data.val_y)]
        if self.config["data"].get("evaluate_test") and self.data.test_x is not None:
            splits.append(("test", self.data.test_x, self.data.test_y))
        for split, x, y in splits:
            result[f"{split}_loss"], result[f"{split}_acc"] = evaluate(
                child, x, y, transform=self.data.as_inputs, batch_size=size
            )
        result["eval_time_s"] = time.perf_counter() - start
        return result

    def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any] | None:
        """The evaluated child (inherited weights, recalibrated BN) in ``classify``'s
        ``state.pt`` layout, so ``raynas export`` exports a subnet trial like a trained one."""
        (Path(checkpoint_dir) / "arch.json").write_text(json.dumps(self.arch, sort_keys=True))
        if self.child is not None:
            state = {
                "epoch": 1,
                "arch": self.arch,
                "model": self.child.state_dict(),
                "supernet": self.opts.supernet,
            }
            checkpoint.save(checkpoint_dir, CHILD_FILE, state)
        return None

    def load_checkpoint(self, checkpoint_dir: str | dict[str, Any] | None) -> None:
        return None  # one step, nothing to continue

    #: params / flops on the driver: the sub-network is the space's own network.
    driver_cost = staticmethod(ClassifyTrainable.driver_cost)

    @staticmethod
    def check_config(exp: Any) -> list[str]:
        """Config checks before Ray starts; one ``field.path: message`` line each."""
        errors = _common_checks(exp, SubnetOptions)
        opts, _ = parse_options(SubnetOptions, exp.trainable_args)
        if opts is not None and not errors:
            try:
                state = checkpoint.load(Path(opts.supernet).parent, Path(opts.supernet).name)
            except Exception as err:  # an unreadable or foreign file
                return [f"trainable_args.supernet: cannot read {opts.supernet!r}: {err}"]
            meta = state.get("supernet") if isinstance(state, dict) else None
            if meta is None:
                return [
                    f"trainable_args.supernet: {opts.supernet!r} is not a checkpoint of a "
                    "`trainable: supernet` trial"
                ]
            wanted = trial_settings(exp)["space"]
            if meta["space"] != wanted:
                errors.append(
                    f"trainable_args.supernet: trained for space {meta['space']}, this "
                    f"experiment searches {wanted}; use the same space and space_args"
                )
            if meta["data"] != exp.data.name:
                errors.append(
                    f"trainable_args.supernet: trained on {meta['data']!r}, this experiment "
                    f"uses data.name {exp.data.name!r}"
                )
        return errors
