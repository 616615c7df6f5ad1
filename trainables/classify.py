"""``classify``: the Tune trainable that builds a child network and trains it for classification.

One Tune step is one epoch. The first thing a trial does is measure the child's cost
(``params``, ``flops``, ``latency_ms`` on its own device) and check the experiment's
constraints: a violating child is never trained and ends at once with
``status: constraint_violated``. A child whose loss turns NaN/inf ends with
``status: diverged``. Every result carries ``status``, the epoch metrics, the cost, and the
architecture's id and string.

Overhead is designed away: the class trainable supports ``reuse_actors`` (``reset_config``
rebuilds the child in the same process), datasets are loaded once per worker process and kept
as tensors on the trial's device, and nothing goes through the object store per trial.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray import tune
from torch import nn

from raynas.config import EMBEDDED_DATASETS, violated_constraints
from raynas.registry import load_plugins, resolve_space
from trainables import checkpoint
from trainables.cost import measure_cost
from trainables.data import batches, load_dataset
from trainables.inherit import inherit_weights
from trainables.schedule import make_lr_schedule, make_optimizer

#: Every metric this trainable reports (an objective must be one of them).
METRICS = (
    "val_acc",
    "val_loss",
    "train_acc",
    "train_loss",
    "test_acc",
    "test_loss",
    "params",
    "flops",
    "latency_ms",
)
CHECKPOINT_FILE = "state.pt"

_SPACES: dict[str, Any] = {}


def space_from_config(config: dict[str, Any]) -> Any:
    """The trial's space, built once per worker process."""
    spec = config["space"]
    key = json.dumps(spec, sort_keys=True, default=str)
    if config.get("plugins"):
        load_plugins(config["plugins"])
    if key not in _SPACES:
        _SPACES[key] = resolve_space(spec["name"], spec.get("args") or {})
    return _SPACES[key]


def trial_seed(seed: int, arch_id: str) -> int:
    """A per-child seed from the experiment seed and the arch id (same seed, same training)."""
    digest = hashlib.sha256(f"{seed}:{arch_id}".encode()).hexdigest()
    return int(digest[:8], 16)


def trial_device(config: dict[str, Any]) -> torch.device:
    """The GPU Ray assigned to this trial, else the CPU."""
    if config.get("resources", {}).get("gpu", 0) > 0 and torch.cuda.is_available():
        import ray

        ids = ray.get_gpu_ids()
        if ids:
            # Ray sets CUDA_VISIBLE_DEVICES to the assigned GPUs: index 0 is ours.
            return torch.device("cuda", 0)
    return torch.device("cpu")


def data_from_config(config: dict[str, Any], device: torch.device) -> Any:
    """The trial's dataset splits (cached per worker process) from its ``data`` section."""
    data_cfg = config["data"]
    return load_dataset(
        data_cfg["name"],
        root=data_cfg.get("root"),
        download=bool(data_cfg.get("download", False)),
        val_fraction=float(data_cfg.get("val_fraction", 0.2)),
        seed=int(config.get("data_seed", 0)),
        device=device,
        limit=data_cfg.get("limit"),
    )


def _placement() -> dict[str, Any]:
    """Where this trial runs: Ray node id and the GPU ids Ray assigned (logical on CPU)."""
    import ray

    if not ray.is_initialized():
        return {}
    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
    }


def build_child(
    space: Any, arch: dict[str, Any], input_shape: tuple[int, ...], num_classes: int
) -> nn.Module:
    """The child network for ``arch``: images give ``in_channels``, vectors ``in_features``."""
    if len(input_shape) == 1:
        return space.build(arch, num_classes=num_classes, in_features=input_shape[0])
    return space.build(arch, num_classes=num_classes, in_channels=input_shape[0])


