"""Macro inverted-residual network (MnasNet / ProxylessNAS / Once-for-All style).

The architecture is a chain of stages, each a list of MBConv layers::

    blocks = [
        {"out_channels": 24, "stride": 1, "layers": [{"kernel": 3, "expand": 6, "se": False}]},
        {"out_channels": 32, "stride": 2, "layers": [{"kernel": 5, "expand": 3, "se": True},
                                                     {"kernel": 3, "expand": 4, "se": False}]},
        ...
    ]

The first layer of a stage applies the stage's stride; a layer has a residual connection
when its stride is 1 and its input and output channels agree. Channel counts are scaled by
``width_mult`` and rounded to multiples of 8.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "DEFAULT_STAGES",
    "InvertedResidual",
    "MobileNetNetwork",
    "SqueezeExcite",
    "default_blocks",
    "make_divisible",
]

DEFAULT_STAGES: list[tuple[int, int]] = [(24, 1), (32, 2), (64, 2), (96, 1), (160, 2)]
"""``(out_channels, stride)`` of five stages suited to 32x32 inputs (total stride 8)."""

_STAGE_KEYS = frozenset({"out_channels", "stride", "layers"})
_LAYER_KEYS = frozenset({"kernel", "expand", "se"})


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` without losing over 10%.

    Args:
        value: The unrounded channel count.
        divisor: The multiple to round to.

    Returns:
        A positive multiple of ``divisor``.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def default_blocks(
    stages: Sequence[tuple[int, int]] = DEFAULT_STAGES,
    *,
    depth: int = 2,
    kernel: int = 3,
    expand: int = 6,
    se: bool = False,
) -> list[dict[str, Any]]:
    """Build a uniform ``blocks`` list: ``depth`` identical layers per stage.

    Args:
        stages: ``(out_channels, stride)`` per stage.
        depth: Layers per stage.
        kernel: Depthwise kernel size of every layer.
        expand: Expansion ratio of every layer.
        se: Whether every layer has squeeze-and-excitation.

    Returns:
        A list suitable for :class:`MobileNetNetwork`.
    """
    layer = {"kernel": kernel, "expand": expand, "se": se}
    return [
        {"out_channels": out, "stride": stride, "layers": [dict(layer) for _ in range(depth)]}
        for out, stride in stages
    ]


def _int(value: Any, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{where} must be an int, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{where} must be an int, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{where} must be >= {minimum}, got {number}")
    return number


def _dicts(value: Any, where: str, what: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Each item of ``value`` with its place ``where[i]``; ValueError unless ``value`` is a
    non-empty list of ``what`` dicts (checked item by item, as they are reached)."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"{where} must be a non-empty list of {what} dicts")
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}[{i}] must be a dict, got {type(item).__name__}")
        yield f"{where}[{i}]", item


def _validate_blocks(blocks: Any) -> list[tuple[int, int, list[tuple[int, int, bool]]]]:
    """Return ``(out_channels, stride, [(kernel, expand, se), ...])`` per stage."""
    stages = []
    for where, stage in _dicts(blocks, "blocks", "stage"):
        unknown = set(stage) - _STAGE_KEYS
        missing = _STAGE_KEYS - set(stage)
        if unknown or missing:
            raise ValueError(
                f"{where}: missing keys {sorted(missing)}, unknown keys {sorted(map(str, unknown))}"
            )
        out_channels = _int(stage["out_channels"], f"{where}['out_channels']")
        stride = _int(stage["stride"], f"{where}['stride']")
        if stride not in (1, 2):
            raise ValueError(f"{where}['stride'] must be 1 or 2, got {stride}")
        specs = []
        for lwhere, layer in _dicts(stage["layers"], f"{where}['layers']", "layer"):
            bad = set(layer) - _LAYER_KEYS
            if bad or "kernel" not in layer or "expand" not in layer:
                raise ValueError(
                    f"{lwhere} needs 'kernel' and 'expand' (and optionally 'se'), "
                    f"got keys {sorted(map(str, layer))}"
                )
            kernel = _int(layer["kernel"], f"{lwhere}['kernel']")
            if kernel % 2 == 0:
                raise ValueError(f"{lwhere}['kernel'] must be odd, got {kernel}")
            expand = _int(layer["expand"], f"{lwhere}['expand']")
            se = layer.get("se", False)
            if not isinstance(se, bool):
                raise ValueError(f"{lwhere}['se'] must be a bool, got {se!r}")
            specs.append((kernel, expand, se))
        stages.append((out_channels, stride, specs))
    return stages


def _conv_bn(
    C_in: int, C_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(C_in, C_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(C_out),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation with a hard-sigmoid gate.

    Args:
        channels: Channels of the gated feature map.
        reduction: Squeeze ratio; the bottleneck has ``channels / reduction`` channels
            rounded to a multiple of 8.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        squeezed = make_divisible(channels / reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, squeezed, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(squeezed, channels, 1),
            nn.Hardsigmoid(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class InvertedResidual(nn.Module):
    """MBConv: 1x1 expansion, depthwise kxk, optional SE, linear 1x1 projection.

    Args:
        C_in: Input channels.
        C_out: Output channels.
        kernel: Depthwise kernel size (odd).
        stride: Depthwise stride.
        expand: Expansion ratio (1 skips the expansion convolution).
        se: Add squeeze-and-excitation (reduction 4) after the depthwise convolution.
    """

    def __init__(
        self, C_in: int, C_out: int, kernel: int, stride: int, expand: int, se: bool
    ) -> None:
        super().__init__()
        mid = C_in * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn(C_in, mid, 1))
        layers.append(_conv_bn(mid, mid, kernel, stride, groups=mid))
        if se:
            layers.append(SqueezeExcite(mid))
        layers.append(_conv_bn(mid, C_out, 1, act=False))
        self.body = nn.Sequential(*layers)
        self.use_residual = stride == 1 and C_in == C_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.use_residual else out


class MobileNetNetwork(nn.Module):
    """Stem, a chain of inverted-residual stages, a 1x1 head, global pooling, classifier.

    The stem is a stride-1 3x3 convolution (suited to small images); global pooling makes
    any input of at least 8x8 work.

    Args:
        blocks: Stage dicts, see the module docstring.
        width_mult: Channel multiplier (stem, stages, and the head when above 1).
        num_classes: Classifier outputs.
        in_channels: Image channels.
        stem_channels: Stem output channels before ``width_mult``.
        head_channels: Channels of the final 1x1 convolution before ``width_mult``.
        dropout: Dropout probability before the classifier.

    Raises:
        ValueError: On malformed ``blocks`` or out-of-range arguments.
    """

    def __init__(
        self,
        blocks: Sequence[Mapping[str, Any]],
        *,
        width_mult: float = 1.0,
        num_classes: int = 10,
        in_channels: int = 3,
        stem_channels: int = 16,
        head_channels: int = 1280,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        stages = _validate_blocks(blocks)
        if isinstance(width_mult, bool) or not isinstance(width_mult, int | float):
            raise ValueError(f"width_mult must be a number, got {width_mult!r}")
        if not width_mult > 0:
            raise ValueError(f"width_mult must be positive, got {width_mult!r}")
        num_classes = _int(num_classes, "num_classes")
        in_channels = _int(in_channels, "in_channels")
        stem_channels = _int(stem_channels, "stem_channels")
        head_channels = _int(head_channels, "head_channels")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")

        channels = make_divisible(stem_channels * width_mult)
        self.stem = _conv_bn(in_channels, channels, 3)
        features: list[nn.Module] = []
        for out_channels, stride, specs in stages:
            C_out = make_divisible(out_channels * width_mult)
            for j, (kernel, expand, se) in enumerate(specs):
                features.append(
                    InvertedResidual(channels, C_out, kernel, stride if j == 0 else 1, expand, se)
                )
                channels = C_out
        self.features = nn.Sequential(*features)
        C_head = make_divisible(head_channels * max(1.0, width_mult))
        self.head = nn.Sequential(
            _conv_bn(channels, C_head, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
        )
        self.classifier = nn.Linear(C_head, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits of shape ``(batch, num_classes)``."""
        return self.classifier(self.head(self.features(self.stem(x))))
