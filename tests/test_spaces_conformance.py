"""Every registered space (and a custom DSL space) passes ``raynas.testing.spaces``.

Plus the facts the built-in spaces promise: NAS-Bench-201 and DARTS parameter counts of
published cells, the canonical NB201 string, DARTS genotype conversion, cardinalities, and
the registry's error messages.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

import raynas
from raynas import registry
from raynas.registry import RegistryError, get_space, list_spaces, register_space
from raynas.space import (
    Cell,
    Choice,
    Float,
    Int,
    InvalidArchitecture,
    Repeat,
    Space,
    UnsupportedOperation,
)
from raynas.testing import spaces as conformance
from tests.archs import NB201_BEST, NB201_SMALL

NB201_3_OPS = ["none", "skip_connect", "nor_conv_3x3"]


@dataclass(frozen=True)
class BuildCase:
    """Small space arguments, one input's shape and extra ``build`` arguments."""

    space_args: dict[str, Any]
    input_shape: tuple[int, ...]
    build_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def kwargs(self) -> dict[str, Any]:
        """``build`` keyword arguments: 10 classes, image channels from the input shape."""
        extra = {"in_channels": self.input_shape[0]} if len(self.input_shape) == 3 else {}
        return {"num_classes": 10, **extra, **self.build_kwargs}


#: Small, fast model configurations of each built-in space.
BUILD_CASES: dict[str, list[BuildCase]] = {
    "nb201": [
        BuildCase({"C": 4, "N": 1}, (1, 8, 8)),
        BuildCase({"C": 8, "N": 1}, (3, 16, 16)),
    ],
    "darts": [
        BuildCase({"C": 4, "layers": 3}, (3, 16, 16)),
        BuildCase({"C": 8, "layers": 5}, (1, 8, 8)),
        BuildCase({"C": 4, "layers": 3, "auxiliary": True, "drop_path_prob": 0.2}, (3, 16, 16)),
    ],
    "mobilenet": [BuildCase({}, (3, 16, 16)), BuildCase({}, (1, 8, 8))],
    "mlp": [BuildCase({}, (13,), {"in_features": 13})],
}


def custom_space() -> Space:
    """A user space with every DSL feature: log Float, stepped Int, nested Choice, Repeat, Cell."""
    return Space(
        {
            "lr": Float(1e-4, 1e-1, log=True),
            "width": Int(16, 128, step=16),
            "block": Choice(
                [
                    {"type": "conv", "kernel": Choice([3, 5]), "groups": Int(1, 4)},
                    {"type": "attn", "heads": Choice([2, 4, 8]), "drop": Float(0, 0.5, step=0.1)},
                    "identity",
                ]
            ),
            "stages": Repeat({"depth": Int(1, 3), "act": Choice(["relu", "gelu"])}, min=1, max=3),
            "cell": Cell(["a", "b", "c"], nodes=3, input_nodes=2, mode="nodes"),
            "version": 2,
        },
        name="custom_conformance",
    )


def discrete_custom_space() -> Space:
    """A discrete user space (so neighbours and enumeration apply) with an edges-mode cell."""
    return Space(
        {
            "width": Int(16, 64, step=16),
            "drop": Float(0.0, 0.5, step=0.25),
            "block": Choice([{"type": "conv", "kernel": Choice([3, 5])}, "identity"]),
            "stages": Repeat(Choice(["a", "b"]), min=0, max=2),
            "cell": Cell(["x", "y"], nodes=2),
            "fixed": [1, "two"],
        },
        name="discrete_conformance",
    )


#: The built-in spaces, read at collection, before any test's plugin registers its own.
BUILTIN_SPACES = list_spaces()
#: Spaces under test: (id, space_name or None for a custom space, space args).
SPACE_IDS = [*BUILTIN_SPACES, "nb201-3ops", "custom", "custom-discrete"]
_CUSTOM: dict[str, Callable[[], Space]] = {
    "custom": custom_space,
    "custom-discrete": discrete_custom_space,
}


def space_args_for(space_id: str) -> tuple[str, dict[str, Any]]:
    """Registry name and small arguments of a space id of :data:`SPACE_IDS`."""
    if space_id == "nb201-3ops":
        return "nb201", {"C": 4, "N": 1, "ops": NB201_3_OPS}
    cases = BUILD_CASES.get(space_id)
    return space_id, dict(cases[0].space_args) if cases else {}


