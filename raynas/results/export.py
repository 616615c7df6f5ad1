"""``raynas export``: a trial's architecture and trained weights, ready to use outside raynas.

``raynas export DIR [--trial ID | --best] --out OUT [--overwrite]`` writes into ``OUT``:

- ``arch.json``: the architecture, its string and id, the space (name and arguments), the
  input (shape, dtype, layout, raw range and the normalisation statistics), number of classes,
  the checkpoint's epoch and the metrics reported at that epoch;
- ``weights.pt``: the network's ``state_dict`` of the trial's last checkpoint;
- ``model.pt2``: a ``torch.export`` program (``torch.export.load(...).module()``);
- ``model.ts``: the same as TorchScript (``torch.jit.load``; deprecated by PyTorch);
- ``model.onnx`` when ``onnx`` and ``onnxscript`` are installed (the ``onnx`` extra; otherwise
  a note says so);
- ``README.md``: what input the models take and how to load each of them.

Every model file takes *raw* inputs (``trainables.data.RAW_INPUTS``: e.g. digits pixels / 16
in [0, 1]) and normalises them inside with the training-split mean and std the trial trained
with, so nothing but PyTorch (or an ONNX runtime) is needed to use it. ``OUT`` must be empty or
new; ``overwrite=True`` replaces the files of a previous export in it (other files are kept).

The exported files are checked before the command ends: each is loaded back and evaluated on
raw inputs of the split the trial reported (rebuilt from the trial's config: dataset,
``val_fraction``, ``data_seed``; the test split for a trial trained without a validation
split), and its accuracy is printed next to the one the trial reported.

Example:
    >>> done = export_trial("runs/quickstart", "exported/", best=True)
    >>> model = torch.export.load("exported/model.pt2").module()
    >>> model = load_exported("exported/")  # the same, rebuilt with raynas

Kept as one module (over 450 lines): one command: the writers of arch.json, the weights,
TorchScript, ONNX and the README share the loaded trial and the input description.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from raynas.results.analysis import ExperimentResult

ARCH_FILE, WEIGHTS_FILE, TORCHSCRIPT_FILE, PROGRAM_FILE, ONNX_FILE, README_FILE = (
    "arch.json",
    "weights.pt",
    "model.ts",
    "model.pt2",
    "model.onnx",
    "README.md",
)
#: Every file an export may write (what ``overwrite`` replaces).
EXPORT_FILES = (
    ARCH_FILE,
    WEIGHTS_FILE,
    TORCHSCRIPT_FILE,
    PROGRAM_FILE,
    ONNX_FILE,
    ONNX_FILE + ".data",
    README_FILE,
)
#: Statuses whose checkpoint (if any) holds no usable trained weights.
UNTRAINED = ("constraint_violated", "diverged", "error", "oom")
SPLIT_NAMES = {"val": "validation split", "test": "official test split"}
README_TEMPLATE = """# {arch_str}

Trial `{trial_id}` of experiment `{experiment}`, checkpoint of epoch {epoch}
(space `{space}` {space_args}, {num_classes} classes).
Reported at that epoch: {metrics}.

## Input and output

Every model here takes **raw** inputs and normalises them itself:

- shape `(N, {shape})`: {layout}; any batch size N >= 1;
- dtype `torch.float32` (`numpy.float32` for ONNX);
- values: {raw};
- inside, `(x - mean) / std` with the per-{per} mean and std of the `{dataset}` training split
  the trial trained with (`arch.json`: `input.mean`, `input.std`).

Outputs are logits of shape `(N, {num_classes})`; `logits.argmax(1)` is the predicted class.

```python
import torch

# torch.export program: needs only PyTorch
model = torch.export.load("model.pt2").module()
logits = model(torch.rand(1, {shape}))

# TorchScript (PyTorch deprecates it; kept for runtimes that read only TorchScript)
model = torch.jit.load("model.ts").eval()

# or rebuild the network with raynas: the same raw inputs, normalised inside
from raynas.results.export import load_exported
model = load_exported(".")  # this folder: arch.json + weights.pt
```

