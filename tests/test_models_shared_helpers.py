"""The helpers the model modules share: each keeps the checks and messages of its callers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from torch import nn

from search_spaces.models.mobilenet_net import MobileNetNetwork
from search_spaces.models.nb201_net import NB201Network
from search_spaces.models.ops import DARTS_PRIMITIVES, NB201_OPS, conv_bn_stem
from search_spaces.models.supernet import DartsSupernet, NB201Supernet
from search_spaces.models.supernet.mixed import check_primitives, parameter_free_share

LAYER = {"kernel": 3, "expand": 1}


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ([], "blocks must be a non-empty list of stage dicts"),
        ("stages", "blocks must be a non-empty list of stage dicts"),
        ([3], "blocks[0] must be a dict, got int"),
        (
            [{"out_channels": 8, "stride": 1, "layers": []}],
            "blocks[0]['layers'] must be a non-empty list of layer dicts",
        ),
        (
            [{"out_channels": 8, "stride": 1, "layers": [LAYER]}, {"out_channels": 8}],
            "blocks[1]: missing keys ['layers', 'stride'], unknown keys []",
        ),
        (
            [{"out_channels": 8, "stride": 1, "layers": [LAYER, "wide"]}],
            "blocks[0]['layers'][1] must be a dict, got str",
        ),
        # Checked as reached: stage 0's bad layer is named before stage 1, not a dict.
        (
            [{"out_channels": 8, "stride": 1, "layers": [[]]}, 5],
            "blocks[0]['layers'][0] must be a dict, got list",
        ),
    ],
)
def test_mobilenet_blocks_are_lists_of_dicts(blocks: Any, message: str) -> None:
    with pytest.raises(ValueError) as err:
        MobileNetNetwork(blocks)
    assert str(err.value) == message


NB201_KNOWN = list(NB201_OPS)
DARTS_KNOWN = list(DARTS_PRIMITIVES)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: NB201Supernet(C=2, N=1, primitives=["conv9"]),
            f"primitives: ['conv9'] must be NB201 ops {NB201_KNOWN}",
        ),
        (
            lambda: NB201Supernet(C=2, N=1, primitives=[]),
            f"primitives: [] must be NB201 ops {NB201_KNOWN}",
        ),
        (
            lambda: DartsSupernet(C=2, layers=3, primitives=["none"]),
            f"primitives: ['none'] must be DARTS ops {DARTS_KNOWN}",
        ),
        (
            lambda: DartsSupernet(C=2, layers=3, primitives=["skip_connect", "nor_conv_3x3"]),
            f"primitives: ['skip_connect', 'nor_conv_3x3'] must be DARTS ops {DARTS_KNOWN}",
        ),
    ],
)
def test_supernet_primitives_are_checked(build: Callable[[], nn.Module], message: str) -> None:
    with pytest.raises(ValueError) as err:
        build()
    assert str(err.value) == message


def test_check_primitives_returns_a_tuple_and_counts_none_only_when_asked() -> None:
    assert check_primitives(["none"], NB201_OPS, "NB201") == ("none",)
    assert NB201Supernet(C=2, N=1, primitives=["none"]).primitives == ("none",)
    assert check_primitives(["none", "skip_connect"], DARTS_PRIMITIVES, "DARTS", besides_none=True)
    with pytest.raises(ValueError, match="must be DARTS ops"):
        check_primitives(["none"], DARTS_PRIMITIVES, "DARTS", besides_none=True)


def test_parameter_free_share() -> None:
    assert parameter_free_share(["skip_connect", "nor_conv_3x3", "none", "avg_pool_3x3"]) == 0.75
    assert parameter_free_share(["sep_conv_3x3"]) == 0.0


def test_conv_bn_stem_is_a_biasless_3x3_conv_then_batchnorm() -> None:
    stem = conv_bn_stem(1, 4)
    conv, bn = stem
    assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.padding) == (
        1,
        4,
        (3, 3),
        (1, 1),
    )
    assert conv.bias is None and bn.num_features == 4
    net = NB201Network("|skip_connect~0|", C=4, N=1, in_channels=1)
    assert list(net.stem.state_dict()) == list(stem.state_dict())
