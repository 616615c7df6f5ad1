"""Unit tests of the search-space DSL (``raynas.space``): primitives, cells, genomes, YAML."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray.tune.search.sample import Categorical, Integer, LogUniform
from ray.tune.search.sample import Float as TuneFloat

from raynas.registry import get_space, resolve_space
from raynas.space import (
    Cell,
    Choice,
    Float,
    Int,
    InvalidArchitecture,
    Repeat,
    Space,
    SpaceDefinitionError,
    UnsupportedOperation,
)
from raynas.space.compile import SubspaceDomain
from raynas.space.primitives import Const
from tests.archs import NB201_BEST

NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


def values(space: Space, n: int = 200, seed: int = 0) -> list[dict[str, Any]]:
    return [space.sample(seed + i) for i in range(n)]


# --------------------------------------------------------------------------------------
# Primitives
# --------------------------------------------------------------------------------------


def test_choice_sample_validate_cardinality_enumerate() -> None:
    space = Space({"act": Choice(["relu", "gelu", "tanh"])})
    assert {a["act"] for a in values(space, 60)} == {"relu", "gelu", "tanh"}
    assert space.cardinality == 3
    assert list(space.enumerate()) == [{"act": "relu"}, {"act": "gelu"}, {"act": "tanh"}]
    space.validate({"act": "gelu"})
    with pytest.raises(InvalidArchitecture, match=r"^arch\.act: 'elu' is not one of"):
        space.validate({"act": "elu"})


def test_choice_keeps_bool_int_and_float_apart() -> None:
    space = Space({"flag": Choice([True, False]), "n": Choice([0, 1])})
    space.validate({"flag": False, "n": 1})
    with pytest.raises(InvalidArchitecture, match=r"^arch\.flag: 1 is not one of \[True, False\]"):
        space.validate({"flag": 1, "n": 1})
    with pytest.raises(InvalidArchitecture, match=r"^arch\.n: True is not one of \[0, 1\]"):
        space.validate({"flag": True, "n": True})


def test_int_sample_validate_cardinality_enumerate() -> None:
    space = Space({"depth": Int(1, 4)})
    assert {a["depth"] for a in values(space, 80)} == {1, 2, 3, 4}
    assert space.cardinality == 4
    assert [a["depth"] for a in space.enumerate()] == [1, 2, 3, 4]


def test_int_step_grid() -> None:
    node = Int(16, 128, step=16)
    assert node.values() == [16, 32, 48, 64, 80, 96, 112, 128]
    space = Space({"width": node})
    assert space.cardinality == 8
    assert {a["width"] for a in values(space, 200)} == set(node.values())
    ragged = Space({"k": Int(0, 10, step=3)})  # high is off the grid
    assert [a["k"] for a in ragged.enumerate()] == [0, 3, 6, 9]
    with pytest.raises(InvalidArchitecture, match=r"^arch\.k: 10 must be .* in steps of 3"):
        ragged.validate({"k": 10})


def test_float_log_sampling_stays_in_bounds_and_is_log_uniform() -> None:
    space = Space({"lr": Float(1e-4, 1e-1, log=True)})
    lrs = np.array([a["lr"] for a in values(space, 2000)])
    assert lrs.min() >= 1e-4 and lrs.max() <= 1e-1
    # log-uniform: a third of the mass per decade; uniform would put 90% in the top decade
    assert 0.28 < np.mean(lrs < 1e-3) < 0.39
    assert 0.28 < np.mean(lrs > 1e-2) < 0.39
    assert space.cardinality is None
    assert space.features({"lr": 1e-4}).tolist() == [0.0]
    assert space.features({"lr": 1e-1}).tolist() == [1.0]
    assert space.features({"lr": 10**-2.5}).tolist() == pytest.approx([0.5])


def test_float_linear_and_stepped() -> None:
    linear = Space({"p": Float(0.0, 0.5)})
    ps = np.array([a["p"] for a in values(linear, 1000)])
    assert ps.min() >= 0.0 and ps.max() <= 0.5
    assert 0.4 < np.mean(ps < 0.25) < 0.6
    stepped = Space({"p": Float(0.0, 0.5, step=0.1)})
    assert stepped.cardinality == 6
    assert [a["p"] for a in stepped.enumerate()] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert {a["p"] for a in values(stepped, 200)} == {0.0, 0.1, 0.2, 0.3, 0.4, 0.5}
    stepped.validate({"p": 0.30000000000000004})  # float noise is on the grid
    assert stepped.canonical({"p": 0.30000000000000004}) == {"p": 0.3}
    with pytest.raises(InvalidArchitecture, match=r"^arch\.p: 0\.25 must be 0\.0 \+ k \* 0\.1"):
        stepped.validate({"p": 0.25})


def test_float_accepts_ints_and_canonicalises_to_float() -> None:
    space = Space({"x": Float(0.0, 2.0)})
    assert space.canonical({"x": 1}) == {"x": 1.0}
    assert space.arch_id({"x": 1}) == space.arch_id({"x": 1.0})


def test_repeat_lengths() -> None:
    space = Space({"layers": Repeat({"w": Choice([8, 16])}, min=1, max=3)})
    assert {len(a["layers"]) for a in values(space, 100)} == {1, 2, 3}
    assert space.cardinality == 2 + 4 + 8
    members = list(space.enumerate())
    assert len(members) == 14
    assert members[0] == {"layers": [{"w": 8}]}
    empty_ok = Space({"r": Repeat(Choice(["a", "b"]), min=0, max=2)})
    assert empty_ok.cardinality == 1 + 2 + 4
    assert {"r": []} in list(empty_ok.enumerate())
    assert empty_ok.root.default() == {"r": []}


def test_const_fields_are_part_of_every_member() -> None:
    space = Space({"version": 2, "tags": ["a", 1], "act": Choice(["relu"])})
    assert space.cardinality == 1
    assert space.sample(0) == {"version": 2, "tags": ["a", 1], "act": "relu"}
    assert len(space.genes) == 1  # the one-option choice
    with pytest.raises(UnsupportedOperation, match="single member"):
        space.mutate(space.sample(0), 0)
    assert space.neighbours(space.sample(0)) == []


def optimizer_space() -> Space:
    return Space(
        {
            "optim": Choice(
                [
                    {
                        "name": "sgd",
                        "momentum": Choice([0.0, 0.9]),
                        "nesterov": Choice([False, True]),
                    },
                    {"name": "adam", "beta1": Choice([0.8, 0.9, 0.95])},
                    "lbfgs",
                ]
            )
        }
    )


def test_nested_choice_conditions() -> None:
    space = optimizer_space()
    assert space.cardinality == 4 + 3 + 1
    seen = set()
    for arch in values(space, 100):
        optim = arch["optim"]
        if optim == "lbfgs":
            seen.add("lbfgs")
        elif optim["name"] == "sgd":
            assert set(optim) == {"name", "momentum", "nesterov"}
            seen.add("sgd")
        else:
            assert set(optim) == {"name", "beta1"}
            seen.add("adam")
    assert seen == {"sgd", "adam", "lbfgs"}
    members = list(space.enumerate())
    assert len(members) == 8 and {"optim": "lbfgs"} in members
    with pytest.raises(InvalidArchitecture, match=r"^arch\.optim\.momentum: 0\.5 is not one of"):
        space.validate({"optim": {"name": "sgd", "momentum": 0.5, "nesterov": True}})
    # a bad value in the second branch: see test_choice_error_comes_from_the_matching_branch


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Choice([]), "at least one option"),
        (lambda: Choice("ab"), "must be a list"),
        (lambda: Choice([1, 1.0]), "must be distinct"),
        (lambda: Int(3, 1), r"low <= high"),
        (lambda: Int(0, 5, step=0), "step must be >= 1"),
        (lambda: Int(0.5, 2), "Int low must be an integer, got 0.5"),
        (lambda: Int(True, 2), "Int low must be an integer, got True"),
        (lambda: Float(1.0, 0.0), "low <= high"),
        (lambda: Float(0.0, 1.0, log=True), "log=True.* low > 0"),
        (lambda: Float(0.0, math.inf), "finite"),
        (lambda: Float(0.0, 1.0, step=0), "step must be > 0"),
        (lambda: Repeat(1, min=-1, max=2), r"0 <= min <= max"),
        (lambda: Repeat(1, min=3, max=2), r"0 <= min <= max"),
        (lambda: Cell([], nodes=2), "non-empty list"),
        (lambda: Cell(["a", "a"], nodes=2), "distinct"),
        (lambda: Cell(["a"], nodes=0), "nodes must be an integer >= 1"),
        (lambda: Cell(["a"], nodes=2, mode="graph"), "mode must be one of"),
        (lambda: Cell(["a"], nodes=2, mode="nodes", inputs_per_node=2), "inputs_per_node"),
        (lambda: Space(Choice([1, 2])), "root must be a mapping"),
        (lambda: Space({1: Choice([1, 2])}), "keys must be strings"),
    ],
)
def test_malformed_definitions_raise_space_definition_error(
    make: Callable[[], Any], message: str
) -> None:
    with pytest.raises(SpaceDefinitionError, match=message):
        make()


# --------------------------------------------------------------------------------------
# Cells
# --------------------------------------------------------------------------------------


def test_cell_edges_mode_names_edges_from_to() -> None:
    cell = Cell(NB201_OPS, nodes=3)
    assert cell.edge_names() == [
        "edge_0_1",
        "edge_0_2",
        "edge_1_2",
        "edge_0_3",
        "edge_1_3",
        "edge_2_3",
    ]
    space = Space({"cell": cell})
    assert space.cardinality == 5**6
    assert set(space.sample(0)["cell"]) == set(cell.edge_names())
    two_inputs = Cell(["a", "b"], nodes=2, input_nodes=2)
    assert two_inputs.edge_names() == ["edge_0_2", "edge_1_2", "edge_0_3", "edge_1_3", "edge_2_3"]
    assert Space({"c": two_inputs}).cardinality == 2**5


def test_cell_nodes_mode_structure_and_cardinality() -> None:
    cell = Cell(["a", "b", "c"], nodes=3, input_nodes=2, mode="nodes")
    space = Space({"cell": cell})
    # node j picks 2 of its j predecessors and an op for each
    assert space.cardinality == (1 * 9) * (3 * 9) * (6 * 9)
    for arch in values(space, 50):
        assert set(arch["cell"]) == {"node_2", "node_3", "node_4"}
        for j in (2, 3, 4):
            node = arch["cell"][f"node_{j}"]
            assert node["inputs"] == sorted(set(node["inputs"]))
            assert len(node["inputs"]) == 2 and all(0 <= i < j for i in node["inputs"])
            assert len(node["ops"]) == 2 and set(node["ops"]) <= {"a", "b", "c"}


def test_cell_nodes_mode_canonical_sorting() -> None:
    space = Space({"cell": Cell(["a", "b", "c"], nodes=2, input_nodes=2, mode="nodes")})
    rest = {"node_3": {"inputs": [0, 2], "ops": ["c", "c"]}}
    swapped = {"cell": {"node_2": {"inputs": [1, 0], "ops": ["b", "a"]}, **rest}}
    ordered = {"cell": {"node_2": {"inputs": [0, 1], "ops": ["a", "b"]}, **rest}}
    space.validate(swapped)
    assert space.canonical(swapped) == ordered
    assert space.arch_id(swapped) == space.arch_id(ordered)
    assert space.encode(swapped) == space.encode(ordered)
    assert space.features(swapped).tolist() == space.features(ordered).tolist()
    other = {"cell": {"node_2": {"inputs": [0, 1], "ops": ["b", "a"]}, **rest}}
    assert space.arch_id(other) != space.arch_id(ordered)  # ops follow their inputs


# --------------------------------------------------------------------------------------
# Genome, mask, features
# --------------------------------------------------------------------------------------


def small_conditional_space() -> Space:
    return Space(
        {
            "b": Choice([{"k": Choice([3, 5])}, "none"]),
            "r": Repeat(Choice(["a", "b"]), min=0, max=2),
            "lr": Float(0.0, 1.0),
        }
    )


def test_genome_layout_mask_and_inactive_branches() -> None:
    space = small_conditional_space()
    assert [g.path for g in space.genes] == [
        "arch.b",
        "arch.b<0>.k",
        "arch.r.len",
        "arch.r[0]",
        "arch.r[1]",
        "arch.lr",
    ]
    arch = {"b": "none", "r": ["b"], "lr": 0.25}
    assert space.encode(arch) == [1.0, 0.0, 1.0, 1.0, 0.0, 0.25]
    assert space.active_mask(arch) == [True, False, True, True, False, True]
    assert space.decode(space.encode(arch)) == arch
    other = {"b": {"k": 5}, "r": [], "lr": 1.0}
    assert space.encode(other) == [0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    assert space.active_mask(other) == [True, True, True, False, False, True]
    assert space.decode(space.encode(other)) == other


def test_decode_ignores_inactive_genes() -> None:
    space = small_conditional_space()
    arch = {"b": "none", "r": ["b"], "lr": 0.25}
    genome = space.encode(arch)
    genome[1] = 1.0  # the inactive k of the unused branch
    genome[4] = 1.0  # the second repeat element, beyond the length
    assert space.decode(genome) == arch


def test_decode_rejects_bad_genomes() -> None:
    space = small_conditional_space()
    with pytest.raises(InvalidArchitecture, match=r"^genome: must have 6 genes"):
        space.decode([0.0] * 5)
    with pytest.raises(InvalidArchitecture, match=r"^genome: choice index 2 out of range"):
        space.decode([2.0, 0.0, 0.0, 0.0, 0.0, 0.5])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_decode_rejects_non_finite_genes(bad: float) -> None:
    """A surrogate / GA may produce NaN or inf genes: decode must say InvalidArchitecture.

    Today a discrete gene hits ``int(round(nan))`` (ValueError) or ``int(round(inf))``
    (OverflowError, not even a ValueError).
    """
    space = small_conditional_space()
    genome = [0.0, 0.0, 1.0, 0.0, 0.0, 0.5]
    genome[0] = bad
    with pytest.raises(InvalidArchitecture, match=r"^genome"):
        space.decode(genome)


def test_features_fixed_length_and_values() -> None:
    space = small_conditional_space()
    assert space.feature_size == 12
    for arch in values(space, 30):
        f = space.features(arch)
        assert f.shape == (12,) and f.dtype == np.float32
    # b one-hot, k one-hot (zero: inactive), then the repeat: length ratio and per slot a
    # presence flag + one-hot (the second slot is empty), then lr scaled to [0, 1]
    f = space.features({"b": "none", "r": ["b"], "lr": 0.25})
    assert f.tolist() == [0, 1, 0, 0, 0.5, 1, 0, 1, 0, 0, 0, 0.25]
    for name in ("nb201", "darts", "mobilenet", "mlp"):
        s = get_space(name)
        assert {s.features(a).shape for a in values(s, 10)} == {(s.feature_size,)}


def test_enumerate_refuses_huge_and_continuous_spaces() -> None:
    with pytest.raises(UnsupportedOperation, match=r"limited to 1,000,000 members"):
        Space({"x": Int(0, 2_000_000)}).enumerate()
    with pytest.raises(UnsupportedOperation, match="limited to"):
        get_space("darts").enumerate()
    with pytest.raises(UnsupportedOperation, match="discrete space"):
        Space({"x": Float(0.0, 1.0), "y": Choice([1, 2])}).enumerate()


def test_neighbours_refuse_continuous_decisions() -> None:
    space = Space({"x": Float(0.0, 1.0), "y": Choice([1, 2])})
    with pytest.raises(UnsupportedOperation, match="continuous"):
        space.neighbours(space.sample(0))
    branch = Space({"b": Choice([{"lr": Float(0.0, 1.0)}, "fixed"])})
    assert branch.neighbours({"b": "fixed"}) == [{"b": {"lr": 0.0}}]


def test_neighbours_of_choice_repeat_and_int() -> None:
    space = Space(
        {
            "b": Choice([{"k": Choice([3, 5])}, "none"]),
            "r": Repeat(Choice(["a", "b"]), min=0, max=2),
            "w": Int(0, 100),
        }
    )
    arch = {"b": "none", "r": ["b"], "w": 50}
    got = space.neighbours(arch)
    assert sorted(got, key=str) == sorted(
        [
            {"b": {"k": 3}, "r": ["b"], "w": 50},  # the other branch at its default
            {"b": "none", "r": [], "w": 50},  # one element fewer
            {"b": "none", "r": ["b", "a"], "w": 50},  # one more, at its default
            {"b": "none", "r": ["a"], "w": 50},
            {"b": "none", "r": ["b"], "w": 49},  # a large Int moves one step
            {"b": "none", "r": ["b"], "w": 51},
        ],
        key=str,
    )


def test_nb201_neighbours_change_one_edge() -> None:
    space = get_space("nb201")
    arch = space.sample(3)
    nbs = space.neighbours(arch)
    assert len(nbs) == 6 * 4
    for nb in nbs:
        diff = [e for e in arch["cell"] if arch["cell"][e] != nb["cell"][e]]
        assert len(diff) == 1


def test_mutate_and_crossover_are_seeded_and_valid() -> None:
    space = get_space("mobilenet")
    a, b = space.sample(0), space.sample(1)
    assert space.mutate(a, 7) == space.mutate(a, 7)
    assert space.crossover(a, b, 7) == space.crossover(a, b, 7)
    space.validate(space.crossover(a, b, np.random.default_rng(3)))


# --------------------------------------------------------------------------------------
# Identity, strings, compilation
# --------------------------------------------------------------------------------------


def test_arch_id_is_stable_and_independent_of_key_order() -> None:
    nb201 = get_space("nb201")
    best = nb201.from_string(NB201_BEST)
    # Golden values: ids are stored in experiment results; changing them orphans old runs.
    assert nb201.arch_id(best) == "ce9b719118ec04a1"
    mlp = get_space("mlp")
    arch = {"layers": [{"width": 64}], "activation": "relu", "dropout": 0.1}
    assert mlp.arch_id(arch) == "6314daa6c23a7557"
    reordered = {"dropout": 0.1, "activation": "relu", "layers": [{"width": 64}]}
    assert mlp.arch_id(reordered) == mlp.arch_id(arch)


def test_base_space_string_form_is_canonical_json() -> None:
    space = Space({"b": Choice([1, 2]), "a": Float(0.0, 1.0)})
    text = space.to_string({"b": 2, "a": 0.5})
    assert text == '{"a":0.5,"b":2}'
    assert space.from_string(text) == {"b": 2, "a": 0.5}
    with pytest.raises(InvalidArchitecture, match=r"^arch: not valid JSON"):
        space.from_string("{a: 1")


def test_to_tune_uses_tune_domains_where_it_can() -> None:
    space = Space(
        {
            "act": Choice(["relu", "gelu"]),
            "depth": Int(1, 4),
            "lr": Float(1e-4, 1e-1, log=True),
            "p": Float(0.0, 0.5),
            "block": Choice([{"k": Choice([3, 5])}, "none"]),
            "layers": Repeat(Choice([8, 16]), min=1, max=2),
            "fixed": 3,
        }
    )
    tuned = space.to_tune()
    assert isinstance(tuned["act"], Categorical)
    assert isinstance(tuned["depth"], Integer)
    assert isinstance(tuned["lr"], TuneFloat)
    assert isinstance(tuned["lr"].get_sampler(), LogUniform)
    assert isinstance(tuned["p"], TuneFloat)
    assert isinstance(tuned["block"], SubspaceDomain)
    assert isinstance(tuned["layers"], SubspaceDomain)
    assert tuned["fixed"] == 3


def test_from_external_fixes_tuples_numpy_and_float_ints() -> None:
    space = Space(
        {
            "w": Int(1, 8),
            "k": Choice([3, 5]),
            "layers": Repeat(Choice([8, 16]), min=1, max=2),
            "lr": Float(0.0, 1.0),
        }
    )
    raw = {"w": np.int64(3), "k": 5.0, "layers": (np.int32(8), 16), "lr": np.float32(0.5)}
    assert space.from_hyperopt(raw) == {"w": 3, "k": 5, "layers": [8, 16], "lr": 0.5}
    assert space.from_tune({**raw, "w": 3.0}) == {"w": 3, "k": 5, "layers": [8, 16], "lr": 0.5}
    with pytest.raises(InvalidArchitecture, match=r"^arch\.w: 3\.5"):
        space.from_tune({**raw, "w": 3.5})


def test_to_dict_of_primitives() -> None:
    assert Float(1e-4, 1e-1, log=True).to_dict() == {
        "_type": "float",
        "low": 1e-4,
        "high": 0.1,
        "log": True,
    }
    assert Int(16, 64, step=16).to_dict() == {"_type": "int", "low": 16, "high": 64, "step": 16}
    assert Repeat(Choice([1, 2]), min=0, max=2).to_dict() == {
        "_type": "repeat",
        "node": {"_type": "choice", "options": [1, 2]},
        "min": 0,
        "max": 2,
    }
    assert Const({"_type": "x"}).to_dict() == {"_type": "const", "value": {"_type": "x"}}
    space = Space({"tag": Const({"_type": "x"})})
    assert Space.from_dict(space.to_dict()).sample(0) == {"tag": {"_type": "x"}}


# --------------------------------------------------------------------------------------
# Invalid architectures: the message starts with the path and names the bad value
# --------------------------------------------------------------------------------------


def bad_arch_space() -> Space:
    return Space(
        {
            "width": Int(16, 128, step=16),
            "depth": Int(1, 8),
            "lr": Float(1e-4, 1e-1, log=True),
            "stages": Repeat({"kernel": Choice([3, 5, 7])}, min=1, max=3),
            "block": Choice(
                [{"type": "conv", "kernel": Choice([3, 5])}, {"type": "pool", "size": Int(2, 4)}]
            ),
            "cell": Cell(NB201_OPS, nodes=3),
            "dcell": Cell(["a", "b", "c"], nodes=2, input_nodes=2, mode="nodes"),
            "pair": [Choice(["x", "y"]), 1],
        }
    )


GOOD_ARCH: dict[str, Any] = {
    "width": 32,
    "depth": 4,
    "lr": 1e-3,
    "stages": [{"kernel": 3}, {"kernel": 7}],
    "block": {"type": "conv", "kernel": 5},
    "cell": {
        "edge_0_1": "none",
        "edge_0_2": "skip_connect",
        "edge_1_2": "nor_conv_1x1",
        "edge_0_3": "nor_conv_3x3",
        "edge_1_3": "avg_pool_3x3",
        "edge_2_3": "none",
    },
    "dcell": {
        "node_2": {"inputs": [0, 1], "ops": ["a", "b"]},
        "node_3": {"inputs": [1, 2], "ops": ["c", "a"]},
    },
    "pair": ["y", 1],
}


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], Any]:
    def edit(arch: dict[str, Any]) -> Any:
        target: Any = arch
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return arch

    return edit


def _delete(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], Any]:
    def edit(arch: dict[str, Any]) -> Any:
        target: Any = arch
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return arch

    return edit


BAD_ARCHS = [
    # (id, edit, message prefix, text naming the bad value)
    (
        "op-not-in-choice",
        _set(("cell", "edge_2_3"), "conv9"),
        "arch.cell.edge_2_3: 'conv9' is not one of ['none', 'skip_connect', ",
        "'conv9'",
    ),
    ("missing-key", _delete(("cell", "edge_1_3")), "arch.cell.edge_1_3: is missing", None),
    ("unknown-key", _set(("colour",), "red"), "arch.colour: unknown key; expected one of", None),
    ("str-for-int", _set(("depth",), "4"), "arch.depth: '4' must be an integer", "'4'"),
    ("float-for-int", _set(("depth",), 4.5), "arch.depth: 4.5 must be an integer", "4.5"),
    ("bool-for-int", _set(("depth",), True), "arch.depth: True must be an integer", "True"),
    ("int-too-big", _set(("depth",), 9), "arch.depth: 9 must be an integer in [1, 8]", "9"),
    (
        "int-off-grid",
        _set(("width",), 40),
        "arch.width: 40 must be an integer in [16, 128] in steps of 16",
        "40",
    ),
    ("float-too-big", _set(("lr",), 0.5), "arch.lr: 0.5 must be in [0.0001, 0.1]", "0.5"),
    ("float-nan", _set(("lr",), math.nan), "arch.lr: nan must be in", "nan"),
    ("float-inf", _set(("lr",), -math.inf), "arch.lr: -inf must be in", "-inf"),
    ("str-for-float", _set(("lr",), "0.01"), "arch.lr: '0.01' must be a number", "'0.01'"),
    (
        "repeat-too-long",
        _set(("stages",), [{"kernel": 3}] * 4),
        "arch.stages: must have between 1 and 3 items, got 4",
        "4",
    ),
    (
        "repeat-too-short",
        _set(("stages",), []),
        "arch.stages: must have between 1 and 3 items, got 0",
        "0",
    ),
    (
        "repeat-element",
        _set(("stages", 1, "kernel"), 4),
        "arch.stages[1].kernel: 4 is not one of [3, 5, 7]",
        "4",
    ),
    (
        "nested-choice-branch",
        _set(("block",), {"type": "conv", "kernel": 7}),
        "arch.block.kernel: 7 is not one of [3, 5]",
        "7",
    ),
    (
        "nodes-input-out-of-range",
        _set(("dcell", "node_3", "inputs"), [0, 5]),
        "arch.dcell.node_3.inputs",
        "5",
    ),
    (
        "nodes-duplicate-inputs",
        _set(("dcell", "node_3", "inputs"), [1, 1]),
        "arch.dcell.node_3.inputs",
        "1",
    ),
    (
        "nodes-ops-wrong-length",
        _set(("dcell", "node_2", "ops"), ["a"]),
        "arch.dcell.node_2.ops: must have exactly 2 items, got 1",
        "1",
    ),
    (
        "list-wrong-length",
        _set(("pair",), ["x", 1, 1]),
        "arch.pair: must have exactly 2 items, got 3",
        "3",
    ),
    ("const-mismatch", _set(("pair", 1), 2), "arch.pair[1]: 2 must be the constant 1", "2"),
    (
        "dict-not-mapping",
        _set(("block",), "conv"),
        "arch.block: must be a mapping, got str",
        "str",
    ),
]


@pytest.mark.parametrize(
    ("edit", "prefix", "bad_value"),
    [pytest.param(edit, prefix, bad, id=name) for name, edit, prefix, bad in BAD_ARCHS],
)
def test_invalid_architectures_name_path_and_value(
    edit: Callable[[dict[str, Any]], Any], prefix: str, bad_value: str | None
) -> None:
    space = bad_arch_space()
    space.validate(GOOD_ARCH)
    arch = edit(copy.deepcopy(GOOD_ARCH))
    with pytest.raises(InvalidArchitecture) as info:
        space.validate(arch)
    message = str(info.value)
    assert message.startswith(prefix), message
    assert message == f"{info.value.path}: {info.value.reason}"
    if bad_value is not None:
        assert bad_value in info.value.reason, message
    assert not space.is_valid(arch)


def test_invalid_architecture_that_is_not_a_mapping() -> None:
    with pytest.raises(InvalidArchitecture, match=r"^arch: must be a mapping, got list"):
        bad_arch_space().validate([])


def test_darts_duplicate_inputs_are_named() -> None:
    """The DARTS pair ``[2, 2]`` should be reported as such, not as "2 must be the constant 0".

    ``Cell`` declares the input pairs as ``Choice([[0, 1], [0, 2], ...])``, so each pair is a
    ``ListNode`` sub-space and the error comes from the first option's first element.
    """
    space = get_space("darts")
    arch = space.sample(0)
    arch["normal"]["node_3"]["inputs"] = [2, 2]
    with pytest.raises(InvalidArchitecture) as info:
        space.validate(arch)
    assert str(info.value).startswith("arch.normal.node_3.inputs: [2, 2] is not one of"), str(
        info.value
    )


@pytest.mark.parametrize(
    ("make", "arch", "prefix"),
    [
        (
            bad_arch_space,
            {**GOOD_ARCH, "block": {"type": "pool", "size": 5}},
            "arch.block.size: 5 must be an integer in [2, 4]",
        ),
        (
            bad_arch_space,
            {**GOOD_ARCH, "block": {"type": "pool2", "size": 3}},
            "arch.block.type: 'pool2' is not one of",
        ),
        (
            optimizer_space,
            {"optim": {"name": "adam", "beta1": 0.5}},
            "arch.optim.beta1: 0.5 is not one of [0.8, 0.9, 0.95]",
        ),
    ],
    ids=["value-in-second-branch", "unknown-tag", "optimizer-adam"],
)
def test_choice_error_comes_from_the_matching_branch(
    make: Callable[[], Space], arch: dict[str, Any], prefix: str
) -> None:
    """``{"type": "pool", "size": 5}`` must blame ``size=5``, not call ``size`` unknown."""
    with pytest.raises(InvalidArchitecture) as info:
        make().validate(copy.deepcopy(arch))
    assert str(info.value).startswith(prefix), str(info.value)


def test_overlapping_choice_options_are_refused_or_counted_once() -> None:
    try:
        space = Space({"c": Choice([{"k": Int(1, 3)}, {"k": Int(2, 4)}])})
    except SpaceDefinitionError:
        return
    ids = {space.arch_id(a) for a in space.enumerate()}
    assert space.cardinality == len(ids) == 4


# --------------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------------

GOOD_YAML = """\
name: yaml_space
description: a space from a file
space:
  lr: {_type: float, low: 1.0e-4, high: 1.0e-1, log: true}
  width: {_type: int, low: 16, high: 128, step: 16}
  layers:
    _type: repeat
    min: 1
    max: 3
    node: {units: {_type: choice, options: [32, 64]}}
  block:
    _type: choice
    options:
      - {type: conv, kernel: {_type: choice, options: [3, 5]}}
      - identity
  cell: {_type: cell, ops: [none, skip_connect, nor_conv_3x3], nodes: 3}
  dcell: {_type: cell, ops: [a, b], nodes: 2, input_nodes: 2, mode: nodes}
  seed: 7
