"""Block decompositions: an architecture as the list of blocks whose latencies add up.

A latency table (:mod:`raynas.latency.table`) times each distinct block once; a prediction
sums the blocks of one architecture. Both go through the same function,
:meth:`BlockDecomposition.blocks`, so the profiler and the predictor can never disagree on
what a block is.

A space gets a decomposition in one of two ways: a ``latency_decomposition()`` method that
returns a :class:`BlockDecomposition`, or an entry of :data:`DECOMPOSITIONS` under its name
(:func:`register_decomposition`). Only ``mobilenet`` has one so far.

Module-level imports stay light (no torch): the CLI and the config checks import this.

Example:
    >>> dec = decomposition_for(space)            # LatencyError for a space without one
    >>> [b.key for b in dec.blocks(space, arch, (3, 32, 32), 10)][:2]
    ['stem(in=3,out=16,hw=32x32)', 'mbconv(in=16,out=24,stride=1,kernel=3,expand=6,se=0,...)']
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DECOMPOSITIONS",
    "Block",
    "BlockDecomposition",
    "LatencyError",
    "MobileNetDecomposition",
    "decomposition_for",
    "register_decomposition",
]


class LatencyError(ValueError):
    """A latency table or decomposition problem; the message names the fix."""


@dataclass(frozen=True)
class Block:
    """One timed unit of a network: its kind, its shape fields and its input shape.

    Attributes:
        kind: ``stem``, ``mbconv`` or ``head`` (for mobilenet).
        fields: ``(name, value)`` pairs that fix the module's shape, in key order.
        input_shape: One example's input ``(C, H, W)`` (the batch is the profile's).
    """

    kind: str
    fields: tuple[tuple[str, int], ...]
    input_shape: tuple[int, ...]

    @property
    def key(self) -> str:
        """The table key, e.g. ``mbconv(in=16,out=24,stride=1,kernel=3,...,hw=32x32)``."""
        parts = [f"{name}={value}" for name, value in self.fields]
        parts.append("hw=" + "x".join(str(d) for d in self.input_shape[1:]))
        return f"{self.kind}({','.join(parts)})"

    def field(self, name: str) -> int:
        """The value of field ``name``."""
        return dict(self.fields)[name]


class BlockDecomposition:
    """How a space's architectures split into blocks, and how to build one block.

    Subclass it for a space and register it (:func:`register_decomposition`) or return it from
    the space's ``latency_decomposition()`` method.
    """

    def blocks(
        self, space: Any, arch: Any, input_shape: tuple[int, ...], num_classes: int
    ) -> list[Block]:
        """The blocks of ``arch``, in forward order."""
        raise NotImplementedError

    def space_blocks(
        self, space: Any, input_shape: tuple[int, ...], num_classes: int
    ) -> list[Block]:
        """Every distinct block any member of ``space`` can have (what a profile times)."""
        raise NotImplementedError

    def build(self, space: Any, block: Block) -> Any:
        """The ``nn.Module`` of ``block``, exactly as the space's network builds it."""
        raise NotImplementedError


#: Space name -> decomposition factory (a class or a function of no arguments).
DECOMPOSITIONS: dict[str, Callable[[], BlockDecomposition]] = {}


def register_decomposition(
    name: str,
) -> Callable[[Callable[[], BlockDecomposition]], Callable[[], BlockDecomposition]]:
    """Register the decomposition of space ``name`` (a decorator on a class or factory).

    Raises:
        LatencyError: ``name`` already has one.
    """

    def wrap(factory: Callable[[], BlockDecomposition]) -> Callable[[], BlockDecomposition]:
        if name in DECOMPOSITIONS:
            raise LatencyError(f"space {name!r} already has a block decomposition")
        DECOMPOSITIONS[name] = factory
        return factory

    return wrap


def decomposition_for(space: Any) -> BlockDecomposition:
    """The decomposition of ``space``: its own ``latency_decomposition()``, else the registry's.

    Raises:
        LatencyError: the space has none.
    """
    own = getattr(space, "latency_decomposition", None)
    if callable(own):
        return own()
    name = getattr(space, "name", None)
    if name in DECOMPOSITIONS:
        return DECOMPOSITIONS[name]()
    raise LatencyError(
        f"space {name!r} has no block decomposition, so it cannot be profiled or predicted; "
        f"only {sorted(DECOMPOSITIONS)} have one (a space adds one with a "
        "latency_decomposition() method or raynas.latency.register_decomposition); use "
        "measured latency_ms for this space"
    )