class ClassifyTrainable(tune.Trainable):
    """Train ``config["arch"]`` of ``config["space"]`` on ``config["data"]``, one epoch a step.

    The config is what :mod:`raynas.runner` builds from an :class:`~raynas.config.Experiment`:
    ``arch``, ``space {name, args}``, ``data {...}``, ``train {...}``, ``constraints``,
    ``resources``, ``seed``.
    """

    METRICS = METRICS

    # --- Tune API -------------------------------------------------------------------
    def setup(self, config: dict[str, Any]) -> None:
        logging.getLogger("ray").setLevel(logging.WARNING)
        self._init_child(config)

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        self._init_child(new_config)
        return True

    def step(self) -> dict[str, Any]:
        base = {
            **self.cost,
            **self.lineage,
            **self.placement,
            "status": "ok",
            "arch_id": self.arch_id,
            "arch_str": self.arch_str,
        }
        if self.violations:
            return {
                **base,
                "status": "constraint_violated",
                "epoch": 0,
                "violations": "; ".join(self.violations),
                "done": True,
            }
        start = time.perf_counter()
        try:
            train_loss, train_acc = self._train_epoch()
        except (MemoryError, torch.OutOfMemoryError) as err:
            return self._out_of_memory(base, err)
        self.epoch += 1
        lr = self.optimizer.param_groups[0]["lr"]
        if not math.isfinite(train_loss):
            return {
                **base,
                "status": "diverged",
                "epoch": self.epoch,
                "train_loss": train_loss,
                "lr": lr,
                "done": True,
            }
        val_loss, val_acc = self._evaluate(self.data.val_x, self.data.val_y)
        done = self.epoch >= self.train_cfg["epochs"]
        result = {
            **base,
            "epoch": self.epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": lr,
            "epoch_time_s": time.perf_counter() - start,
            "done": done,
        }
        scalarize = (self.config.get("objective") or {}).get("scalarize")
        if scalarize:
            result["objective"] = sum(float(w) * float(result[m]) for m, w in scalarize.items())
        if not math.isfinite(val_loss):
            result.update(status="diverged", done=True)
        elif (
            done
            and self.config["data"].get("evaluate_test")
            and self.data.test_x is not None
            and self.data.test_y is not None
        ):
            result["test_loss"], result["test_acc"] = self._evaluate(
                self.data.test_x, self.data.test_y
            )
        return result

    def _out_of_memory(self, base: dict[str, Any], err: BaseException) -> dict[str, Any]:
        """End this trial cleanly: free what it holds, report ``status: oom``."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        message = f"{type(err).__name__}: {err}".strip()
        return {**base, "status": "oom", "epoch": self.epoch, "error": message, "done": True}

    def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any] | None:
        state = checkpoint.capture(
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            generator=self.generator,
            device=self.device,
            epoch=self.epoch,
            arch=self.arch,
            trial_id=self.trial_id,
        )
        checkpoint.save(checkpoint_dir, CHECKPOINT_FILE, state)
        (Path(checkpoint_dir) / "arch.json").write_text(json.dumps(self.arch, sort_keys=True))
        return None

    def load_checkpoint(self, checkpoint_dir: str | dict[str, Any] | None) -> None:
        if not isinstance(checkpoint_dir, str):
            return
        state = checkpoint.load(checkpoint_dir, CHECKPOINT_FILE)
        if self.space.arch_id(state["arch"]) != self.arch_id:
            self._inherit_from(state)
            return
        self.epoch = checkpoint.restore(
            state,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            generator=self.generator,
            device=self.device,
        )
        self._retune_lr()

    def _inherit_from(self, state: dict[str, Any]) -> None:
        """A parent of another architecture (PBT-evolution): inherit what fits, train on."""
        report = inherit_weights(self.model, state["model"])
        self.epoch = int(state["epoch"])
        # The fresh optimizer continues the parent's learning-rate schedule where it was.
        self.scheduler.last_epoch = self.epoch * self._steps_per_epoch()
        self._set_lr(float(self.train_cfg["lr"]))
        lineage = self.config.get("lineage") or {}
        self.lineage.update(
            {
                "parent": state.get("trial_id"),
                "parent_arch": self.space.to_string(state["arch"]),
                "mutation": lineage.get("mutation", "architecture changed"),
                "lineage_step": self.epoch,
                "inherited_tensors": report.tensors,
                "inherited_params": report.params,
                "inherited_fraction": report.fraction,
            }
        )

    def _retune_lr(self) -> None:
        """After a restore, apply this config's lr (PBT may have perturbed it)."""
        lr = float(self.train_cfg["lr"])
        if self.scheduler.base_lrs != [lr] * len(self.scheduler.base_lrs):
            self._set_lr(lr)

    def _set_lr(self, lr: float) -> None:
        self.scheduler.base_lrs = [lr for _ in self.scheduler.base_lrs]
        factor = self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)
        for group in self.optimizer.param_groups:
            group["initial_lr"] = lr
            group["lr"] = lr * factor

    # --- internals --------------------------------------------------------------------
    def _release_child(self) -> None:
        """Drop the previous child (reused actor) and give its GPU memory back."""
        for attr in ("model", "optimizer", "scheduler", "scaler"):
            if hasattr(self, attr):
                delattr(self, attr)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _init_child(self, config: dict[str, Any]) -> None:
        self._release_child()
        self.config = config
        threads = max(1, int(config.get("resources", {}).get("cpu", 1)))
        torch.set_num_threads(threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        self.space = space_from_config(config)
        self.arch = self.space.canonical(config["arch"])
        self.arch_id = self.space.arch_id(self.arch)
        self.arch_str = self.space.to_string(self.arch)
        self.device = trial_device(config)
        self.placement = _placement()
        self.train_cfg: dict[str, Any] = dict(config["train"])
        self.data = data_from_config(config, self.device)
        seed = trial_seed(int(config.get("seed", 0)), self.arch_id)
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        model = build_child(
            self.space, self.arch, tuple(self.data.input_shape), self.data.num_classes
        )
        self.model = model.to(self.device)
        cuda = self.device.type == "cuda"
        self.channels_last = (
            cuda
            and bool(self.train_cfg.get("channels_last", True))
            and len(self.data.input_shape) == 3
        )
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.cost = measure_cost(
            self.model,
            tuple(self.data.input_shape),
            device=self.device,
            latency_repeats=int(self.train_cfg.get("latency_repeats", 10)),
        ).as_dict()
        self.violations = violated_constraints(config.get("constraints", []), self.cost)
        self.amp = cuda and bool(self.train_cfg.get("amp", True))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.optimizer = make_optimizer(self.model.parameters(), self.train_cfg)
        self.scheduler = make_lr_schedule(self.optimizer, self._steps_per_epoch(), self.train_cfg)
        self.criterion = nn.CrossEntropyLoss(
            label_smoothing=float(self.train_cfg.get("label_smoothing", 0.0))
        )
        self.epoch = 0
        self.lineage: dict[str, Any] = {}

    def _steps_per_epoch(self) -> int:
        n = int(self.data.train_x.shape[0])
        return max(1, math.ceil(n / int(self.train_cfg["batch_size"])))

    def _batches(
        self, x: torch.Tensor, y: torch.Tensor, train: bool
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        size = int(
            self.train_cfg["batch_size"] if train else self.train_cfg.get("eval_batch_size", 512)
        )
        for xb, yb in batches(
            x,
            y,
            batch_size=size,
            shuffle=train,
            generator=self.generator if train else None,
            augment=self.data.augment if train else "none",
        ):
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, yb

    def _forward(self, xb: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, enabled=self.amp):
            return self.model(xb)

    def _train_epoch(self) -> tuple[float, float]:
        self.model.train()
        total_loss, correct, seen = 0.0, 0, 0
        clip = self.train_cfg.get("grad_clip")
        for xb, yb in self._batches(self.data.train_x, self.data.train_y, train=True):
            self.optimizer.zero_grad(set_to_none=True)
            logits = self._forward(xb)
            loss = self.criterion(logits.float(), yb)
            aux = getattr(self.model, "aux_logits", None)
            if aux is not None:
                loss = loss + 0.4 * self.criterion(aux.float(), yb)
            if not torch.isfinite(loss):
                return float("nan"), 0.0
            self.scaler.scale(loss).backward()
            if clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), float(clip))
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            total_loss += float(loss.detach()) * yb.shape[0]
            correct += int((logits.argmax(1) == yb).sum())
            seen += int(yb.shape[0])
        return total_loss / max(seen, 1), correct / max(seen, 1)

    @torch.no_grad()
    def _evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        self.model.eval()
        total_loss, correct = 0.0, 0
        for xb, yb in self._batches(x, y, train=False):
            logits = self._forward(xb).float()
            total_loss += float(nn.functional.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
        n = max(int(y.shape[0]), 1)
        return total_loss / n, correct / n

    # --- config checks (before Ray starts) ------------------------------------------
    @staticmethod
    def check_config(exp: Any) -> list[str]:
        """Trainable-specific checks of an Experiment; returns ``path: message`` lines."""
        from trainables.data import DATASETS

        errors = []
        if exp.data.name not in DATASETS:
            errors.append(f"data.name: unknown dataset {exp.data.name!r}; known: {list(DATASETS)}")
        tabular = exp.data.name in ("wine", "breast_cancer")
        if tabular and exp.space != "mlp" and exp.data.name in EMBEDDED_DATASETS:
            errors.append(
                f"space: dataset {exp.data.name!r} is tabular; use space: mlp (image spaces "
                "need images)"
            )
        if not tabular and exp.space == "mlp" and exp.data.name in DATASETS:
            pass  # an MLP on flattened images is legitimate
        return errors