`weights.pt` is the bare network's `state_dict`: that network expects normalised inputs.
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
        split: The split the check used: ``"val"``, or ``"test"`` for a trial trained
            without a validation split.
        reproduced: Accuracy on raw inputs of that split, per exported model file name.
        notes: Things skipped (e.g. ONNX without ``onnx``).
    """

    out: Path
    files: list[Path]
    trial_id: str
    epoch: int
    reported: dict[str, float]
    split: str
    reproduced: dict[str, float]
    notes: list[str] = field(default_factory=list)


def register_cli(sub: Any) -> None:
    """Add the ``export`` subcommand to the ``raynas`` parser."""
    exp = sub.add_parser(
        "export",
        help="export a trial's architecture and trained weights",
        description="Write the architecture (arch.json), the weights of the trial's last "
        "checkpoint (weights.pt), a torch.export program (model.pt2), TorchScript (model.ts), "
        "ONNX when onnx and onnxscript are installed, and a README on the input they take "
        "(raw, normalised inside) and on loading them.",
    )
    exp.add_argument("dir", help="experiment folder (<storage>/<name>)")
    which = exp.add_mutually_exclusive_group()
    which.add_argument("--trial", metavar="ID", help="the trial to export (see `raynas analyze`)")
    which.add_argument(
        "--best", action="store_true", help="export the best trial by the objective (default)"
    )
    exp.add_argument("--out", required=True, metavar="OUT", help="output folder (empty or new)")
    exp.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty OUT, replacing the files of a previous export",
    )
    exp.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    """The ``raynas export`` handler; returns the exit code."""
    done = export_trial(args.dir, args.out, trial_id=args.trial, overwrite=args.overwrite)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in done.reported.items())
    print(f"exported trial {done.trial_id} (epoch {done.epoch}; reported {shown}) to {done.out}")
    for path in done.files:
        print(f"wrote {path}")
    for note in done.notes:
        print(f"note: {note}")
    metric = f"{done.split}_acc"
    reported = done.reported.get(metric)
    shown_reported = "none" if reported is None else f"{reported:.6g}"
    for name, acc in done.reproduced.items():
        if acc == reported:
            verdict = "identical"
        else:
            gap = "" if reported is None else f" by {abs(acc - reported):.3g}"
            verdict = f"differs{gap}: was the trial trained on a GPU or with AMP?"
        print(
            f"check: {name} scores {metric} {acc:.6g} on raw inputs of the trial's "
            f"{SPLIT_NAMES[done.split]} (reported {shown_reported}: {verdict})"
        )
    return 0


def _pick_trial(result: ExperimentResult, trial_id: str | None) -> Any:
    from raynas.experiment.config import ConfigError

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


def _check_experiment_folder(folder: Path) -> None:
    """Refuse a ``dir`` that does not exist or holds no experiment, naming the argument."""
    from raynas.results.analysis import experiment_folder

    experiment_folder(folder)


def _check_out(out_dir: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` that is a file, or a non-empty folder without ``overwrite``."""
    from raynas.experiment.config import ConfigError

    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(
            [f"--out: {str(out_dir)!r} is a file, not a folder; choose another --out"]
        )
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ConfigError(
            [f"--out: folder {str(out_dir)!r} is not empty; pass --overwrite to replace the "
             "export in it, or choose another --out"]
        )  # fmt: skip


