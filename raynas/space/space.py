"""``Space``: the one interface every strategy and trainable uses to talk about architectures."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from raynas.space.errors import InvalidArchitecture, SpaceDefinitionError, UnsupportedOperation
from raynas.space.primitives import DecisionPoint, Gene, Node, PathKey, as_node
from raynas.space.serialize import node_from_dict

ENUMERATE_LIMIT = 1_000_000

Arch = dict[str, Any]


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A numpy Generator from a Generator, a seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _set_at(value: Any, path: tuple[PathKey, ...], new: Any) -> Any:
    if not path:
        return new
    out = copy.copy(value)
    out[path[0]] = _set_at(value[path[0]], path[1:], new)
    return out


def canonical_arch_id(canonical: Any) -> str:
    """:meth:`Space.arch_id` of an arch that is already canonical (skips re-validating it)."""
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Space:
    """A search space: a tree of DSL nodes plus everything a NAS needs from it.

    An architecture (``arch``) is a plain JSON-able dict, a member of the space. Its identity
    is :meth:`arch_id`, a hash of its canonical JSON, stable across processes and machines.

    Args:
        root: The space definition: a dict of DSL nodes (``Choice``, ``Int``, ``Float``,
            ``Repeat``, ``Cell``), nested dicts and lists, and constants.
        name: Registry name (``custom`` for user spaces).
        description: One line shown by ``raynas spaces``.

    Example:
        >>> space = Space({"depth": Int(1, 4), "act": Choice(["relu", "gelu"])})
        >>> arch = space.sample(0)
        >>> space.validate(arch)
        >>> space.decode(space.encode(arch)) == space.canonical(arch)
        True
    """

    def __init__(
        self, root: Mapping[str, Any] | Node, *, name: str = "custom", description: str = ""
    ) -> None:
        node = as_node(root)
        if type(node).__name__ != "DictNode":
            raise SpaceDefinitionError(
                f"a space's root must be a mapping of fields, got {type(node).__name__}"
            )
        self.root: Node = node
        self.name = name
        self.description = description
        self._genes: list[Gene] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, cardinality={self.cardinality})"

    # --- membership -------------------------------------------------------------------
    def sample(self, rng: np.random.Generator | int | None = None) -> Arch:
        """A uniformly random decision at every node (not uniform over members)."""
        return self.root.sample(as_rng(rng))

    def validate(self, arch: Any) -> None:
        """Raise :class:`InvalidArchitecture` naming the path of the first bad value."""
        self.root.validate(arch, "arch")

    def is_valid(self, arch: Any) -> bool:
        try:
            self.validate(arch)
        except InvalidArchitecture:
            return False
        return True

    def canonical(self, arch: Any) -> Arch:
        """The validated, normalised form of ``arch`` (Python types, sorted cell inputs)."""
        self.validate(arch)
        return self.root.canonical(arch)

    def arch_id(self, arch: Any) -> str:
        """A stable 16-hex-digit id: a SHA-256 of the canonical JSON of ``arch``."""
        return canonical_arch_id(self.canonical(arch))

    def to_string(self, arch: Any) -> str:
        """A one-line string form of ``arch`` (canonical JSON; built-in spaces override)."""
        return json.dumps(self.canonical(arch), sort_keys=True, separators=(",", ":"))

    def from_string(self, text: str) -> Arch:
        """Inverse of :meth:`to_string`."""
        try:
            arch = json.loads(text)
        except json.JSONDecodeError as err:
            raise InvalidArchitecture("arch", f"not valid JSON: {err}") from err
        return self.canonical(arch)

    # --- size -------------------------------------------------------------------------
    @property
    def cardinality(self) -> int | None:
        """Exact number of members for a discrete space; None when continuous."""
        return self.root.cardinality

    @property
    def is_discrete(self) -> bool:
        return self.cardinality is not None

    def enumerate(self, limit: int = ENUMERATE_LIMIT) -> Iterator[Arch]:
        """Every member, in a fixed order. Refuses continuous spaces and spaces over ``limit``."""
        card = self.cardinality
        if card is None:
            raise UnsupportedOperation(f"enumerate() needs a discrete space; {self.name} is not")
        if card > limit:
            raise UnsupportedOperation(
                f"enumerate() is limited to {limit:,} members; {self.name} has {card:,}"
            )
        return self.root.enumerate()

    # --- compilation ------------------------------------------------------------------
    def to_tune(self) -> Any:
        """A Ray Tune ``param_space`` fragment whose samples are valid architectures."""
        from raynas.space.compile import to_tune  # imports Ray: only when asked

        return to_tune(self.root)

    def to_hyperopt(self) -> Any:
        """A hyperopt space; map its samples back with :meth:`from_hyperopt`."""
        from raynas.space.compile import to_hyperopt  # imports hyperopt: only when asked

        return to_hyperopt(self.root)

    def from_hyperopt(self, sample: Any) -> Arch:
        """An architecture from a hyperopt sample (tuples, numpy scalars, float ints fixed)."""
        return self.canonical(self.root.from_external(sample))

    def from_tune(self, sample: Any) -> Arch:
        """An architecture from a resolved Tune sample of :meth:`to_tune`."""
        return self.canonical(self.root.from_external(sample))

    # --- genome -----------------------------------------------------------------------
    @property
    def genes(self) -> list[Gene]:
        """The fixed genome layout: one gene per decision of the whole tree."""
        if self._genes is None:
            self._genes = self.root.genes("arch")
        return self._genes

    def encode(self, arch: Any) -> list[float]:
        """A fixed-length genome; discrete genes are indices, inactive genes are 0."""
        return self._encode(arch)[0]

    def active_mask(self, arch: Any) -> list[bool]:
        """Which genes of ``encode(arch)`` are decisions ``arch`` actually makes."""
        return self._encode(arch)[1]

    def _encode(self, arch: Any) -> tuple[list[float], list[bool]]:
        out: list[float] = []
        mask: list[bool] = []
        self.root.encode(self.canonical(arch), out, mask, True)
        return out, mask

    def decode(self, genome: Any) -> Arch:
        """The architecture of a genome (inverse of :meth:`encode`)."""
        try:
            values = [float(g) for g in genome]
        except (TypeError, ValueError) as err:
            raise InvalidArchitecture("genome", f"genes must be numbers: {err}") from None
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            raise InvalidArchitecture("genome", f"genes {bad} are not finite numbers")
        if len(values) != len(self.genes):
            raise InvalidArchitecture(
                "genome", f"must have {len(self.genes)} genes for {self.name}, got {len(values)}"
            )
        it = iter(values)
        return self.canonical(self.root.decode(it))

    # --- features ---------------------------------------------------------------------
    @property
    def feature_size(self) -> int:
        return self.root.feature_size

    def features(self, arch: Any) -> np.ndarray:
        """A fixed-length float32 vector: one-hot choices, scaled numbers, padded repeats."""
        out: list[float] = []
        self.root.features(self.canonical(arch), out)
        return np.asarray(out, dtype=np.float32)

    # --- local moves ------------------------------------------------------------------
    def decisions(self, arch: Any) -> list[DecisionPoint]:
        """The decisions ``arch`` makes that can be changed one at a time."""
        return self.root.decisions(self.canonical(arch), ())

    def mutate(self, arch: Any, rng: np.random.Generator | int | None = None) -> Arch:
        """Change exactly one decision of ``arch`` (chosen uniformly); the result is valid."""
        rng = as_rng(rng)
        arch = self.canonical(arch)
        points = self.decisions(arch)
        if not points:
            raise UnsupportedOperation(f"{self.name} has a single member; nothing to mutate")
        point = points[int(rng.integers(len(points)))]
        return self.canonical(_set_at(arch, point.path, point.mutate(rng)))

    def neighbours(self, arch: Any) -> list[Arch]:
        """Every architecture one decision away (discrete spaces only)."""
        arch = self.canonical(arch)
        out: list[Arch] = []
        seen = {self.arch_id(arch)}
        for point in self.decisions(arch):
            if point.neighbours is None:
                raise UnsupportedOperation(
                    f"neighbours() needs a discrete space; {'.'.join(map(str, point.path))} "
                    "is continuous (give the Float a step)"
                )
            for new in point.neighbours():
                cand = self.canonical(_set_at(arch, point.path, new))
                key = self.arch_id(cand)
                if key not in seen:
                    seen.add(key)
                    out.append(cand)
        return out

    def crossover(self, a: Any, b: Any, rng: np.random.Generator | int | None = None) -> Arch:
        """Uniform crossover: each decision from one parent or the other; the result is valid."""
        return self.canonical(
            self.root.crossover(self.canonical(a), self.canonical(b), as_rng(rng))
        )

    # --- serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The plain-data (YAML / JSON) definition of this space."""
        return {"name": self.name, "description": self.description, "space": self.root.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Space:
        """A space from :meth:`to_dict` output, or from a bare mapping of fields."""
        if not isinstance(data, Mapping):
            raise SpaceDefinitionError(f"a space must be a mapping, got {type(data).__name__}")
        if "space" in data and set(data) <= {"name", "description", "space"}:
            return cls(
                node_from_dict(data["space"]),
                name=str(data.get("name", "custom")),
                description=str(data.get("description", "")),
            )
        return cls(node_from_dict(data))

    @classmethod
    def from_yaml(cls, path: str | Path) -> Space:
        """Load a space declared in a YAML file."""
        p = Path(path)
        if not p.is_file():
            raise SpaceDefinitionError(f"space file {str(p)!r} does not exist")
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as err:
            raise SpaceDefinitionError(f"space file {str(p)!r} is not valid YAML: {err}") from err
        return cls.from_dict(data)

    # --- models -----------------------------------------------------------------------
    def build(self, arch: Any, *, num_classes: int, in_channels: int = 3) -> Any:
        """Build the PyTorch model of ``arch``. Built-in spaces implement this."""
        raise UnsupportedOperation(
            f"space {self.name!r} has no model builder; use a built-in space or subclass Space "
            "and implement build()"
        )
