"""Encoding round trips: genome encode / decode, feature vectors, ``to_dict`` / ``from_dict``."""

from __future__ import annotations

import json

import numpy as np
import yaml

from raynas.space import InvalidArchitecture, Space
from raynas.testing.spaces._common import (
    _fail,
    _short,
    _validate,
    sample_archs,
)


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