def export_trial(
    experiment: str | Path | ExperimentResult,
    out: str | Path,
    *,
    trial_id: str | None = None,
    best: bool = False,
    overwrite: bool = False,
) -> Export:
    """Export a trial (default: the best one) into ``out``.

    Args:
        experiment: The experiment folder or its :class:`~raynas.results.analysis.ExperimentResult`.
        out: Output folder: new or empty, unless ``overwrite``.
        trial_id: The trial to export; None (or ``best=True``) exports the best trial.
        best: Export the best trial by the objective.
        overwrite: Write into a non-empty ``out``, replacing a previous export's files.

    Returns:
        What was written and the accuracy each exported model reproduces from raw inputs.

    Raises:
        ConfigError: A non-empty ``out`` without ``overwrite``, no such trial, no ranked
            trial, or a trial without a checkpoint. Nothing is written then.
        FileNotFoundError: The dataset's files do not exist (a missing experiment folder is
            a ConfigError naming ``dir``).
    """
    import pandas as pd
    import torch
    from torch import nn

    from raynas.experiment.config import ConfigError
    from raynas.files import DERIVED_ARCH_FILE
    from raynas.results.analysis import ExperimentResult, load
    from trainables import checkpoint

    if not isinstance(experiment, ExperimentResult):
        _check_experiment_folder(Path(experiment).expanduser())
    out_dir = Path(out).expanduser()
    _check_out(out_dir, overwrite)
    result = experiment if isinstance(experiment, ExperimentResult) else load(experiment)
    row = _pick_trial(result, None if best else trial_id)
    tid = str(row["trial_id"])
    flag = "--trial" if trial_id and not best else "--best"
    ckpt = result.checkpoint(tid)
    state_file = ckpt / "state.pt" if ckpt is not None else None
    epochs = row["epochs"]
    untrained = row["status"] in UNTRAINED or pd.isna(epochs) or int(epochs) < 1
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
    state = checkpoint.load(state_file.parent, state_file.name)  # the trainables' own reader
    net, data, space = _rebuild(config, state["arch"])
    net.load_state_dict(state["model"])
    net.eval()
    model = nn.Sequential(OrderedDict(normalize=data.normalizer(), net=net)).eval()
    epoch = int(state.get("epoch", 0))
    curves = result.curves
    at = curves[(curves["trial_id"] == tid) & (curves["epoch"] == epoch)]
    reported = {
        k: float(at.iloc[-1][k])
        for k in ("val_acc", "val_loss", "train_acc", "test_acc", "test_loss")
        if k in at and not at.empty and at.iloc[-1][k] == at.iloc[-1][k]
    }
    split = "val" if int(data.val_y.shape[0]) > 0 or data.test_x is None else "test"
    x, y = (data.val_x, data.val_y) if split == "val" else (data.test_x, data.test_y)
    arch = space.canonical(state["arch"])
    meta = {
        "trial_id": tid,
        "experiment": str(result.path),
        "arch": arch,
        "arch_str": space.to_string(arch),
        "arch_id": space.arch_id(arch),
        "space": config["space"],
        "plugins": list(config.get("plugins") or []),
        "plugin_path": list(config.get("plugin_path") or []),
        "input_shape": list(data.input_shape),
        "input": _input_meta(data),
        "num_classes": int(data.num_classes),
        "epoch": epoch,
        "metrics": reported,
        "data": config.get("data", {}),
        "data_seed": int(config.get("data_seed", 0)),
        "cost": {k: _plain(row.get(k)) for k in ("params", "flops", "latency_ms")},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in EXPORT_FILES:  # a previous export's files (overwrite): none may be left stale
        (out_dir / name).unlink(missing_ok=True)
    files = [out_dir / ARCH_FILE, out_dir / WEIGHTS_FILE, out_dir / TORCHSCRIPT_FILE]
    files[0].write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    torch.save(net.state_dict(), files[1])
    example = data.train_x[:2].cpu()  # raw inputs (the splits are loaded unnormalised)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices
        # check_trace=False: every exported file is checked below, on the whole split
        torch.jit.trace(model, example, check_trace=False).save(str(files[2]))
    notes: list[str] = []
    program = _export_program(model, example, out_dir / PROGRAM_FILE, notes)
    if program is not None:
        files.append(out_dir / PROGRAM_FILE)
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        notes.append(
            f"ONNX skipped: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            "not installed (pip install onnx onnxscript onnxruntime, or raynas's `onnx` extra)"
        )
    elif program is not None:
        files.append(_export_onnx(program, example, out_dir / ONNX_FILE))
    onnx_file = ONNX_FILE if out_dir / ONNX_FILE in files else None
    readme = out_dir / README_FILE
    readme.write_text(_readme(meta, result, onnx_file))
    files.append(readme)
    eval_batch = int((config.get("train") or {}).get("eval_batch_size", 512))
    reproduced = _check_files(out_dir, [p.name for p in files], x, y, eval_batch, notes)
    return Export(out_dir, files, tid, epoch, reported, split, reproduced, notes)


def _plain(value: Any) -> Any:
    try:
        return None if value is None or value != value else float(value)
    except (TypeError, ValueError):
        return None


def _input_meta(data: Any) -> dict[str, Any]:
    """``arch.json``'s ``input``: what the exported models take and how they normalise it."""
    from trainables.data import RAW_INPUTS

    images = len(data.input_shape) == 3
    return {
        "shape": list(data.input_shape),
        "dtype": "float32",
        "layout": "NCHW" if images else "NF",
        "raw": RAW_INPUTS[data.name],
        "mean": data.mean.cpu().flatten().tolist(),  # per channel (feature)
        "std": data.std.cpu().flatten().tolist(),
    }


def _rebuild(config: dict[str, Any], arch: Any) -> tuple[nn.Module, Any, Any]:
    """The untrained network of ``arch``, the trial's raw data splits (CPU) and its space."""
    from raynas.registry import load_plugins, resolve_space
    from trainables.child import build_child
    from trainables.data import load_dataset

    load_plugins(config.get("plugins") or [], config.get("plugin_path") or [])
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
        normalize=False,
    )
    model = build_child(space, space.canonical(arch), tuple(data.input_shape), data.num_classes)
    return model, data, space


def _export_program(
    model: nn.Module, example: torch.Tensor, path: Path, notes: list[str]
) -> torch.export.ExportedProgram | None:
    """``torch.export`` with a dynamic batch, saved to ``path``; None (and a note) if it fails."""
    import torch

    try:
        batch = torch.export.Dim("batch", min=1)
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    except Exception as err:  # a plugin space torch.export cannot trace: TorchScript still works
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        notes.append(
            f"{PROGRAM_FILE} and ONNX skipped: torch.export failed ({type(err).__name__}: "
            f"{first}); {TORCHSCRIPT_FILE} was written"
        )
        return None
    torch.export.save(program, str(path))
    return program


def _export_onnx(program: Any, example: torch.Tensor, path: Path) -> Path:
    """The ``torch.export`` program as ONNX (the torch.export-based exporter: onnxscript)."""
    import onnx
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            program,
            (example,),
            str(path),
            dynamo=True,
            input_names=["input"],
            output_names=["logits"],
            external_data=False,
            verbose=False,
        )
    onnx.checker.check_model(onnx.load(str(path)))
    return path


