"""Local-move checks: ``mutate``, ``neighbours`` and ``crossover`` change decisions as promised."""

from __future__ import annotations

import json

from raynas.space import Arch, Space, UnsupportedOperation
from raynas.testing.spaces._common import (
    _assert_one_decision,
    _fail,
    _genome,
    _short,
    _validate,
    sample_archs,
)

#: Discrete genes with at most this many values must list every other value as a neighbour;
#: larger ones (and ``Repeat`` lengths) only the adjacent values.
ALL_NEIGHBOURS_MAX_SIZE = 32


def check_mutate_one_decision(space: Space, n: int = 20, *, seed: int = 0) -> None:
    """``mutate`` changes exactly one decision and returns a valid, canonical, different arch.

    "One decision" is the genome criterion of the :mod:`raynas.testing.spaces` docstring.
    Also asserts: the input is not modified; the same seed gives the same mutant; an arch
    with no decision to change (a single-member space) makes ``mutate`` raise
    ``UnsupportedOperation``.
    """
    for i, arch in enumerate(sample_archs(space, n, seed)):
        before = json.dumps(arch, sort_keys=True)
        if not space.decisions(arch):
            try:
                space.mutate(arch, seed + i)
            except UnsupportedOperation:
                continue
            raise _fail(space, "mutate() without decisions must raise UnsupportedOperation", arch)
        child = space.mutate(arch, seed + i)
        if json.dumps(arch, sort_keys=True) != before:
            raise _fail(space, "mutate() modified its input in place", arch)
        _validate(space, child, "a mutant")
        if space.canonical(child) != child:
            raise _fail(space, "mutate() returned a non-canonical arch", child)
        if space.arch_id(child) == space.arch_id(arch):
            raise _fail(space, "mutate() returned the same arch", arch)
        _assert_one_decision(space, arch, child, "mutant")
        if space.mutate(arch, seed + i) != child:
            raise _fail(space, f"mutate(arch, {seed + i}) is not reproducible", arch)


def _expected_neighbours(
    space: Space, arch: Arch, genome: tuple[list[float], list[bool]]
) -> dict[str, Arch]:
    """Single-gene changes of ``arch``'s genome that ``neighbours`` must contain.

    For every active discrete gene: every other value when the gene has at most
    :data:`ALL_NEIGHBOURS_MAX_SIZE` values and is not a ``Repeat`` length (``*.len``), else
    the adjacent values. Inactive genes are 0, so a switched-on branch or appended element
    decodes to its default: the same convention ``neighbours`` uses.
    """
    current, mask = genome
    out: dict[str, Arch] = {}
    for i, (gene, g, active) in enumerate(zip(space.genes, current, mask)):
        if not active or gene.size is None or gene.size < 2:
            continue
        idx = int(g)
        if gene.size <= ALL_NEIGHBOURS_MAX_SIZE and not gene.path.endswith(".len"):
            values = [v for v in range(gene.size) if v != idx]
        else:
            values = [v for v in (idx - 1, idx + 1) if 0 <= v < gene.size]
        for v in values:
            changed = list(current)
            changed[i] = float(v)
            cand = space.decode(changed)
            out[space.arch_id(cand)] = cand
    return out


def check_neighbours(
    space: Space, n: int = 3, *, seed: int = 0, max_neighbours: int = 10_000
) -> None:
    """``neighbours(arch)`` lists single-decision changes, without duplicates or ``arch``.

    For archs with a continuous active decision, ``neighbours`` must raise
    ``UnsupportedOperation``. Otherwise asserts: every neighbour is valid and canonical and
    differs by exactly one decision (genome criterion); ids are unique and exclude ``arch``;
    the list contains every single-gene change of the genome (see
    :func:`_expected_neighbours`); its length is at most the number of single-gene changes.
    Archs with more than ``max_neighbours`` potential neighbours are skipped.
    """
    for arch in sample_archs(space, n, seed):
        arch = space.canonical(arch)
        genome = _genome(space, arch)
        active = [g for g, m in zip(space.genes, genome[1]) if m]
        if any(g.size is None for g in active):
            try:
                space.neighbours(arch)
            except UnsupportedOperation:
                continue
            raise _fail(space, "neighbours() must refuse archs with continuous decisions", arch)
        bound = sum((g.size or 1) - 1 for g in active)
        if bound > max_neighbours:
            continue
        neighbours = space.neighbours(arch)
        own = space.arch_id(arch)
        ids = [space.arch_id(nb) for nb in neighbours]
        if own in ids:
            raise _fail(space, "neighbours() includes the arch itself", arch)
        if len(set(ids)) != len(ids):
            raise _fail(space, "neighbours() lists an arch twice", arch)
        if len(ids) > bound:
            raise _fail(space, f"{len(ids)} neighbours, more than {bound} single changes", arch)
        for nb in neighbours:
            _validate(space, nb, "a neighbour")
            if space.canonical(nb) != nb:
                raise _fail(space, f"neighbour {_short(nb)} is not canonical", arch)
            _assert_one_decision(space, arch, nb, "neighbour", genome)
        expected = _expected_neighbours(space, arch, genome)
        missing = [a for key, a in expected.items() if key not in ids and key != own]
        if missing:
            raise _fail(
                space,
                f"neighbours() misses {len(missing)} single-decision changes, e.g. "
                f"{_short(missing[0])}",
                arch,
            )


def check_crossover_valid(space: Space, n: int = 20, *, seed: int = 0) -> None:
    """``crossover(a, b)`` gives a valid member built from its parents' decisions.

    Asserts: the child is valid and canonical; the same seed gives the same child;
    ``crossover(a, a)`` is ``a``; every active gene of the child has the value of a parent in
    which that gene is active; over ``n`` pairs of different parents, children are not
    always a copy of the first parent, nor always of the second.
    """
    archs = sample_archs(space, n + 1, seed)
    genes = space.genes
    not_a = not_b = False
    pairs = 0
    for i in range(n):
        a, b = archs[i], archs[i + 1]
        child = space.crossover(a, b, seed + i)
        _validate(space, child, "a crossover child")
        if space.canonical(child) != child:
            raise _fail(space, "crossover() returned a non-canonical arch", child)
        if space.crossover(a, b, seed + i) != child:
            raise _fail(space, f"crossover(a, b, {seed + i}) is not reproducible", a)
        if space.crossover(a, a, seed + i) != space.canonical(a):
            raise _fail(space, "crossover(a, a) differs from a", a)
        gc, mc = space.encode(child), space.active_mask(child)
        parents = [(space.encode(p), space.active_mask(p)) for p in (a, b)]
        for k, (gene, value, active) in enumerate(zip(genes, gc, mc)):
            if active and not any(m[k] and g[k] == value for g, m in parents):
                raise _fail(
                    space,
                    f"crossover child's gene {gene.path}={value} comes from neither parent "
                    f"({_short(a)} x {_short(b)})",
                    child,
                )
        ca, cb = space.canonical(a), space.canonical(b)
        if ca != cb:
            pairs += 1
            not_a = not_a or child != ca
            not_b = not_b or child != cb
    if pairs >= 10 and not (not_a and not_b):
        parent = "first" if not not_a else "second"
        raise _fail(space, f"crossover() always returned the {parent} parent over {pairs} pairs")
