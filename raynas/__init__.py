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

from raynas.lazy import lazy_getattr
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
    "raynas.experiment.config": ("Experiment", "ConfigError"),
    "raynas.experiment.config_load": ("load_config",),
    "raynas.experiment.runner": ("run", "resume"),
    "raynas.results.analysis": ("ExperimentResult", "load"),
    "raynas.strategies": ("register_strategy", "get_strategy", "list_strategies"),
    "raynas.registry": ("register_trainable",),
}
__getattr__ = lazy_getattr(__name__, _LAZY)


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
    *(name for names in _LAZY.values() for name in names),
]
