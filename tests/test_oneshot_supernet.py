"""Supernets: mixed ops match the evaluation ops, frugal memory, derivation, sampling."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import raynas
from search_spaces.models.ops import DARTS_OPS, DARTS_PRIMITIVES, NB201_OPS, NB201_PRIMITIVES
from search_spaces.models.supernet import (
    DartsSupernet,
    MixedOp,
    NB201Supernet,
    Supernet,
    build_supernet,
)

torch.set_num_threads(1)

SPACES = {"nb201": {"C": 4, "N": 1}, "darts": {"C": 4, "layers": 3}}


def make(space_name: str) -> tuple[Any, Supernet]:
    space = raynas.get_space(space_name, **SPACES[space_name])
    return space, build_supernet(space, num_classes=10, in_channels=1)


def probs(net: Supernet, seed: int = 0) -> dict[str, torch.Tensor]:
    alphas = net.init_alphas(scale=1.0, generator=torch.Generator().manual_seed(seed))
    return {k: a.detach().softmax(-1) for k, a in alphas.items()}


@pytest.mark.parametrize(
    ("table", "primitives", "stride"),
    [
        (NB201_OPS, NB201_PRIMITIVES, 1),
        (DARTS_OPS, DARTS_PRIMITIVES, 1),
        (DARTS_OPS, DARTS_PRIMITIVES, 2),
    ],
)
def test_mixed_op_is_the_weighted_sum_of_the_table_ops(
    table: Any, primitives: Any, stride: int
) -> None:
    torch.manual_seed(0)
    mixed = MixedOp(primitives, table, 4, stride)
    x = torch.randn(3, 4, 7, 7)
    w = torch.rand(len(primitives))
    expected = sum(w[k] * op(x) for k, op in enumerate(mixed.ops))
    assert torch.allclose(mixed(x, w), expected, atol=1e-6)
    for k, op in enumerate(mixed.ops):
        one_hot = torch.zeros(len(primitives)).index_fill_(0, torch.tensor(k), 1.0)
        assert torch.allclose(mixed(x, one_hot), op(x), atol=1e-6), primitives[k]
        assert torch.allclose(mixed(x, w, index=k), w[k] * op(x), atol=1e-6)
        assert torch.equal(mixed(x, index=k), op(x))
    if stride == 1:
        assert torch.allclose(mixed(x, w, aux_skip=0.3), expected + 0.3 * x, atol=1e-6)


def test_mixed_op_reuses_the_evaluation_ops_without_affine_bn() -> None:
    mixed = MixedOp(NB201_PRIMITIVES, NB201_OPS, 4)
    conv = mixed.ops[NB201_PRIMITIVES.index("nor_conv_3x3")]
    assert type(conv) is type(NB201_OPS.build("nor_conv_3x3", 4, 1, False))
    bns = [m for m in mixed.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not bn.affine for bn in bns)


def _saved_bytes(fn: Any) -> int:
    """Bytes of the distinct tensors autograd saves for backward while running ``fn``."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def test_mixed_op_saves_less_than_stacking_per_op_outputs() -> None:
    torch.manual_seed(0)
    mixed = MixedOp(DARTS_PRIMITIVES, DARTS_OPS, 8)
    x = torch.randn(8, 8, 16, 16, requires_grad=True)
    w = torch.rand(len(DARTS_PRIMITIVES), requires_grad=True)

    def naive() -> torch.Tensor:  # the textbook form: a stacked (K, N, C, H, W) tensor
        return (w[:, None, None, None, None] * torch.stack([op(x) for op in mixed.ops])).sum(0)

    assert torch.allclose(naive(), mixed(x, w), atol=1e-5)
    ours, theirs = _saved_bytes(lambda: mixed(x, w)), _saved_bytes(naive)
    assert ours < theirs, (ours, theirs)


@pytest.mark.parametrize("space_name", ["nb201", "darts"])
def test_supernet_dense_forward_gives_every_arch_weight_a_gradient(space_name: str) -> None:
    _, net = make(space_name)
    alphas = net.init_alphas(generator=torch.Generator().manual_seed(0))
    logits = net(torch.randn(4, 1, 8, 8), {k: a.softmax(-1) for k, a in alphas.items()})
    assert logits.shape == (4, 10)
    logits.logsumexp(1).sum().backward()
    for key, alpha in alphas.items():
        assert alpha.grad is not None and bool((alpha.grad != 0).all()), key
    assert not any(p is a for p in net.parameters() for a in alphas.values())


