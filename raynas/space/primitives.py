"""The DSL primitives, re-exported from their modules: ``Choice``, ``Int``, ``Float``, ``Repeat``
and the containers.

A search space is a tree of these nodes. Plain dicts and lists in a space definition become
:class:`DictNode` / :class:`ListNode`; any other plain value is a constant. Every node knows
how to sample, validate, canonicalise, encode to a fixed-length genome, featurise, enumerate
its members and list the single-decision changes of a value. :class:`raynas.space.Space`
wraps the root node and is the public entry point; nodes are the building blocks.

Paths: the root is ``arch``; dict children are ``arch.key``, list items ``arch[i]``.
"""

from raynas.space.choice import Choice
from raynas.space.containers import DictNode, ListNode, Repeat, as_node
from raynas.space.nodes import Const, DecisionPoint, Gene, Node, PathKey, child_path
from raynas.space.numeric import Float, Int

__all__ = [
    "Choice",
    "Const",
    "DecisionPoint",
    "DictNode",
    "Float",
    "Gene",
    "Int",
    "ListNode",
    "Node",
    "PathKey",
    "Repeat",
    "as_node",
    "child_path",
]
