"""A conformance suite that every search space passes; space authors reuse it in their tests.

Like ``optuna/testing/pytest_samplers.py``, this module is shipped with the library. Each
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
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import yaml

from raynas.space import Arch, InvalidArchitecture, Space, UnsupportedOperation
from raynas.space.space import ENUMERATE_LIMIT

__all__ = [
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

#: Discrete genes with at most this many values must list every other value as a neighbour;
#: larger ones (and ``Repeat`` lengths) only the adjacent values.
ALL_NEIGHBOURS_MAX_SIZE = 32


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


# --------------------------------------------------------------------------------------
# Membership
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Genome
# --------------------------------------------------------------------------------------


def _random_genome(space: Space, rng: np.random.Generator) -> list[float]:
    out: list[float] = []
    for gene in space.genes:
        if gene.size is None:
            if gene.log:
                out.append(float(np.exp(rng.uniform(np.log(gene.low), np.log(gene.high)))))
            else:
                out.append(float(rng.uniform(gene.low, gene.high)))
        else:
            out.append(float(rng.integers(gene.size)))
    return out


def check_encode_decode(space: Space, n: int = 20, *, seed: int = 0) -> None:
    """``decode(encode(arch)) == canonical(arch)``; genomes have a fixed, well-formed layout.

    Asserts: genome and ``active_mask`` have ``len(space.genes)`` entries for every arch;
    discrete genes hold integer indices in ``[0, size)``, continuous genes values in
    ``[low, high]``; inactive genes are 0; the round trip gives the canonical arch (also for
    inactive branches); and ``decode`` of *any* genome (random gene values, what a genetic
    or Bayesian strategy produces) is a valid member whose re-encoding keeps every active
    gene. A genome of the wrong length is refused with ``InvalidArchitecture``.
    """
    genes = space.genes
    for arch in sample_archs(space, n, seed):
        genome, mask = space.encode(arch), space.active_mask(arch)
        if len(genome) != len(genes) or len(mask) != len(genes):
            raise _fail(
                space,
                f"genome/mask lengths {len(genome)}/{len(mask)} != {len(genes)} genes",
                arch,
            )
        for gene, g, active in zip(genes, genome, mask):
            if not active:
                if g != 0.0:
                    raise _fail(space, f"inactive gene {gene.path} is {g}, not 0", arch)
            elif gene.size is not None:
                if not (float(g).is_integer() and 0 <= g < gene.size):
                    raise _fail(space, f"gene {gene.path}={g} not an index < {gene.size}", arch)
            elif not gene.low <= g <= gene.high:
                raise _fail(space, f"gene {gene.path}={g} outside [{gene.low}, {gene.high}]", arch)
        back = space.decode(genome)
        if back != space.canonical(arch):
            raise _fail(space, f"decode(encode(arch)) gave {_short(back)}", arch)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        genome = _random_genome(space, rng)
        arch = space.decode(genome)
        _validate(space, arch, f"decode of random genome {genome}")
        again, mask = space.encode(arch), space.active_mask(arch)
        lost = [
            gene.path for gene, x, y, active in zip(genes, genome, again, mask) if active and x != y
        ]
        if lost:
            raise _fail(space, f"decode/encode of a random genome changed active genes {lost}")
    try:
        space.decode([0.0] * (len(genes) + 1))
    except InvalidArchitecture:
        pass
    else:
        raise _fail(space, "decode() accepted a genome one gene too long")


# --------------------------------------------------------------------------------------
# Compilation
# --------------------------------------------------------------------------------------


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

    ids = set()
    for s in range(seed, seed + n):
        arch = resolve(s)
        _validate(space, arch, f"from_tune of Tune sample (seed {s})")
        if s < seed + 3 and resolve(s) != arch:
            raise _fail(space, f"Tune sampling with seed {s} is not reproducible", arch)
        ids.add(space.arch_id(arch))
    if _distinct_expected(space, n) and len(ids) == 1:
        raise _fail(space, f"{n} seeded Tune samples were all the same arch")


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

    ids = set()
    for s in range(seed, seed + n):
        arch = draw(s)
        _validate(space, arch, f"from_hyperopt of hyperopt sample (seed {s})")
        if s < seed + 3 and draw(s) != arch:
            raise _fail(space, f"hyperopt sampling with seed {s} is not reproducible", arch)
        ids.add(space.arch_id(arch))
    if _distinct_expected(space, n) and len(ids) == 1:
        raise _fail(space, f"{n} seeded hyperopt samples were all the same arch")


# --------------------------------------------------------------------------------------
# Local moves
# --------------------------------------------------------------------------------------


def check_mutate_one_decision(space: Space, n: int = 20, *, seed: int = 0) -> None:
    """``mutate`` changes exactly one decision and returns a valid, canonical, different arch.

    "One decision" is the genome criterion of this module's docstring. Also asserts: the
    input is not modified; the same seed gives the same mutant; an arch with no decision to
    change (a single-member space) makes ``mutate`` raise ``UnsupportedOperation``.
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


