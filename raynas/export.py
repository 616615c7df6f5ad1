"""``raynas export``: a trial's architecture and trained weights, ready to use outside raynas.

``raynas export DIR [--trial ID | --best] --out OUT`` writes into ``OUT``:

- ``arch.json``: the architecture, its string and id, the space (name and arguments), input
  shape, number of classes, the checkpoint's epoch and the metrics reported at that epoch;
- ``weights.pt``: the ``state_dict`` of the trial's last checkpoint;
- ``model.ts``: a TorchScript module (``torch.jit.load``; no raynas needed to run it);
- ``model.onnx`` when the ``onnx`` package is installed (otherwise a note says so);
- ``README.md``: how to load each of them.

The exported model is checked before the command ends: it is evaluated on the trial's own
validation split (rebuilt from the trial's config: dataset, ``val_fraction``, ``data_seed``)
and its accuracy is printed next to the one the trial reported.

Example:
    >>> paths = export_trial("runs/quickstart", "exported/", best=True)
    >>> model = load_exported("exported/")
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from raynas.analysis import ExperimentResult

ARCH_FILE, WEIGHTS_FILE, TORCHSCRIPT_FILE, ONNX_FILE = (
    "arch.json",
    "weights.pt",
    "model.ts",
    "model.onnx",
)
#: Statuses whose checkpoint (if any) holds no usable trained weights.
UNTRAINED = ("constraint_violated", "diverged", "error", "oom")
README_TEMPLATE = """# {arch_str}

Trial `{trial_id}` of experiment `{experiment}`, checkpoint of epoch {epoch}
(space `{space}` {space_args}, input shape {input_shape}, {num_classes} classes).
Reported at that epoch: {metrics}.

Inputs are float32 tensors of shape (N, {shape}) normalised like raynas's `{dataset}`
loader (`trainables.data.load_dataset`); outputs are logits of shape (N, {num_classes}).

