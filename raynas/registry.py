"""Registries of spaces, strategies and trainables, filled by decorators and looked up by name.

``raynas`` never imports a particular space or trainable: the built-in packages
(``search_spaces``, ``trainables``) register themselves when first needed, through
:func:`load_builtins`, and users register their own with the same decorators.

Example:
    >>> @register_space("tiny", description="two choices")
    ... def tiny() -> Space:
    ...     return Space({"act": Choice(["relu", "gelu"])}, name="tiny")
    >>> get_space("tiny").cardinality
    2
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Packages that register the built-in entries when imported.
BUILTIN_PACKAGES = ("search_spaces", "trainables", "raynas.strategies")

UNKNOWN_NAME = "unknown {kind} {name!r}; known {plural}: {known}"


class RegistryError(ValueError):
    """An unknown or duplicate registry name, or bad keyword arguments for an entry."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object with its name and one-line description."""

    name: str
    obj: T
    description: str


class Registry(Generic[T]):
    """A name -> object table; duplicates are refused, unknown names list the known ones."""

    def __init__(self, kind: str, plural: str | None = None) -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._entries: dict[str, Entry[T]] = {}
        self._lazy: dict[str, tuple[str, str]] = {}

    def _check_new(self, name: str) -> None:
        # Built-ins first, so a user's name clash is reported here, at its own call.
        load_builtins()
        if not isinstance(name, str) or not name:
            raise RegistryError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries or name in self._lazy:
            raise RegistryError(f"{self.kind} {name!r} is already registered; pick another name")

    def register(self, name: str, obj: T, *, description: str = "") -> T:
        self._check_new(name)
        if not description:
            doc = inspect.getdoc(obj) or ""
            description = doc.splitlines()[0] if doc else ""
        self._entries[name] = Entry(name, obj, description)
        return obj

    def register_lazy(self, name: str, target: str, *, description: str) -> None:
        """Register ``"package.module:attribute"`` under ``name``, imported on first lookup.

        A driver that never looks the entry up never imports its module (the built-in
        trainables import torch, which a tabular replay does not need).
        """
        self._check_new(name)
        self._lazy[name] = (target, description)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)
        self._lazy.pop(name, None)

    def decorator(self, name: str, *, description: str = "") -> Callable[[T], T]:
        def wrap(obj: T) -> T:
            return self.register(name, obj, description=description)

        return wrap

    def entry(self, name: str) -> Entry[T]:
        load_builtins()
        if name in self._lazy:
            target, description = self._lazy.pop(name)
            module, _, attr = target.partition(":")
            obj = getattr(importlib.import_module(module), attr)
            self._entries[name] = Entry(name, obj, description)
        if name not in self._entries:
            raise RegistryError(
                UNKNOWN_NAME.format(
                    kind=self.kind, plural=self.plural, name=name, known=self.names()
                )
            )
        return self._entries[name]

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def names(self) -> list[str]:
        load_builtins()
        return sorted([*self._entries, *self._lazy])

    def entries(self) -> list[Entry[T]]:
        return [self.entry(n) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        load_builtins()
        return name in self._entries or name in self._lazy


_loaded = False


def load_builtins() -> None:
    """Import the built-in packages once, so their decorators register them."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for pkg in BUILTIN_PACKAGES:
        importlib.import_module(pkg)


def load_plugins(
    modules: list[str] | tuple[str, ...], paths: list[str] | tuple[str, ...] = ()
) -> None:
    """Import user modules that register spaces, strategies or trainables (``plugins:``),
    with the folders ``paths`` (``plugin_path:``) first on the import path.

    Raises:
        RegistryError: a module cannot be imported (the message names it and the fix).
    """
    load_builtins()
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise RegistryError(
                f"plugin module {module!r} cannot be imported ({err}); put {module}.py beside "
                "the config, name its folder in plugin_path, or install it on every node"
            ) from err


def call_with_kwargs(
    kind: str, name: str, factory: Callable[..., Any], kwargs: dict[str, Any]
) -> Any:
    """Call ``factory(**kwargs)``, turning unknown keyword arguments into a clear error."""
    sig = inspect.signature(factory)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    if not accepts_any:
        allowed = [p for p in sig.parameters if p != "self"]
        for key in kwargs:
            if key not in allowed:
                raise RegistryError(
                    f"{kind} {name!r} has no argument {key!r}; its arguments are {allowed}"
                )
    return factory(**kwargs)


SPACES: Registry[Callable[..., Any]] = Registry("space")
STRATEGIES: Registry[Any] = Registry("strategy", "strategies")
TRAINABLES: Registry[Any] = Registry("trainable")


def register_space(name: str, *, description: str = "") -> Callable[[T], T]:
    """Decorator: register a function ``(**space_args) -> Space``, or a Space class whose
    keyword arguments are its space_args, under ``name``."""
    return SPACES.decorator(name, description=description)  # type: ignore[return-value]


def get_space(name: str, **space_args: Any) -> Any:
    """The built-in or registered space ``name``, built with ``space_args``.

    Raises:
        RegistryError: unknown name (the message lists the known ones) or unknown argument.
    """
    return call_with_kwargs("space", name, SPACES.get(name), space_args)


def list_spaces() -> list[str]:
    """Names of every registered space."""
    return SPACES.names()


def resolve_space(space: str, space_args: dict[str, Any] | None = None) -> Any:
    """A space from a config: a built-in / registered name, or a path to a YAML space file."""
    from raynas.space import Space, SpaceDefinitionError

    if space.endswith((".yaml", ".yml")):
        if space_args:
            raise SpaceDefinitionError(
                f"space_args {sorted(space_args)} apply to built-in spaces only; a YAML space "
                "file takes none"
            )
        return Space.from_yaml(space)
    return get_space(space, **(space_args or {}))


def register_trainable(name: str, *, description: str = "") -> Callable[[T], T]:
    """Decorator: register a Tune trainable class under ``name`` (``trainable:`` in configs)."""
    return TRAINABLES.decorator(name, description=description)  # type: ignore[return-value]
