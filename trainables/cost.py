"""Cost metrics of a child network: parameters, FLOPs and batch-1 latency.

Latency here is *measured* where the trial runs (``latency_ms``): the median of timed forwards
after warm-up ones, in the child's precision and memory format. It is noisy on a shared
device; ``latency_pred_ms`` from a profiled table (:mod:`raynas.latency`) is the stable one.

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` on one sample (batch 1),
as torch counts them: a multiply-add is **2** FLOPs, and only the operators torch has formulas
for are counted (convolutions, matrix products, attention); element-wise operations, batch
norm, pooling and activations count 0. For example ``Conv2d(3, 8, 3, padding=1, bias=False)``
on a 3x8x8 input is ``2 * 8*8 * 8 * 3*3*3 = 27,648`` FLOPs (halve for multiply-accumulates).

The measuring functions put the model in eval mode under ``torch.no_grad()`` and restore every
submodule's ``training`` flag afterwards, so they are safe to call between training epochs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from search_spaces.models.genotypes import check_min_ints

__all__ = [
    "Cost",
    "count_flops",
    "count_params",
    "latency_samples_ms",
    "measure_cost",
    "measure_latency_ms",
]


@dataclass(frozen=True)
class Cost:
    """The cost of one model.

    Attributes:
        params: Number of parameters (all of them, trainable or not).
        flops: Forward FLOPs of one sample (multiply-add = 2 FLOPs).
        latency_ms: Median batch-1 forward time in milliseconds on the model's device.
    """

    params: int
    flops: int
    latency_ms: float

    def as_dict(self) -> dict[str, int | float]:
        """The fields as a plain dict (``params``, ``flops``, ``latency_ms``), e.g. for Tune."""
        return asdict(self)


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Count a model's parameters (each shared parameter once).

    Args:
        model: The model.
        trainable_only: Count only parameters with ``requires_grad``.

    Returns:
        The number of scalar parameters.

    Raises:
        ValueError: If the model has uninitialised (lazy) parameters.
    """
    total = 0
    for name, p in model.named_parameters():
        if isinstance(p, nn.parameter.UninitializedParameter):
            raise ValueError(
                f"model: parameter {name!r} is uninitialised (lazy module); "
                "run one forward pass before counting parameters"
            )
        if p.requires_grad or not trainable_only:
            total += p.numel()
    return total


def count_flops(
    model: nn.Module, input_shape: tuple[int, ...], *, device: str | torch.device | None = None
) -> int:
    """Count the forward FLOPs of one sample, as torch's ``FlopCounterMode`` does.

    Args:
        model: The model; it must already live on ``device``.
        input_shape: Shape of one example without the batch dimension, e.g. ``(3, 32, 32)``.
        device: Where to build the dummy input; defaults to the model's device.

    Returns:
        FLOPs of a batch-1 forward pass (a multiply-add counts as 2).

    Raises:
        ValueError: On a bad ``input_shape`` or a ``device`` other than the model's.
    """
    x = _dummy_input(model, input_shape, device)
    counter = FlopCounterMode(display=False)
    with _eval_mode(model), torch.no_grad(), counter:
        model(x)
    return int(counter.get_total_flops())


def latency_samples_ms(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    device: str | torch.device | None = None,
    batch: int = 1,
    warmup: int = 3,
    repeats: int = 10,
    channels_last: bool = False,
    amp: bool = False,
    clock: str = "wall",
) -> list[float]:
    """Times of ``repeats`` forward passes, in milliseconds, after ``warmup`` untimed ones.

    Each timed forward runs alone (with ``torch.cuda.synchronize`` before and after it on
    CUDA), under ``torch.no_grad()`` in eval mode, on a fixed random input of ``batch``
    examples in the model's dtype; ``channels_last`` gives a 4-d input that memory format
    (convert the model too) and ``amp`` runs under ``torch.autocast`` in fp16 on CUDA (no
    effect on a CPU), the way the child is deployed after training with those settings.

    On a CPU, denormal floats are flushed to zero while timing: the activations of an
    untrained network decay into denormals, which x86 CPUs compute many times slower (twice
    the time for a whole mobilenet child here), and a trained, deployed network has none.

    ``clock="cpu"`` times with this thread's CPU time (``time.thread_time``) instead of the
    wall clock: on a CPU shared with other processes it leaves out the time the forward
    waited for a core; it counts one thread only, so it needs ``torch.get_num_threads() == 1``
    and a CPU model.

    Args:
        model: The model; it must already live on ``device``.
        input_shape: Shape of one example without the batch dimension.
        device: Where to run; defaults to the model's device.
        batch: Examples per forward, ``>= 1``.
        warmup: Untimed forwards first, ``>= 0``.
        repeats: Timed forwards, ``>= 1``.
        channels_last: Feed a channels_last input (4-d inputs only).
        amp: Autocast to fp16 on CUDA.
        clock: ``wall`` or ``cpu`` (one-thread CPU time, see above).

    Returns:
        The ``repeats`` times, in the order they were taken.

    Raises:
        ValueError: On a bad argument or a ``device`` other than the model's.
    """
    check_min_ints(("batch", batch, 1), ("warmup", warmup, 0), ("repeats", repeats, 1))
    x = _dummy_input(model, input_shape, device, batch=batch)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    cuda = x.device.type == "cuda"
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock: must be 'wall' or 'cpu', got {clock!r}")
    if clock == "cpu" and (cuda or torch.get_num_threads() != 1):
        raise ValueError(
            "clock: 'cpu' times one thread's CPU time; use it on a CPU model with "
            f"torch.set_num_threads(1) (now {torch.get_num_threads()} threads, {x.device})"
        )
    now = time.thread_time if clock == "cpu" else time.perf_counter
    times: list[float] = []
    autocast = torch.autocast(x.device.type, dtype=torch.float16, enabled=bool(amp and cuda))
    flush = not cuda and torch.set_flush_denormal(True)
    try:
        with _eval_mode(model), torch.no_grad(), autocast:
            for _ in range(warmup):
                model(x)
            for _ in range(repeats):
                if cuda:
                    torch.cuda.synchronize(x.device)
                start = now()
                model(x)
                if cuda:
                    torch.cuda.synchronize(x.device)
                times.append((now() - start) * 1000.0)
    finally:
        if flush:
            torch.set_flush_denormal(False)  # torch's default; training keeps denormals
    return times


