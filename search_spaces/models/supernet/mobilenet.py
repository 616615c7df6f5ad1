"""A weight-sharing supernet of the ``mobilenet`` space: every sub-network is a slice of it.

One set of weights, sized for the largest choice everywhere, serves every architecture of a
:class:`~search_spaces.mobilenet.MobileNetSpace` (train once, search many):

* **elastic kernel**: a depthwise kernel of size ``k`` is the centre ``k x k`` crop of the
  largest kernel (a plain crop, no learned transform);
* **elastic expansion**: a block's hidden layer keeps its first ``C_in * expand`` channels;
* **elastic width**: every layer keeps its first ``make_divisible(C * width_mult)`` output
  channels, rounded as :class:`~search_spaces.models.mobilenet_net.MobileNetNetwork` rounds
  them (the head too, which grows only for a multiplier above 1);
* **elastic depth**: a stage runs its first ``depth`` blocks and skips the trailing ones;
* **SE on/off**: a block's squeeze-and-excitation gate runs or not; its squeezed width is
  ``make_divisible(hidden / 4)`` of the active hidden width, its first channels.

A residual connection is used where the *active* block has stride 1 and equal input and output
channels, as in the standalone network.

**Batch norm.** Each BN layer keeps one set of running statistics for its largest width, and a
sub-network uses their first channels. Those statistics are a blend over every sampled
sub-network and describe none of them, so a sub-network is evaluated after recalibration:
:func:`recalibrate_bn` resets the statistics and re-estimates them (cumulative average) on a
few training batches. :meth:`MobileNetSupernet.extract` copies the sliced weights *and* the
sliced statistics into the space's own :class:`MobileNetNetwork`, whose eval-mode forward then
equals the supernet's forward with that arch; recalibrating the extracted network is cheaper
than recalibrating the supernet and gives the same statistics.

Example:
    >>> space = resolve_space("mobilenet", {})
    >>> net = MobileNetSupernet(space, num_classes=10, in_channels=1)
    >>> arch = space.sample(0)
    >>> logits = net(x, arch)               # or: net.set_active(arch); net(x)
    >>> child = net.extract(arch)           # a MobileNetNetwork, same eval-mode outputs
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.models.mobilenet_net import MobileNetNetwork, make_divisible

__all__ = ["MobileNetSupernet", "recalibrate_bn"]

_STEM_CHANNELS = 16
_HEAD_CHANNELS = 1280


def _options(node: Any) -> list[Any]:
    """The values a serialised space node can take (a ``choice``'s options, else itself)."""
    if isinstance(node, Mapping) and node.get("_type") == "choice":
        return list(node["options"])
    return [node]


class _DynamicBN(nn.BatchNorm2d):
    """BatchNorm of the largest width; a narrower input uses the first channels of everything.

    In training mode the sliced running statistics are updated in place (views of the full
    buffers), with ``momentum=None`` meaning a cumulative average as in ``nn.BatchNorm2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        factor = 0.0
        mean, var, tracked = self.running_mean, self.running_var, self.num_batches_tracked
        assert mean is not None and var is not None and tracked is not None  # track_running_stats
        if self.training:
            tracked.add_(1)
            factor = 1.0 / float(tracked) if self.momentum is None else self.momentum
        return F.batch_norm(
            x,
            mean[:c],
            var[:c],
            self.weight[:c],
            self.bias[:c],
            self.training,
            factor,
            self.eps,
        )


class _DynamicConvBN(nn.Module):
    """A convolution of the largest shape and its BN, run for any narrower / smaller slice.

    Args:
        C_in: Largest input channels (ignored for a depthwise convolution).
        C_out: Largest output channels.
        kernel: Largest (odd) kernel size; a smaller one is its centre crop.
        stride: Stride.
        depthwise: One filter per channel (``groups`` = active channels).
        act: Follow with ReLU6.
    """

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel: int,
        stride: int = 1,
        *,
        depthwise: bool = False,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            C_out if depthwise else C_in,
            C_out,
            kernel,
            stride,
            kernel // 2,
            groups=C_out if depthwise else 1,
            bias=False,
        )
        self.bn = _DynamicBN(C_out)
        self.depthwise = depthwise
        self.act = act

    def sliced_weight(self, C_in: int, C_out: int, kernel: int | None = None) -> torch.Tensor:
        """The weight of a ``C_in -> C_out`` slice with a centre-cropped ``kernel``."""
        k_max = self.conv.kernel_size[0]
        k = k_max if kernel is None else kernel
        lo = (k_max - k) // 2
        w = self.conv.weight
        w = w[:C_out] if self.depthwise else w[:C_out, :C_in]
        return w[:, :, lo : lo + k, lo : lo + k]

    def forward(self, x: torch.Tensor, C_out: int, kernel: int | None = None) -> torch.Tensor:
        C_in = x.shape[1]
        if self.depthwise:
            C_out = C_in
        w = self.sliced_weight(C_in, C_out, kernel)
        k = w.shape[-1]
        out = F.conv2d(x, w, None, self.conv.stride, k // 2, groups=C_in if self.depthwise else 1)
        out = self.bn(out)
        return F.relu6(out) if self.act else out


class _DynamicSE(nn.Module):
    """Squeeze-and-excitation of the largest hidden width; narrower inputs use first channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = make_divisible(channels / 4)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        s = make_divisible(c / 4)
        g = F.adaptive_avg_pool2d(x, 1)
        b_reduce, b_expand = self.reduce.bias, self.expand.bias
        assert b_reduce is not None and b_expand is not None  # both convolutions have a bias
        g = F.relu(F.conv2d(g, self.reduce.weight[:s, :c], b_reduce[:s]))
        g = F.hardsigmoid(F.conv2d(g, self.expand.weight[:c, :s], b_expand[:c]))
        return x * g


class _DynamicBlock(nn.Module):
    """An MBConv block of the largest kernel, expansion and width, with an optional SE."""

    def __init__(
        self, C_in: int, C_out: int, kernel: int, stride: int, expand: int, se: bool
    ) -> None:
        super().__init__()
        mid = C_in * expand
        self.expand_conv = _DynamicConvBN(C_in, mid, 1)
        self.dw = _DynamicConvBN(mid, mid, kernel, stride, depthwise=True)
        self.se = _DynamicSE(mid) if se else None
        self.project = _DynamicConvBN(mid, C_out, 1, act=False)
        self.stride = stride

    def forward(self, x: torch.Tensor, C_out: int, layer: Mapping[str, Any]) -> torch.Tensor:
        C_in, expand = x.shape[1], int(layer["expand"])
        out = x if expand == 1 else self.expand_conv(x, C_in * expand)
        out = self.dw(out, out.shape[1], int(layer["kernel"]))
        if layer.get("se", False):
            if self.se is None:
                raise ValueError("arch: this supernet was built without squeeze-and-excitation")
            out = self.se(out)
        out = self.project(out, C_out)
        return x + out if self.stride == 1 and C_in == C_out else out


class MobileNetSupernet(nn.Module):
    """Every architecture of a ``mobilenet`` space as a slice of one set of shared weights.

    Args:
        space: A :class:`~search_spaces.mobilenet.MobileNetSpace` (its stage plan and choices
            size the supernet; :meth:`extract` builds children with its ``build``).
        num_classes: Classifier outputs.
        in_channels: Image channels.

    Raises:
        ValueError: The space is not a ``mobilenet`` space.
    """

    def __init__(self, space: Any, *, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if getattr(space, "name", None) != "mobilenet" or not hasattr(space, "stages"):
            raise ValueError(f"space: a MobileNetSupernet needs a mobilenet space, got {space!r}")
        self.space = space
        self.num_classes, self.in_channels = int(num_classes), int(in_channels)
        tree = space.to_dict()["space"]
        self.width_mults = sorted(float(w) for w in _options(tree["width_mult"]))
        repeats = tree["stages"]
        block = repeats[0]["node"]
        self.kernels = sorted(int(k) for k in _options(block["kernel"]))
        self.expands = sorted(int(e) for e in _options(block["expand"]))
        self.se_options = sorted(bool(s) for s in set(_options(block["se"])))
        self.depths = [(int(r["min"]), int(r["max"])) for r in repeats]
        self.stage_plan = list(space.stages)

        def widest(channels: int) -> int:
            return max(make_divisible(channels * w) for w in self.width_mults)

        C = widest(_STEM_CHANNELS)
        self.stem = _DynamicConvBN(self.in_channels, C, 3)
        self.stages = nn.ModuleList()
        for (out, stride), (_, max_depth) in zip(self.stage_plan, self.depths):
            C_out = widest(out)
            blocks = nn.ModuleList()
            for j in range(max_depth):
                blocks.append(
                    _DynamicBlock(
                        C,
                        C_out,
                        max(self.kernels),
                        stride if j == 0 else 1,
                        max(self.expands),
                        True in self.se_options,
                    )
                )
                C = C_out
            self.stages.append(blocks)
        head = max(make_divisible(_HEAD_CHANNELS * max(1.0, w)) for w in self.width_mults)
        self.head = _DynamicConvBN(C, head, 1)
        self.classifier = nn.Linear(head, self.num_classes)
        self.active: dict[str, Any] = self.largest()
        MobileNetNetwork._init_weights(self)  # type: ignore[arg-type]  # the same initialisation

    # --- architectures --------------------------------------------------------------------
    def _uniform(self, pick: int) -> dict[str, Any]:
        layer = {
            "kernel": self.kernels[pick],
            "expand": self.expands[pick],
            "se": self.se_options[pick],
        }
        depth = [d[1] if pick == -1 else d[0] for d in self.depths]
        return self.space.canonical(
            {
                "width_mult": self.width_mults[pick],
                "stages": [[dict(layer) for _ in range(n)] for n in depth],
            }
        )

    def largest(self) -> dict[str, Any]:
        """The largest sub-network: every choice at its maximum (SE on where allowed)."""
        return self._uniform(-1)

    def smallest(self) -> dict[str, Any]:
        """The smallest sub-network: every choice at its minimum (SE off where allowed)."""
        return self._uniform(0)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """A uniformly sampled architecture of the space (single-path sampling)."""
        return self.space.canonical(self.space.sample(rng))

    def set_active(self, arch: Mapping[str, Any]) -> None:
        """The architecture :meth:`forward` runs when called without one."""
        self.active = self.space.canonical(arch)

    # --- forward / extraction ---------------------------------------------------------------
    def _channels(self, arch: Mapping[str, Any]) -> tuple[int, list[int], int]:
        w = float(arch["width_mult"])
        stages = [make_divisible(c * w) for c, _ in self.stage_plan]
        return (
            make_divisible(_STEM_CHANNELS * w),
            stages,
            make_divisible(_HEAD_CHANNELS * max(1.0, w)),
        )

    def forward(self, x: torch.Tensor, arch: Mapping[str, Any] | None = None) -> torch.Tensor:
        """Logits of ``arch`` (canonical form), else of the active architecture."""
        arch = self.active if arch is None else arch
        stem, outs, head = self._channels(arch)
        x = self.stem(x, stem)
        for blocks, C_out, layers in zip(cast(Any, self.stages), outs, arch["stages"]):
            for block, layer in zip(blocks, layers):
                x = block(x, C_out, layer)
        x = F.adaptive_avg_pool2d(self.head(x, head), 1).flatten(1)
        return F.linear(x, self.classifier.weight[:, :head], self.classifier.bias)

    def extract(self, arch: Mapping[str, Any]) -> MobileNetNetwork:
        """The space's own network for ``arch`` with this supernet's weights and BN statistics.

        Its eval-mode forward equals ``self(x, arch)`` in eval mode. The child is on the
        supernet's device and is independent of it (copies, not views).
        """
        arch = self.space.canonical(arch)
        net = self.space.build(arch, num_classes=self.num_classes, in_channels=self.in_channels)
        device = self.classifier.weight.device
        net.to(device)
        stem, outs, head = self._channels(arch)
        with torch.no_grad():
            _copy_conv_bn(net.stem, self.stem, self.in_channels, stem)
            children = iter(cast(Any, net.features))
            C = stem
            for blocks, C_out, layers in zip(cast(Any, self.stages), outs, arch["stages"]):
                for block, layer in zip(blocks, layers):
                    _copy_block(next(children), block, C, C_out, layer)
                    C = C_out
            _copy_conv_bn(net.head[0], self.head, C, head)
            net.classifier.weight.copy_(self.classifier.weight[:, :head])
            net.classifier.bias.copy_(self.classifier.bias)
        return net


def _copy_conv_bn(
    dst: Any, src: _DynamicConvBN, C_in: int, C_out: int, kernel: int | None = None
) -> None:
    """Copy a sliced conv + BN of the supernet into a standalone ``_conv_bn`` sequence."""
    conv, bn, ours = dst[0], dst[1], cast(Any, src.bn)
    conv.weight.copy_(src.sliced_weight(C_in, C_out, kernel))
    bn.weight.copy_(ours.weight[:C_out])
    bn.bias.copy_(ours.bias[:C_out])
    bn.running_mean.copy_(ours.running_mean[:C_out])
    bn.running_var.copy_(ours.running_var[:C_out])
    bn.num_batches_tracked.copy_(ours.num_batches_tracked)


def _copy_block(dst: Any, src: Any, C_in: int, C_out: int, layer: Mapping[str, Any]) -> None:
    """Copy one sliced MBConv block into a standalone ``InvertedResidual``."""
    expand, kernel = int(layer["expand"]), int(layer["kernel"])
    mid = C_in * expand
    body = iter(dst.body)
    if expand != 1:
        _copy_conv_bn(next(body), src.expand_conv, C_in, mid)
    _copy_conv_bn(next(body), src.dw, mid, mid, kernel)
    if layer.get("se", False):
        se, s = next(body).gate, make_divisible(mid / 4)
        se[1].weight.copy_(src.se.reduce.weight[:s, :mid])
        se[1].bias.copy_(src.se.reduce.bias[:s])
        se[3].weight.copy_(src.se.expand.weight[:mid, :s])
        se[3].bias.copy_(src.se.expand.bias[:mid])
    _copy_conv_bn(next(body), src.project, mid, C_out)


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    inputs: Iterable[torch.Tensor],
    forward: Any = None,
) -> int:
    """Re-estimate every BatchNorm's running statistics of ``model`` on ``inputs``.

    The statistics are reset and accumulated as a plain average over the batches
    (``momentum=None``), in training mode without gradients; the model is left in eval mode
    with its momenta restored.

    Args:
        model: A network (a supernet or an extracted child).
        inputs: Input batches (training images, no labels).
        forward: ``batch -> logits``; None calls ``model(batch)`` (pass
            ``lambda x: supernet(x, arch)`` to recalibrate one sub-network of a supernet).

    Returns:
        How many batches were used.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    run = forward or model
    n = 0
    for xb in inputs:
        run(xb)
        n += 1
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    model.eval()
    return n
