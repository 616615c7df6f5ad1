"""``Choice``: pick one of several options; options may be sub-spaces (conditions nest)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from raynas.space.containers import DictNode, as_node
from raynas.space.errors import InvalidArchitecture, SpaceDefinitionError
from raynas.space.nodes import (
    Const,
    DecisionPoint,
    Gene,
    Node,
    PathKey,
    _plain,
    _same_const,
    child_path,
)

#: Options up to this many members are checked for overlap when the choice is declared.
_OVERLAP_CHECK_LIMIT = 10_000


def _scalar_key(value: Any) -> tuple[str, Any] | None:
    """A hashable key equal for two scalars exactly when :func:`_same_const` says they are
    the same (bool kept apart from numbers, ``1 == 1.0``); None for non-scalars."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value) if value == value else None  # NaN is no option's value
    if isinstance(value, str):
        return ("str", value)
    if value is None:
        return ("none", None)
    return None


class Choice(Node):
    """Pick one of several options; an option may itself be a sub-space (conditions nest).

    Sub-space options should be told apart by a *tag*: a key every option has, with a
    different constant in each (``{"type": "conv", ...}`` / ``{"type": "pool", ...}``);
    validation then blames the field inside the tagged option. Small discrete options that
    share a member are refused (a member must belong to one option).

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
        self.tag_key, self.tag_values = self._find_tag()
        if self.tag_key is None:
            self._refuse_overlaps()
        # Scalar constants by a hashable key: index_of in O(1) for the common case.
        self._const_index: dict[tuple[str, Any], int] = {}
        for i, o in enumerate(self.options):
            key = _scalar_key(o.value) if isinstance(o, Const) else None
            if key is not None:
                self._const_index.setdefault(key, i)

    def _find_tag(self) -> tuple[str | None, list[Any]]:
        """A key every sub-space option (all dicts) holds as a distinct constant, if any."""
        subspaces = [o for o in self.options if not isinstance(o, Const)]
        if len(subspaces) < 2 or not all(isinstance(o, DictNode) for o in subspaces):
            return None, []
        fields = [dict(o.children) for o in subspaces]  # type: ignore[attr-defined]
        for key in fields[0]:
            nodes = [f.get(key) for f in fields]
            if all(isinstance(n, Const) for n in nodes):
                values = [n.value for n in nodes]  # type: ignore[union-attr]
                if all(
                    not _same_const(a, b) for i, a in enumerate(values) for b in values[i + 1 :]
                ):
                    return str(key), values
        return None, []

    def _refuse_overlaps(self) -> None:
        """Two small discrete sub-space options must not share a member."""
        seen: dict[str, int] = {}
        for i, opt in enumerate(self.options):
            card = opt.cardinality
            if isinstance(opt, Const) or card is None or card > _OVERLAP_CHECK_LIMIT:
                continue
            for member in opt.enumerate():
                key = json.dumps(opt.canonical(member), sort_keys=True, default=str)
                if key in seen and seen[key] != i:
                    raise SpaceDefinitionError(
                        f"Choice options {seen[key]} and {i} both contain {member!r}; make "
                        "them disjoint, e.g. with a tag key ({'type': 'a', ...} / "
                        "{'type': 'b', ...})"
                    )
                seen[key] = i

    @property
    def all_const(self) -> bool:
        return all(isinstance(o, Const) for o in self.options)

    def _labels(self) -> list[Any]:
        return [o.value if isinstance(o, Const) else o.to_dict() for o in self.options]

    def index_of(self, value: Any, path: str = "arch") -> int:
        """Index of the option ``value`` belongs to; raises InvalidArchitecture if none."""
        if self.tag_key is not None and isinstance(value, Mapping) and self.tag_key in value:
            tag = value[self.tag_key]
            subspaces = [i for i, o in enumerate(self.options) if not isinstance(o, Const)]
            for i, known in zip(subspaces, self.tag_values):
                if _same_const(tag, known):
                    self.options[i].validate(value, path)
                    return i
            raise InvalidArchitecture(
                child_path(path, self.tag_key), f"{tag!r} is not one of {self.tag_values!r}"
            )
        key = _scalar_key(value)
        if key is not None and key in self._const_index:
            return self._const_index[key]
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