# --------------------------------------------------------------------------------------
# Features, serialisation, size
# --------------------------------------------------------------------------------------


def check_features_fixed_length(space: Space, n: int = 20, *, seed: int = 0) -> None:
    """``features(arch)`` is a finite float32 vector of ``feature_size`` values in ``[0, 1]``.

    Also asserts that, in a discrete space, different archs get different feature vectors
    (a surrogate model must be able to tell them apart).
    """
    seen: dict[bytes, str] = {}
    for arch in sample_archs(space, n, seed):
        f = space.features(arch)
        if not isinstance(f, np.ndarray) or f.dtype != np.float32 or f.ndim != 1:
            raise _fail(space, f"features() must be a 1-D float32 array, got {f!r}", arch)
        if f.shape[0] != space.feature_size:
            raise _fail(space, f"{f.shape[0]} features, feature_size is {space.feature_size}", arch)
        if not np.isfinite(f).all() or f.min(initial=0.0) < 0.0 or f.max(initial=0.0) > 1.0:
            raise _fail(space, f"features must be finite and in [0, 1], got {f.tolist()}", arch)
        if space.is_discrete:
            ident = space.arch_id(arch)
            other = seen.setdefault(f.tobytes(), ident)
            if other != ident:
                raise _fail(space, f"archs {other} and {ident} have the same features", arch)


def check_to_dict_roundtrip(space: Space, n: int = 10, *, seed: int = 0) -> None:
    """``Space.from_dict`` of the YAML-dumped ``to_dict()`` is the same space.

    Asserts: ``to_dict()`` dumps to YAML and JSON; the reloaded space has the same
    ``to_dict()``, genes, cardinality and feature size; samples with equal seeds are equal;
    every arch of the original validates in the copy with the same ``arch_id``.
    """
    data = space.to_dict()
    try:
        json.dumps(data, allow_nan=False)
        text = yaml.safe_dump(data, sort_keys=False)
    except (TypeError, ValueError, yaml.YAMLError) as err:
        raise _fail(space, f"to_dict() is not plain data: {err}") from err
    copy = Space.from_dict(yaml.safe_load(text))
    if copy.to_dict() != data:
        raise _fail(space, f"to_dict() changes in a YAML round trip: {copy.to_dict()} != {data}")
    if copy.genes != space.genes:
        raise _fail(space, "the reloaded space has a different genome layout")
    if copy.cardinality != space.cardinality or copy.feature_size != space.feature_size:
        raise _fail(space, "the reloaded space has a different cardinality or feature size")
    for i, arch in enumerate(sample_archs(space, n, seed)):
        if i < n and copy.sample(seed + i) != arch:
            raise _fail(space, f"the reloaded space samples differently (seed {seed + i})", arch)
        _validate(copy, arch, "an arch of the original, in the reloaded space,")
        if copy.arch_id(arch) != space.arch_id(arch):
            raise _fail(space, "arch_id differs in the reloaded space", arch)


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


# --------------------------------------------------------------------------------------
# Identity across processes
# --------------------------------------------------------------------------------------

_CHILD = """
import json, sys
from raynas.registry import resolve_space
out = []
for spec in json.loads(sys.stdin.read()):
    space = resolve_space(spec["space"], spec["args"])
    out.append({
        "given": [space.arch_id(a) for a in spec["archs"]],
        "sampled": [space.sample(s) for s in spec["seeds"]],
    })
print("RAYNAS-IDS " + json.dumps(out))
"""


def check_arch_ids_stable_in_fresh_process(
    specs: Iterable[tuple[str, Mapping[str, Any] | None]],
    n: int = 5,
    *,
    seed: int = 0,
    timeout: float = 300.0,
) -> None:
    """:func:`check_arch_id_stable_in_fresh_process` for several spaces in one subprocess.

    Args:
        specs: ``(space, space_args)`` pairs; ``space`` is a registered name or the path of a
            YAML space file (whatever :func:`raynas.registry.resolve_space` accepts).
        n: Seeded archs per space.
        seed: First seed.
        timeout: Seconds the subprocess may take.
    """
    from raynas.registry import resolve_space

    plain = [(name, dict(args or {})) for name, args in specs]
    spaces = [resolve_space(name, args) for name, args in plain]
    seeds = list(range(seed, seed + n))
    archs = [[space.sample(s) for s in seeds] for space in spaces]
    payload = [
        {"space": name, "args": args, "archs": a, "seeds": seeds}
        for (name, args), a in zip(plain, archs)
    ]
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RAYNAS-IDS ")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(
            f"the fresh process failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
        )
    results = json.loads(lines[-1][len("RAYNAS-IDS ") :])
    for (name, _), space, given, res in zip(plain, spaces, archs, results):
        here = [space.arch_id(a) for a in given]
        if res["given"] != here:
            raise AssertionError(
                f"space {name!r}: arch_id differs in a fresh process: {here} here, "
                f"{res['given']} there"
            )
        if res["sampled"] != given:
            raise AssertionError(
                f"space {name!r}: sample(seed) differs in a fresh process for seeds {seeds}"
            )


