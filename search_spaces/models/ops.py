"""Candidate operations shared by the evaluation networks (and later by supernets).

Two operation families are provided, each as an :class:`OpTable` mapping an op name to a
constructor ``(C, stride, affine) -> nn.Module`` that keeps the channel count ``C``:

* :data:`NB201_OPS` -- the NAS-Bench-201 cell operations. Convolutions follow the
  NAS-Bench-201 ReLU-Conv-BN convention (the convolution carries a bias only when the
  BatchNorm is not affine) and ``skip_connect`` with stride 2 is a factorized reduce.
* :data:`DARTS_OPS` -- the DARTS operations, plus ``sep_conv_7x7`` and ``conv_7x1_1x7``
  which the published NASNet-A and AmoebaNet-A cells use.

Every strided operation maps an ``H x W`` input to ``ceil(H / 2) x ceil(W / 2)``, so cells
combine correctly for odd spatial sizes too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.darts import DARTS_OPS as DARTS_SPACE_OPS

OpFactory = Callable[[int, int, bool], nn.Module]
"""Constructor signature of a table entry: ``(C, stride, affine) -> module``."""

__all__ = [
    "DARTS_OPS",
    "DARTS_PRIMITIVES",
    "NB201_OPS",
    "NB201_PRIMITIVES",
    "DilConv",
    "FactorizedReduce",
    "OpFactory",
    "OpTable",
    "ReLUConvBN",
    "SepConv",
    "UnknownOpError",
    "Zero",
    "conv_bn_stem",
    "darts_cell_inputs",
]


class UnknownOpError(KeyError, ValueError):
    """Raised when an op name is not in a table.

    It is both a ``ValueError`` (bad user input) and a ``KeyError`` (so an :class:`OpTable`
    keeps the ``Mapping`` protocol: ``in`` and ``.get`` behave as for a dict).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class OpTable(Mapping[str, OpFactory]):
    """A read-only ``name -> constructor(C, stride, affine)`` table of operations.

    Args:
        family: Human-readable family name, used in error messages.
        factories: The op constructors, in their canonical order.
    """

    def __init__(self, family: str, factories: Mapping[str, OpFactory]) -> None:
        self.family = family
        self._factories: dict[str, OpFactory] = dict(factories)

    def __getitem__(self, name: str) -> OpFactory:
        try:
            return self._factories[name]
        except (KeyError, TypeError):
            known = ", ".join(self._factories)
            raise UnknownOpError(f"unknown {self.family} op {name!r}; known ops: {known}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)

    def __len__(self) -> int:
        return len(self._factories)

    def __repr__(self) -> str:
        return f"OpTable({self.family!r}, {list(self._factories)})"

    def build(self, name: str, C: int, stride: int = 1, affine: bool = True) -> nn.Module:
        """Instantiate op ``name`` for ``C`` channels.

        Args:
            name: Op name.
            C: Input and output channel count.
            stride: 1 or 2.
            affine: Whether BatchNorm layers learn a scale and shift.

        Returns:
            The operation module.

        Raises:
            ValueError: On an unknown op name, a non-positive ``C`` or a stride other than 1 or 2.
        """
        factory = self[name]
        if isinstance(C, bool) or not isinstance(C, int) or C < 1:
            raise ValueError(f"channel count must be a positive int, got {C!r}")
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        return factory(C, stride, affine)


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------


class Zero(nn.Module):
    """The ``none`` op: zeros shaped like the (possibly strided) input."""

    def __init__(self, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


class ReLUConvBN(nn.Sequential):
    """ReLU, then a convolution, then BatchNorm.

    Args:
        C_in: Input channels.
        C_out: Output channels.
        kernel_size: Convolution kernel size.
        stride: Convolution stride.
        padding: Convolution padding.
        dilation: Convolution dilation.
        affine: Affine BatchNorm.
        conv_bias: Give the convolution a bias term.
    """

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int = 1,
        affine: bool = True,
        conv_bias: bool = False,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                C_in,
                C_out,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                bias=conv_bias,
            ),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU, depthwise (optionally dilated) convolution, pointwise convolution, BatchNorm."""

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        affine: bool = True,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                C_in,
                C_in,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=C_in,
                bias=False,
            ),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """DARTS separable convolution: two stacked depthwise-separable units.

    Only the first unit is strided; the first unit keeps ``C_in`` channels and the second
    maps them to ``C_out``.
    """

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        affine: bool = True,
    ) -> None:
        super().__init__(
            DilConv(C_in, C_in, kernel_size, stride, padding, 1, affine),
            DilConv(C_in, C_out, kernel_size, 1, padding, 1, affine),
        )


class FactorizedReduce(nn.Module):
    """Halve the spatial size with two offset 1x1 strided convolutions, concatenated.

    The second path sees the input shifted by one pixel. The input is zero-padded on the
    bottom/right first, which leaves results unchanged for even sizes and makes both paths
    produce ``ceil(H / 2)`` rows for odd sizes.

    Args:
        C_in: Input channels.
        C_out: Output channels (split between the two paths).
        affine: Affine BatchNorm.
        conv_bias: Give the convolutions a bias term.
    """

    def __init__(self, C_in: int, C_out: int, affine: bool = True, conv_bias: bool = False) -> None:
        super().__init__()
        half = C_out // 2
        self.relu = nn.ReLU(inplace=False)
        self.conv_a = nn.Conv2d(C_in, half, 1, stride=2, bias=conv_bias)
        self.conv_b = nn.Conv2d(C_in, C_out - half, 1, stride=2, bias=conv_bias)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


def conv_bn_stem(in_channels: int, C: int) -> nn.Sequential:
    """The stem of the DARTS and NAS-Bench-201 networks and supernets: a 3x3 convolution
    (no bias) from ``in_channels`` to ``C`` channels, then BatchNorm."""
    return nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))


def darts_cell_inputs(
    C_prev_prev: int, C_prev: int, C: int, reduction_prev: bool, affine: bool = True
) -> tuple[nn.Module, nn.Module]:
    """The preprocessing of a DARTS cell's two inputs to ``C`` channels: the output two
    cells back (a :class:`FactorizedReduce` when the previous cell reduced, so that it is
    twice as large, else a 1x1 :class:`ReLUConvBN`) and the previous cell's (1x1)."""
    preprocess0: nn.Module
    if reduction_prev:
        preprocess0 = FactorizedReduce(C_prev_prev, C, affine=affine)
    else:
        preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=affine)
    return preprocess0, ReLUConvBN(C_prev, C, 1, 1, 0, affine=affine)