@functools.cache
def space_for(space_id: str) -> Space:
    """The space of a space id (built once per test session)."""
    if space_id in _CUSTOM:
        return _CUSTOM[space_id]()
    name, args = space_args_for(space_id)
    return get_space(name, **args)


def _neighbours(space: Space) -> None:
    # DARTS neighbourhoods are 128 archs of slow-ish canonicalisation: one sample is enough
    conformance.check_neighbours(space, 1 if space.name == "darts" else 3)


#: The suite's checks with sizes that keep this module fast; nb201's full 15,625-member
#: enumeration is left to test_nb201_cardinality_and_enumeration (and nb201-3ops).
CHECKS: dict[str, Callable[[Space], None]] = {
    "sample_validate": conformance.check_sample_validate,
    "encode_decode": conformance.check_encode_decode,
    "to_tune": conformance.check_to_tune,
    "to_hyperopt": functools.partial(conformance.check_to_hyperopt, n=10),
    "mutate_one_decision": conformance.check_mutate_one_decision,
    "neighbours": _neighbours,
    "crossover_valid": functools.partial(conformance.check_crossover_valid, n=12),
    "features_fixed_length": conformance.check_features_fixed_length,
    "to_dict_roundtrip": conformance.check_to_dict_roundtrip,
    "cardinality": functools.partial(conformance.check_cardinality, enumerate_limit=1_000),
}


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("space_id", SPACE_IDS)
def test_space_passes_check(space_id: str, check: str) -> None:
    CHECKS[check](space_for(space_id))


BUILD_PARAMS = [
    pytest.param(name, case, id=f"{name}-{i}")
    for name in BUILTIN_SPACES
    for i, case in enumerate([*BUILD_CASES.get(name, [])] or [None])
]


@pytest.mark.parametrize(("name", "case"), BUILD_PARAMS)
def test_space_builds_forward_backward(name: str, case: BuildCase | None) -> None:
    if case is None:
        pytest.skip(f"no BuildCase for space {name!r}; add small build arguments to BUILD_CASES")
    space = get_space(name, **case.space_args)
    archs = conformance.sample_archs(space, 2, seed=1)
    conformance.check_build_forward_backward(
        space, archs, input_shape=case.input_shape, **case.kwargs
    )


def test_run_space_conformance_runs_every_check() -> None:
    space = get_space("mlp", max_depth=2, widths=(8, 16))
    conformance.run_space_conformance(
        space, 8, build_kwargs={"num_classes": 3, "in_features": 5}, input_shape=(5,)
    )


@pytest.mark.parametrize("space_id", list(_CUSTOM))
def test_custom_space_has_no_builder(space_id: str) -> None:
    space = space_for(space_id)
    with pytest.raises(UnsupportedOperation, match="no model builder"):
        space.build(space.sample(0), num_classes=10)


def test_arch_ids_stable_in_fresh_process(tmp_path: Path) -> None:
    custom_file = tmp_path / "custom.yaml"
    custom_file.write_text(yaml.safe_dump(custom_space().to_dict(), sort_keys=False))
    specs: list[tuple[str, dict[str, Any] | None]] = [
        space_args_for(name) for name in BUILTIN_SPACES
    ]
    specs.append((str(custom_file), None))
    conformance.check_arch_ids_stable_in_fresh_process(specs, 4)


# --------------------------------------------------------------------------------------
# The checks catch broken spaces
# --------------------------------------------------------------------------------------


class _TwoDecisionMutation(Space):
    """A space whose ``mutate`` changes two decisions (a bug the suite must report)."""

    def mutate(self, arch: Any, rng: Any = None) -> dict[str, Any]:
        arch = self.canonical(arch)
        return {"a": 1 - arch["a"], "b": 1 - arch["b"]}


class _LossyDecode(Space):
    """A space whose ``decode`` forgets a decision."""

    def decode(self, genome: Any) -> dict[str, Any]:
        return {**super().decode(genome), "b": 0}


def test_checks_report_broken_spaces() -> None:
    fields = {"a": Choice([0, 1]), "b": Choice([0, 1])}
    with pytest.raises(AssertionError, match="exactly one decision"):
        conformance.check_mutate_one_decision(_TwoDecisionMutation(fields, name="two"))
    with pytest.raises(AssertionError, match=r"decode\(encode\(arch\)\)"):
        conformance.check_encode_decode(_LossyDecode(fields, name="lossy"))