def check_arch_id_stable_in_fresh_process(
    space_name: str,
    space_args: Mapping[str, Any] | None = None,
    n: int = 5,
    *,
    seed: int = 0,
    timeout: float = 300.0,
) -> None:
    """``arch_id`` and seeded ``sample`` are the same in a fresh Python process.

    Samples ``n`` seeded archs here, then runs ``python -c`` (``sys.executable``, a random
    ``PYTHONHASHSEED``) that rebuilds the space by name and computes their ids and its own
    seeded samples. Asserts both agree with this process.

    Args:
        space_name: A registered space name or the path of a YAML space file.
        space_args: Keyword arguments of the space.
        n: Number of seeded archs.
        seed: First seed.
        timeout: Seconds the subprocess may take.
    """
    check_arch_ids_stable_in_fresh_process(
        [(space_name, space_args)], n, seed=seed, timeout=timeout
    )


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


def check_build_forward_backward(
    space: Space,
    archs: Sequence[Any],
    *,
    input_shape: Sequence[int],
    batch_size: int = 2,
    seed: int = 0,
    num_threads: int | None = 1,
    **build_kwargs: Any,
) -> None:
    """Each arch builds a model that runs forward and backward with finite values.

    Args:
        space: A space with a model builder.
        archs: Archs to build.
        input_shape: Shape of one input without the batch dimension, e.g. ``(3, 16, 16)``.
        batch_size: Inputs per forward pass.
        seed: Seed of the random input.
        num_threads: torch intra-op threads during the check (restored afterwards). One
            thread is fastest for these tiny models and immune to OpenMP oversubscription on a
            busy CI machine; None keeps the current setting.
        **build_kwargs: Passed to ``space.build``; must include ``num_classes``.

    Asserts: ``space.build(arch, **build_kwargs)`` is an ``nn.Module`` with parameters; in
    training mode its output has shape ``(batch_size, num_classes)`` and is finite; the loss
    (plus ``aux_logits`` when the model sets them) backpropagates to finite gradients, not
    all zero; in eval mode the output shape is the same.
    """
    import torch

    num_classes = build_kwargs.get("num_classes")
    if not isinstance(num_classes, int):
        raise TypeError("check_build_forward_backward needs num_classes=<int> in build_kwargs")
    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        x = torch.randn((batch_size, *input_shape), generator=torch.Generator().manual_seed(seed))
        for arch in archs:
            _forward_backward(space, arch, x, num_classes, build_kwargs)
    finally:
        torch.set_num_threads(threads)


def _forward_backward(
    space: Space, arch: Any, x: Any, num_classes: int, build_kwargs: Mapping[str, Any]
) -> None:
    import torch

    expected = (x.shape[0], num_classes)
    model = space.build(arch, **build_kwargs)
    if not isinstance(model, torch.nn.Module):
        raise _fail(space, f"build() returned {type(model).__name__}, not nn.Module", arch)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise _fail(space, "the built model has no trainable parameters", arch)
    model.train()
    out = model(x)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise _fail(space, f"output {shape} must be {expected}", arch)
    if not torch.isfinite(out).all():
        raise _fail(space, "the output has NaN or inf", arch)
    loss = out.square().mean()
    aux = getattr(model, "aux_logits", None)
    if isinstance(aux, torch.Tensor):
        loss = loss + aux.square().mean()
    loss.backward()
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or not all(bool(torch.isfinite(g).all()) for g in grads):
        raise _fail(space, "gradients are missing or not finite", arch)
    if not any(bool(g.abs().sum() > 0) for g in grads):
        raise _fail(space, "every gradient is zero", arch)
    model.eval()
    with torch.no_grad():
        shape = tuple(model(x).shape)
    if shape != expected:
        raise _fail(space, f"eval output {shape} must be {expected}", arch)


# --------------------------------------------------------------------------------------
# Everything
# --------------------------------------------------------------------------------------


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
    """Run every check of this module on ``space``.

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
