"""DARTS-style cell genotypes: the ``Genotype`` record, published cells and a safe parser.

A genotype describes a normal and a reduction cell. Each cell has ``steps`` intermediate
nodes; node ``k`` (numbered from 2, nodes 0 and 1 being the two cell inputs) sums two
operations, so a cell is a flat list of ``2 * steps`` ``(op_name, input_index)`` pairs where
pair ``2k`` and ``2k + 1`` feed node ``k + 2``. The ``*_concat`` lists name the nodes
concatenated into the cell output.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from search_spaces.models.ops import DARTS_OPS

__all__ = [
    "DARTS",
    "DARTS_V1",
    "DARTS_V2",
    "PUBLISHED_GENOTYPES",
    "AmoebaNet",
    "Genotype",
    "NASNet",
    "as_int",
    "parse_genotype",
]

CellSpec = Sequence[tuple[str, int]]
_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


class Genotype(NamedTuple):
    """A normal and a reduction cell.

    Field types follow the DARTS repository's convention (lists), so ``repr`` gives the
    familiar ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], ...)``
    and a genotype built by hand with lists compares equal to a parsed one. Use
    :func:`parse_genotype` to validate and normalize (e.g. ``range`` concat to lists).

    Attributes:
        normal: ``(op_name, input_index)`` pairs of the normal cell, two per node.
        normal_concat: Nodes concatenated into the normal cell's output.
        reduce: Pairs of the reduction cell.
        reduce_concat: Nodes concatenated into the reduction cell's output.
    """

    normal: CellSpec
    normal_concat: Sequence[int]
    reduce: CellSpec
    reduce_concat: Sequence[int]

    def to_string(self) -> str:
        """Return the DARTS text form, e.g. ``Genotype(normal=[('sep_conv_3x3', 0), ...], ...)``.

        :func:`parse_genotype` reads it back.
        """

        def cell(pairs: CellSpec) -> str:
            return "[" + ", ".join(f"({op!r}, {index})" for op, index in pairs) + "]"

        return (
            f"Genotype(normal={cell(self.normal)}, normal_concat={list(self.normal_concat)}, "
            f"reduce={cell(self.reduce)}, reduce_concat={list(self.reduce_concat)})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (lists instead of tuples)."""
        return {
            "normal": [[op, index] for op, index in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[op, index] for op, index in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    def __str__(self) -> str:
        return self.to_string()


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def as_int(value: Any, where: str, expected: str = "expected an int") -> int:
    """``value`` as an int (``operator.index``: no bool, no float), else the ValueError
    ``"{where}: {expected}, got {value!r}"``."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: {expected}, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{where}: {expected}, got {value!r}") from None


def check_min_ints(*checks: tuple[str, Any, int]) -> None:
    """For each ``(name, value, low)``: ``value`` must be an int (not a bool) ``>= low``, else
    the ValueError ``"{name}: must be an int >= {low}, got {value!r}"``."""
    for name, value, low in checks:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: must be an int >= {low}, got {value!r}")


def _check_cell(name: str, pairs: Any) -> list[tuple[str, int]]:
    if isinstance(pairs, str | bytes) or not isinstance(pairs, Sequence):
        raise ValueError(f"{name}: expected a list of (op_name, input_index) pairs")
    if len(pairs) == 0 or len(pairs) % 2 != 0:
        raise ValueError(f"{name}: expected a non-empty, even number of pairs, got {len(pairs)}")
    out: list[tuple[str, int]] = []
    for position, pair in enumerate(pairs):
        where = f"{name}[{position}]"
        if isinstance(pair, str | bytes) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(f"{where}: {pair!r} is not an (op_name, input_index) pair")
        op_name, raw_index = pair
        if not isinstance(op_name, str) or op_name not in DARTS_OPS:
            raise ValueError(
                f"{where}: unknown DARTS op {op_name!r}; known ops: {', '.join(DARTS_OPS)}"
            )
        index = as_int(raw_index, where)
        node = position // 2 + 2
        if not 0 <= index < node:
            raise ValueError(
                f"{where}: input index {index} out of range; node {node} can only read "
                f"nodes 0..{node - 1}"
            )
        out.append((op_name, index))
    return out


def _check_concat(name: str, value: Any, steps: int) -> list[int]:
    if isinstance(value, range):
        value = list(value)
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) == 0:
        raise ValueError(f"{name}: expected a non-empty list of node indices, got {value!r}")
    nodes = [as_int(v, name) for v in value]
    for node in nodes:
        if not 0 <= node < steps + 2:
            raise ValueError(f"{name}: node {node} out of range 0..{steps + 1}")
    if len(set(nodes)) != len(nodes):
        raise ValueError(f"{name}: repeated node in {nodes}")
    return nodes


def _from_fields(fields: Mapping[str, Any]) -> Genotype:
    normal = _check_cell("normal", fields["normal"])
    reduce = _check_cell("reduce", fields["reduce"])
    return Genotype(
        normal=normal,
        normal_concat=_check_concat("normal_concat", fields["normal_concat"], len(normal) // 2),
        reduce=reduce,
        reduce_concat=_check_concat("reduce_concat", fields["reduce_concat"], len(reduce) // 2),
    )


# --------------------------------------------------------------------------------------
# String parsing (ast only, never eval)
# --------------------------------------------------------------------------------------


def _literal(node: ast.expr) -> Any:
    """Convert a literal expression (plus ``range(...)``) to Python data."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | str):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -as_int(_literal(node.operand), "negative number")
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(element) for element in node.elts]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and not node.keywords
        and 1 <= len(node.args) <= 3
    ):
        bounds = [as_int(_literal(arg), "range() argument") for arg in node.args]
        return list(range(*bounds))
    raise ValueError(f"unsupported expression in genotype string: {ast.unparse(node)!r}")