def test_decision_diff_counts_a_branch_switch_as_one_decision() -> None:
    space = Space({"block": Choice([{"k": Choice([3, 5])}, {"h": Choice([2, 4])}])})
    changed, switched = conformance.decision_diff(space, {"block": {"k": 5}}, {"block": {"h": 4}})
    assert changed == ["arch.block"]
    assert sorted(switched) == ["arch.block<0>.k", "arch.block<1>.h"]


# --------------------------------------------------------------------------------------
# NAS-Bench-201
# --------------------------------------------------------------------------------------


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (and do not fight over a busy CI machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def n_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("text", "expected"), [(NB201_BEST, 1_288_506), (NB201_SMALL, 129_306)])
def test_nb201_parameter_counts_match_nas_bench_201(text: str, expected: int) -> None:
    space = get_space("nb201", C=16, N=5)
    arch = space.from_string(text)
    assert space.to_string(arch) == text
    assert n_params(space.build(arch, num_classes=10)) == expected


def test_nb201_cardinality_and_enumeration() -> None:
    space = get_space("nb201")
    assert space.cardinality == 5**6 == 15_625
    assert len(list(space.enumerate())) == 15_625
    small = get_space("nb201", ops=NB201_3_OPS)
    assert small.cardinality == 3**6 == 729


def test_nb201_string_round_trip_for_every_arch_of_the_3_op_space() -> None:
    space = get_space("nb201", ops=NB201_3_OPS)
    texts = set()
    for arch in space.enumerate():
        text = space.to_string(arch)
        assert space.from_string(text) == arch
        texts.add(text)
    assert len(texts) == 729


def test_nb201_string_maps_to_edges() -> None:
    space = get_space("nb201")
    cell = space.from_string(NB201_BEST)["cell"]
    assert cell == {
        "edge_0_1": "nor_conv_3x3",
        "edge_0_2": "nor_conv_3x3",
        "edge_1_2": "nor_conv_3x3",
        "edge_0_3": "skip_connect",
        "edge_1_3": "nor_conv_3x3",
        "edge_2_3": "nor_conv_3x3",
    }


@pytest.mark.parametrize(
    "text",
    [
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|",  # two nodes
        "|conv9~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # unknown op
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",  # input index too high
        "none~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # missing bar
    ],
)
def test_nb201_from_string_rejects_malformed_strings(text: str) -> None:
    with pytest.raises(InvalidArchitecture, match=r"^arch"):
        get_space("nb201").from_string(text)


def test_nb201_op_subset_refuses_an_op_outside_it() -> None:
    space = get_space("nb201", ops=NB201_3_OPS)
    with pytest.raises(InvalidArchitecture, match=r"^arch\.cell\.edge_0_1: 'avg_pool_3x3'"):
        space.from_string(NB201_SMALL)


# --------------------------------------------------------------------------------------
# DARTS
# --------------------------------------------------------------------------------------


def _sorted_genotype(g: Any) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """DARTS pairs with each node's two inputs in increasing order (the canonical form)."""

    def cell(pairs: Any) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for k in range(0, len(pairs), 2):
            out += sorted([tuple(pairs[k]), tuple(pairs[k + 1])], key=lambda p: p[1])
        return out

    return cell(g.normal), cell(g.reduce)


@pytest.mark.parametrize(("auxiliary", "expected"), [(True, 3_825_768), (False, 3_349_342)])
def test_darts_v2_parameter_counts(auxiliary: bool, expected: int) -> None:
    from search_spaces.models.genotypes import DARTS_V2

    space = get_space("darts", C=36, layers=20, auxiliary=auxiliary)
    assert n_params(space.build_genotype(DARTS_V2, num_classes=10)) == expected
    assert n_params(space.build(space.from_genotype(DARTS_V2), num_classes=10)) == expected


@pytest.mark.parametrize("name", ["DARTS_V1", "DARTS_V2"])
def test_darts_genotype_round_trip(name: str) -> None:
    from search_spaces.models.genotypes import PUBLISHED_GENOTYPES

    g = PUBLISHED_GENOTYPES[name]
    space = get_space("darts")
    arch = space.from_genotype(g)
    back = space.to_genotype(arch)
    assert (list(back.normal), list(back.reduce)) == _sorted_genotype(g)
    assert list(back.normal_concat) == list(back.reduce_concat) == [2, 3, 4, 5]
    assert space.from_genotype(back) == arch
    assert space.from_string(space.to_string(arch)) == arch


