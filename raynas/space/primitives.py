"""The DSL primitives: ``Choice``, ``Int``, ``Float``, ``Repeat`` and the containers.

A search space is a tree of these nodes. Plain dicts and lists in a space definition become
:class:`DictNode` / :class:`ListNode`; any other plain value is a constant. Every node knows
how to sample, validate, canonicalise, encode to a fixed-length genome, featurise, enumerate
its members and list the single-decision changes of a value. :class:`raynas.space.Space`
wraps the root node and is the public entry point; nodes are the building blocks.

Paths: the root is ``arch``; dict children are ``arch.key``, list items ``arch[i]``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from raynas.space.errors import InvalidArchitecture, SpaceDefinitionError, UnsupportedOperation

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


def as_node(obj: Any) -> Node:
    """Turn a space definition (nodes, dicts, lists, constants) into a node tree."""
    if isinstance(obj, Node):
        return obj
    if isinstance(obj, Mapping):
        return DictNode(obj)
    if isinstance(obj, list | tuple):
        return ListNode(obj)
    return Const(obj)


class Choice(Node):
    """Pick one of several options; an option may itself be a sub-space (conditions nest).

    Args:
        options: Non-empty list of constants and/or sub-spaces.

    Example:
        >>> Choice(["relu", "gelu"])
        >>> Choice([{"type": "conv", "k": Choice([3, 5])}, {"type": "pool"}])
    """

    type_name = "choice"

    def __init__(self, options: Sequence[Any]) -> None:
        if isinstance(options, str | bytes) or not isinstance(options, Sequence | np.ndarray):
            raise SpaceDefinitionError(f"Choice options must be a list, got {options!r}")
        if len(options) == 0:
            raise SpaceDefinitionError("Choice needs at least one option, got []")
        self.options: list[Node] = [as_node(o) for o in options]
        consts = [o.value for o in self.options if isinstance(o, Const)]
        for i, a in enumerate(consts):
            if any(_same_const(a, b) for b in consts[i + 1 :]):
                raise SpaceDefinitionError(f"Choice options must be distinct, {a!r} repeats")

    @property
    def all_const(self) -> bool:
        return all(isinstance(o, Const) for o in self.options)

    def _labels(self) -> list[Any]:
        return [o.value if isinstance(o, Const) else o.to_dict() for o in self.options]

    def index_of(self, value: Any, path: str = "arch") -> int:
        """Index of the option ``value`` belongs to; raises InvalidArchitecture if none."""
        errors: list[InvalidArchitecture] = []
        for i, opt in enumerate(self.options):
            if isinstance(opt, Const):
                if _same_const(value, opt.value):
                    return i
                continue
            try:
                opt.validate(value, path)
            except InvalidArchitecture as err:
                errors.append(err)
            else:
                return i
        if self.all_const or not errors:
            raise InvalidArchitecture(path, f"{value!r} is not one of {self._labels()!r}")
        # The option that got furthest into the value explains the failure best.
        best = max(errors, key=lambda e: len(e.path))
        if len(errors) == 1 and len(self.options) == 1:
            raise best
        raise InvalidArchitecture(
            best.path, f"{best.reason} (no option of the choice at {path} matches)"
        )

    def sample(self, rng: np.random.Generator) -> Any:
        return self.options[int(rng.integers(len(self.options)))].sample(rng)

    def validate(self, value: Any, path: str) -> None:
        self.index_of(value, path)

    def canonical(self, value: Any) -> Any:
        return self.options[self.index_of(value)].canonical(value)

    def default(self) -> Any:
        return self.options[0].default()

    @property
    def cardinality(self) -> int | None:
        total = 0
        for o in self.options:
            c = o.cardinality
            if c is None:
                return None
            total += c
        return total

    def enumerate(self) -> Iterator[Any]:
        for o in self.options:
            yield from o.enumerate()

    def genes(self, path: str) -> list[Gene]:
        out = [Gene(path, len(self.options))]
        for i, o in enumerate(self.options):
            out.extend(o.genes(f"{path}<{i}>"))
        return out

    def encode(self, value: Any, out: list[float], mask: list[bool], active: bool) -> None:
        idx = self.index_of(value)
        out.append(float(idx))
        mask.append(active)
        for i, o in enumerate(self.options):
            if i == idx:
                o.encode(value, out, mask, active)
            else:
                o.pad(out, mask)

    def decode(self, genome: Iterator[float]) -> Any:
        idx = int(round(next(genome)))
        if not 0 <= idx < len(self.options):
            raise InvalidArchitecture("genome", f"choice index {idx} out of range")
        chosen = None
        for i, o in enumerate(self.options):
            v = o.decode(genome)
            if i == idx:
                chosen = v
        return chosen

    @property
    def feature_size(self) -> int:
        return len(self.options) + sum(o.feature_size for o in self.options)

    def features(self, value: Any, out: list[float]) -> None:
        idx = self.index_of(value)
        onehot = [0.0] * len(self.options)
        onehot[idx] = 1.0
        out.extend(onehot)
        for i, o in enumerate(self.options):
            if i == idx:
                o.features(value, out)
            else:
                out.extend([0.0] * o.feature_size)

    def decisions(self, value: Any, path: tuple[PathKey, ...]) -> list[DecisionPoint]:
        idx = self.index_of(value)
        points: list[DecisionPoint] = []
        if len(self.options) > 1:

            def mutate(rng: np.random.Generator) -> Any:
                others = [i for i in range(len(self.options)) if i != idx]
                return self.options[others[int(rng.integers(len(others)))]].sample(rng)

            def neighbours() -> list[Any]:
                return [o.default() for i, o in enumerate(self.options) if i != idx]

            points.append(DecisionPoint(path, self, value, mutate, neighbours))
        points.extend(self.options[idx].decisions(value, path))
        return points

    def crossover(self, a: Any, b: Any, rng: np.random.Generator) -> Any:
        ia, ib = self.index_of(a), self.index_of(b)
        if ia == ib and not isinstance(self.options[ia], Const):
            return self.options[ia].crossover(a, b, rng)
        return a if rng.random() < 0.5 else b

    def to_dict(self) -> Any:
        return {"_type": "choice", "options": [o.to_dict() for o in self.options]}

    def from_external(self, value: Any) -> Any:
        value = _plain(value)
        for o in self.options:
            if isinstance(o, Const):
                if _same_const(value, o.value) or (
                    isinstance(o.value, int | float)
                    and not isinstance(o.value, bool)
                    and isinstance(value, int | float)
                    and value == o.value
                ):
                    return o.value
                continue
            try:
                cand = o.from_external(value)
                o.validate(cand, "arch")
            except (InvalidArchitecture, TypeError, ValueError):
                continue
            return cand
        return value


def _check_bounds(kind: str, low: float, high: float) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise SpaceDefinitionError(f"{kind} bounds must be finite, got ({low=}, {high=})")
    if low > high:
        raise SpaceDefinitionError(f"{kind} needs low <= high, got ({low=}, {high=})")


class Int(Node):
    """An integer in ``[low, high]`` (both inclusive) on a grid of ``step``.

    Example:
        >>> Int(16, 128, step=16)
    """

    type_name = "int"

    def __init__(self, low: int, high: int, *, step: int = 1) -> None:
        for name, v in (("low", low), ("high", high), ("step", step)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer):
                raise SpaceDefinitionError(f"Int {name} must be an integer, got {v!r}")
        if step < 1:
            raise SpaceDefinitionError(f"Int step must be >= 1, got {step=}")
        _check_bounds("Int", low, high)
        self.low, self.high, self.step = int(low), int(high), int(step)
        self.size = (self.high - self.low) // self.step + 1

    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))

    def sample(self, rng: np.random.Generator) -> int:
        return self.low + self.step * int(rng.integers(self.size))

    def validate(self, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise InvalidArchitecture(path, f"{value!r} must be an integer")
        if not self.low <= value <= self.high or (value - self.low) % self.step:
            grid = f" in steps of {self.step}" if self.step > 1 else ""
            raise InvalidArchitecture(
                path, f"{value!r} must be an integer in [{self.low}, {self.high}]{grid}"
            )

    def default(self) -> int:
        return self.low

    @property
    def cardinality(self) -> int:
        return self.size

    def enumerate(self) -> Iterator[Any]:
        yield from self.values()

    def genes(self, path: str) -> list[Gene]:
        return [Gene(path, self.size, self.low, self.high)]

    def encode(self, value: Any, out: list[float], mask: list[bool], active: bool) -> None:
        out.append(float((int(value) - self.low) // self.step))
        mask.append(active)

    def decode(self, genome: Iterator[float]) -> int:
        idx = min(max(int(round(next(genome))), 0), self.size - 1)
        return self.low + self.step * idx

    @property
    def feature_size(self) -> int:
        return 1

    def features(self, value: Any, out: list[float]) -> None:
        out.append((int(value) - self.low) / max(self.high - self.low, 1))

    def decisions(self, value: Any, path: tuple[PathKey, ...]) -> list[DecisionPoint]:
        if self.size == 1:
            return []
        value = int(value)
        others = [v for v in self.values() if v != value]

        def mutate(rng: np.random.Generator) -> int:
            return others[int(rng.integers(len(others)))]

        def neighbours() -> list[Any]:
            if self.size <= 32:
                return list(others)
            return [v for v in (value - self.step, value + self.step) if self.low <= v <= self.high]

        return [DecisionPoint(path, self, value, mutate, neighbours)]

    def to_dict(self) -> Any:
        d: dict[str, Any] = {"_type": "int", "low": self.low, "high": self.high}
        if self.step != 1:
            d["step"] = self.step
        return d

    def from_external(self, value: Any) -> Any:
        value = _plain(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value


class Float(Node):
    """A real number in ``[low, high]``, sampled linearly or on a log scale, optionally on a grid.

    With ``step`` the values are ``low + k * step`` and the node is discrete.

    Example:
        >>> Float(1e-4, 1e-1, log=True)
    """

    type_name = "float"

    def __init__(
        self, low: float, high: float, *, log: bool = False, step: float | None = None
    ) -> None:
        _check_bounds("Float", float(low), float(high))
        if log and low <= 0:
            raise SpaceDefinitionError(f"Float(log=True) needs low > 0, got {low=}")
        if step is not None and step <= 0:
            raise SpaceDefinitionError(f"Float step must be > 0, got {step=}")
        self.low, self.high, self.log = float(low), float(high), bool(log)
        self.step = None if step is None else float(step)
        self.size = (
            None if self.step is None else int((self.high - self.low) / self.step + 1e-9) + 1
        )

    def _grid(self, k: int) -> float:
        assert self.step is not None
        return round(self.low + k * self.step, 12)

    def _index(self, value: float) -> int:
        assert self.step is not None
        return int(round((float(value) - self.low) / self.step))

    def sample(self, rng: np.random.Generator) -> float:
        if self.size is not None:
            return self._grid(int(rng.integers(self.size)))
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def validate(self, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise InvalidArchitecture(path, f"{value!r} must be a number")
        v = float(value)
        if not math.isfinite(v) or not self.low <= v <= self.high:
            raise InvalidArchitecture(path, f"{value!r} must be in [{self.low}, {self.high}]")
        if self.step is not None and abs(self._grid(self._index(v)) - v) > 1e-9 * max(1, abs(v)):
            raise InvalidArchitecture(
                path, f"{value!r} must be {self.low} + k * {self.step} (a point of the grid)"
            )

    def canonical(self, value: Any) -> float:
        return self._grid(self._index(value)) if self.step is not None else float(value)

    def default(self) -> float:
        return self.low

    @property
    def cardinality(self) -> int | None:
        return self.size

    def enumerate(self) -> Iterator[Any]:
        if self.size is None:
            raise UnsupportedOperation("enumerate() needs a discrete space; Float has no step")
        for k in range(self.size):
            yield self._grid(k)

    def genes(self, path: str) -> list[Gene]:
        return [Gene(path, self.size, self.low, self.high, self.log)]

    def encode(self, value: Any, out: list[float], mask: list[bool], active: bool) -> None:
        out.append(float(self._index(value)) if self.step is not None else float(value))
        mask.append(active)

    def decode(self, genome: Iterator[float]) -> float:
        g = next(genome)
        if self.size is not None:
            return self._grid(min(max(int(round(g)), 0), self.size - 1))
        return float(min(max(g, self.low), self.high))

    @property
    def feature_size(self) -> int:
        return 1

    def features(self, value: Any, out: list[float]) -> None:
        v = float(value)
        if self.high == self.low:
            out.append(0.0)
        elif self.log:
            out.append(math.log(v / self.low) / math.log(self.high / self.low))
        else:
            out.append((v - self.low) / (self.high - self.low))

    def decisions(self, value: Any, path: tuple[PathKey, ...]) -> list[DecisionPoint]:
        if self.high == self.low:
            return []
        if self.size is not None:
            idx = self._index(value)
            others = [self._grid(k) for k in range(self.size) if k != idx]

            def mutate_grid(rng: np.random.Generator) -> float:
                return others[int(rng.integers(len(others)))]

            return [DecisionPoint(path, self, value, mutate_grid, lambda: list(others))]

        def mutate(rng: np.random.Generator) -> float:
            for _ in range(100):
                v = self.sample(rng)
                if v != value:
                    return v
            return self.high if value != self.high else self.low

        return [DecisionPoint(path, self, value, mutate, None)]

    def to_dict(self) -> Any:
        d: dict[str, Any] = {"_type": "float", "low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        if self.step is not None:
            d["step"] = self.step
        return d

    def from_external(self, value: Any) -> Any:
        value = _plain(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return self.canonical(value) if self.step is not None else float(value)
        return value


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