@pytest.mark.parametrize("space_name", ["nb201", "darts"])
def test_derived_and_sampled_archs_are_valid_members_of_the_space(space_name: str) -> None:
    space, net = make(space_name)
    rng = np.random.default_rng(0)
    for seed in range(5):
        arch = net.derive(probs(net, seed))
        space.validate(arch)
        decisions = [int(rng.integers(size)) for size in net.decision_sizes()]
        sample = net.sample_from_decisions(decisions)
        sampled = net.arch_from_sample(sample)
        space.validate(sampled)
        assert net.sample_from_arch(sampled) == sample
        assert net(torch.randn(2, 1, 8, 8), sample=sample).shape == (2, 10)
    for seed in range(5):
        member = space.sample(seed)
        assert space.canonical(net.arch_from_sample(net.sample_from_arch(member))) == member


@pytest.mark.parametrize("space_name", ["nb201", "darts"])
def test_supernet_normalises_with_batch_statistics_in_eval_mode_too(space_name: str) -> None:
    _, net = make(space_name)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(bn.running_mean is None for bn in bns)
    x, w = torch.randn(6, 1, 8, 8), probs(net)
    assert torch.allclose(net.train()(x, w), net.eval()(x, w), atol=1e-6)


def test_nb201_derive_is_the_argmax_per_edge_none_included() -> None:
    space, net = make("nb201")
    w = torch.zeros(6, 5)
    w[:, NB201_PRIMITIVES.index("nor_conv_3x3")] = 1.0
    w[0, NB201_PRIMITIVES.index("none")] = 2.0
    arch = net.derive({"cell": w})
    assert space.to_string(arch) == (
        "|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )


def test_darts_derive_keeps_the_two_strongest_inputs_and_ignores_none() -> None:
    space, net = make("darts")
    none, sep3, skip = (DARTS_PRIMITIVES.index(o) for o in ("none", "sep_conv_3x3", "skip_connect"))
    w = torch.full((14, 8), 0.01)
    w[:, none] = 0.9  # never chosen, never counts towards an edge's strength
    for e, (i, j) in enumerate(net.edges):
        w[e, sep3 if i == j - 1 else skip] = 0.1 + 0.01 * i
    arch = net.derive({"normal": w, "reduce": w})
    for j in (2, 3, 4, 5):
        node = arch["normal"][f"node_{j}"]
        assert node["inputs"] == [j - 2, j - 1]  # the two highest sources have the most weight
        assert node["ops"] == ["skip_connect", "sep_conv_3x3"]
    space.validate(arch)
    assert net.collapse_share(arch) == 0.5


def test_collapse_share_counts_parameter_free_ops() -> None:
    space, net = make("nb201")
    all_skip = space.from_string(
        "|skip_connect~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|skip_connect~1|skip_connect~2|"
    )
    assert net.collapse_share(all_skip) == 1.0
    convs = space.from_string(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    )
    assert net.collapse_share(convs) == 0.0


def test_supernet_honours_an_nb201_op_subset() -> None:
    space = raynas.get_space("nb201", C=4, N=1, ops=["skip_connect", "nor_conv_3x3"])
    net = build_supernet(space, num_classes=3, in_channels=1)
    assert net.primitives == ("skip_connect", "nor_conv_3x3")
    assert net.init_alphas()["cell"].shape == (6, 2)
    space.validate(net.derive(probs(net)))


def test_build_supernet_refuses_spaces_without_one() -> None:
    with pytest.raises(ValueError, match="space: 'mlp' has no supernet"):
        build_supernet(raynas.get_space("mlp"), num_classes=3)
    with pytest.raises(ValueError, match="primitives"):
        NB201Supernet(C=4, N=1, primitives=["conv9"])
    with pytest.raises(ValueError, match="layers"):
        DartsSupernet(C=4, layers=2)
    net = NB201Supernet(C=4, N=1, num_classes=3, in_channels=1)
    with pytest.raises(ValueError, match="weights, sample"):
        net(torch.randn(1, 1, 8, 8))


# --- fidelity to the reference search cells -------------------------------------------------
POOLS = ("max_pool_3x3", "avg_pool_3x3")


def test_darts_supernet_pools_through_a_non_affine_batch_norm() -> None:
    """DARTS' MixedOp appends ``BatchNorm2d(C, affine=False)`` to its pooling ops."""
    _, net = make("darts")
    cells = list(net.cells)
    assert [c.reduction for c in cells] == [False, True, True]
    for cell in cells[:2]:  # a normal and a reduction cell (stride-2 edges first)
        for edge in (cell.edges[0], cell.edges[-1]):
            for name in POOLS:
                k = net.primitives.index(name)
                bn = edge.ops[k][-1]
                assert isinstance(bn, nn.BatchNorm2d) and not bn.affine
                assert bn.running_mean is None  # batch statistics, like every supernet BN
                x = 3.0 * torch.randn(6, bn.num_features, 8, 8) + 2.0
                for y in (edge(x, index=k), edge(x, torch.eye(8)[k])):
                    mean, var = y.mean((0, 2, 3)), y.var((0, 2, 3), unbiased=False)
                    assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-5), name
                    assert torch.allclose(var, torch.ones_like(var), atol=1e-3), name


