"""The search-space DSL: declare a space once, sample, validate, encode, mutate and compile it.

Example:
    >>> from raynas.space import Space, Choice, Int, Repeat
    >>> space = Space({"layers": Repeat({"width": Choice([32, 64])}, min=1, max=3),
    ...                "act": Choice(["relu", "gelu"])})
    >>> arch = space.sample(0)
    >>> space.arch_id(arch)  # stable across processes
"""

from raynas.space.cell import Cell
from raynas.space.errors import InvalidArchitecture, SpaceDefinitionError, UnsupportedOperation
from raynas.space.primitives import Choice, DecisionPoint, Float, Gene, Int, Node, Repeat
from raynas.space.space import Arch, Space, as_rng

__all__ = [
    "Arch",
    "Cell",
    "Choice",
    "DecisionPoint",
    "Float",
    "Gene",
    "Int",
    "InvalidArchitecture",
    "Node",
    "Repeat",
    "Space",
    "SpaceDefinitionError",
    "UnsupportedOperation",
    "as_rng",
]