"""


def test_space_from_yaml_samples_valid_archs(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(GOOD_YAML)
    space = Space.from_yaml(path)
    assert space.name == "yaml_space" and space.description == "a space from a file"
    for arch in values(space, 30):
        space.validate(arch)
        assert 1e-4 <= arch["lr"] <= 1e-1
        assert arch["width"] % 16 == 0 and 1 <= len(arch["layers"]) <= 3
        assert arch["seed"] == 7
        assert set(arch["cell"]) == {"edge_0_1", "edge_0_2", "edge_1_2", "edge_0_3"} | {
            "edge_1_3",
            "edge_2_3",
        }
    loaded = resolve_space(str(path))
    assert loaded.to_dict() == space.to_dict()
    with pytest.raises(SpaceDefinitionError, match="space_args"):
        resolve_space(str(path), {"C": 4})


def test_space_from_yaml_bare_mapping(tmp_path: Path) -> None:
    path = tmp_path / "bare.yml"
    path.write_text(
        "act: {_type: choice, options: [relu, gelu]}\ndepth: {_type: int, low: 1, high: 3}\n"
    )
    space = Space.from_yaml(path)
    assert space.name == "custom" and space.cardinality == 6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "layers: {_type: repeat, min: 1, max: 3, node: {_type: choise, options: [1, 2]}}",
            "space.layers.node._type: unknown type 'choise'",
        ),
        ("lr: {_type: float, low: 0.1}", "space.lr: float needs ['high']"),
        (
            "lr: {_type: float, low: 0.1, high: 1.0, logg: true}",
            "space.lr: unknown key(s) ['logg']",
        ),
        ("lr: {_type: float, low: 1.0, high: 0.1}", "space.lr: Float needs low <= high"),
        ("act: {_type: choice, options: []}", "space.act: Choice needs at least one option"),
        ("act: {_type: choice, options: relu}", "space.act: options must be a list"),
        ("w: {_type: int, low: a, high: 3}", "space.w: Int low must be an integer, got 'a'"),
        (
            "b: {_type: choice, options: [{k: {_type: int, low: 3, high: 1}}, pool]}",
            "space.b.options[0].k: Int needs low <= high",
        ),
        (
            "c: {_type: cell, ops: [a, b], nodes: 2, mode: node}",
            "space.c: Cell mode must be one of",
        ),
        ("r: {_type: repeat, node: 1, min: 3, max: 1}", "space.r: Repeat needs 0 <= min <= max"),
        ("name: x\nspace: {a: {_type: float, low: 1, high: 0}}", "space.a: Float needs low"),
        ("- 1\n- 2", "a space must be a mapping, got list"),
        ("", "a space must be a mapping, got NoneType"),
        ("lr: {_type: float, low: abc, high: 1.0}", "space.lr: "),
    ],
    ids=[
        "unknown-type",
        "missing-key",
        "unknown-key",
        "bad-bounds",
        "empty-choice",
        "options-not-list",
        "int-str-bound",
        "nested",
        "cell-mode",
        "repeat-bounds",
        "named-form",
        "top-level-list",
        "empty-file",
        "float-str-bound",
    ],
)
def test_malformed_yaml_space_files_name_the_path(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpaceDefinitionError) as info:
        Space.from_yaml(path)
    assert str(info.value).startswith(message), str(info.value)


def test_yaml_exponent_without_dot_is_accepted_or_explained(tmp_path: Path) -> None:
    """PyYAML reads ``1e-4`` (no dot) as the string ``'1e-4'``.

    ``Float`` turns it into a float when ``log`` is false, but with ``log: true`` it compares
    the raw string with 0 first and fails with a TypeError text that shows neither the value
    nor the fix. Either accept it like the linear case or name the value.
    """
    path = tmp_path / "lr.yaml"
    path.write_text("lr: {_type: float, low: 1e-4, high: 1e-1, log: true}\n")
    try:
        space = Space.from_yaml(path)
    except SpaceDefinitionError as err:
        assert str(err).startswith("space.lr: ") and "1e-4" in str(err), str(err)
    else:
        assert space.root.to_dict()["lr"]["low"] == 1e-4


def test_yaml_syntax_errors_and_missing_files_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(SpaceDefinitionError, match=r"broken\.yaml.* is not valid YAML"):
        Space.from_yaml(path)
    with pytest.raises(SpaceDefinitionError, match=r"nope\.yaml.* does not exist"):
        Space.from_yaml(tmp_path / "nope.yaml")
