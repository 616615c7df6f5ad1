"""DARTS CIFAR evaluation network for a fixed :class:`~search_spaces.models.genotypes.Genotype`.

The layout follows the DARTS paper's CIFAR-10 evaluation network: a 3x3 convolution stem
with ``3 * C`` channels, ``layers`` cells with reduction cells (doubling the channels) at
``layers // 3`` and ``2 * layers // 3``, global average pooling and a linear classifier, plus
an optional auxiliary classifier after the second reduction cell. With the DARTS_V2 cell at
``C=36, layers=20`` it has 3,349,342 parameters (3,825,768 with the auxiliary head).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.models.genotypes import CellSpec, Genotype, parse_genotype
from search_spaces.models.ops import DARTS_OPS, conv_bn_stem, darts_cell_inputs

__all__ = ["AuxiliaryHead", "DARTSCell", "DARTSNetwork", "drop_path"]


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples of ``x`` with probability ``drop_prob``, rescaling the rest.

    Args:
        x: A batch ``(N, ...)``.
        drop_prob: Probability in ``[0, 1)`` of dropping each sample's path.

    Returns:
        ``x * mask / (1 - drop_prob)`` with a per-sample Bernoulli mask.
    """
    if drop_prob <= 0.0:
        return x
    keep_prob = 1.0 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep_prob)
    return x * mask / keep_prob


class DARTSCell(nn.Module):
    """One normal or reduction cell of a DARTS evaluation network.

    Args:
        pairs: The cell's ``(op_name, input_index)`` pairs, two per intermediate node.
        concat: Nodes concatenated into the output.
        C_prev_prev: Channels of the input two cells back.
        C_prev: Channels of the previous cell's output.
        C: Channels of each node in this cell.
        reduction: Whether this cell halves the spatial size.
        reduction_prev: Whether the previous cell was a reduction cell (then the older
            input is twice as large and is reduced on the way in).
    """

    def __init__(
        self,
        pairs: CellSpec,
        concat: Sequence[int],
        C_prev_prev: int,
        C_prev: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = darts_cell_inputs(
            C_prev_prev, C_prev, C, reduction_prev
        )
        self.ops = nn.ModuleList()
        for op_name, index in pairs:
            stride = 2 if reduction and index < 2 else 1
            self.ops.append(DARTS_OPS.build(op_name, C, stride, True))
        self._indices = [index for _, index in pairs]
        self._concat = list(concat)
        self.multiplier = len(self._concat)
        # Identity edges are never dropped by drop path.
        self._droppable = [not isinstance(op, nn.Identity) for op in self.ops]

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        apply_drop = self.training and drop_prob > 0.0
        for first in range(0, len(self._indices), 2):
            inputs = []
            for k in (first, first + 1):
                h = self.ops[k](states[self._indices[k]])
                if apply_drop and self._droppable[k]:
                    h = drop_path(h, drop_prob)
                inputs.append(h)
            states.append(inputs[0] + inputs[1])
        return torch.cat([states[i] for i in self._concat], dim=1)


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier for CIFAR-sized feature maps.

    Reduces the feature map to 2x2, then a 1x1 conv to 128 channels, a 2x2 conv to 768
    channels and a linear classifier. The DARTS reference pools an 8x8 map with
    ``AvgPool2d(5, stride=3)``; that pooling is used whenever it yields exactly 2x2 (maps of
    8 to 10 pixels a side), and adaptive average pooling to 2x2 otherwise, so any input size
    works with the same parameters.

    Args:
        C: Input channels.
        num_classes: Classifier outputs.
    """

    def __init__(self, C: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        height, width = x.shape[-2:]
        if 8 <= height <= 10 and 8 <= width <= 10:
            x = F.avg_pool2d(x, 5, stride=3, padding=0, count_include_pad=False)
        else:
            x = F.adaptive_avg_pool2d(x, 2)
        return self.classifier(self.features(x))


class DARTSNetwork(nn.Module):
    """The DARTS CIFAR evaluation network.

    ``forward`` always returns the main logits. When the network was built with
    ``auxiliary=True`` and is in training mode, the auxiliary logits of the same forward
    pass are stored on :attr:`aux_logits`; otherwise :attr:`aux_logits` is ``None``. A
    training loop typically does::

        logits = model(x)
        loss = criterion(logits, y)
        if model.aux_logits is not None:
            loss = loss + aux_weight * criterion(model.aux_logits, y)

    Drop path is active in training mode when :attr:`drop_path_prob` is positive; the
    attribute may be changed between epochs (DARTS ramps it linearly).

    Args:
        genotype: Anything :func:`~search_spaces.models.genotypes.parse_genotype` accepts.
        C: Initial channels (the stem has ``3 * C``).
        num_classes: Classifier outputs.
        layers: Number of cells.
        auxiliary: Add the auxiliary head after the second reduction cell.
        drop_path_prob: Initial drop-path probability, in ``[0, 1)``.
        in_channels: Image channels.

    Raises:
        ValueError: On an invalid genotype or out-of-range arguments.
    """

    stem_multiplier = 3

    def __init__(
        self,
        genotype: Genotype | Mapping[str, Any] | Sequence[Any] | str,
        *,
        C: int = 36,
        num_classes: int = 10,
        layers: int = 20,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        for name, value in (
            ("C", C),
            ("num_classes", num_classes),
            ("layers", layers),
            ("in_channels", in_channels),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0.0 <= float(drop_path_prob) < 1.0:
            raise ValueError(f"drop_path_prob must be in [0, 1), got {drop_path_prob!r}")
        self.genotype = parse_genotype(genotype)
        self.drop_path_prob = float(drop_path_prob)
        self.aux_logits: torch.Tensor | None = None
        self._layers = layers
        self._aux_after = 2 * layers // 3

        C_stem = self.stem_multiplier * C
        self.stem = conv_bn_stem(in_channels, C_stem)
        C_prev_prev, C_prev, C_curr = C_stem, C_stem, C
        reduction_layers = {layers // 3, 2 * layers // 3}
        reduction_prev = False
        C_aux = C_prev
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in reduction_layers
            if reduction:
                C_curr *= 2
                pairs, concat = self.genotype.reduce, self.genotype.reduce_concat
            else:
                pairs, concat = self.genotype.normal, self.genotype.normal_concat
            cell = DARTSCell(pairs, concat, C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
            if i == self._aux_after:
                C_aux = C_prev
        self.auxiliary_head = AuxiliaryHead(C_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits; see the class docstring for :attr:`aux_logits`."""
        self.aux_logits = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self._aux_after and self.auxiliary_head is not None and self.training:
                self.aux_logits = self.auxiliary_head(s1)
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))
