"""Search strategies: each one a Ray Tune ``Searcher`` (a :class:`NASSearcher`), by name.

Example:
    >>> from raynas.strategies import get_strategy
    >>> searcher = get_strategy("evolution", space, metric="val_acc", mode="max", seed=0)
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from raynas.registry import STRATEGIES, RegistryError
from raynas.strategies.base import (
    InfeasibleSpaceError,
    NASSearcher,
    StrategyError,
    result_score,
)

#: Built-in strategy modules, imported when the registry is first used.
_BUILTIN_MODULES = (
    "random",
    "grid",
    "evolution",
    "local_search",
    "reinforce",
    "bo",
    "tpe",
    "moea",
    "optuna_search",
    "bohb",
)


def register_strategy(name: str, *, description: str = ""):  # type: ignore[no-untyped-def]
    """Class decorator: register a :class:`NASSearcher` subclass under ``name``."""

    def wrap(cls: type[NASSearcher]) -> type[NASSearcher]:
        if not (isinstance(cls, type) and issubclass(cls, NASSearcher)):
            raise RegistryError(f"strategy {name!r} must be a NASSearcher subclass, got {cls!r}")
        cls.name = name
        return STRATEGIES.register(name, cls, description=description)

    return wrap


def get_strategy(name: str, space: Any, **kwargs: Any) -> NASSearcher:
    """The strategy ``name`` over ``space`` with its keyword arguments.

    Raises:
        RegistryError: unknown strategy name (lists the known ones) or unknown argument.
        StrategyError: the strategy cannot work on this space.
    """
    cls = STRATEGIES.get(name)
    params = strategy_parameters(cls)
    for key in kwargs:
        if key not in params:
            raise RegistryError(
                f"strategy {name!r} has no argument {key!r}; its arguments are {sorted(params)}"
            )
    return cls(space, **kwargs)


#: Strategy arguments the experiment sets from its own fields (``seed``, ``objective``):
#: a config sets them there, not under ``strategy``.
EXPERIMENT_ARGUMENTS = {
    "seed": "seed",
    "metric": "objective.metric",
    "mode": "objective.mode",
    "objectives": "objective.also",
}


def strategy_arguments(cls: type) -> dict[str, Any]:
    """The arguments a config gives a strategy under ``strategy:`` (with defaults): its
    parameters less :data:`EXPERIMENT_ARGUMENTS`."""
    return {k: v for k, v in strategy_parameters(cls).items() if k not in EXPERIMENT_ARGUMENTS}


def strategy_parameters(cls: type) -> dict[str, Any]:
    """Keyword parameters of a strategy (its own and the base's) with their defaults."""
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not issubclass(klass, NASSearcher):
            continue
        for pname, p in inspect.signature(klass.__init__).parameters.items():
            if pname in ("self", "space") or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            out[pname] = None if p.default is inspect.Parameter.empty else p.default
    return out


def list_strategies() -> list[str]:
    """Names of every registered strategy."""
    return STRATEGIES.names()


for _mod in _BUILTIN_MODULES:
    try:
        importlib.import_module(f"raynas.strategies.{_mod}")
    except ModuleNotFoundError as _err:  # a strategy module not written yet
        if _err.name != f"raynas.strategies.{_mod}":
            raise

__all__ = [
    "InfeasibleSpaceError",
    "NASSearcher",
    "StrategyError",
    "get_strategy",
    "list_strategies",
    "register_strategy",
    "result_score",
    "strategy_arguments",
    "strategy_parameters",
]