def measure_latency_ms(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    device: str | torch.device | None = None,
    warmup: int = 3,
    repeats: int = 10,
    channels_last: bool = False,
    amp: bool = False,
) -> float:
    """Median wall-clock time of a batch-1 forward pass, in milliseconds.

    Runs ``warmup`` untimed forwards, then times ``repeats`` forwards one by one (see
    :func:`latency_samples_ms`) and returns the median, in the precision (``amp``) and memory
    format (``channels_last``) the child trains and is deployed in.

    This is a measurement where the trial runs: on a GPU packed with other children
    (``resources.gpu < 1``) or a CPU busy with other trials it includes their contention and
    varies from run to run. ``latency_pred_ms`` (``objective.latency_model``, a table from
    ``raynas latency profile`` taken on an idle target device) is the stable figure to
    constrain and rank by.

    Args:
        model: The model; it must already live on ``device``.
        input_shape: Shape of one example without the batch dimension.
        device: Where to run; defaults to the model's device.
        warmup: Untimed forwards first, ``>= 0``.
        repeats: Timed forwards, ``>= 1``.
        channels_last: Time a channels_last input (the model converted by the caller).
        amp: Autocast to fp16 on CUDA.

    Returns:
        The median latency in milliseconds.

    Raises:
        ValueError: On a bad argument or a ``device`` other than the model's.
    """
    times = latency_samples_ms(
        model,
        input_shape,
        device=device,
        warmup=warmup,
        repeats=repeats,
        channels_last=channels_last,
        amp=amp,
    )
    return float(statistics.median(times))


def measure_cost(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    device: str | torch.device | None = None,
    latency_repeats: int = 10,
    channels_last: bool = False,
    amp: bool = False,
) -> Cost:
    """Parameters, FLOPs and latency of a model in one call.

    Args:
        model: The model; it must already live on ``device``.
        input_shape: Shape of one example without the batch dimension.
        device: Where to measure; defaults to the model's device.
        latency_repeats: Timed forwards for the latency median.
        channels_last: Time a channels_last input (see :func:`measure_latency_ms`).
        amp: Time under fp16 autocast on CUDA.

    Returns:
        The model's :class:`Cost`.
    """
    return Cost(
        params=count_params(model),
        flops=count_flops(model, input_shape, device=device),
        latency_ms=measure_latency_ms(
            model,
            input_shape,
            device=device,
            repeats=latency_repeats,
            channels_last=channels_last,
            amp=amp,
        ),
    )


def _model_placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device of the first parameter/buffer and dtype of the first floating one."""
    tensors = (*model.parameters(), *model.buffers())
    device = tensors[0].device if tensors else torch.device("cpu")
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
    return device, dtype


def _dummy_input(
    model: nn.Module,
    input_shape: tuple[int, ...],
    device: str | torch.device | None,
    *,
    batch: int = 1,
) -> torch.Tensor:
    """A fixed random batch of ``batch`` examples on ``device`` in the model's floating dtype."""
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else ()
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(
            f"input_shape: must be a non-empty tuple of ints >= 1, got {input_shape!r}"
        )
    own, dtype = _model_placement(model)
    dev = own if device is None else torch.device(device)
    if dev.type != own.type or (dev.index is not None and own.index not in (None, dev.index)):
        raise ValueError(f"device: {dev} differs from the model's device {own}; move the model")
    generator = torch.Generator().manual_seed(0)
    return torch.randn((batch, *shape), generator=generator).to(device=dev, dtype=dtype)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the block; restores each submodule's own ``training`` flag afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
