"""Architectures several tests share, as NAS-Bench-201 cell strings."""

from __future__ import annotations

#: The best published NAS-Bench-201 cell (1,288,506 parameters at C=16, N=5).
NB201_BEST = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
#: A small cell with a pooling and 1x1 convolutions (129,306 parameters at C=16, N=5).
NB201_SMALL = (
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|"
    "+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
)