def _conv_out(size: int, kernel: int, stride: int) -> int:
    """Output size of a convolution padded by ``kernel // 2``, as ``nn.Conv2d`` computes it."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def _options(node: Any) -> list[Any]:
    """The values a decision node can take: a constant's value, or a choice's options."""
    from raynas.space.nodes import Const

    if isinstance(node, Const):
        return [node.value]
    options = getattr(node, "options", None)
    if options is None or not all(isinstance(o, Const) for o in options):
        raise LatencyError(f"expected a constant or a choice of constants, got {node!r}")
    return [o.value for o in options]


@register_decomposition("mobilenet")
class MobileNetDecomposition(BlockDecomposition):
    """``mobilenet``: the stem, one block per MBConv layer, and the head (1x1 conv, pooling,
    classifier), with the channels ``MobileNetNetwork`` builds (``make_divisible`` of the
    width-scaled counts; the head scaled only above width 1; the stage stride on its first
    layer; a residual where stride is 1 and the channels agree)."""

    def _network_defaults(self) -> tuple[int, int]:
        from search_spaces.models.mobilenet_net import MobileNetNetwork

        params = inspect.signature(MobileNetNetwork).parameters
        return int(params["stem_channels"].default), int(params["head_channels"].default)

    def _chain(
        self,
        space: Any,
        width: float,
        layers: Sequence[Sequence[tuple[int, int, bool]]],
        input_shape: tuple[int, ...],
        num_classes: int,
    ) -> list[Block]:
        from search_spaces.models.mobilenet_net import make_divisible

        stem, head = self._network_defaults()
        in_channels, height, width_px = (int(d) for d in input_shape)
        channels = make_divisible(stem * width)
        out = [Block("stem", (("in", in_channels), ("out", channels)), tuple(input_shape))]
        for (stage_out, stage_stride), stage in zip(space.stages, layers):
            c_out = make_divisible(stage_out * width)
            for j, (kernel, expand, se) in enumerate(stage):
                stride = stage_stride if j == 0 else 1
                residual = int(stride == 1 and channels == c_out)
                fields: tuple[tuple[str, Any], ...] = (
                    ("in", channels),
                    ("out", c_out),
                    ("stride", stride),
                    ("kernel", int(kernel)),
                    ("expand", int(expand)),
                    ("se", int(bool(se))),
                    ("res", residual),
                )
                out.append(Block("mbconv", fields, (channels, height, width_px)))
                height = _conv_out(height, int(kernel), stride)
                width_px = _conv_out(width_px, int(kernel), stride)
                channels = c_out
        c_head = make_divisible(head * max(1.0, width))
        fields = (("in", channels), ("out", c_head), ("classes", int(num_classes)))
        out.append(Block("head", fields, (channels, height, width_px)))
        return out

    def blocks(
        self, space: Any, arch: Any, input_shape: tuple[int, ...], num_classes: int
    ) -> list[Block]:
        """Stem, MBConv layers and head of ``arch`` (canonicalised by ``space``)."""
        arch = space.canonical(arch)
        layers = [
            [(layer["kernel"], layer["expand"], layer.get("se", False)) for layer in stage]
            for stage in arch["stages"]
        ]
        return self._chain(space, float(arch["width_mult"]), layers, input_shape, num_classes)

    def space_blocks(
        self, space: Any, input_shape: tuple[int, ...], num_classes: int
    ) -> list[Block]:
        """Every block at every width: per stage, its first layer (the stage stride, the
        previous stage's channels in) and, when a stage can hold two or more, its later
        layers, each with every kernel, expansion and SE option."""
        root = dict(space.root.children)
        widths = [float(w) for w in _options(root["width_mult"])]
        repeats = [node for _, node in root["stages"].children]
        firsts = [self._layer_combos(repeat)[0] for repeat in repeats]
        seen: dict[str, Block] = {}
        for width in widths:
            for s, repeat in enumerate(repeats):
                last_stage = s == len(repeats) - 1
                for combo in self._layer_combos(repeat):
                    for length in [1, 2] if repeat.max >= 2 else [1]:
                        # A chain that reaches stage s with this layer at position
                        # length - 1: earlier stages' layers do not change its shape.
                        plan = [[first] for first in firsts[:s]]
                        plan.append([combo] * length)
                        chain = self._chain(space, width, plan, input_shape, num_classes)
                        picked = [chain[0], chain[-2]] + ([chain[-1]] if last_stage else [])
                        for block in picked:
                            seen.setdefault(block.key, block)
        return sorted(seen.values(), key=lambda b: b.key)

    @staticmethod
    def _layer_combos(repeat: Any) -> list[tuple[Any, Any, Any]]:
        """Every ``(kernel, expand, se)`` a layer of this stage can take."""
        layer = dict(repeat.node.children)
        return [
            (k, e, se)
            for k in _options(layer["kernel"])
            for e in _options(layer["expand"])
            for se in _options(layer["se"])
        ]

    def build(self, space: Any, block: Block) -> Any:
        """The block's module from ``search_spaces.models.mobilenet_net``'s own classes."""
        from torch import nn

        from search_spaces.models.mobilenet_net import InvertedResidual, MobileNetNetwork

        f = dict(block.fields)
        if block.kind == "mbconv":
            return InvertedResidual(
                f["in"], f["out"], f["kernel"], f["stride"], f["expand"], bool(f["se"])
            )
        one = [{"out_channels": 8, "stride": 1, "layers": [{"kernel": 3, "expand": 1}]}]
        if block.kind == "stem":
            net = MobileNetNetwork(one, in_channels=f["in"], stem_channels=f["out"])
            return net.stem
        if block.kind == "head":
            last = [{"out_channels": f["in"], "stride": 1, "layers": [{"kernel": 3, "expand": 1}]}]
            net = MobileNetNetwork(last, head_channels=f["out"], num_classes=f["classes"])
            return nn.Sequential(net.head, net.classifier)
        raise LatencyError(f"block {block.key!r}: unknown kind {block.kind!r}")
