"""What every trainable does to set up a child trial: its space, seed, device, data, model, cost.

``classify``, the one-shot trainables (``darts``, ``enas``, ``gdas``), ``supernet`` / ``subnet``,
the proxies' scorer and ``raynas export`` build children the same way from the same trial
config (:func:`raynas.experiment.config.trial_settings` merged under the trial's own): each
helper here is the one place that does its step. The caches (spaces, measured costs, latency
tables) live per worker process, so a reused actor or a retried trial pays for each once.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np
import torch
from torch import nn

from raynas.experiment.config import SHARED_KEY, trial_settings
from raynas.experiment.config_check import load_latency_model
from raynas.experiment.config_rules import EMBEDDED_DATASETS, LATENCY_PRED_METRIC
from raynas.registry import load_plugins, resolve_space
from trainables.cost import measure_cost
from trainables.data import load_dataset

_SPACES: dict[str, Any] = {}
#: Measured cost of each child this worker process built (see :func:`child_cost`).
_COSTS: dict[tuple[Any, ...], dict[str, int | float]] = {}
#: Latency predictors (``objective.latency_model`` tables) this worker process read.
_LATENCY_MODELS: dict[str, Any] = {}


def space_key(config: dict[str, Any]) -> str:
    """The trial's space spec as one string (name and arguments): the space caches' key."""
    return json.dumps(config["space"], sort_keys=True, default=str)


def space_from_config(config: dict[str, Any]) -> Any:
    """The trial's space, built once per worker process."""
    spec = config["space"]
    key = space_key(config)
    if config.get("plugins"):
        load_plugins(config["plugins"], config.get("plugin_path") or ())
    if key not in _SPACES:
        _SPACES[key] = resolve_space(spec["name"], spec.get("args") or {})
    return _SPACES[key]


def child_cost(
    model: nn.Module,
    *,
    space_key: str,
    arch_id: str,
    input_shape: tuple[int, ...],
    device: torch.device,
    latency_repeats: int,
    channels_last: bool = False,
    amp: bool = False,
) -> dict[str, int | float]:
    """``params``, ``flops`` and ``latency_ms`` of a child, measured once per worker process.

    The same architecture of the same space on the same input shape and device has the same
    cost, so a second trial of it in this process (a failure retry, a resumed or PBT-cloned
    trial, a repeat, a Hyperband pause) reuses the first measurement instead of a FLOP pass and
    ``3 + latency_repeats`` timed forwards. :func:`clear_cost_cache` forgets them.

    ``latency_ms`` is the median of the timed batch-1 forwards after 3 warm-up ones, in the
    memory format (``channels_last``) and precision (``amp``: fp16 autocast on a GPU) the child
    trains in, i.e. as it would be deployed. It is taken where the trial runs: on a GPU shared
    with other children (``resources.gpu < 1``) or a CPU busy with other trials it is noisy;
    ``latency_pred_ms`` from a profiled table (``objective.latency_model``) is the stable one.
    """
    key = (
        space_key,
        arch_id,
        tuple(input_shape),
        str(device),
        latency_repeats,
        channels_last,
        amp,
    )
    hit = _COSTS.get(key)
    if hit is None:
        hit = _COSTS[key] = measure_cost(
            model,
            tuple(input_shape),
            device=device,
            latency_repeats=latency_repeats,
            channels_last=channels_last,
            amp=amp,
        ).as_dict()
    return dict(hit)


def predicted_latency(config: dict[str, Any], arch: dict[str, Any]) -> dict[str, float]:
    """``{"latency_pred_ms": ...}`` of ``arch`` from ``objective.latency_model``, else ``{}``.

    The table comes from the object store when the runner shipped it
    (:meth:`ClassifyTrainable.shared_objects`: worker nodes need no copy of the file), else
    from the file; it is read once per worker process.
    """
    path = (config.get("objective") or {}).get("latency_model")
    if not path:
        return {}
    ref = (config.get(SHARED_KEY) or {}).get("latency_model")
    key = ref.hex() if ref is not None else f"{path}|{space_key(config)}"
    if key not in _LATENCY_MODELS:
        if ref is not None:
            import ray

            _LATENCY_MODELS[key] = ray.get(ref)
        else:
            spec = config["space"]
            _LATENCY_MODELS[key] = load_latency_model(
                path, spec["name"], dict(spec.get("args") or {})
            )
    return {LATENCY_PRED_METRIC: float(_LATENCY_MODELS[key].predict_ms(arch))}


def clear_cost_cache() -> None:
    """Forget every cost :func:`child_cost` measured in this process."""
    _COSTS.clear()


def trial_seed(seed: int, arch_id: str) -> int:
    """A per-child seed from the experiment seed and the arch id (same seed, same training)."""
    digest = hashlib.sha256(f"{seed}:{arch_id}".encode()).hexdigest()
    return int(digest[:8], 16)


def seed_trial(seed: int, device: torch.device) -> torch.Generator:
    """Seed torch's and numpy's global RNGs with ``seed``; returns the trial's own generator
    on ``device``, seeded the same."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return torch.Generator(device=device).manual_seed(seed)


def use_trial_threads(config: dict[str, Any]) -> None:
    """Let torch use the trial's ``resources.cpu`` threads (and OpenMP, unless already set)."""
    threads = max(1, int(config.get("resources", {}).get("cpu", 1)))
    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


