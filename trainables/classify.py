"""``classify``: the Tune trainable that builds a child network and trains it for classification.

One Tune step is one epoch. The first thing a trial does is measure the child's cost
(``params``, ``flops``, ``latency_ms`` on its own device in its training precision and memory
format; with ``objective.latency_model`` also ``latency_pred_ms``, predicted from that
profiled table) and check the experiment's constraints: a violating child is never trained
and ends at once with ``status: constraint_violated``. A child whose loss turns NaN/inf ends with
``status: diverged``. Every result carries ``status``, the epoch metrics, the cost, and the
architecture's id and string.

Overhead is designed away: the class trainable supports ``reuse_actors`` (``reset_config``
rebuilds the child in the same process), datasets are loaded once per worker process and kept
as tensors on the trial's device (images as uint8, each batch converted to float and
normalised as it is sliced; the test split only when it is evaluated), nothing goes
through the object store per trial, a child's cost is measured once per worker process
(:func:`child_cost`: a retried, resumed or cloned trial of the same arch reuses it), and the
training loop sums its loss and accuracy on the device (no host-device sync per step; the
loss is checked for NaN/inf every :data:`FINITE_CHECK_EVERY` steps and at the epoch's end).

An epoch that takes longer than ``train.progress_s`` (30 s) prints a progress line to the
trial's stdout at most that often, which Ray forwards to the driver's console::

    (ClassifyTrainable pid=42) [raynas] trial 07ecbedd epoch 1/4: batch 120/300 (40%), 31 s, ...

These lines are not Tune results: Tune still gets exactly one result per epoch.

Kept as one module (over 450 lines): one Tune trainable, whose setup, epoch loop,
checkpoint, PBT weight inheritance and config checks share the trial's state; the child
setup it shares with the other trainables is in trainables.child, weight inheritance in
trainables.inherit.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from raynas.experiment.config import trial_settings
from raynas.experiment.config_check import load_latency_model
from raynas.experiment.config_rules import EMBEDDED_DATASETS, violated_constraints
from trainables import checkpoint
from trainables.base import ReusableTrainable
from trainables.child import (
    build_child,
    check_data_and_model,
    child_cost,
    configure_determinism,
    data_from_config,
    placement,
    predicted_latency,
    seed_trial,
    space_from_config,
    space_key,
    trial_device,
    trial_seed,
    use_trial_threads,
)
from trainables.data import batches
from trainables.inherit import carry_optimizer_state, inherit_weights, param_names
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
    "latency_pred_ms",
)
CHECKPOINT_FILE = "state.pt"

#: Optimizer steps between two checks that the running training loss is still finite (and
#: at the end of every epoch): the loss is summed on the device, so a step never waits for
#: the device to hand a number back; a diverged child trains at most this many steps on.
FINITE_CHECK_EVERY = 16


_HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr")


class ClassifyTrainable(ReusableTrainable):
    """Train ``config["arch"]`` of ``config["space"]`` on ``config["data"]``, one epoch a step.

    The config is what :mod:`raynas.experiment.runner` builds from an
    :class:`~raynas.experiment.config.Experiment`:
    ``arch``, ``space {name, args}``, ``data {...}``, ``train {...}``, ``constraints``,
    ``resources``, ``seed``.
    """

    METRICS = METRICS
    CHECKPOINT_FILE = CHECKPOINT_FILE
    #: PBT lineage fields reported with every result (parent, mutation, ...), checkpointed.
    lineage: dict[str, Any]
    #: Per-epoch metrics of this trial's lineage (inherited epochs included), checkpointed.
    history: list[dict[str, Any]]
    #: The lineage's epochs up to a restored checkpoint, reported once with the next result.
    restored_history: list[dict[str, Any]] | None

    # --- Tune API -------------------------------------------------------------------
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
        # No validation split (`data.val_fraction: 0`, a final training on the whole training
        # split): the official test split is evaluated every epoch instead.
        final = int(self.data.val_y.shape[0]) == 0 and self.data.test_x is not None
        held_out = "test" if final else "val"
        held_loss, held_acc = self._evaluate(
            *((self.data.test_x, self.data.test_y) if final else (self.data.val_x, self.data.val_y))
        )
        done = self.epoch >= self.train_cfg["epochs"]
        result = {
            **base,
            "epoch": self.epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            f"{held_out}_loss": held_loss,
            f"{held_out}_acc": held_acc,
            "lr": lr,
            "epoch_time_s": time.perf_counter() - start,
            "done": done,
        }
        self.history.append(
            {
                "trial": self.trial_id,
                **{k: result[k] for k in _HISTORY_KEYS if isinstance(result.get(k), int | float)},
            }
        )
        if self.restored_history is not None:
            # The lineage's epochs up to the checkpoint this trial restored (a retry, a
            # resume, a PBT clone or pause): Tune's result.json can miss or repeat some, so
            # analysis rebuilds the curve from these, one row per epoch.
            result["restored_history"] = json.dumps(self.restored_history)
            self.restored_history = None
        scalarize = (self.config.get("objective") or {}).get("scalarize")
        if scalarize:
            result["objective"] = sum(float(w) * float(result[m]) for m, w in scalarize.items())
        if not math.isfinite(held_loss):
            result.update(status="diverged", done=True)
        elif (
            done
            and not final
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
        self._save_training_state(
            checkpoint_dir,
            arch=self.arch,
            trial_id=self.trial_id,
            history=list(self.history),
            lineage=dict(self.lineage),
            param_names=param_names(self.model),
        )
        (Path(checkpoint_dir) / "arch.json").write_text(json.dumps(self.arch, sort_keys=True))
        return None

    def load_checkpoint(self, checkpoint_dir: str | dict[str, Any] | None) -> None:
        if not isinstance(checkpoint_dir, str):
            return
        state = checkpoint.load(checkpoint_dir, CHECKPOINT_FILE)
        if self.space.arch_id(state["arch"]) != self.arch_id:
            self._inherit_from(state)
            return
        self.epoch = checkpoint.restore(state, **self._training_objects())
        self.history = list(state.get("history") or [])[: self.epoch]
        self.restored_history = list(self.history)
        self.lineage = dict(state.get("lineage") or {})
        parent = state.get("trial_id")
        if parent is not None and parent != self.trial_id:  # PBT cloned a peer of this arch
            self._record_lineage(state, mutation="same architecture", fraction=1.0)
        self._retune_lr()

    def _training_objects(self) -> dict[str, Any]:
        """What a checkpoint saves and restores (see :mod:`trainables.checkpoint`)."""
        return {
            "model": self.model,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "scaler": self.scaler,
            "generator": self.generator,
            "device": self.device,
        }

    def _record_lineage(self, state: dict[str, Any], *, mutation: str, fraction: float) -> None:
        """This trial continues another trial's training from its checkpoint (PBT)."""
        lineage = self.config.get("lineage") or {}
        self.restored_history = list(self.history)
        self.lineage = {}
        self.lineage.update(
            {
                "parent": state.get("trial_id"),
                "parent_arch": self.space.to_string(state["arch"]),
                "mutation": lineage.get("mutation", mutation),
                "lineage_step": self.epoch,
                "inherited_fraction": fraction,
            }
        )

    def _inherit_from(self, state: dict[str, Any]) -> None:
        """A parent of another architecture (PBT-evolution): inherit what fits, train on.

        Every parameter and buffer whose name and shape fit is copied, and so is the
        optimizer's state for those parameters (momentum, Adam's moments): an inherited
        tensor keeps training as it did in the parent, only the changed op starts fresh.
        """
        report = inherit_weights(self.model, state["model"])
        carried = carry_optimizer_state(
            self.optimizer, self.model, state["optimizer"], state.get("param_names"), state["model"]
        )
        self.epoch = int(state["epoch"])
        self.history = list(state.get("history") or [])[: self.epoch]
        # The fresh optimizer continues the parent's learning-rate schedule where it was.
        self.scheduler.last_epoch = self.epoch * self._steps_per_epoch()
        self._set_lr(float(self.train_cfg["lr"]))
        self._record_lineage(state, mutation="architecture changed", fraction=report.fraction)
        self.lineage.update(
            {
                "inherited_tensors": report.tensors,
                "inherited_params": report.params,
                "inherited_optimizer_tensors": carried,
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

    def _init(self, config: dict[str, Any]) -> None:
        self._release_child()
        self.config = config
        use_trial_threads(config)
        self.space = space_from_config(config)
        self.arch = self.space.canonical(config["arch"])
        self.arch_id = self.space.arch_id(self.arch)
        self.arch_str = self.space.to_string(self.arch)
        self.device = trial_device(config)
        configure_determinism(self.device, bool(config["train"].get("deterministic", True)))
        self.placement = placement()
        self.train_cfg: dict[str, Any] = dict(config["train"])
        self.data = data_from_config(config, self.device, compact=True)
        seed = trial_seed(int(config.get("seed", 0)), self.arch_id)
        self.generator = seed_trial(seed, self.device)
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
        self.amp = cuda and bool(self.train_cfg.get("amp", True))
        self.cost = {
            **child_cost(
                self.model,
                space_key=space_key(config),
                arch_id=self.arch_id,
                input_shape=tuple(self.data.input_shape),
                device=self.device,
                latency_repeats=int(self.train_cfg.get("latency_repeats", 10)),
                channels_last=self.channels_last,
                amp=self.amp,
            ),
            **predicted_latency(config, self.arch),
        }
        self.violations = violated_constraints(config.get("constraints", []), self.cost)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.optimizer = make_optimizer(self.model.parameters(), self.train_cfg)
        self.scheduler = make_lr_schedule(self.optimizer, self._steps_per_epoch(), self.train_cfg)
        self.criterion = nn.CrossEntropyLoss(
            label_smoothing=float(self.train_cfg.get("label_smoothing", 0.0))
        )
        self.epoch = 0
        self.lineage = {}
        self.history = []
        self.restored_history = None

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
            transform=self.data.as_inputs,
        ):
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, yb

    def _forward(self, xb: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, enabled=self.amp):
            return self.model(xb)

    def _train_epoch(self) -> tuple[float, float]:
        """One epoch; ``(mean train loss, train accuracy)``, ``(nan, 0.0)`` once it diverged.

        The loss and the correct predictions are summed as tensors on the device: no step
        waits for the device to hand back a number. Finiteness is checked every
        :data:`FINITE_CHECK_EVERY` steps and at the end (a non-finite loss keeps the sum
        non-finite), and the epoch ends as diverged there.
        """
        self.model.train()
        acc_dtype = torch.float32 if self.device.type == "mps" else torch.float64
        total_loss = torch.zeros((), dtype=acc_dtype, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = 0
        clip = self.train_cfg.get("grad_clip")
        every = self.train_cfg.get("progress_s", 30.0)
        start = last = time.perf_counter()
        for i, (xb, yb) in enumerate(
            self._batches(self.data.train_x, self.data.train_y, train=True), 1
        ):
            if every is not None and time.perf_counter() - last >= float(every) and seen:
                last = time.perf_counter()
                self._progress(i - 1, last - start, float(total_loss) / seen)
            self.optimizer.zero_grad(set_to_none=True)
            logits = self._forward(xb)
            loss = self.criterion(logits.float(), yb)
            aux = getattr(self.model, "aux_logits", None)
            if aux is not None:
                loss = loss + 0.4 * self.criterion(aux.float(), yb)
            self.scaler.scale(loss).backward()
            if clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), float(clip))
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            n = int(yb.shape[0])
            total_loss += loss.detach().to(acc_dtype) * n
            correct += (logits.detach().argmax(1) == yb).sum()
            seen += n
            if i % FINITE_CHECK_EVERY == 0 and not bool(torch.isfinite(total_loss)):
                return float("nan"), 0.0
        if not bool(torch.isfinite(total_loss)):
            return float("nan"), 0.0
        return float(total_loss) / max(seen, 1), int(correct) / max(seen, 1)

    def _progress(self, done: int, elapsed: float, train_loss: float) -> None:
        """One progress line within a long epoch, on the trial's stdout (not a Tune result)."""
        n = self._steps_per_epoch()
        print(
            f"[raynas] trial {self.trial_id} epoch {self.epoch + 1}/{self.train_cfg['epochs']}: "
            f"batch {done}/{n} ({done / n:.0%}), {elapsed:.0f} s, train_loss {train_loss:.4f}",
            flush=True,
        )

    @torch.no_grad()
    def _evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        self.model.eval()
        acc_dtype = torch.float32 if self.device.type == "mps" else torch.float64
        total_loss = torch.zeros((), dtype=acc_dtype, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for xb, yb in self._batches(x, y, train=False):  # summed on the device: no sync a batch
            logits = self._forward(xb).float()
            total_loss += nn.functional.cross_entropy(logits, yb, reduction="sum").to(acc_dtype)
            correct += (logits.argmax(1) == yb).sum()
        n = max(int(y.shape[0]), 1)
        return float(total_loss) / n, int(correct) / n

    # --- driver-side hooks (before Ray starts) --------------------------------------
    @staticmethod
    def driver_cost(exp: Any) -> Callable[[dict[str, Any]], dict[str, float]]:
        """``arch -> {"params", "flops"}`` computed on the driver (see
        raynas.experiment.constraints).

        The child is built on the CPU for the experiment's dataset shape (the dataset is
        loaded once, on the CPU); parameters and FLOPs do not depend on the device.
        """
        from trainables.cost import count_flops, count_params

        config = trial_settings(exp)
        space = space_from_config(config)
        data = data_from_config(config, torch.device("cpu"), compact=True)
        shape, classes = tuple(data.input_shape), data.num_classes

        def cost(arch: dict[str, Any]) -> dict[str, float]:
            model = build_child(space, space.canonical(arch), shape, classes)
            return {"params": count_params(model), "flops": count_flops(model, shape)}

        return cost

    @staticmethod
    def shared_objects(exp: Any) -> dict[str, Any]:
        """With ``objective.latency_model``: the checked table, which the runner hands to
        every worker through the object store (see :func:`predicted_latency`)."""
        path = exp.objective.latency_model
        if not path:
            return {}
        return {"latency_model": load_latency_model(path, exp.space, dict(exp.space_args))}

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
        if not errors and (
            exp.data.name in EMBEDDED_DATASETS
            or exp.data.download
            or (exp.data.root and Path(exp.data.root).expanduser().is_dir())
        ):
            errors.extend(check_data_and_model(exp))
        if exp.data.val_fraction == 0:
            objectives = [m for m, _ in exp.objective.objectives()]
            for metric in dict.fromkeys([*objectives, *(exp.objective.scalarize or {})]):
                if metric.startswith("val_"):
                    errors.append(
                        f"objective.metric: data.val_fraction is 0 (no validation split), so "
                        f"classify reports test_* instead of {metric!r}; use "
                        f"{'test_' + metric[4:]!r} (a final training, as `raynas retrain "
                        "--final` runs it) or set data.val_fraction > 0"
                    )
        return errors
