"""Helpers shared by the space checks: failure messages, samples, genome diffs."""

from __future__ import annotations

import json
from typing import Any

from raynas.space import Arch, InvalidArchitecture, Space


def _short(arch: Any, limit: int = 300) -> str:
    text = json.dumps(arch, sort_keys=True, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fail(space: Space, what: str, arch: Any = None) -> AssertionError:
    where = f" for arch {_short(arch)}" if arch is not None else ""
    return AssertionError(f"space {space.name!r}: {what}{where}")


def _validate(space: Space, arch: Any, what: str) -> None:
    try:
        space.validate(arch)
    except InvalidArchitecture as err:
        raise _fail(space, f"{what} is not a valid member ({err})", arch) from err


def sample_archs(space: Space, n: int, seed: int = 0) -> list[Arch]:
    """``n`` architectures sampled with seeds ``seed, seed + 1, ...`` plus the default member.

    The default (every ``Choice`` at its first option, every number at its low end, every
    ``Repeat`` at its minimum length) exercises an edge of the space that random samples
    may miss.
    """
    archs = [space.sample(seed + i) for i in range(n)]
    archs.append(space.root.default())
    return archs


def _genome(space: Space, arch: Any) -> tuple[list[float], list[bool]]:
    return space.encode(arch), space.active_mask(arch)


def decision_diff(
    space: Space, a: Any, b: Any, *, genome_a: tuple[list[float], list[bool]] | None = None
) -> tuple[list[str], list[str]]:
    """Genome difference of two members of ``space``.

    Args:
        space: The space of ``a`` and ``b``.
        a: One member.
        b: Another member.
        genome_a: ``(space.encode(a), space.active_mask(a))`` if already computed.

    Returns:
        ``(changed, switched)``: the paths of genes active in both ``a`` and ``b`` whose values
        differ, and the paths of genes active in exactly one of them.
    """
    ga, ma = genome_a if genome_a is not None else _genome(space, a)
    gb, mb = _genome(space, b)
    paths = [g.path for g in space.genes]
    changed = [p for p, x, y, u, v in zip(paths, ga, gb, ma, mb) if u and v and x != y]
    switched = [p for p, u, v in zip(paths, ma, mb) if u != v]
    return changed, switched


def _assert_one_decision(
    space: Space,
    a: Any,
    b: Any,
    what: str,
    genome_a: tuple[list[float], list[bool]] | None = None,
) -> None:
    changed, switched = decision_diff(space, a, b, genome_a=genome_a)
    if len(changed) != 1:
        raise _fail(
            space,
            f"{what} {_short(b)} must differ by exactly one decision, but {len(changed)} "
            f"shared genes differ: {changed} (genes switched on/off: {switched})",
            a,
        )
