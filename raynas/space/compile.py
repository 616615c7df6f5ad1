"""Compile a node tree to a Ray Tune ``param_space`` or a hyperopt space.

Static parts map onto Tune's / hyperopt's own primitives (``tune.choice``, ``tune.randint``,
``tune.loguniform``; ``hp.choice``, ``hp.randint``, ``hp.loguniform``) so their searchers see
real domains. Parts Tune cannot express (a choice between sub-spaces, a variable-length
``Repeat``) become a :class:`SubspaceDomain`, a Tune ``Domain`` that samples the sub-tree with
Tune's own seeded random state, so every sample is a valid architecture and a seeded
``BasicVariantGenerator`` reproduces its samples.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hyperopt import hp
from ray import tune
from ray.tune.search.sample import Domain, Sampler

from raynas.space.cell import Cell
from raynas.space.primitives import (
    Choice,
    Const,
    DictNode,
    Float,
    Int,
    ListNode,
    Node,
    Repeat,
)

_GRID_LIMIT = 10_000


class _SubtreeSampler(Sampler):
    def sample(
        self,
        domain: Domain,
        config: Any = None,
        size: int = 1,
        random_state: Any = None,
    ) -> Any:
        if random_state is None:
            seeds = np.random.randint(0, 2**31 - 1, size=size)
        else:
            seeds = random_state.integers(0, 2**31 - 1, size=size)
        assert isinstance(domain, SubspaceDomain)
        items = [domain.node.sample(np.random.default_rng(int(s))) for s in seeds]
        return items if size > 1 else items[0]


class SubspaceDomain(Domain):
    """A Tune domain whose samples are members of a raynas sub-space."""

    default_sampler_cls = _SubtreeSampler  # type: ignore[assignment]

    def __init__(self, node: Node) -> None:
        self.node = node

    def is_valid(self, value: Any) -> bool:
        try:
            self.node.validate(value, "arch")
        except ValueError:
            return False
        return True

    @property
    def domain_str(self) -> str:
        return f"raynas.{type(self.node).__name__}"


def to_tune(node: Node) -> Any:
    """The Tune ``param_space`` fragment for ``node`` (nested dicts/lists of Tune domains)."""
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Cell):
        return to_tune(node.tree)
    if isinstance(node, DictNode):
        return {k: to_tune(n) for k, n in node.children}
    if isinstance(node, ListNode):
        return [to_tune(n) for _, n in node.children]
    if isinstance(node, Choice):
        if node.all_const:
            return tune.choice([o.value for o in node.options])  # type: ignore[attr-defined]
        return SubspaceDomain(node)
    if isinstance(node, Int):
        if node.step == 1:
            return tune.randint(node.low, node.high + 1)
        if node.size <= _GRID_LIMIT:
            return tune.choice(node.values())
        return SubspaceDomain(node)
    if isinstance(node, Float):
        if node.size is not None:
            if node.size <= _GRID_LIMIT:
                return tune.choice(list(node.enumerate()))
            return SubspaceDomain(node)
        if node.log:
            return tune.loguniform(node.low, node.high)
        return tune.uniform(node.low, node.high)
    return SubspaceDomain(node)


def to_hyperopt(node: Node, label: str = "arch") -> Any:
    """The hyperopt space for ``node``; labels are the node paths, unique by construction."""
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Cell):
        return to_hyperopt(node.tree, label)
    if isinstance(node, DictNode):
        return {k: to_hyperopt(n, f"{label}.{k}") for k, n in node.children}
    if isinstance(node, ListNode):
        return [to_hyperopt(n, f"{label}[{i}]") for i, n in node.children]
    if isinstance(node, Choice):
        return hp.choice(
            label, [to_hyperopt(o, f"{label}<{i}>") for i, o in enumerate(node.options)]
        )
    if isinstance(node, Int):
        if node.step == 1:
            return hp.randint(label, node.low, node.high + 1)
        return node.low + node.step * hp.randint(label, node.size)
    if isinstance(node, Float):
        if node.size is not None:
            return node.low + node.step * hp.randint(label, node.size)  # type: ignore[operator]
        if node.log:
            return hp.loguniform(label, math.log(node.low), math.log(node.high))
        return hp.uniform(label, node.low, node.high)
    if isinstance(node, Repeat):
        options = []
        for n in range(node.min, node.max + 1):
            options.append([to_hyperopt(node.node, f"{label}@{n}[{i}]") for i in range(n)])
        return hp.choice(f"{label}.len", options)
    raise TypeError(f"cannot compile {type(node).__name__} to hyperopt")
