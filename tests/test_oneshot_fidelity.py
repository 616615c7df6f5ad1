"""One-shot fidelity to the papers: lr schedule length, search vs evaluation size, GDAS's step
order and straight-through path, ENAS's held-out derive scoring."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

import raynas
from raynas.experiment.config import ConfigError, Experiment
from raynas.experiment.config_check import check_experiment
from raynas.experiment.config_load import load_config
from search_spaces.models.supernet import SIZE_ARGS
from tests.conftest import small_experiment
from tests.test_oneshot_darts import make_trainable
from trainables.cost import measure_cost
from trainables.oneshot.common import SEARCH_ARGS, parse_options, parse_search_args
from trainables.oneshot.darts import DartsTrainable
from trainables.oneshot.enas import EnasOptions, EnasTrainable
from trainables.oneshot.gdas import GdasTrainable

torch.set_num_threads(1)

FAST_ARGS = {
    DartsTrainable: {"order": 1},
    GdasTrainable: {},
    EnasTrainable: {"controller_steps": 2, "derive_samples": 2},
}


def record_weight_steps(trainable: Any, value: Any) -> list[float]:
    """``value()`` just before every weight step the search takes."""
    seen: list[float] = []
    step = trainable.weight_step

    def recording(loss: torch.Tensor) -> None:
        seen.append(float(value()))
        step(loss)

    trainable.weight_step = recording
    return seen


def load_search_experiment(
    tmp_path: Path,
    trainable: str,
    space: str,
    trainable_args: dict[str, Any],
    space_args: dict[str, Any],
) -> Experiment:
    """A one-shot search of ``space``, loaded but not checked; ``space_args`` (the evaluation
    network's size) replace ``small_experiment``'s, not merged with them."""
    exp = small_experiment(
        tmp_path, trainable=trainable, space=space, trainable_args=trainable_args
    )
    return load_config(exp | {"space_args": space_args})


def rows(x: torch.Tensor) -> set[tuple[float, ...]]:
    """The rows of a batch, each flattened to a tuple."""
    return {tuple(r.flatten().tolist()) for r in x}


# --- the lr schedule is sized on the steps taken -------------------------------------------
@pytest.mark.parametrize("cls", [DartsTrainable, GdasTrainable, EnasTrainable])
def test_lr_reaches_zero_exactly_at_the_last_step_with_an_uneven_split(
    tmp_path: Path, cls: type
) -> None:
    trainable = make_trainable(cls, tmp_path, {**FAST_ARGS[cls], "train_portion": 0.8})
    lrs = record_weight_steps(trainable, lambda: trainable.w_optimizer.param_groups[0]["lr"])
    results = [trainable.train() for _ in range(2)]
    steps = len(lrs)
    assert steps == 2 * math.ceil(round(0.8 * 192) / 64)  # every batch of the weight half
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * k / steps)) for k in range(steps)]
    assert lrs == pytest.approx(expected, abs=1e-12)  # cosine over the whole search
    assert min(lrs) > 0.0 and results[0]["lr"] == pytest.approx(0.05)  # half-way: half the lr
    assert results[-1]["lr"] == 0.0  # zero after the last step, not before


def test_darts_minus_beta_decays_to_zero_at_the_end_with_an_uneven_split(tmp_path: Path) -> None:
    trainable = make_trainable(
        DartsTrainable,
        tmp_path,
        {"order": 1, "remedy": "darts_minus", "darts_minus_beta": 0.5, "train_portion": 0.8},
        epochs=2,
    )
    betas = record_weight_steps(trainable, trainable.aux_skip)
    results = [trainable.train() for _ in range(2)]
    steps = len(betas)
    assert betas == pytest.approx([0.5 * (1 - k / steps) for k in range(steps)])
    assert betas[-1] > 0.0 and results[0]["aux_skip"] == pytest.approx(0.25)
    assert results[-1]["aux_skip"] == 0.0


# --- search size and evaluation size --------------------------------------------------------
def darts_cells(net: Any) -> tuple[int, int]:
    """``(cells, C)`` of a DARTS supernet (its stem has ``3 * C`` channels)."""
    return len(net.cells), net.stem[0].out_channels // 3


def test_darts_searches_at_8_cells_c16_and_evaluates_at_20_cells_c36_by_default(
    tmp_path: Path,
) -> None:
    trainable = make_trainable(DartsTrainable, tmp_path, {}, space="darts", space_args={})
    assert darts_cells(trainable.net) == (8, 16)  # DARTS' search network
    assert (trainable.space.C, trainable.space.layers) == (36, 20)  # its evaluation network


def test_nb201_searches_at_the_evaluation_size_unless_search_args_say_otherwise(
    tmp_path: Path,
) -> None:
    same = make_trainable(DartsTrainable, tmp_path / "a", {})
    assert same.net.stem[0].out_channels == 4 and len(same.net.cells) == 3 * 1 + 2
    other = make_trainable(DartsTrainable, tmp_path / "b", {"search_args": {"C": 8, "N": 2}})
    assert other.net.stem[0].out_channels == 8 and len(other.net.cells) == 3 * 2 + 2
    assert (other.space.C, other.space.N) == (4, 1)


def test_search_args_size_the_supernet_and_the_reported_cost_is_the_evaluation_network(
    tmp_path: Path,
) -> None:
    trainable = make_trainable(
        DartsTrainable,
        tmp_path,
        {"order": 1, "search_args": {"C": 2, "layers": 3}},
        epochs=1,
        space="darts",
        space_args={"C": 4, "layers": 5},
    )
    assert darts_cells(trainable.net) == (3, 2)
    result = trainable.train()
    arch = result["arch"]
    evaluation = trainable.space.build(arch, num_classes=10, in_channels=1)
    assert result["params"] == measure_cost(evaluation, (1, 8, 8), latency_repeats=1).params
    small = raynas.get_space("darts", C=2, layers=3).build(arch, num_classes=10, in_channels=1)
    assert result["params"] != measure_cost(small, (1, 8, 8), latency_repeats=1).params


@pytest.mark.parametrize(
    ("space", "search_args", "message"),
    [
        ("darts", {"layers": 2}, "trainable_args.search_args.layers: input should be greater than"),
        ("darts", {"C": 0}, "trainable_args.search_args.C: input should be greater than or equal"),
        (
            "darts",
            {"auxiliary": True},
            "trainable_args.search_args.auxiliary: unknown option; search_args takes ['C', 'layers']",
        ),
        (
            "nb201",
            {"layers": 8},
            "trainable_args.search_args.layers: unknown option; search_args takes ['C', 'N']",
        ),
        ("nb201", {"ops": ["none"]}, "trainable_args.search_args.ops: unknown option"),
        ("nb201", {"N": True}, "trainable_args.search_args.N: must be an integer, not true/false"),
        ("nb201", {"C": 2.5}, "trainable_args.search_args.C: input should be a valid integer"),
        ("nb201", [16, 5], "trainable_args.search_args: input should be a valid dictionary"),
    ],
)
def test_bad_search_args_are_named(
    tmp_path: Path, space: str, search_args: Any, message: str
) -> None:
    space_args = {"C": 4, "layers": 3} if space == "darts" else {"C": 4, "N": 1}
    exp = load_search_experiment(tmp_path, "darts", space, {"search_args": search_args}, space_args)
    with pytest.raises(ConfigError) as info:
        check_experiment(exp)
    assert any(e.startswith(message) for e in info.value.errors), info.value.errors
    with pytest.raises(ValueError, match=r"trainable_args\.search_args"):
        make_trainable(
            DartsTrainable,
            tmp_path / "t",
            {"search_args": search_args},
            space=space,
            space_args=space_args,
        )


def test_search_args_name_the_arguments_that_size_each_supernet() -> None:
    for space, cls in SEARCH_ARGS.items():
        assert tuple(cls.model_fields) == SIZE_ARGS[space]
        assert set(SIZE_ARGS[space]) <= set(vars(raynas.get_space(space)))
    assert parse_search_args("darts", None) == ({"C": 16, "layers": 8}, [])
    assert parse_search_args("nb201", {"N": 2}) == ({"C": None, "N": 2}, [])


def test_good_search_args_validate(tmp_path: Path) -> None:
    exp = load_search_experiment(
        tmp_path, "gdas", "darts", {"search_args": {"C": 8, "layers": 5}}, {"C": 16, "layers": 8}
    )
    check_experiment(exp)


# --- GDAS: weights first, then the architecture ---------------------------------------------
def test_gdas_steps_the_weights_on_the_weight_half_before_the_architecture(
    tmp_path: Path,
) -> None:
    trainable = make_trainable(GdasTrainable, tmp_path, {"train_portion": 0.75}, epochs=1)
    calls: list[tuple[str, int]] = []
    weight_step, arch_step = trainable.weight_step, trainable.arch_optimizer.step
    path_loss = trainable._path_loss
    seen: list[torch.Tensor] = []

    def spy_loss(x: torch.Tensor, y: torch.Tensor) -> Any:
        seen.append(x)
        return path_loss(x, y)

    def spy_weights(loss: torch.Tensor) -> None:
        calls.append(("weights", len(seen)))
        weight_step(loss)

    def spy_arch(*args: Any, **kwargs: Any) -> Any:
        calls.append(("arch", len(seen)))
        return arch_step(*args, **kwargs)

    trainable._path_loss, trainable.weight_step = spy_loss, spy_weights
    trainable.arch_optimizer.step = spy_arch
    trainable._search_epoch()
    steps = math.ceil(round(0.75 * 192) / 64)
    assert [c for c, _ in calls] == ["weights", "arch"] * steps
    # each weight step follows a forward on the weight half, each arch step one on the other
    w_rows, a_rows = rows(trainable.w_x), rows(trainable.a_x)
    for k, x in enumerate(seen):
        assert rows(x) <= (w_rows if k % 2 == 0 else a_rows), k


# --- ENAS: candidates are scored on data the controller never saw ---------------------------
def test_enas_derive_portion_is_held_out_from_weights_and_controller(tmp_path: Path) -> None:
    trainable = make_trainable(
        EnasTrainable,
        tmp_path,
        {"controller_steps": 3, "derive_samples": 3, "derive_portion": 0.25},
        epochs=1,
    )
    held, controller, weights = rows(trainable.d_x), rows(trainable.a_x), rows(trainable.w_x)
    assert len(held) == round(0.25 * 192) and len(weights) == 96 and len(controller) == 48
    assert not held & controller and not held & weights and not controller & weights
    scored: list[tuple[str, set[tuple[float, ...]]]] = []
    accuracy = trainable._accuracy
    phase = ["search"]

    def spy(decisions: list[int], x: torch.Tensor, y: torch.Tensor) -> float:
        scored.append((phase[0], rows(x)))
        return accuracy(decisions, x, y)

    derive = trainable._derive

    def spy_derive() -> Any:
        phase[0] = "derive"
        return derive()

    trainable._accuracy, trainable._derive = spy, spy_derive
    trainable.train()
    by_phase = {p: set().union(*(r for q, r in scored if q == p)) for p in ("search", "derive")}
    assert by_phase["search"] and by_phase["search"] <= controller  # the controller's rewards
    assert by_phase["derive"] == held  # every candidate on the whole held-out part
    assert len([1 for q, _ in scored if q == "derive"]) >= 1 + 3


def test_enas_derive_portion_must_leave_data_for_the_controller() -> None:
    errors = parse_options(EnasOptions, {"train_portion": 0.7, "derive_portion": 0.3})[1]
    assert errors == [
        "trainable_args.derive_portion: train_portion (0.7) + derive_portion must be < 1 to "
        "leave data for the controller, got 0.3"
    ]
    assert parse_options(EnasOptions, {"derive_portion": 0})[1] == [
        "trainable_args.derive_portion: input should be greater than 0, got 0"
    ]


def test_retrain_builds_the_evaluation_network_not_the_search_size(tmp_path: Path) -> None:
    from raynas.experiment.retrain import retrain_config

    search = load_search_experiment(
        tmp_path,
        "darts",
        "darts",
        {"order": 1, "search_args": {"C": 16, "layers": 8}},
        {"C": 36, "layers": 20},
    )
    check_experiment(search)
    exp = retrain_config(search.to_dict(), name="r", storage=str(tmp_path))
    assert exp.trainable == "classify" and exp.trainable_args == {}
    assert exp.space == "darts" and exp.space_args == {"C": 36, "layers": 20}
