"""Errors raised by the search-space DSL."""

from __future__ import annotations


class InvalidArchitecture(ValueError):
    """An architecture that is not a member of its space.

    The message always starts with the path of the offending value, e.g.
    ``arch.cell.edge_2_3: 'conv9' is not one of ['none', 'skip_connect', ...]``.

    Attributes:
        path: Dotted path of the bad value (``arch.cell.edge_2_3``).
        reason: What is wrong and what is allowed.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class SpaceDefinitionError(ValueError):
    """A search space that is itself malformed (bad bounds, empty choice, bad YAML)."""


class UnsupportedOperation(TypeError):
    """An operation the space cannot offer, e.g. ``enumerate()`` of a continuous space."""
