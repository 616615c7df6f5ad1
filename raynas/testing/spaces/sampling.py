"""Membership and compilation checks: seeded samples, Tune and hyperopt forms, cardinality."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from raynas.space import Arch, InvalidArchitecture, Space, UnsupportedOperation
from raynas.space.space import ENUMERATE_LIMIT
from raynas.testing.spaces._common import (
    _fail,
    _validate,
    sample_archs,
)


def check_sample_validate(space: Space, n: int = 20, *, seed: int = 0) -> None:
    """Samples are valid, JSON-able, reproducible, and their canonical form is a fixed point.

    Asserts for ``n`` seeded samples and the default member: ``validate`` accepts them;
    ``sample(seed)`` twice gives equal archs; ``canonical`` is idempotent and survives a JSON
    round trip unchanged; ``arch_id`` is a 16-hex-digit string, equal for the arch, its
    canonical form and its JSON copy; ``is_valid`` agrees with ``validate``;
    ``from_string(to_string(arch))`` is the canonical arch.
    """
    for i, arch in enumerate(sample_archs(space, n, seed)):
        _validate(space, arch, "a sample")
        if not space.is_valid(arch):
            raise _fail(space, "is_valid() is False for a valid sample", arch)
        if i < n and space.sample(seed + i) != arch:
            raise _fail(space, f"sample({seed + i}) is not reproducible", arch)
        canon = space.canonical(arch)
        if space.canonical(canon) != canon:
            raise _fail(space, "canonical() is not idempotent", arch)
        try:
            blob = json.dumps(canon, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise _fail(space, f"canonical form is not plain JSON ({err})", arch) from err
        if json.loads(blob) != canon:
            raise _fail(space, "canonical form changes in a JSON round trip", arch)
        ident = space.arch_id(arch)
        if not (isinstance(ident, str) and len(ident) == 16 and int(ident, 16) >= 0):
            raise _fail(space, f"arch_id {ident!r} is not 16 hex digits", arch)
        if space.arch_id(canon) != ident or space.arch_id(json.loads(blob)) != ident:
            raise _fail(space, "arch_id differs between an arch and its canonical form", arch)
        text = space.to_string(arch)
        if space.from_string(text) != canon:
            raise _fail(space, f"from_string(to_string(arch)) differs ({text!r})", arch)


def _distinct_expected(space: Space, n: int) -> bool:
    card = space.cardinality
    return n >= 10 and (card is None or card > 1)


def check_to_tune(space: Space, n: int = 20, *, seed: int = 0) -> None:
    """Tune's own sampling of ``to_tune()`` gives valid archs, reproducibly per seed.

    Resolves ``{"arch": space.to_tune()}`` with
    ``ray.tune.search.variant_generator.generate_variants`` (no trials, no Ray runtime) under
    ``n`` seeded random states. Asserts: exactly one variant per resolution; every resolved
    value maps through ``space.from_tune`` to a valid member; the same seed gives the same
    arch (checked for the first three seeds); and ``n`` seeds do not all give the same arch
    (unless the space has one member).
    """
    from ray.tune.search.variant_generator import generate_variants

    def resolve(s: int) -> Arch:
        variants = list(
            generate_variants({"arch": space.to_tune()}, random_state=np.random.default_rng(s))
        )
        if len(variants) != 1:
            raise _fail(space, f"to_tune() resolved to {len(variants)} variants, expected 1")
        resolved = variants[0][1]["arch"]
        try:
            return space.from_tune(resolved)
        except InvalidArchitecture as err:
            raise _fail(space, f"Tune sample (seed {s}) is not a member: {err}", resolved) from err

    _check_seeded_draws(space, resolve, "Tune", "from_tune", range(seed, seed + n))


def check_to_hyperopt(space: Space, n: int = 20, *, seed: int = 0) -> None:
    """hyperopt's stochastic sampling of ``to_hyperopt()`` gives valid archs, reproducibly.

    Asserts for ``n`` seeds: ``space.from_hyperopt(hyperopt.pyll.stochastic.sample(
    space.to_hyperopt(), rng=np.random.default_rng(seed)))`` validates; the same seed gives
    the same arch (first three seeds); and the seeds do not all give the same arch.
    """
    from hyperopt.pyll.stochastic import sample as hp_sample

    def draw(s: int) -> Arch:
        raw = hp_sample(space.to_hyperopt(), rng=np.random.default_rng(s))
        try:
            return space.from_hyperopt(raw)
        except InvalidArchitecture as err:
            raise _fail(space, f"hyperopt sample (seed {s}) is not a member: {err}", raw) from err

    _check_seeded_draws(space, draw, "hyperopt", "from_hyperopt", range(seed, seed + n))


def _check_seeded_draws(
    space: Space, draw: Callable[[int], Arch], sampler: str, via: str, seeds: range
) -> None:
    """``draw(s)`` (``sampler``'s sample of seed ``s``, mapped back through ``via``) is a
    valid member for every seed, the same again for the first three, and not the same arch
    for every seed (unless the space has one member)."""
    ids = set()
    for s in seeds:
        arch = draw(s)
        _validate(space, arch, f"{via} of {sampler} sample (seed {s})")
        if s < seeds.start + 3 and draw(s) != arch:
            raise _fail(space, f"{sampler} sampling with seed {s} is not reproducible", arch)
        ids.add(space.arch_id(arch))
    if _distinct_expected(space, len(seeds)) and len(ids) == 1:
        raise _fail(space, f"{len(seeds)} seeded {sampler} samples were all the same arch")


def check_cardinality(
    space: Space, *, enumerate_limit: int = 20_000, n: int = 20, seed: int = 0
) -> None:
    """``cardinality`` counts the members; ``enumerate`` lists them (small spaces) or refuses.

    Asserts: continuous spaces have ``cardinality is None``, a continuous gene, and
    ``enumerate()`` raises ``UnsupportedOperation``; discrete spaces have an int cardinality
    >= 1 and no continuous gene; spaces over the enumeration limit refuse ``enumerate()``;
    spaces up to ``enumerate_limit`` members enumerate exactly ``cardinality`` distinct,
    valid archs that include every sample.
    """
    card = space.cardinality
    continuous = any(g.size is None for g in space.genes)
    if card is None:
        if not continuous:
            raise _fail(space, "cardinality is None but every gene is discrete")
        try:
            space.enumerate()
        except UnsupportedOperation:
            return
        raise _fail(space, "enumerate() of a continuous space must raise UnsupportedOperation")
    if isinstance(card, bool) or not isinstance(card, int) or card < 1:
        raise _fail(space, f"cardinality must be an int >= 1, got {card!r}")
    if continuous:
        raise _fail(space, f"cardinality is {card} but the genome has a continuous gene")
    if card > ENUMERATE_LIMIT:
        try:
            space.enumerate()
        except UnsupportedOperation:
            return
        raise _fail(space, f"enumerate() of {card:,} members must raise UnsupportedOperation")
    if card > enumerate_limit:
        return
    ids = []
    for arch in space.enumerate():
        try:
            ids.append(space.arch_id(arch))  # arch_id validates
        except InvalidArchitecture as err:
            raise _fail(space, f"an enumerated arch is not a member ({err})", arch) from err
    if len(ids) != card or len(set(ids)) != card:
        raise _fail(
            space,
            f"enumerate() gave {len(ids)} archs ({len(set(ids))} distinct), cardinality is {card}",
        )
    known = set(ids)
    for arch in sample_archs(space, n, seed):
        if space.arch_id(arch) not in known:
            raise _fail(space, "a sample is missing from enumerate()", arch)