def _parse_string(text: str) -> Genotype:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ValueError(f"malformed genotype string: {err.msg} in {text!r}") from None
    body = tree.body
    fields: dict[str, Any] = {}
    if isinstance(body, ast.Dict):
        for key_node, value_node in zip(body.keys, body.values):
            if key_node is None:
                raise ValueError("malformed genotype string: '**' is not supported")
            key = _literal(key_node)
            if not isinstance(key, str):
                raise ValueError(f"malformed genotype string: non-string key {key!r}")
            fields[key] = _literal(value_node)
        return _parse_mapping(fields)
    if not (
        isinstance(body, ast.Call)
        and isinstance(body.func, ast.Name)
        and body.func.id == "Genotype"
    ):
        raise ValueError(
            "malformed genotype string: expected 'Genotype(normal=..., normal_concat=..., "
            f"reduce=..., reduce_concat=...)', got {text[:80]!r}"
        )
    if len(body.args) > len(_FIELDS):
        raise ValueError(f"malformed genotype string: Genotype takes {len(_FIELDS)} fields")
    for name, arg in zip(_FIELDS, body.args):
        fields[name] = _literal(arg)
    for keyword in body.keywords:
        if keyword.arg is None:
            raise ValueError("malformed genotype string: '**' is not supported")
        if keyword.arg in fields:
            raise ValueError(f"malformed genotype string: field {keyword.arg!r} given twice")
        fields[keyword.arg] = _literal(keyword.value)
    return _parse_mapping(fields)


def _parse_mapping(fields: Mapping[str, Any]) -> Genotype:
    missing = [name for name in _FIELDS if name not in fields]
    extra = sorted(str(name) for name in fields if name not in _FIELDS)
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"missing {missing}")
        if extra:
            problems.append(f"unexpected {extra}")
        raise ValueError(f"genotype fields: {'; '.join(problems)}; expected {list(_FIELDS)}")
    return _from_fields(fields)


