"""DARTS and GDAS: the architect's gradients, options and checks, and real searches on digits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import raynas
from raynas.experiment.config import ConfigError
from raynas.experiment.config_check import check_experiment
from raynas.experiment.config_load import load_config
from raynas.results.export import export_trial
from search_spaces.models.supernet import NB201Supernet
from tests.conftest import small_experiment
from tests.oneshot_harness import make_oneshot_trainable, run_oneshot
from trainables.oneshot.common import DERIVED_ARCH_FILE, parse_options
from trainables.oneshot.darts import (
    DartsOptions,
    DartsTrainable,
    first_order_arch_grads,
    search_loss,
    second_order_arch_grads,
)
from trainables.oneshot.gdas import GdasOptions, GdasTrainable, gumbel_path

torch.set_num_threads(1)


# --- the architect ---------------------------------------------------------------------------
class TinySmoothNet(nn.Module):
    """A two-edge 'supernet' on vectors with smooth ops (tanh-linear, identity, zero)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(5, 4)
        self.edges = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))
        self.out = nn.Linear(4, 3)

    def forward(
        self, x: torch.Tensor, weights: Mapping[str, torch.Tensor], aux_skip: float = 0.0
    ) -> torch.Tensor:
        h = torch.tanh(self.inp(x))
        w = weights["cell"]
        for e, lin in enumerate(self.edges):
            h = w[e, 0] * torch.tanh(lin(h)) + w[e, 1] * h + aux_skip * h  # w[e, 2]: zero op
        return self.out(h)


def unrolled_val_loss(
    net: nn.Module,
    alpha: torch.Tensor,
    train: Any,
    val: Any,
    xi: float,
    momentum: float,
    weight_decay: float,
    buffers: Mapping[str, torch.Tensor],
) -> float:
    """``L_val(w - xi * (momentum * buf + dL_train/dw + weight_decay * w), alpha)``, directly."""
    alphas = {"cell": alpha}
    names = [n for n, _ in net.named_parameters()]
    ws = [p for _, p in net.named_parameters()]
    grads = torch.autograd.grad(search_loss(net, alphas, train), ws)
    params = {
        n: (w - xi * (g + weight_decay * w + momentum * buffers[n])).detach()
        for n, w, g in zip(names, ws, grads)
    }
    return float(search_loss(net, alphas, val, params=params).detach())


def numerical_grad(f: Any, alpha: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    out = torch.zeros_like(alpha)
    for i in range(alpha.numel()):
        step = torch.zeros_like(alpha).view(-1)
        step[i] = h
        step = step.view_as(alpha)
        out.view(-1)[i] = (f(alpha + step) - f(alpha - step)) / (2 * h)
    return out


def _setup(net: nn.Module, shape: tuple[int, ...], edges: int, ops: int) -> tuple[Any, ...]:
    g = torch.Generator().manual_seed(0)
    net.double().train()
    alpha = torch.randn(edges, ops, generator=g, dtype=torch.float64)
    train = (
        torch.randn(12, *shape, generator=g, dtype=torch.float64),
        torch.randint(0, 3, (12,), generator=g),
    )
    val = (
        torch.randn(12, *shape, generator=g, dtype=torch.float64),
        torch.randint(0, 3, (12,), generator=g),
    )
    buffers = {
        n: 0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64)
        for n, p in net.named_parameters()
    }
    return alpha, train, val, buffers


