"""Tests for the evaluation networks in ``search_spaces.models``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from search_spaces.models.darts_net import DARTSNetwork, drop_path
from search_spaces.models.genotypes import (
    DARTS_V1,
    DARTS_V2,
    PUBLISHED_GENOTYPES,
    AmoebaNet,
    Genotype,
    NASNet,
    parse_genotype,
)
from search_spaces.models.mobilenet_net import (
    DEFAULT_STAGES,
    MobileNetNetwork,
    default_blocks,
    make_divisible,
)
from search_spaces.models.nb201_net import NB201Network, nb201_string, parse_nb201_string
from search_spaces.models.ops import DARTS_OPS, DARTS_PRIMITIVES, NB201_OPS, NB201_PRIMITIVES
from tests.archs import NB201_BEST, NB201_SMALL

NB201_ALL_OPS = "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_backward(model: nn.Module, x: torch.Tensor, num_classes: int) -> torch.Tensor:
    model.train()
    logits = model(x)
    assert logits.shape == (x.shape[0], num_classes)
    loss = logits.square().mean()
    aux = getattr(model, "aux_logits", None)
    if aux is not None:
        loss = loss + aux.square().mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert torch.isfinite(logits).all()
    return logits


# ----------------------------------------------------------------------------- ops


def test_op_tables_cover_primitives() -> None:
    assert set(NB201_PRIMITIVES) == set(NB201_OPS)
    assert set(DARTS_PRIMITIVES) < set(DARTS_OPS)
    assert {"sep_conv_7x7", "conv_7x1_1x7"} <= set(DARTS_OPS)


@pytest.mark.parametrize("table", [NB201_OPS, DARTS_OPS])
@pytest.mark.parametrize("size", [8, 9])
def test_ops_shapes(table, size: int) -> None:
    x = torch.randn(2, 8, size, size)
    for name in table:
        for stride in (1, 2):
            out = table.build(name, 8, stride, affine=False)(x)
            expected = size if stride == 1 else (size + 1) // 2
            assert out.shape == (2, 8, expected, expected), (name, stride)


def test_unknown_op_is_value_error_listing_known_ops() -> None:
    with pytest.raises(ValueError, match="known ops: none, skip_connect"):
        NB201_OPS["conv_9x9"]
    with pytest.raises(ValueError, match="sep_conv_3x3"):
        DARTS_OPS.build("conv_9x9", 8)
    assert "conv_9x9" not in DARTS_OPS
    assert DARTS_OPS.get("conv_9x9") is None


# --------------------------------------------------------------------------- NB201


def test_nb201_param_counts() -> None:
    assert n_params(NB201Network(NB201_BEST, C=16, N=5, num_classes=10)) == 1_288_506
    assert n_params(NB201Network(NB201_SMALL, C=16, N=5, num_classes=10)) == 129_306


def test_nb201_string_round_trip() -> None:
    genotype = parse_nb201_string(NB201_BEST)
    assert genotype == [
        [("nor_conv_3x3", 0)],
        [("nor_conv_3x3", 0), ("nor_conv_3x3", 1)],
        [("skip_connect", 0), ("nor_conv_3x3", 1), ("nor_conv_3x3", 2)],
    ]
    assert nb201_string(genotype) == NB201_BEST
    for s in (NB201_SMALL, NB201_ALL_OPS):
        assert nb201_string(parse_nb201_string(s)) == s
    # JSON-style nested lists are accepted too.
    as_lists = [[list(edge) for edge in node] for node in genotype]
    assert nb201_string(as_lists) == NB201_BEST


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "nor_conv_3x3~0",
        "|nor_conv_3x3~0",
        "|nor_conv_3x3|",
        "|nor_conv_3x3~x|",
        "|nor_conv_3x3~-1|",
        "||",
        "|nor_conv_3x3~0|+",
        "|nor_conv_3x3~0|++|none~0|",
        "|conv_9x9~0|",
        "|nor_conv_3x3~1|",
        "|nor_conv_3x3~0|+|nor_conv_3x3~2|",
    ],
)
def test_nb201_malformed_strings_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_nb201_string(bad)


def test_nb201_bad_genotype_and_args_rejected() -> None:
    with pytest.raises(ValueError, match="unknown"):
        NB201Network([[("conv_9x9", 0)]])
    with pytest.raises(ValueError, match="pair"):
        NB201Network([[("nor_conv_3x3",)]])
    with pytest.raises(ValueError, match="C must be"):
        NB201Network(NB201_BEST, C=0)


@pytest.mark.parametrize("arch", [NB201_BEST, NB201_ALL_OPS])
def test_nb201_forward_backward_digits_size(arch: str) -> None:
    model = NB201Network(arch, C=8, N=1, num_classes=10, in_channels=1)
    forward_backward(model, torch.randn(4, 1, 8, 8), 10)


def test_nb201_odd_input_and_eval() -> None:
    model = NB201Network(NB201_BEST, C=8, N=1, num_classes=5)
    forward_backward(model, torch.randn(2, 3, 11, 11), 5)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 5)


# ---------------------------------------------------------------------- genotypes


@pytest.mark.parametrize("name", sorted(PUBLISHED_GENOTYPES))
def test_genotype_round_trips(name: str) -> None:
    genotype = PUBLISHED_GENOTYPES[name]
    assert parse_genotype(genotype) == genotype
    assert parse_genotype(genotype.to_string()) == genotype
    assert parse_genotype(str(genotype)) == genotype
    assert parse_genotype(repr(genotype)) == genotype
    assert parse_genotype(genotype.to_dict()) == genotype
    assert parse_genotype(list(genotype.to_dict().values())) == genotype


def test_genotype_reference_string_and_range() -> None:
    text = (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
        "('dil_conv_3x3', 2)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
        "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=range(2, 6))"
    )
    assert parse_genotype(text) == DARTS_V2
    assert DARTS_V2.normal_concat == [2, 3, 4, 5]
    assert isinstance(DARTS_V2, Genotype)
    assert DARTS_V1 != DARTS_V2
    # The DARTS text form is also the repr, and hand-built list genotypes compare equal.
    assert repr(DARTS_V2) == DARTS_V2.to_string() == text.replace("range(2, 6)", "[2, 3, 4, 5]")
    by_hand = Genotype(
        normal=list(DARTS_V2.normal),
        normal_concat=[2, 3, 4, 5],
        reduce=list(DARTS_V2.reduce),
        reduce_concat=[2, 3, 4, 5],
    )
    assert by_hand == DARTS_V2
    assert parse_genotype(by_hand) is not by_hand


_GOOD = "normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[2]"
_GOOD_R = "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2]"


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("Genotype(", "malformed"),
        ("NotGenotype(normal=[])", "expected 'Genotype"),
        (f"Genotype({_GOOD})", "missing"),
        (f"Genotype({_GOOD}, {_GOOD_R}, extra=1)", "unexpected"),
        (f"Genotype({_GOOD}, {_GOOD_R}, normal=[])", "given twice"),
        (f"Genotype({_GOOD}, {_GOOD_R.replace('max_pool_3x3', 'conv_9x9', 1)})", "conv_9x9"),
        (f"Genotype({_GOOD.replace('1)]', '2)]')}, {_GOOD_R})", "out of range"),
        (f"Genotype({_GOOD.replace('[2]', '[5]')}, {_GOOD_R})", "out of range"),
        (f"Genotype({_GOOD.replace('[2]', '[]')}, {_GOOD_R})", "non-empty"),
        (f"Genotype({_GOOD}, reduce=[('max_pool_3x3', 0)], reduce_concat=[2])", "even"),
        (
            "Genotype(normal=__import__('os').system('true'), normal_concat=[2], "
            "reduce=[], reduce_concat=[2])",
            "unsupported expression",
        ),
        (f"Genotype({_GOOD}, reduce=list(range(2)), reduce_concat=[2])", "unsupported"),
    ],
)
def test_malformed_genotype_strings_rejected(bad: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_genotype(bad)


def test_malformed_genotype_objects_rejected() -> None:
    with pytest.raises(ValueError, match="missing"):
        parse_genotype({"normal": DARTS_V2.normal})
    with pytest.raises(ValueError, match="cannot interpret"):
        parse_genotype(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pair"):
        parse_genotype({**DARTS_V2.to_dict(), "normal": ["sep_conv_3x3", 0]})


# --------------------------------------------------------------------------- DARTS


def test_darts_v2_param_counts() -> None:
    assert n_params(DARTSNetwork(DARTS_V2, C=36, layers=20, auxiliary=True)) == 3_825_768
    assert n_params(DARTSNetwork(DARTS_V2, C=36, layers=20, auxiliary=False)) == 3_349_342


@pytest.mark.parametrize(
    ("in_channels", "size"),
    [(3, 16), (1, 8), (3, 32), (3, 13)],
)
def test_darts_forward_backward_with_aux(in_channels: int, size: int) -> None:
    model = DARTSNetwork(
        DARTS_V2, C=8, layers=5, auxiliary=True, drop_path_prob=0.2, in_channels=in_channels
    )
    forward_backward(model, torch.randn(2, in_channels, size, size), 10)
    assert model.aux_logits is not None
    assert model.aux_logits.shape == (2, 10)
    model.eval()
    with torch.no_grad():
        model(torch.randn(2, in_channels, size, size))
    assert model.aux_logits is None


@pytest.mark.parametrize("genotype", [NASNet, AmoebaNet, DARTS_V1], ids=["nasnet", "amoeba", "v1"])
def test_published_genotypes_build_and_run(genotype: Genotype) -> None:
    model = DARTSNetwork(genotype, C=8, layers=5, num_classes=3, drop_path_prob=0.1)
    forward_backward(model, torch.randn(2, 3, 16, 16), 3)
    assert model.aux_logits is None


def test_darts_accepts_string_and_rejects_bad_args() -> None:
    model = DARTSNetwork(DARTS_V2.to_string(), C=8, layers=3)
    assert model.genotype == DARTS_V2
    with pytest.raises(ValueError, match="drop_path_prob"):
        DARTSNetwork(DARTS_V2, C=8, layers=3, drop_path_prob=1.0)
    with pytest.raises(ValueError, match="layers"):
        DARTSNetwork(DARTS_V2, C=8, layers=0)


def test_drop_path_keeps_expectation_shape() -> None:
    x = torch.ones(1000, 2, 1, 1)
    out = drop_path(x, 0.25)
    kept = (out[:, 0, 0, 0] > 0).float().mean().item()
    assert 0.65 < kept < 0.85
    assert torch.allclose(out[out > 0], torch.full_like(out[out > 0], 1 / 0.75))
    assert drop_path(x, 0.0) is x


# ----------------------------------------------------------------------- MobileNet


def test_mobilenet_forward_backward_digits_and_cifar() -> None:
    blocks = default_blocks(DEFAULT_STAGES, depth=1)
    blocks[1]["layers"] = [
        {"kernel": 5, "expand": 3, "se": True},
        {"kernel": 7, "expand": 4, "se": False},
    ]
    digits = MobileNetNetwork(blocks, width_mult=0.5, in_channels=1, head_channels=64)
    forward_backward(digits, torch.randn(2, 1, 8, 8), 10)
    cifar = MobileNetNetwork(blocks, num_classes=100, head_channels=128, dropout=0.1)
    forward_backward(cifar, torch.randn(2, 3, 32, 32), 100)


def test_mobilenet_channels_and_residuals() -> None:
    model = MobileNetNetwork(default_blocks(depth=2), width_mult=0.75)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.out_channels % 8 == 0 for m in convs)
    residual = [block.use_residual for block in model.features]  # type: ignore[union-attr]
    assert residual == [False, True] * len(DEFAULT_STAGES)
    assert make_divisible(24 * 0.75) == 24 and make_divisible(10) == 16


@pytest.mark.parametrize(
    ("blocks", "match"),
    [
        ([], "non-empty"),
        ([{"out_channels": 16, "stride": 3, "layers": [{"kernel": 3, "expand": 6}]}], "stride"),
        ([{"out_channels": 16, "stride": 1, "layers": []}], "layers"),
        ([{"out_channels": 16, "stride": 1, "layers": [{"kernel": 4, "expand": 6}]}], "odd"),
        ([{"out_channels": 16, "stride": 1, "layers": [{"kernel": 3}]}], "expand"),
        ([{"out_channels": 16, "layers": [{"kernel": 3, "expand": 6}]}], "missing"),
        (
            [{"out_channels": 16, "stride": 1, "layers": [{"kernel": 3, "expand": 6, "se": 1}]}],
            "bool",
        ),
    ],
)
def test_mobilenet_rejects_bad_blocks(blocks: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MobileNetNetwork(blocks)
