"""raynas: Neural Architecture Search orchestrated by Ray Tune.

A NAS has three parts and raynas has a home for each: the search space (``raynas.space`` and
the built-in ``search_spaces``), the search strategy (``raynas.strategies``, Tune searchers and
schedulers) and the evaluation (``trainables``, Tune trainables).

Example:
    >>> import raynas
    >>> space = raynas.get_space("nb201", C=8, N=1)
    >>> arch = space.sample(0)
    >>> space.to_string(arch)
"""

from __future__ import annotations

from typing import Any

from raynas.registry import (
    get_space,
    list_spaces,
    register_space,
)
from raynas.space import (
    Cell,
    Choice,
    Float,
    Int,
    InvalidArchitecture,
    Repeat,
    Space,
    SpaceDefinitionError,
)

__version__ = "0.1.0"

# Heavy parts (Ray, torch) load on first use, so `import raynas` stays fast.
_LAZY = {
    "Experiment": "raynas.config",
    "ConfigError": "raynas.config",
    "load_config": "raynas.config_load",
    "run": "raynas.runner",
    "resume": "raynas.runner",
    "ExperimentResult": "raynas.analysis",
    "load": "raynas.analysis",
    "register_strategy": "raynas.strategies",
    "get_strategy": "raynas.strategies",
    "list_strategies": "raynas.strategies",
    "register_trainable": "raynas.registry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'raynas' has no attribute {name!r}")


__all__ = [
    "Cell",
    "Choice",
    "Float",
    "Int",
    "InvalidArchitecture",
    "Repeat",
    "Space",
    "SpaceDefinitionError",
    "__version__",
    "get_space",
    "list_spaces",
    "register_space",
    *_LAZY,
]
