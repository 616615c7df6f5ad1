"""Tests for trainables.cost: parameter, FLOP and latency measurements."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainables.cost import Cost, count_flops, count_params, measure_cost, measure_latency_ms


def _small_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )


def test_count_params_matches_numel_sum() -> None:
    model = _small_cnn()
    assert count_params(model) == sum(p.numel() for p in model.parameters())
    model[0].weight.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert count_params(model, trainable_only=True) == trainable
    assert count_params(model) == sum(p.numel() for p in model.parameters())


def test_count_params_counts_shared_parameters_once() -> None:
    layer = nn.Linear(4, 4)
    model = nn.Sequential(layer, layer)
    assert count_params(model) == 4 * 4 + 4


def test_count_params_rejects_lazy_modules() -> None:
    with pytest.raises(ValueError, match="uninitialised"):
        count_params(nn.LazyLinear(3))


def test_conv_flops_are_analytic() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_flops(conv, (3, 8, 8)) == 2 * 8 * 8 * 8 * 3 * 3 * 3 == 27_648


def test_linear_flops_are_analytic() -> None:
    assert count_flops(nn.Linear(20, 7), (20,)) == 2 * 20 * 7


def test_flops_of_a_network_add_up() -> None:
    expected = 2 * 8 * 8 * 8 * 3 * 3 * 3 + 2 * 8 * 10  # conv + linear; the rest counts 0
    assert count_flops(_small_cnn(), (3, 8, 8)) == expected


@pytest.mark.parametrize("training", [True, False])
def test_training_mode_is_restored(training: bool) -> None:
    model = _small_cnn().train(training)
    model[3].train(not training)  # a submodule with its own mode must keep it
    count_flops(model, (3, 8, 8))
    measure_latency_ms(model, (3, 8, 8), warmup=1, repeats=2)
    measure_cost(model, (3, 8, 8), latency_repeats=2)
    assert model.training is training
    assert model[0].training is training
    assert model[3].training is (not training)


def test_measurement_does_not_touch_batchnorm_stats() -> None:
    model = _small_cnn().train()
    bn = model[1]
    assert isinstance(bn, nn.BatchNorm2d) and bn.running_mean is not None
    before = bn.running_mean.clone()
    measure_cost(model, (3, 8, 8), latency_repeats=2)
    assert torch.equal(bn.running_mean, before)


def test_latency_is_positive_and_finite() -> None:
    latency = measure_latency_ms(_small_cnn(), (3, 8, 8), warmup=1, repeats=5)
    assert latency > 0
    assert math.isfinite(latency)


def test_measure_cost_and_as_dict() -> None:
    model = _small_cnn()
    cost = measure_cost(model, (3, 8, 8), latency_repeats=3)
    assert isinstance(cost, Cost)
    assert cost.params == sum(p.numel() for p in model.parameters())
    assert cost.flops == count_flops(model, (3, 8, 8))
    assert cost.latency_ms > 0
    assert cost.as_dict() == {
        "params": cost.params,
        "flops": cost.flops,
        "latency_ms": cost.latency_ms,
    }


def test_parameterless_model() -> None:
    model = nn.Flatten()
    assert count_params(model) == 0
    assert count_flops(model, (2, 3)) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"repeats": 0}, "repeats"),
        ({"warmup": -1}, "warmup"),
        ({"device": "meta"}, "device"),
    ],
)
def test_latency_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        measure_latency_ms(nn.Linear(2, 2), (2,), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(), (0, 3), (2.0,), 5])
def test_bad_input_shape_is_rejected(shape: object) -> None:
    with pytest.raises(ValueError, match="input_shape"):
        count_flops(nn.Linear(2, 2), shape)  # type: ignore[arg-type]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_measurements() -> None:
    model = _small_cnn().cuda()
    cost = measure_cost(model, (3, 8, 8), latency_repeats=3)
    assert cost.flops == count_flops(_small_cnn(), (3, 8, 8))
    assert cost.latency_ms > 0
