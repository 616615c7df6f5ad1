"""``Int`` and ``Float``: numbers in a range, on a grid or (Float) continuous / log-scaled."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from raynas.space.errors import InvalidArchitecture, SpaceDefinitionError, UnsupportedOperation
from raynas.space.nodes import DecisionPoint, Gene, Node, PathKey, _plain


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
        for name, v in (("low", low), ("high", high), ("step", step)):
            if v is None and name == "step":
                continue
            if isinstance(v, bool) or not isinstance(v, int | float | np.number):
                raise SpaceDefinitionError(f"Float {name} must be a number, got {v!r}")
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