```python
import torch

# TorchScript: needs only PyTorch
model = torch.jit.load("model.ts").eval()
logits = model(torch.zeros(1, {shape}))

# or rebuild the network with raynas and load the weights
from raynas.export import load_exported
model = load_exported(".")  # this folder: arch.json + weights.pt
```
{onnx}"""


@dataclass
class Export:
    """What :func:`export_trial` wrote and checked.

    Attributes:
        out: The output folder.
        files: Every file written.
        trial_id: The exported trial.
        epoch: The epoch of its checkpoint.
        reported: The metrics the trial reported at that epoch.
        reproduced_val_acc: The exported TorchScript module's accuracy on the trial's
            validation split.
        notes: Things skipped (e.g. ONNX without ``onnx``).
    """

    out: Path
    files: list[Path]
    trial_id: str
    epoch: int
    reported: dict[str, float]
    reproduced_val_acc: float
    notes: list[str] = field(default_factory=list)


def register_cli(sub: Any) -> None:
    """Add the ``export`` subcommand to the ``raynas`` parser."""
    exp = sub.add_parser(
        "export",
        help="export a trial's architecture and trained weights",
        description="Write the architecture (arch.json), the weights of the trial's last "
        "checkpoint (weights.pt), a TorchScript module (model.ts), ONNX when the onnx "
        "package is installed, and a README on loading them.",
    )
    exp.add_argument("dir", help="experiment folder (<storage>/<name>)")
    which = exp.add_mutually_exclusive_group()
    which.add_argument("--trial", metavar="ID", help="the trial to export (see `raynas analyze`)")
    which.add_argument(
        "--best", action="store_true", help="export the best trial by the objective (default)"
    )
    exp.add_argument("--out", required=True, metavar="OUT", help="output folder")
    exp.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    """The ``raynas export`` handler; returns the exit code."""
    done = export_trial(args.dir, args.out, trial_id=args.trial)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in done.reported.items())
    print(f"exported trial {done.trial_id} (epoch {done.epoch}; reported {shown}) to {done.out}")
    for path in done.files:
        print(f"wrote {path}")
    for note in done.notes:
        print(f"note: {note}")
    reported = done.reported.get("val_acc")
    same = reported == done.reproduced_val_acc
    verdict = "identical" if same else "differs: was the trial trained on a GPU or with AMP?"
    shown_reported = "none" if reported is None else f"{reported:.6g}"
    print(
        f"check: model.ts scores val_acc {done.reproduced_val_acc:.6g} on the trial's "
        f"validation split (reported {shown_reported}: {verdict})"
    )
    return 0


def _pick_trial(result: ExperimentResult, trial_id: str | None) -> Any:
    from raynas.config import ConfigError

    trials = result.trials
    if trial_id is None:
        best = result.best()
        if best is None:
            raise ConfigError(
                [f"--best: no trial of {str(result.path)!r} reported {result.metric!r} yet; "
                 "wait for a trial to finish or pick one with --trial ID"]
            )  # fmt: skip
        return best
    rows = trials[trials["trial_id"] == trial_id]
    if rows.empty:
        known = ", ".join(map(str, trials["trial_id"])) or "none"
        raise ConfigError(
            [f"--trial: no trial {trial_id!r} in {str(result.path)!r}; trials: {known}"]
        )
    return rows.iloc[0]


def export_trial(
    experiment: str | Path | ExperimentResult,
    out: str | Path,
    *,
    trial_id: str | None = None,
    best: bool = False,
) -> Export:
    """Export a trial (default: the best one) into ``out``.

    Args:
        experiment: The experiment folder or its :class:`~raynas.analysis.ExperimentResult`.
        out: Output folder (created; files in it are replaced).
        trial_id: The trial to export; None (or ``best=True``) exports the best trial.
        best: Export the best trial by the objective.

    Returns:
        What was written and the accuracy the exported module reproduces.

    Raises:
        ConfigError: No such trial, no ranked trial, or a trial without a checkpoint.
        FileNotFoundError: The experiment folder (or the dataset's files) does not exist.
    """
    import pandas as pd
    import torch

    from raynas.analysis import ExperimentResult, load
    from raynas.config import ConfigError

    result = experiment if isinstance(experiment, ExperimentResult) else load(experiment)
    row = _pick_trial(result, None if best else trial_id)
    tid = str(row["trial_id"])
    flag = "--trial" if trial_id and not best else "--best"
    ckpt = result.checkpoint(tid)
    state_file = ckpt / "state.pt" if ckpt is not None else None
    epochs = row["epochs"]
    untrained = row["status"] in UNTRAINED or pd.isna(epochs) or int(epochs) < 1
    from raynas.retrain import DERIVED_ARCH_FILE

    if (Path(str(row["trial_dir"])) / DERIVED_ARCH_FILE).is_file():
        raise ConfigError(
            [f"{flag}: trial {tid} is a one-shot search: it trained a supernet, not a child; "
             "train its derived architecture from scratch with `raynas retrain "
             f"{result.path} --trial {tid}`, then export the best trial of that folder"]
        )  # fmt: skip
    if untrained or state_file is None or not state_file.is_file():
        why = "holds no trained weights" if untrained else "has no checkpoint with state.pt"
        raise ConfigError(
            [f"{flag}: trial {tid} (status {row['status']}) {why}; export a completed or "
             "early-stopped trial of a checkpointing trainable (see `raynas analyze`)"]
        )  # fmt: skip
    config = result.trial_config(tid)
    state = torch.load(state_file, map_location="cpu", weights_only=True)
    model, data, space = _rebuild(config, state["arch"])
    model.load_state_dict(state["model"])
    model.eval()
    epoch = int(state.get("epoch", 0))
    curves = result.curves
    at = curves[(curves["trial_id"] == tid) & (curves["epoch"] == epoch)]
    reported = {
        k: float(at.iloc[-1][k])
        for k in ("val_acc", "val_loss", "train_acc", "test_acc")
        if k in at and not at.empty and at.iloc[-1][k] == at.iloc[-1][k]
    }
    out_dir = Path(out).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    arch = space.canonical(state["arch"])
    meta = {
        "trial_id": tid,
        "experiment": str(result.path),
        "arch": arch,
        "arch_str": space.to_string(arch),
        "arch_id": space.arch_id(arch),
        "space": config["space"],
        "input_shape": list(data.input_shape),
        "num_classes": int(data.num_classes),
        "epoch": epoch,
        "metrics": reported,
        "data": config.get("data", {}),
        "data_seed": int(config.get("data_seed", 0)),
        "cost": {k: _plain(row.get(k)) for k in ("params", "flops", "latency_ms")},
    }
    files = [out_dir / ARCH_FILE, out_dir / WEIGHTS_FILE, out_dir / TORCHSCRIPT_FILE]
    files[0].write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    torch.save(model.state_dict(), files[1])
    example = data.val_x[:2].cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices
        scripted = torch.jit.trace(model, example)
    scripted.save(str(files[2]))
    notes = []
    if importlib.util.find_spec("onnx") is not None:
        files.append(_export_onnx(model, example, out_dir / ONNX_FILE))
    else:
        notes.append("ONNX skipped: the `onnx` package is not installed (pip install onnx)")
    readme = out_dir / "README.md"
    readme.write_text(_readme(meta, result, ONNX_FILE if len(files) > 3 else None))
    files.append(readme)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(files[2]))
    eval_batch = int((config.get("train") or {}).get("eval_batch_size", 512))
    acc = evaluate_accuracy(loaded, data.val_x, data.val_y, batch_size=eval_batch)
    return Export(out_dir, files, tid, epoch, reported, acc, notes)


def _plain(value: Any) -> Any:
    try:
        return None if value is None or value != value else float(value)
    except (TypeError, ValueError):
        return None


def _rebuild(config: dict[str, Any], arch: Any) -> tuple[nn.Module, Any, Any]:
    """The untrained network of ``arch``, the trial's data splits (CPU) and its space."""
    from raynas.registry import resolve_space
    from trainables.classify import build_child
    from trainables.data import load_dataset

    spec = config["space"]
    space = resolve_space(spec["name"], spec.get("args") or {})
    d = config.get("data") or {}
    data = load_dataset(
        d.get("name", "digits"),
        root=d.get("root"),
        download=False,
        val_fraction=float(d.get("val_fraction", 0.2)),
        seed=int(config.get("data_seed", 0)),
        device="cpu",
        limit=d.get("limit"),
    )
    model = build_child(space, space.canonical(arch), tuple(data.input_shape), data.num_classes)
    return model, data, space


def _export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> Path:
    import onnx
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,  # the TorchScript-based exporter: no onnxscript needed
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    onnx.checker.check_model(onnx.load(str(path)))
    return path


def _readme(meta: dict[str, Any], result: ExperimentResult, onnx_file: str | None) -> str:
    shape = ", ".join(map(str, meta["input_shape"]))
    onnx = (
        f"\nONNX: `{onnx_file}` (input `input`, output `logits`, dynamic batch), e.g. with "
        "onnxruntime: `InferenceSession('model.onnx').run(None, {'input': x.numpy()})`.\n"
        if onnx_file
        else "\nONNX was not written: install the `onnx` package and export again.\n"
    )
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in meta["metrics"].items()) or "no metrics"
    return README_TEMPLATE.format(
        arch_str=meta["arch_str"],
        trial_id=meta["trial_id"],
        experiment=result.path.name,
        epoch=meta["epoch"],
        space=meta["space"]["name"],
        space_args=json.dumps(meta["space"].get("args") or {}),
        input_shape=tuple(meta["input_shape"]),
        num_classes=meta["num_classes"],
        metrics=metrics,
        shape=shape,
        dataset=meta["data"].get("name", "?"),
        onnx=onnx,
    )


def evaluate_accuracy(
    model: Any, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 512
) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``, batched like the trainable's evaluation."""
    import torch

    correct = 0
    with torch.no_grad():
        for i in range(0, int(x.shape[0]), batch_size):
            logits = model(x[i : i + batch_size]).float()
            correct += int((logits.argmax(1) == y[i : i + batch_size]).sum())
    return correct / max(int(y.shape[0]), 1)


def load_exported(folder: str | Path) -> nn.Module:
    """Rebuild the exported network from ``arch.json`` + ``weights.pt`` (eval mode).

    Raises:
        FileNotFoundError: ``folder`` lacks ``arch.json`` or ``weights.pt``.
    """
    import torch

    from raynas.registry import resolve_space
    from trainables.classify import build_child

    folder = Path(folder).expanduser()
    for name in (ARCH_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{str(folder / name)!r} is missing; run `raynas export` first")
    meta = json.loads((folder / ARCH_FILE).read_text())
    space = resolve_space(meta["space"]["name"], meta["space"].get("args") or {})
    model = build_child(space, meta["arch"], tuple(meta["input_shape"]), meta["num_classes"])
    model.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
    return model.eval()
