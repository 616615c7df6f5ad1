"""The base of the DSL: ``Node``, ``Const``, genes and decision points.

Every primitive (``raynas.space.choice``, ``numeric``, ``containers``, ``cell``) subclasses
:class:`Node`. Paths: the root is ``arch``; dict children are ``arch.key``, list items
``arch[i]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from raynas.space.errors import InvalidArchitecture

PathKey = str | int


@dataclass(frozen=True)
class Gene:
    """One position of a genome.

    Discrete genes (``size`` is an int) hold an index in ``[0, size)``; continuous genes
    (``size`` is None) hold the float value itself, in ``[low, high]``.
    """

    path: str
    size: int | None
    low: float = 0.0
    high: float = 0.0
    log: bool = False


@dataclass(frozen=True)
class DecisionPoint:
    """One decision of a concrete architecture that can be changed on its own.

    Attributes:
        path: Keys from the root value to the sub-value this decision owns.
        node: The node that owns the sub-value.
        value: The current sub-value.
        mutate: ``rng -> new sub-value`` (always different from ``value``).
        neighbours: ``() -> list of new sub-values`` (every single change), or None when the
            decision is continuous.
    """

    path: tuple[PathKey, ...]
    node: Node
    value: Any
    mutate: Callable[[np.random.Generator], Any]
    neighbours: Callable[[], list[Any]] | None


def _plain(value: Any) -> Any:
    """Numpy scalars -> Python scalars, tuples -> lists, recursively."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _same_const(a: Any, b: Any) -> bool:
    """Equality that keeps bool, int, float and str apart (``True != 1`` here)."""
    a, b = _plain(a), _plain(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_const(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_const(a[k], b[k]) for k in a)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def child_path(path: str, key: PathKey) -> str:
    """The display path of a child: ``a.b`` for dict keys, ``a[0]`` for list indices."""
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"


class Node:
    """Base class of every DSL node. Subclasses override the methods below."""

    #: Short type name used by ``to_dict`` (``_type`` key in YAML).
    type_name: str = "node"

    # --- membership -------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def validate(self, value: Any, path: str) -> None:
        raise NotImplementedError

    def canonical(self, value: Any) -> Any:
        """Normalised copy of a *valid* value (Python types, lists, sorted where unordered)."""
        return _plain(value)

    def default(self) -> Any:
        """A deterministic member (first option, lowest value)."""
        raise NotImplementedError

    # --- size -------------------------------------------------------------------------
    @property
    def cardinality(self) -> int | None:
        raise NotImplementedError

    def enumerate(self) -> Iterator[Any]:
        raise NotImplementedError

    # --- genome -----------------------------------------------------------------------
    def genes(self, path: str) -> list[Gene]:
        raise NotImplementedError

    def encode(self, value: Any, out: list[float], mask: list[bool], active: bool) -> None:
        raise NotImplementedError

    def decode(self, genome: Iterator[float]) -> Any:
        raise NotImplementedError

    def pad(self, out: list[float], mask: list[bool]) -> None:
        """Append this node's genes for an inactive branch (zeros, mask False)."""
        n = len(self.genes(""))
        out.extend([0.0] * n)
        mask.extend([False] * n)

    # --- features ---------------------------------------------------------------------
    @property
    def feature_size(self) -> int:
        raise NotImplementedError

    def features(self, value: Any, out: list[float]) -> None:
        raise NotImplementedError

    # --- local moves ------------------------------------------------------------------
    def decisions(self, value: Any, path: tuple[PathKey, ...]) -> list[DecisionPoint]:
        raise NotImplementedError

    def crossover(self, a: Any, b: Any, rng: np.random.Generator) -> Any:
        return a if rng.random() < 0.5 else b

    # --- serialisation ----------------------------------------------------------------
    def to_dict(self) -> Any:
        raise NotImplementedError

    def from_external(self, value: Any) -> Any:
        """Map a sample of a compiled space (Tune / hyperopt) back to a member value."""
        return _plain(value)


class Const(Node):
    """A fixed value: part of every member, no decision."""

    type_name = "const"

    def __init__(self, value: Any) -> None:
        self.value = _plain(value)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.value

    def validate(self, value: Any, path: str) -> None:
        if not _same_const(value, self.value):
            raise InvalidArchitecture(path, f"{value!r} must be the constant {self.value!r}")

    def default(self) -> Any:
        return self.value

    @property
    def cardinality(self) -> int:
        return 1

    def enumerate(self) -> Iterator[Any]:
        yield self.value

    def genes(self, path: str) -> list[Gene]:
        return []

    def encode(self, value: Any, out: list[float], mask: list[bool], active: bool) -> None:
        return None

    def decode(self, genome: Iterator[float]) -> Any:
        return self.value

    @property
    def feature_size(self) -> int:
        return 0

    def features(self, value: Any, out: list[float]) -> None:
        return None

    def decisions(self, value: Any, path: tuple[PathKey, ...]) -> list[DecisionPoint]:
        return []

    def to_dict(self) -> Any:
        if isinstance(self.value, dict) and "_type" in self.value:
            return {"_type": "const", "value": self.value}
        return self.value