def test_nb201_supernet_pools_without_batch_norm_as_nas_bench_201_does() -> None:
    """NAS-Bench-201's search cell runs its ``avg_pool_3x3`` bare (no BN when C_in == C_out)."""
    _, net = make("nb201")
    edge = net.cells[0].edges[0]
    op = edge.ops[net.primitives.index("avg_pool_3x3")]
    assert isinstance(op, nn.AvgPool2d)
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(edge(x, index=net.primitives.index("avg_pool_3x3")), op(x))


def straight_through(net: Supernet, seed: int = 0) -> tuple[dict[str, torch.Tensor], Any]:
    """Hard one-hot weights with the soft weights' gradient (GDAS), and the drawn path."""
    weights, sample = {}, {}
    for key, alpha in net.init_alphas(
        scale=1.0, generator=torch.Generator().manual_seed(seed)
    ).items():
        soft = alpha.detach().softmax(-1)
        hard = nn.functional.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
        weights[key] = (hard - soft + soft.detach().requires_grad_(True)).detach()
        weights[key].requires_grad_(True)
        sample[key] = [int(i) for i in soft.argmax(-1)]
    return weights, sample


@pytest.mark.parametrize(
    ("space_name", "unselected_get_gradient"), [("nb201", True), ("darts", False)]
)
def test_single_path_with_straight_through_weights_follows_the_reference_gdas(
    space_name: str, unselected_get_gradient: bool
) -> None:
    """NAS-Bench-201's GDAS cell adds every unselected hard weight (value 0) to the edge's
    output, so each gets a gradient; its DARTS-space (NASNet) cell scales the selected op only.
    The output is the selected path either way."""
    torch.manual_seed(0)
    _, net = make(space_name)
    weights, sample = straight_through(net)
    x = torch.randn(4, 1, 8, 8)
    logits = net(x, weights, sample)
    assert torch.allclose(logits, net(x, sample=sample), atol=1e-5)
    logits.logsumexp(1).sum().backward()
    for key, w in weights.items():
        assert w.grad is not None
        picked = torch.nn.functional.one_hot(torch.tensor(sample[key]), w.shape[-1]).bool()
        runs = [net.primitives[k] != "none" for k in sample[key]]  # `none` outputs zeros
        assert bool((w.grad[picked][torch.tensor(runs)] != 0).all()), key
        rest = w.grad[~picked]
        assert bool((rest != 0).all()) if unselected_get_gradient else bool((rest == 0).all())


def test_mixed_op_adds_the_unselected_weights_when_asked() -> None:
    torch.manual_seed(0)
    mixed = MixedOp(NB201_PRIMITIVES, NB201_OPS, 4, unselected_weights=True)
    x, w = torch.randn(3, 4, 7, 7), torch.rand(len(NB201_PRIMITIVES))
    for k, op in enumerate(mixed.ops):
        assert torch.allclose(mixed(x, w, index=k), w[k] * op(x) + (w.sum() - w[k]), atol=1e-6)
        assert torch.equal(mixed(x, index=k), op(x))
