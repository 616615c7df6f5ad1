"""Space definitions as plain data (YAML / JSON): ``node_to_dict`` and ``node_from_dict``.

The format follows NNI's search-space files: a mapping with a ``_type`` key is a primitive,
any other mapping is a dict of fields, a list is a fixed list, anything else is a constant::

    layers: {_type: repeat, min: 1, max: 4, node: {width: {_type: choice, options: [32, 64]}}}
    activation: {_type: choice, options: [relu, gelu]}
    lr: {_type: float, low: 1.0e-4, high: 1.0e-1, log: true}
    cell: {_type: cell, ops: [none, skip_connect, nor_conv_3x3], nodes: 3}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raynas.space.cell import Cell
from raynas.space.errors import SpaceDefinitionError
from raynas.space.primitives import Choice, Const, DictNode, Float, Int, ListNode, Node, Repeat

_KEYS: dict[str, tuple[set[str], set[str]]] = {
    # type: (required keys, optional keys)
    "choice": ({"options"}, set()),
    "int": ({"low", "high"}, {"step"}),
    "float": ({"low", "high"}, {"log", "step"}),
    "repeat": ({"node", "min", "max"}, set()),
    "cell": ({"ops", "nodes"}, {"input_nodes", "mode", "inputs_per_node"}),
    "const": ({"value"}, set()),
}


def node_from_dict(data: Any, path: str = "space") -> Node:
    """Build a node tree from its plain-data form; errors name the path of the bad entry."""
    if isinstance(data, Mapping) and "_type" in data:
        kind = data["_type"]
        if kind not in _KEYS:
            raise SpaceDefinitionError(
                f"{path}._type: unknown type {kind!r}; expected one of {sorted(_KEYS)}"
            )
        required, optional = _KEYS[kind]
        given = set(data) - {"_type"}
        if missing := required - given:
            raise SpaceDefinitionError(f"{path}: {kind} needs {sorted(missing)}")
        if extra := given - required - optional:
            raise SpaceDefinitionError(
                f"{path}: unknown key(s) {sorted(extra)} for {kind}; "
                f"allowed: {sorted(required | optional)}"
            )
        args = {k: v for k, v in data.items() if k != "_type"}
        try:
            if kind == "choice":
                opts = args["options"]
                if not isinstance(opts, list):
                    raise SpaceDefinitionError(f"options must be a list, got {opts!r}")
                return Choice(
                    [node_from_dict(o, f"{path}.options[{i}]") for i, o in enumerate(opts)]
                )
            if kind == "int":
                return Int(args["low"], args["high"], step=args.get("step", 1))
            if kind == "float":
                return Float(
                    args["low"],
                    args["high"],
                    log=bool(args.get("log", False)),
                    step=args.get("step"),
                )
            if kind == "repeat":
                return Repeat(
                    node_from_dict(args["node"], f"{path}.node"), min=args["min"], max=args["max"]
                )
            if kind == "cell":
                return Cell(
                    args["ops"],
                    nodes=args["nodes"],
                    input_nodes=args.get("input_nodes", 1),
                    mode=args.get("mode", "edges"),
                    inputs_per_node=args.get("inputs_per_node", 2),
                )
            return Const(args["value"])
        except SpaceDefinitionError as err:
            if str(err).startswith(path):
                raise
            raise SpaceDefinitionError(f"{path}: {err}") from err
        except TypeError as err:
            raise SpaceDefinitionError(f"{path}: bad arguments for {kind}: {err}") from err
    if isinstance(data, Mapping):
        return DictNode({k: node_from_dict(v, f"{path}.{k}") for k, v in data.items()})
    if isinstance(data, list):
        return ListNode([node_from_dict(v, f"{path}[{i}]") for i, v in enumerate(data)])
    return Const(data)


def node_to_dict(node: Node) -> Any:
    """The plain-data form of a node tree (inverse of :func:`node_from_dict`)."""
    return node.to_dict()