def _check_files(
    out_dir: Path, names: list[str], x: Any, y: Any, batch: int, notes: list[str]
) -> dict[str, float]:
    """Load each exported model back and score it on raw ``(x, y)``: ``{file: accuracy}``."""
    import torch

    scores: dict[str, float] = {}
    if PROGRAM_FILE in names:
        program = torch.export.load(str(out_dir / PROGRAM_FILE)).module()
        scores[PROGRAM_FILE] = evaluate_accuracy(program, x, y, batch_size=batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        scripted = torch.jit.load(str(out_dir / TORCHSCRIPT_FILE))
    scores[TORCHSCRIPT_FILE] = evaluate_accuracy(scripted, x, y, batch_size=batch)
    if ONNX_FILE in names:
        if importlib.util.find_spec("onnxruntime") is None:
            notes.append(f"{ONNX_FILE} not checked: onnxruntime is not installed")
        else:
            import onnxruntime

            session = onnxruntime.InferenceSession(
                str(out_dir / ONNX_FILE), providers=["CPUExecutionProvider"]
            )

            def run(xb: torch.Tensor) -> torch.Tensor:
                return torch.from_numpy(session.run(None, {"input": xb.numpy()})[0])

            scores[ONNX_FILE] = evaluate_accuracy(run, x, y, batch_size=batch)
    return scores


def _readme(meta: dict[str, Any], result: ExperimentResult, onnx_file: str | None) -> str:
    shape = ", ".join(map(str, meta["input_shape"]))
    onnx = (
        f"\nONNX: `{onnx_file}` (input `input`, output `logits`, dynamic batch; the same raw "
        "inputs), e.g. with onnxruntime: `onnxruntime.InferenceSession('model.onnx')"
        ".run(None, {'input': x.numpy()})[0]`.\n"
        if onnx_file
        else "\nONNX was not written: install onnx and onnxscript (raynas's `onnx` extra) and "
        "export again.\n"
    )
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in meta["metrics"].items()) or "no metrics"
    images = meta["input"]["layout"] == "NCHW"
    return README_TEMPLATE.format(
        arch_str=meta["arch_str"],
        trial_id=meta["trial_id"],
        experiment=result.path.name,
        epoch=meta["epoch"],
        space=meta["space"]["name"],
        space_args=json.dumps(meta["space"].get("args") or {}),
        num_classes=meta["num_classes"],
        metrics=metrics,
        shape=shape,
        layout="channels first, (N, C, H, W)" if images else "(N, features)",
        raw=meta["input"]["raw"],
        per="channel" if images else "feature",
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
    """Rebuild the exported model from ``arch.json`` + ``weights.pt`` (eval mode).

    Like the exported files, it takes raw inputs (``arch.json``'s ``input``): an
    ``nn.Sequential`` of the normalisation (``.normalize``) and the network (``.net``).

    Raises:
        FileNotFoundError: ``folder`` lacks ``arch.json`` or ``weights.pt``.
    """
    import torch
    from torch import nn

    from raynas.registry import load_plugins, resolve_space
    from trainables.child import build_child
    from trainables.data import Normalize

    folder = Path(folder).expanduser()
    for name in (ARCH_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{str(folder / name)!r} is missing; run `raynas export` first")
    meta = json.loads((folder / ARCH_FILE).read_text())
    load_plugins(meta.get("plugins") or [], meta.get("plugin_path") or [])
    space = resolve_space(meta["space"]["name"], meta["space"].get("args") or {})
    net = build_child(space, meta["arch"], tuple(meta["input_shape"]), meta["num_classes"])
    net.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
    stats = meta["input"]
    shape = (1, -1, *[1] * (len(stats["shape"]) - 1))  # per channel (feature), over a batch
    normalize = Normalize(
        torch.tensor(stats["mean"]).reshape(shape), torch.tensor(stats["std"]).reshape(shape)
    )
    return nn.Sequential(OrderedDict(normalize=normalize, net=net)).eval()