@pytest.mark.parametrize("name", ["NASNet", "AmoebaNet"])
def test_darts_genotypes_outside_the_space_are_rejected_but_build(
    name: str, one_torch_thread: None
) -> None:
    import torch

    from search_spaces.models.genotypes import PUBLISHED_GENOTYPES

    g = PUBLISHED_GENOTYPES[name]
    space = get_space("darts", C=4, layers=3)
    with pytest.raises(InvalidArchitecture, match=r"^arch\.(normal|reduce)"):
        space.from_genotype(g)
    model = space.build_genotype(g, num_classes=10)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_darts_from_genotype_rejects_a_node_with_duplicate_inputs() -> None:
    from search_spaces.models.genotypes import DARTS_V2

    normal = list(DARTS_V2.normal)
    normal[0], normal[1] = ("sep_conv_3x3", 1), ("skip_connect", 1)
    g = DARTS_V2._replace(normal=normal)
    with pytest.raises(InvalidArchitecture, match=r"^arch\.normal\.node_2\.inputs"):
        get_space("darts").from_genotype(g)


def test_darts_cardinality() -> None:
    per_cell = 1
    for j in (2, 3, 4, 5):  # node j picks 2 of j earlier nodes and an op per input
        per_cell *= j * (j - 1) // 2 * 7 * 7
    assert get_space("darts").cardinality == per_cell**2


def test_mobilenet_and_mlp_cardinality() -> None:
    stage = sum(18**d for d in range(1, 5))  # kernel x expand x se = 18 per block
    assert get_space("mobilenet").cardinality == 3 * stage**5
    assert get_space("mlp").cardinality == 3 * 4 * sum(5**d for d in range(1, 7))


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------


def test_builtin_spaces_are_registered() -> None:
    assert {"nb201", "darts", "mobilenet", "mlp"} <= set(list_spaces())
    assert raynas.list_spaces() == list_spaces()


def test_unknown_space_lists_the_known_ones() -> None:
    with pytest.raises(RegistryError, match="unknown space 'nb210'") as info:
        get_space("nb210")
    for name in ("darts", "mlp", "mobilenet", "nb201"):
        assert repr(name) in str(info.value)


def test_unknown_space_argument_is_named() -> None:
    with pytest.raises(RegistryError, match=r"space 'nb201' has no argument 'channels'") as info:
        get_space("nb201", channels=8)
    assert "'C'" in str(info.value)


def test_duplicate_registration_is_refused() -> None:
    list_spaces()  # the built-ins are registered
    with pytest.raises(RegistryError, match="'nb201' is already registered"):
        register_space("nb201")(custom_space)
    name = "conformance_test_tiny"
    try:
        register_space(name, description="tiny")(lambda: Space({"a": Choice([1, 2])}))
        assert get_space(name).cardinality == 2
        with pytest.raises(RegistryError, match=f"'{name}' is already registered"):
            register_space(name)(custom_space)
    finally:
        registry.SPACES.unregister(name)
    assert get_space("nb201").cardinality == 15_625


def test_registering_a_builtin_name_before_the_builtins_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A user space named like a built-in is refused at registration, not at a later lookup.

    Today ``register_space`` does not load the built-ins, so the clash surfaces inside the
    built-ins' import during the next ``get_space`` of *any* name, and leaves the registry
    without the built-ins registered after the clashing one.
    """
    module = "raynas_conformance_fake_builtins"
    (tmp_path / f"{module}.py").write_text(
        "from raynas.registry import register_space\n"
        "from raynas.space import Choice, Space\n"
        "register_space('fake_a')(lambda: Space({'x': Choice([1, 2])}))\n"
        "register_space('fake_b')(lambda: Space({'x': Choice([1, 2, 3])}))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "BUILTIN_PACKAGES", (module,))
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry.SPACES, "_entries", {})
    monkeypatch.delitem(sys.modules, module, raising=False)
    try:
        with pytest.raises(RegistryError, match="'fake_a' is already registered"):
            register_space("fake_a")(lambda: Space({"y": Choice([1, 2])}))
        assert get_space("fake_b").cardinality == 3
    finally:
        sys.modules.pop(module, None)
