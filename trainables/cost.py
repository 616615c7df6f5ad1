"""Cost metrics of a child network: parameters, FLOPs and batch-1 latency.

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

__all__ = ["Cost", "count_flops", "count_params", "measure_cost", "measure_latency_ms"]


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


def measure_latency_ms(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    device: str | torch.device | None = None,
    warmup: int = 3,
    repeats: int = 10,
) -> float:
    """Median wall-clock time of a batch-1 forward pass, in milliseconds.

    Runs ``warmup`` untimed forwards, then times ``repeats`` forwards one by one (with
    ``torch.cuda.synchronize`` around each on CUDA) and returns the median.

    Args:
        model: The model; it must already live on ``device``.
        input_shape: Shape of one example without the batch dimension.
        device: Where to run; defaults to the model's device.
        warmup: Untimed forwards first, ``>= 0``.
        repeats: Timed forwards, ``>= 1``.

    Returns:
        The median latency in milliseconds.

    Raises:
        ValueError: On a bad argument or a ``device`` other than the model's.
    """
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup: must be an int >= 0, got {warmup!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: must be an int >= 1, got {repeats!r}")
    x = _dummy_input(model, input_shape, device)
    cuda = x.device.type == "cuda"
    times: list[float] = []
    with _eval_mode(model), torch.no_grad():
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            if cuda:
                torch.cuda.synchronize(x.device)
            start = time.perf_counter()
            model(x)
            if cuda:
                torch.cuda.synchronize(x.device)
            times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


def measure_cost(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    device: str | torch.device | None = None,
    latency_repeats: int = 10,
) -> Cost:
    """Parameters, FLOPs and latency of a model in one call.

    Args:
        model: The model; it must already live on ``device``.
        input_shape: Shape of one example without the batch dimension.
        device: Where to measure; defaults to the model's device.
        latency_repeats: Timed forwards for the latency median.

    Returns:
        The model's :class:`Cost`.
    """
    return Cost(
        params=count_params(model),
        flops=count_flops(model, input_shape, device=device),
        latency_ms=measure_latency_ms(model, input_shape, device=device, repeats=latency_repeats),
    )


def _model_placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device of the first parameter/buffer and dtype of the first floating one."""
    tensors = (*model.parameters(), *model.buffers())
    device = tensors[0].device if tensors else torch.device("cpu")
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
    return device, dtype


def _dummy_input(
    model: nn.Module, input_shape: tuple[int, ...], device: str | torch.device | None
) -> torch.Tensor:
    """A fixed random one-example batch on ``device`` in the model's floating dtype."""
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
    return torch.randn((1, *shape), generator=generator).to(device=dev, dtype=dtype)


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
