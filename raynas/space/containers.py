"""Containers: ``DictNode`` and ``ListNode`` (fixed children) and ``Repeat`` (variable length).

Plain dicts and lists in a space definition become ``DictNode`` / ``ListNode`` through
:func:`as_node`; any other plain value becomes a ``Const``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from raynas.space.errors import InvalidArchitecture, SpaceDefinitionError
from raynas.space.nodes import (
    Const,
    DecisionPoint,
    Gene,
    Node,
    PathKey,
    _plain,
    child_path,
)


def as_node(obj: Any) -> Node:
    """Turn a space definition (nodes, dicts, lists, constants) into a node tree."""
    if isinstance(obj, Node):
        return obj
    if isinstance(obj, Mapping):
        return DictNode(obj)
    if isinstance(obj, list | tuple):
        return ListNode(obj)
    return Const(obj)


class _Container(Node):
    """Shared logic of nodes whose value is a fixed set of children (dict or list)."""

    children: list[tuple[PathKey, Node]]

    def _items(self, value: Any) -> list[tuple[PathKey, Node, Any]]:
        return [(k, n, value[k]) for k, n in self.children]

    def default(self) -> Any:
        return self._build({k: n.default() for k, n in self.children})

    def sample(self, rng: np.random.Generator) -> Any:
        return self._build({k: n.sample(rng) for k, n in self.children})

    def canonical(self, value: Any) -> Any:
        return self._build({k: n.canonical(v) for k, n, v in self._items(value)})

    def _build(self, parts: dict[PathKey, Any]) -> Any:
        raise NotImplementedError

    @property
    def cardinality(self) -> int | None:
        total = 1
        for _, n in self.children:
            c = n.cardinality
            if c is None:
                return None
            total *= c
        return total

    def enumerate(self) -> Iterator[Any]:
        keys = [k for k, _ in self.children]
        for combo in itertools.product(*[list(n.enumerate()) for _, n in self.children]):
            yield self._build(dict(zip(keys, combo)))

    def genes(self, path: str) -> list[Gene]:
        return [g for k, n in self.children for g in n.genes(child_path(path, k))]

    def encode(self, value: Any, out: list[float], mask: list[bool], active: bool) -> None:
        for _, n, v in self._items(value):
            n.encode(v, out, mask, active)

    def decode(self, genome: Iterator[float]) -> Any:
        return self._build({k: n.decode(genome) for k, n in self.children})

    @property
    def feature_size(self) -> int:
        return sum(n.feature_size for _, n in self.children)

    def features(self, value: Any, out: list[float]) -> None:
        for _, n, v in self._items(value):
            n.features(v, out)

    def decisions(self, value: Any, path: tuple[PathKey, ...]) -> list[DecisionPoint]:
        return [d for k, n, v in self._items(value) for d in n.decisions(v, (*path, k))]

    def crossover(self, a: Any, b: Any, rng: np.random.Generator) -> Any:
        return self._build({k: n.crossover(a[k], b[k], rng) for k, n in self.children})

    def from_external(self, value: Any) -> Any:
        try:
            return self._build({k: n.from_external(value[k]) for k, n in self.children})
        except (KeyError, IndexError, TypeError):
            return _plain(value)


class DictNode(_Container):
    """A mapping of named children; its value is a dict with exactly those keys."""

    type_name = "dict"

    def __init__(self, fields: Mapping[str, Any]) -> None:
        for k in fields:
            if not isinstance(k, str):
                raise SpaceDefinitionError(f"space keys must be strings, got {k!r}")
        self.children = [(k, as_node(v)) for k, v in fields.items()]

    def _build(self, parts: dict[PathKey, Any]) -> dict[str, Any]:
        return {str(k): v for k, v in parts.items()}

    def validate(self, value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            raise InvalidArchitecture(path, f"must be a mapping, got {type(value).__name__}")
        keys = [k for k, _ in self.children]
        for k in value:
            if k not in keys:
                raise InvalidArchitecture(
                    child_path(path, k), f"unknown key; expected one of {keys!r}"
                )
        for k, n in self.children:
            if k not in value:
                raise InvalidArchitecture(child_path(path, k), "is missing")
            n.validate(value[k], child_path(path, k))

    def to_dict(self) -> Any:
        return {k: n.to_dict() for k, n in self.children}


class ListNode(_Container):
    """A fixed-length list of children (e.g. one op per input of a cell node)."""

    type_name = "list"

    def __init__(self, items: Sequence[Any]) -> None:
        self.children = [(i, as_node(v)) for i, v in enumerate(items)]

    def _build(self, parts: dict[PathKey, Any]) -> list[Any]:
        return [parts[i] for i in range(len(self.children))]

    def validate(self, value: Any, path: str) -> None:
        if not isinstance(value, list | tuple):
            raise InvalidArchitecture(path, f"must be a list, got {type(value).__name__}")
        if len(value) != len(self.children):
            raise InvalidArchitecture(
                path, f"must have exactly {len(self.children)} items, got {len(value)}"
            )
        for i, (k, n) in enumerate(self.children):
            n.validate(value[i], child_path(path, k))

    def to_dict(self) -> Any:
        return [n.to_dict() for _, n in self.children]


class Repeat(Node):
    """A variable-length list of members of ``node`` (e.g. the blocks of a stage: depth).

    Args:
        node: The space of one element.
        min: Fewest elements (>= 0).
        max: Most elements (>= min).

    Example:
        >>> Repeat({"kernel": Choice([3, 5, 7])}, min=1, max=4)
    """

    type_name = "repeat"

    def __init__(self, node: Any, *, min: int, max: int) -> None:
        if isinstance(min, bool) or isinstance(max, bool) or not isinstance(min, int):
            raise SpaceDefinitionError(f"Repeat min/max must be integers, got ({min=}, {max=})")
        if not isinstance(max, int) or min < 0 or max < min:
            raise SpaceDefinitionError(f"Repeat needs 0 <= min <= max, got ({min=}, {max=})")
        self.node = as_node(node)
        self.min, self.max = min, max

    def sample(self, rng: np.random.Generator) -> list[Any]:
        n = int(rng.integers(self.min, self.max + 1))
        return [self.node.sample(rng) for _ in range(n)]

    def validate(self, value: Any, path: str) -> None:
        if not isinstance(value, list | tuple):
            raise InvalidArchitecture(path, f"must be a list, got {type(value).__name__}")
        if not self.min <= len(value) <= self.max:
            raise InvalidArchitecture(
                path, f"must have between {self.min} and {self.max} items, got {len(value)}"
            )
        for i, v in enumerate(value):
            self.node.validate(v, child_path(path, i))

    def canonical(self, value: Any) -> list[Any]:
        return [self.node.canonical(v) for v in value]

    def default(self) -> list[Any]:
        return [self.node.default() for _ in range(self.min)]

    @property
    def cardinality(self) -> int | None:
        c = self.node.cardinality
        if c is None:
            return None
        return sum(c**n for n in range(self.min, self.max + 1))

    def enumerate(self) -> Iterator[Any]:
        members = list(self.node.enumerate())
        for n in range(self.min, self.max + 1):
            for combo in itertools.product(members, repeat=n):
                yield list(combo)

    def genes(self, path: str) -> list[Gene]:
        out = [Gene(f"{path}.len", self.max - self.min + 1, self.min, self.max)]
        for i in range(self.max):
            out.extend(self.node.genes(child_path(path, i)))
        return out

    def encode(self, value: Any, out: list[float], mask: list[bool], active: bool) -> None:
        out.append(float(len(value) - self.min))
        mask.append(active)
        for i in range(self.max):
            if i < len(value):
                self.node.encode(value[i], out, mask, active)
            else:
                self.node.pad(out, mask)

    def decode(self, genome: Iterator[float]) -> list[Any]:
        n = self.min + min(max(int(round(next(genome))), 0), self.max - self.min)
        items = [self.node.decode(genome) for _ in range(self.max)]
        return items[:n]

    @property
    def feature_size(self) -> int:
        return 1 + self.max * (1 + self.node.feature_size)

    def features(self, value: Any, out: list[float]) -> None:
        out.append((len(value) - self.min) / max(self.max - self.min, 1))
        for i in range(self.max):
            if i < len(value):
                out.append(1.0)
                self.node.features(value[i], out)
            else:
                out.extend([0.0] * (1 + self.node.feature_size))

    def decisions(self, value: Any, path: tuple[PathKey, ...]) -> list[DecisionPoint]:
        value = list(value)
        points: list[DecisionPoint] = []
        if self.max > self.min:
            shorter = value[:-1] if len(value) > self.min else None
            can_grow = len(value) < self.max

            def mutate(rng: np.random.Generator) -> list[Any]:
                grow = can_grow and (shorter is None or rng.random() < 0.5)
                return [*value, self.node.sample(rng)] if grow else list(shorter or [])

            def neighbours() -> list[Any]:
                out = [shorter] if shorter is not None else []
                if can_grow:
                    out.append([*value, self.node.default()])
                return out

            points.append(DecisionPoint(path, self, value, mutate, neighbours))
        for i, v in enumerate(value):
            points.extend(self.node.decisions(v, (*path, i)))
        return points

    def crossover(self, a: Any, b: Any, rng: np.random.Generator) -> list[Any]:
        n = len(a) if rng.random() < 0.5 else len(b)
        out = []
        for i in range(n):
            if i < len(a) and i < len(b):
                out.append(self.node.crossover(a[i], b[i], rng))
            else:
                out.append(a[i] if i < len(a) else b[i])
        return out

    def to_dict(self) -> Any:
        return {"_type": "repeat", "node": self.node.to_dict(), "min": self.min, "max": self.max}

    def from_external(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [self.node.from_external(v) for v in value]
        return _plain(value)