def _conv_7x1_1x7(C: int, stride: int, affine: bool) -> nn.Module:
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(C, C, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
        nn.Conv2d(C, C, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
        nn.BatchNorm2d(C, affine=affine),
    )


# --------------------------------------------------------------------------------------
# NAS-Bench-201
# --------------------------------------------------------------------------------------


def _nb201_skip(C: int, stride: int, affine: bool) -> nn.Module:
    if stride == 1:
        return nn.Identity()
    return FactorizedReduce(C, C, affine, conv_bias=not affine)


def _nb201_conv(kernel_size: int) -> OpFactory:
    def make(C: int, stride: int, affine: bool) -> nn.Module:
        return ReLUConvBN(
            C, C, kernel_size, stride, kernel_size // 2, 1, affine, conv_bias=not affine
        )

    return make


def _avg_pool(C: int, stride: int, affine: bool) -> nn.Module:
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


def _max_pool(C: int, stride: int, affine: bool) -> nn.Module:
    return nn.MaxPool2d(3, stride=stride, padding=1)


def _zero(C: int, stride: int, affine: bool) -> nn.Module:
    return Zero(stride)


NB201_PRIMITIVES: tuple[str, ...] = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
)
"""The five NAS-Bench-201 candidate operations, in the benchmark's order."""

NB201_OPS = OpTable(
    "NAS-Bench-201",
    {
        "none": _zero,
        "skip_connect": _nb201_skip,
        "nor_conv_1x1": _nb201_conv(1),
        "nor_conv_3x3": _nb201_conv(3),
        "avg_pool_3x3": _avg_pool,
    },
)
"""NAS-Bench-201 operations: ``name -> constructor(C, stride, affine)``."""


# --------------------------------------------------------------------------------------
# DARTS
# --------------------------------------------------------------------------------------


def _darts_skip(C: int, stride: int, affine: bool) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(C, C, affine)


def _sep_conv(kernel_size: int) -> OpFactory:
    def make(C: int, stride: int, affine: bool) -> nn.Module:
        return SepConv(C, C, kernel_size, stride, kernel_size // 2, affine)

    return make


def _dil_conv(kernel_size: int) -> OpFactory:
    def make(C: int, stride: int, affine: bool) -> nn.Module:
        # dilation 2: the effective kernel is 2k - 1, so padding k - 1 keeps the size.
        return DilConv(C, C, kernel_size, stride, kernel_size - 1, 2, affine)

    return make


DARTS_PRIMITIVES: tuple[str, ...] = ("none", *DARTS_SPACE_OPS)
"""The eight operations of the DARTS search space, in DARTS' order: ``none`` and the seven
that the ``darts`` space's cells choose from."""

DARTS_OPS = OpTable(
    "DARTS",
    {
        "none": _zero,
        "max_pool_3x3": _max_pool,
        "avg_pool_3x3": _avg_pool,
        "skip_connect": _darts_skip,
        "sep_conv_3x3": _sep_conv(3),
        "sep_conv_5x5": _sep_conv(5),
        "dil_conv_3x3": _dil_conv(3),
        "dil_conv_5x5": _dil_conv(5),
        "sep_conv_7x7": _sep_conv(7),
        "conv_7x1_1x7": _conv_7x1_1x7,
    },
)
"""DARTS operations (search primitives plus the NASNet-A/AmoebaNet-A extras)."""