def _second_order_and_numerical(
    net: nn.Module,
    alpha: torch.Tensor,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    *,
    xi: float,
    momentum: float,
    wd: float,
    r: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``second_order_arch_grads`` of the cell alpha, and the finite difference it should equal."""
    ours = second_order_arch_grads(
        net,
        {"cell": alpha.clone().requires_grad_(True)},
        train,
        val,
        xi=xi,
        momentum=momentum,
        weight_decay=wd,
        momentum_buffers=buffers,
        r=r,
    )["cell"]
    direct = numerical_grad(
        lambda a: unrolled_val_loss(
            net, a.requires_grad_(True), train, val, xi, momentum, wd, buffers
        ),
        alpha,
    )
    return ours, direct


def test_second_order_step_matches_a_finite_difference_of_the_unrolled_loss() -> None:
    torch.manual_seed(0)
    net = TinySmoothNet()
    alpha, train, val, buffers = _setup(net, (5,), 2, 3)
    # DARTS' epsilon = 0.01 / ||dL_val/dw'||
    ours, direct = _second_order_and_numerical(
        net, alpha, train, val, buffers, xi=0.5, momentum=0.9, wd=3e-4, r=0.01
    )
    first = first_order_arch_grads(net, {"cell": alpha.clone().requires_grad_(True)}, val)["cell"]
    assert torch.allclose(ours, direct, rtol=1e-2, atol=1e-6), (ours, direct)
    assert not torch.allclose(first, direct, rtol=1e-2, atol=1e-6)  # the unrolling matters


def test_second_order_step_on_the_nb201_supernet_is_exact_in_the_small_eps_limit() -> None:
    """On the real supernet (ReLU kinks) the Hessian term is exact as eps -> 0."""
    torch.manual_seed(0)
    net = NB201Supernet(C=2, N=1, num_classes=3, in_channels=1)
    alpha, train, val, buffers = _setup(net, (1, 6, 6), 6, 5)
    ours, direct = _second_order_and_numerical(
        net, alpha, train, val, buffers, xi=0.1, momentum=0.9, wd=5e-4, r=1e-6
    )
    assert torch.allclose(ours, direct, rtol=1e-3, atol=1e-7), float((ours - direct).abs().max())


# --- options and config checks ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"orderr": 2}, "trainable_args.orderr: unknown option; known options: ["),
        ({"order": 3}, "trainable_args.order: input should be 1 or 2, got 3"),
        ({"arch_lr": "fast"}, "trainable_args.arch_lr: input should be a valid number"),
        ({"arch_lr": -1}, "trainable_args.arch_lr: input should be greater than 0, got -1"),
        (
            {"remedy": "pray"},
            "trainable_args.remedy: input should be 'early_stop' or 'darts_minus', got 'pray'",
        ),
        ({"arch_betas": [0.5]}, "trainable_args.arch_betas.1: field required, got [0.5]"),
        (
            {"train_portion": 1.0},
            "trainable_args.train_portion: input should be less than 1, got 1.0",
        ),
        (
            {"collapse_threshold": True},
            "trainable_args.collapse_threshold: must be a number, not true/false, got True",
        ),
    ],
)
def test_bad_options_are_named(args: dict[str, Any], message: str) -> None:
    opts, errors = parse_options(DartsOptions, args)
    assert opts is None
    assert any(e.startswith(message) for e in errors), errors


def test_gdas_temperature_must_decrease() -> None:
    errors = parse_options(GdasOptions, {"tau_max": 1.0, "tau_min": 2.0})[1]
    assert errors == ["trainable_args.tau_min: must not exceed tau_max (1.0), got 2.0"]


def test_good_options_are_coerced() -> None:
    opts, errors = parse_options(
        DartsOptions, {"order": 1, "arch_lr": 1, "arch_betas": [0, 0.9], "remedy": None}
    )
    assert errors == [] and isinstance(opts, DartsOptions)
    assert opts.arch_lr == 1.0 and isinstance(opts.arch_lr, float)
    assert opts.arch_betas == (0.0, 0.9) and opts.order == 1
    assert parse_options(DartsOptions, {"arch_betas": [0.5, 1.0]})[1] == [
        "trainable_args.arch_betas.1: input should be less than 1, got 1.0"
    ]


@pytest.mark.parametrize(
    ("sections", "field"),
    [
        (
            {"space": "mlp", "space_args": {}},
            "space: one-shot trainable 'darts' searches a supernet",
        ),
        (
            {"strategy": {"name": "evolution"}},
            "strategy.name: 'evolution' learns from the proposed arch",
        ),
        ({"objective": {"constraints": ["params <= 1e5"]}}, "objective.constraints:"),
        ({"data": {"name": "wine"}, "space": "nb201"}, "data.name: one-shot supernets need images"),
        ({"trainable_args": {"order": 0}}, "trainable_args.order:"),
        ({"scheduler": {"name": "pbt_evolution"}}, "scheduler.name: pbt_evolution"),
    ],
)
def test_check_config_rejects_misconfigurations_by_field(
    tmp_path: Path, sections: dict[str, Any], field: str
) -> None:
    exp = load_config(small_experiment(tmp_path, trainable="darts", **sections))
    with pytest.raises(ConfigError) as info:
        check_experiment(exp)
    assert any(line.startswith(field) for line in info.value.errors), info.value.errors


def test_example_configs_validate() -> None:
    for name in ("darts-nb201.yaml", "enas-nb201.yaml"):
        check_experiment(load_config(Path(__file__).resolve().parents[1] / "examples" / name))


# --- the trainables, driven directly ---------------------------------------------------------
def make_trainable(
    cls: type, tmp_path: Path, trainable_args: dict[str, Any], *, epochs: int = 2, **space: Any
) -> Any:
    return make_oneshot_trainable(
        cls, tmp_path, epochs=epochs, trainable_args=trainable_args, **space
    )


def test_darts_second_order_moves_the_arch_weights_and_derives_a_valid_arch(tmp_path: Path) -> None:
    trainable = make_trainable(DartsTrainable, tmp_path, {"order": 2, "arch_lr": 0.01})
    before = {k: a.detach().clone() for k, a in trainable.alphas.items()}
    results = [trainable.train() for _ in range(2)]
    assert [r["epoch"] for r in results] == [1, 2] and results[-1]["done"] is True
    moved = max(float((a.detach() - before[k]).abs().max()) for k, a in trainable.alphas.items())
    assert moved > 0.01
    assert results[-1]["arch_entropy"] < results[0]["arch_entropy"] <= 1.6095
    arch = results[-1]["arch"]
    trainable.space.validate(arch)
    assert json.loads(results[-1]["derived_arch"]) == arch
    assert results[-1]["arch_str"] == trainable.space.to_string(arch)
    assert 0.0 <= results[-1]["collapse"] <= 1.0 and results[-1]["params"] > 0
    assert json.loads((Path(trainable.logdir) / DERIVED_ARCH_FILE).read_text()) == arch


def test_darts_checkpoint_restores_the_search(tmp_path: Path) -> None:
    a = make_trainable(DartsTrainable, tmp_path / "a", {"order": 1, "arch_lr": 0.01}, epochs=3)
    a.train()
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    a.save_checkpoint(str(ckpt))
    assert json.loads((ckpt / DERIVED_ARCH_FILE).read_text()) == a.arch
    ra = a.train()
    b = make_trainable(DartsTrainable, tmp_path / "b", {"order": 1, "arch_lr": 0.01}, epochs=3)
    b.load_checkpoint(str(ckpt))
    rb = b.train()
    assert rb["epoch"] == 2
    for key in ("train_loss", "val_loss", "arch_str", "arch_entropy"):
        assert ra[key] == rb[key], key


def test_early_stop_remedy_stops_on_collapse_and_reports_the_last_healthy_arch(
    tmp_path: Path,
) -> None:
    # Every op of this space is parameter-free: the indicator is 1.0 from the first epoch.
    trainable = make_trainable(
        DartsTrainable,
        tmp_path,
        {"order": 1, "remedy": "early_stop", "collapse_threshold": 0.5},
        epochs=5,
        space_args={"C": 4, "N": 1, "ops": ["skip_connect", "avg_pool_3x3"]},
    )
    result = trainable.train()
    assert result["collapse"] == 1.0 and result["collapse_warning"] is True
    assert result["done"] is True and result["stop_reason"] == "collapse"


def test_darts_minus_adds_a_decaying_auxiliary_skip(tmp_path: Path) -> None:
    trainable = make_trainable(
        DartsTrainable, tmp_path, {"order": 1, "remedy": "darts_minus"}, epochs=3
    )
    assert trainable.aux_skip() == 1.0
    betas = [trainable.train()["aux_skip"] for _ in range(3)]
    assert betas[0] > betas[1] > betas[2] == 0.0


def test_darts_on_the_darts_space_derives_a_valid_genotype(tmp_path: Path) -> None:
    trainable = make_trainable(
        DartsTrainable,
        tmp_path,
        {"order": 1, "arch_lr": 0.01, "search_args": {"C": 2, "layers": 3}},
        epochs=1,
        space="darts",
        space_args={"C": 2, "layers": 3},
    )
    result = trainable.train()
    trainable.space.validate(result["arch"])
    assert result["arch_str"].startswith("Genotype(normal=[")
    assert {"normal", "reduce"} == set(trainable.alphas)


def test_gumbel_path_is_one_hot_with_straight_through_gradients() -> None:
    alpha = torch.zeros(6, 5, requires_grad=True)
    weights, sample = gumbel_path({"cell": alpha}, 1.0, torch.Generator().manual_seed(0))
    w = weights["cell"]
    assert torch.equal(w.detach().sum(-1), torch.ones(6))
    assert [int(i) for i in w.detach().argmax(-1)] == sample["cell"]
    (w * torch.arange(5.0)).sum().backward()
    assert alpha.grad is not None and float(alpha.grad.abs().sum()) > 0


def test_gdas_searches_and_derives(tmp_path: Path) -> None:
    trainable = make_trainable(GdasTrainable, tmp_path, {"arch_lr": 0.01, "tau_max": 5.0}, epochs=2)
    before = trainable.alphas["cell"].detach().clone()
    results = [trainable.train() for _ in range(2)]
    assert results[0]["tau"] == 5.0 and results[1]["tau"] == pytest.approx(0.1)
    assert not torch.equal(before, trainable.alphas["cell"].detach())
    trainable.space.validate(results[-1]["arch"])


# --- end to end through `raynas run` ---------------------------------------------------------
@pytest.mark.slow
def test_darts_end_to_end_through_raynas_run(tmp_path: Path, local_ray: None) -> None:
    result, lasts = run_oneshot(tmp_path, "darts", {"order": 2, "arch_lr": 0.01})
    space = raynas.get_space("nb201", C=4, N=1)
    for tdir, last in lasts:
        arch = json.loads(Path(tdir, DERIVED_ARCH_FILE).read_text())
        assert last["arch"] == arch == json.loads(last["derived_arch"])
        assert last["arch_str"] == space.to_string(arch) and last["epoch"] == 2
        row = result.trials[result.trials["trial_dir"] == tdir].iloc[0]
        assert row["arch"] == last["arch_str"]
        assert row["arch.cell.edge_0_1"] == arch["cell"]["edge_0_1"]  # the derived arch
    # the analysis of a one-shot experiment: one row per supernet, curves with its own metrics
    assert {"arch_entropy", "val_acc"} <= set(result.curves.columns)
    assert len(result.curves) == 2 * len(result.trials)  # one row per epoch
    # export refuses a supernet trial and says how to get a trained child
    with pytest.raises(ConfigError, match=r"one-shot search.*raynas retrain"):
        export_trial(result, tmp_path / "exported", best=True)
