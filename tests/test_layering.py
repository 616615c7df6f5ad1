"""The layering, checked on the source: an import that crosses a line fails here.

In one sentence: ``raynas.space`` depends on nothing else of raynas; the strategies on the
space and the registries; the experiment layer (``raynas.experiment``: config, runner with its
Tune and Ray setup, journal, schedulers) on those; the results layer (``raynas.results``:
analysis, plots, export; and the report) reads experiment folders and never imports the
runner; ``trainables`` and ``search_spaces`` use raynas' public pieces only (the space DSL, the
registries, the folder's file names, the config schema with its rules and checks, the bench
tables), never the runner; and the module-level imports have no cycle (a function-level import
is how a module reaches a higher layer lazily, e.g. the config's semantic checks).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("raynas", "trainables", "search_spaces")


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module, *, module_level: bool) -> set[str]:
    nodes = tree.body if module_level else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.split(".")[0] in PACKAGES}


def _graph(module_level: bool) -> dict[str, set[str]]:
    sources = {_module(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in sources.items():
        for target in _imports(ast.parse(path.read_text()), module_level=module_level):
            while target not in sources and "." in target:
                target = target.rsplit(".", 1)[0]  # `from pkg import name` names a module too
            if target in sources and target != name:
                graph[name].add(target)
    return graph


ALL = _graph(module_level=False)


def _offenders(source: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list:
    return sorted(
        (m, t)
        for m, targets in ALL.items()
        if m == source or m.startswith(source + ".")
        for t in targets
        if t.startswith(forbidden) and not t.startswith(allowed)
    )


def test_the_space_dsl_depends_on_nothing_else_of_raynas() -> None:
    assert (
        _offenders("raynas.space", ("raynas", "trainables", "search_spaces"), ("raynas.space",))
        == []
    )


def test_strategies_depend_on_the_space_and_registries_only() -> None:
    allowed = ("raynas.space", "raynas.registry", "raynas.strategies")
    assert _offenders("raynas.strategies", ("raynas", "trainables", "search_spaces"), allowed) == []


#: The runner and the modules it is made of (the Tune setup, Ray's start, the run's notes).
RUNNER = (
    "raynas.experiment.runner",
    "raynas.experiment.tune_setup",
    "raynas.experiment.ray_setup",
    "raynas.experiment.run_notes",
    "raynas.experiment.storage",
    "raynas.cli",
)


@pytest.mark.parametrize("results", ["raynas.results", "raynas.report"])
def test_results_never_import_the_runner(results: str) -> None:
    assert _offenders(results, RUNNER) == []


@pytest.mark.parametrize("package", ["trainables", "search_spaces"])
def test_trainables_and_spaces_use_public_pieces_only(package: str) -> None:
    config = (
        "raynas.experiment.config",
        "raynas.experiment.config_rules",
        "raynas.experiment.config_check",
    )
    public = ("raynas.space", "raynas.registry", "raynas.files", *config, "raynas.bench.table")
    allowed = (*public, "trainables", "search_spaces")
    assert _offenders(package, ("raynas", "trainables", "search_spaces"), allowed) == []


def test_module_level_imports_have_no_cycle() -> None:
    graph = _graph(module_level=True)
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


@pytest.mark.parametrize("package", ["raynas.experiment", "raynas.results"])
def test_a_layer_package_imports_nothing_itself(package: str) -> None:
    """Importing ``raynas.experiment.config`` (as the trainables do) must not pull in the runner
    through its package's ``__init__``."""
    assert ALL.get(package, set()) == set()