def parse_genotype(obj: Genotype | Mapping[str, Any] | Sequence[Any] | str) -> Genotype:
    """Build a validated :class:`Genotype` from any of its usual forms.

    Args:
        obj: A ``Genotype`` (or any 4-field namedtuple / 4-item sequence in field order), a
            mapping with the keys ``normal``, ``normal_concat``, ``reduce``,
            ``reduce_concat``, or the DARTS text form
            ``"Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), ...)"``.
            Strings are parsed with :mod:`ast`; only literals and ``range(...)`` are allowed.

    Returns:
        A new genotype with lists of ``(str, int)`` tuples for the cells and lists of ints
        for the concat fields.

    Raises:
        ValueError: Naming the problem, on any malformed input.
    """
    if isinstance(obj, str):
        return _parse_string(obj)
    if isinstance(obj, Mapping):
        return _parse_mapping(obj)
    if isinstance(obj, Sequence) and not isinstance(obj, bytes) and len(obj) == len(_FIELDS):
        return _from_fields(dict(zip(_FIELDS, obj)))
    raise ValueError(
        "cannot interpret a genotype from "
        f"{type(obj).__name__}; expected a Genotype, a dict or a 'Genotype(...)' string"
    )


# --------------------------------------------------------------------------------------
# Published cells (as listed in the DARTS repository's genotypes.py)
# --------------------------------------------------------------------------------------

NASNet = parse_genotype(
    {
        "normal": [
            ("sep_conv_5x5", 1),
            ("sep_conv_3x3", 0),
            ("sep_conv_5x5", 0),
            ("sep_conv_3x3", 0),
            ("avg_pool_3x3", 1),
            ("skip_connect", 0),
            ("avg_pool_3x3", 0),
            ("avg_pool_3x3", 0),
            ("sep_conv_3x3", 1),
            ("skip_connect", 1),
        ],
        "normal_concat": [2, 3, 4, 5, 6],
        "reduce": [
            ("sep_conv_5x5", 1),
            ("sep_conv_7x7", 0),
            ("max_pool_3x3", 1),
            ("sep_conv_7x7", 0),
            ("avg_pool_3x3", 1),
            ("sep_conv_5x5", 0),
            ("skip_connect", 3),
            ("avg_pool_3x3", 2),
            ("sep_conv_3x3", 2),
            ("max_pool_3x3", 1),
        ],
        "reduce_concat": [4, 5, 6],
    }
)
"""NASNet-A (Zoph et al., 2018)."""

AmoebaNet = parse_genotype(
    {
        "normal": [
            ("avg_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("sep_conv_3x3", 0),
            ("sep_conv_5x5", 2),
            ("sep_conv_3x3", 0),
            ("avg_pool_3x3", 3),
            ("sep_conv_3x3", 1),
            ("skip_connect", 1),
            ("skip_connect", 0),
            ("avg_pool_3x3", 1),
        ],
        "normal_concat": [4, 5, 6],
        "reduce": [
            ("avg_pool_3x3", 0),
            ("sep_conv_3x3", 1),
            ("max_pool_3x3", 0),
            ("sep_conv_7x7", 2),
            ("sep_conv_7x7", 0),
            ("avg_pool_3x3", 1),
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("conv_7x1_1x7", 0),
            ("sep_conv_3x3", 5),
        ],
        "reduce_concat": [3, 4, 6],
    }
)
"""AmoebaNet-A (Real et al., 2019)."""

DARTS_V1 = parse_genotype(
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])"
)
"""DARTS first-order cell (Liu et al., 2019)."""

DARTS_V2 = parse_genotype(
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
"""DARTS second-order cell (Liu et al., 2019); the paper's reported 3.3M-parameter model."""

DARTS = DARTS_V2
"""Alias of :data:`DARTS_V2`, as in the DARTS repository."""

PUBLISHED_GENOTYPES: dict[str, Genotype] = {
    "NASNet": NASNet,
    "AmoebaNet": AmoebaNet,
    "DARTS_V1": DARTS_V1,
    "DARTS_V2": DARTS_V2,
}
"""Published genotypes by name."""
