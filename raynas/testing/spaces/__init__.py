"""A conformance suite that every search space passes; space authors reuse it in their tests.

Like ``optuna/testing/pytest_samplers.py``, this package is shipped with the library. Each
``check_*`` function takes a :class:`~raynas.space.Space`, exercises one part of the space
interface and raises :class:`AssertionError` with a message that names the space, the
architecture and the property that broke. :func:`run_space_conformance` runs them all.

Example:
    >>> from raynas.testing.spaces import run_space_conformance
    >>> from raynas.space import Choice, Int, Space
    >>> run_space_conformance(Space({"depth": Int(1, 4), "act": Choice(["relu", "gelu"])}))

"One decision" (used by the mutation and neighbour checks) is defined on the genome, not on
the implementation of :meth:`Space.decisions`: encode both architectures and look at the genes
that are active in *both*. Exactly one of those may differ (the decision that was changed);
every other differing gene must have changed activity (it belongs to a branch that a changed
``Choice`` switched off or on, or to a ``Repeat`` element that a changed length removed or
added). Activity is a function of the ancestor genes' values, so a switched branch or
element can only come from that one changed gene.

The checks live in modules by property family, all re-exported here (import them from
``raynas.testing.spaces``): ``sampling`` (membership, ``to_tune`` / ``to_hyperopt``,
cardinality), ``genome`` (encode / decode, features, ``to_dict`` round trips), ``moves``
(``mutate``, ``neighbours``, ``crossover``), ``identity`` (ids in a fresh process) and
``models`` (build, forward, backward); ``_common`` holds the shared helpers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from raynas.space import Space
from raynas.testing.spaces._common import decision_diff, sample_archs
from raynas.testing.spaces.genome import (
    check_encode_decode,
    check_features_fixed_length,
    check_to_dict_roundtrip,
)
from raynas.testing.spaces.identity import (
    check_arch_id_stable_in_fresh_process,
    check_arch_ids_stable_in_fresh_process,
)
from raynas.testing.spaces.models import check_build_forward_backward
from raynas.testing.spaces.moves import (
    ALL_NEIGHBOURS_MAX_SIZE,
    check_crossover_valid,
    check_mutate_one_decision,
    check_neighbours,
)
from raynas.testing.spaces.sampling import (
    check_cardinality,
    check_sample_validate,
    check_to_hyperopt,
    check_to_tune,
)

__all__ = [
    "ALL_NEIGHBOURS_MAX_SIZE",
    "check_arch_id_stable_in_fresh_process",
    "check_arch_ids_stable_in_fresh_process",
    "check_build_forward_backward",
    "check_cardinality",
    "check_crossover_valid",
    "check_encode_decode",
    "check_features_fixed_length",
    "check_mutate_one_decision",
    "check_neighbours",
    "check_sample_validate",
    "check_to_dict_roundtrip",
    "check_to_hyperopt",
    "check_to_tune",
    "decision_diff",
    "run_space_conformance",
    "sample_archs",
]


def run_space_conformance(
    space: Space,
    n: int = 20,
    *,
    seed: int = 0,
    build_kwargs: Mapping[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
    fresh_process: tuple[str, Mapping[str, Any] | None] | None = None,
    enumerate_limit: int = 20_000,
) -> None:
    """Run every check of this package on ``space``.

    Args:
        space: The space under test.
        n: Samples per check.
        seed: First seed.
        build_kwargs: ``space.build`` keyword arguments (with ``num_classes``); when given
            together with ``input_shape``, a few archs are built and run forward / backward.
        input_shape: One input's shape for the model check.
        fresh_process: ``(space_name, space_args)`` to also check ids in a fresh process.
        enumerate_limit: Enumerate spaces up to this many members in ``check_cardinality``.

    Raises:
        AssertionError: The first property that does not hold.
    """
    check_sample_validate(space, n, seed=seed)
    check_encode_decode(space, n, seed=seed)
    check_to_tune(space, n, seed=seed)
    check_to_hyperopt(space, n, seed=seed)
    check_mutate_one_decision(space, n, seed=seed)
    check_neighbours(space, max(1, n // 8), seed=seed)
    check_crossover_valid(space, n, seed=seed)
    check_features_fixed_length(space, n, seed=seed)
    check_to_dict_roundtrip(space, max(1, n // 2), seed=seed)
    check_cardinality(space, enumerate_limit=enumerate_limit, n=n, seed=seed)
    if fresh_process is not None:
        check_arch_id_stable_in_fresh_process(*fresh_process, seed=seed)
    if build_kwargs is not None and input_shape is not None:
        archs = sample_archs(space, 2, seed)
        check_build_forward_backward(
            space, archs, input_shape=input_shape, seed=seed, **dict(build_kwargs)
        )