#: Set to 1 where GPUs are only simulated (``ray.cluster_utils.Cluster(num_gpus=...)`` on a
#: machine without CUDA): a trial that asked for a GPU then trains on the CPU, on purpose.
SIMULATED_GPUS_ENV = "RAYNAS_SIMULATED_GPUS"


def trial_device(config: dict[str, Any]) -> torch.device:
    """The GPU Ray assigned to this trial (``resources.gpu > 0``), else the CPU.

    Raises:
        RuntimeError: the trial asked for a GPU but torch sees no CUDA device in this worker
            (a node without a working driver, or a CPU build of torch). Falling back to the
            CPU would run the trial about 100x slower and say nothing; only
            ``RAYNAS_SIMULATED_GPUS=1`` (test clusters) asks for that.
    """
    gpu = float(config.get("resources", {}).get("gpu", 0) or 0)
    if gpu <= 0:
        return torch.device("cpu")
    if not torch.cuda.is_available() and os.environ.get(SIMULATED_GPUS_ENV) == "1":
        return torch.device("cpu")  # a test cluster whose "GPUs" are Ray resource counts
    if not torch.cuda.is_available():
        import socket

        raise RuntimeError(
            f"resources.gpu: this trial asked for {gpu:g} GPU but torch sees no CUDA device on "
            f"node {socket.gethostname()!r} (torch {torch.__version__}, built for CUDA "
            f"{torch.version.cuda}, CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}); fix that node's GPU driver or set "
            "resources.gpu: 0 to train on CPUs"
        )
    # Ray sets CUDA_VISIBLE_DEVICES to the GPUs it assigned: index 0 is ours.
    return torch.device("cuda", 0)


def configure_determinism(device: torch.device, deterministic: bool) -> None:
    """``train.deterministic`` on a GPU: deterministic cuDNN kernels and torch algorithms
    (ops without one warn), no cuDNN autotuning; off: ``cudnn.benchmark`` picks the fastest
    kernels, which may differ run to run. The CPU path is deterministic either way."""
    if device.type != "cuda":
        return
    if deterministic:
        # cuBLAS needs a fixed workspace for reproducible matmuls (read when CUDA starts).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def data_from_config(config: dict[str, Any], device: torch.device, *, compact: bool = False) -> Any:
    """The trial's dataset splits (cached per worker process) from its ``data`` section.

    The official test split is loaded only when it is evaluated: ``data.evaluate_test`` or
    ``data.val_fraction: 0`` (a final training reports it every epoch). ``compact`` keeps
    images as uint8 (see :func:`trainables.data.load_dataset`): batch them with
    ``transform=data.as_inputs``.
    """
    data_cfg = config["data"]
    val_fraction = float(data_cfg.get("val_fraction", 0.2))
    return load_dataset(
        data_cfg["name"],
        root=data_cfg.get("root"),
        download=bool(data_cfg.get("download", False)),
        val_fraction=val_fraction,
        seed=int(config.get("data_seed", 0)),
        device=device,
        limit=data_cfg.get("limit"),
        compact=compact,
        load_test=bool(data_cfg.get("evaluate_test", False)) or val_fraction == 0,
    )


def placement() -> dict[str, Any]:
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


def check_data_and_model(exp: Any) -> list[str]:
    """What would otherwise fail every trial, checked once on the driver before Ray starts.

    The dataset is loaded once on the CPU (a ``data.root`` without the files, another
    dataset's folder, a ``data.limit`` too small to split, ``download: true`` without a
    network), and one sampled child is built: a space without a model builder (a YAML space)
    is refused, while a member that fails to build fails only its own trial. A large dataset
    is dropped from the driver's memory again afterwards.

    Returns:
        ``field: message`` lines (empty when everything loads and builds).
    """
    from raynas.space.errors import UnsupportedOperation
    from trainables.data import clear_cache

    config = trial_settings(exp)
    try:
        data = data_from_config(config, torch.device("cpu"), compact=True)
    except FileNotFoundError as err:
        return [f"data.root: {err}"]
    except (ValueError, OSError, KeyError) as err:
        return [f"data: {exp.data.name!r} cannot be loaded from {exp.data.root!r}: {err}"]
    try:
        space = space_from_config(config)
        arch = space.sample(np.random.default_rng(exp.seed))
        build_child(space, arch, tuple(data.input_shape), data.num_classes)
    except UnsupportedOperation as err:
        if exp.space.endswith((".yaml", ".yml")):
            return [
                f"space: {exp.space!r} is a YAML space (decisions only, no model builder) and "
                f"trainable {exp.trainable!r} trains the network a space builds; use a built-in "
                "space, a plugin space with build(), or a plugin trainable that reads "
                "config['arch']"
            ]
        return [f"space: {err}"]
    except Exception:  # a member that fails to build fails only its own trial
        pass
    finally:
        if exp.data.name not in EMBEDDED_DATASETS:
            clear_cache()
    return []
