"""Property tests: any malformed config or space file gets exit 2 and a message, never a
traceback, and an existing experiment folder is never touched."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raynas.cli import main
from raynas.space import Space, SpaceDefinitionError
from tests.conftest import small_experiment

FIELDS = [
    "name",
    "space",
    "space_args",
    "space_args.C",
    "space_args.ops",
    "trainable",
    "plugins",
    "data",
    "data.name",
    "data.root",
    "data.val_fraction",
    "data.limit",
    "train",
    "train.epochs",
    "train.lr",
    "train.batch_size",
    "train.optimizer",
    "train.momentum",
    "train.grad_clip",
    "strategy",
    "strategy.name",
    "strategy.population_size",
    "scheduler",
    "scheduler.name",
    "scheduler.grace_period",
    "objective",
    "objective.metric",
    "objective.mode",
    "objective.constraints",
    "objective.scalarize",
    "budget",
    "budget.trials",
    "budget.concurrent",
    "budget.time_s",
    "resources",
    "resources.cpu",
    "resources.gpu",
    "seed",
    "checkpoint.every",
    "checkpoint.keep",
    "failure.max_retries",
    "unknown_section",
    "train.unknown_key",
]

junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**6), 10**6),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.sampled_from(["nb201", "random", "asha", "digits", "max", "params <= 1e6", "-1"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def yaml_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return ".nan"
    return value


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.lists(st.tuples(st.sampled_from(FIELDS), junk), min_size=1, max_size=3))
def test_malformed_configs_exit_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: list[tuple[str, Any]]
) -> None:
    exp = small_experiment(tmp_path)
    for path, value in changes:
        set_path(exp, path, copy.deepcopy(value))
    cfg = tmp_path / "exp.yaml"
    try:
        cfg.write_text(yaml.safe_dump(exp, allow_unicode=True))
    except yaml.YAMLError:
        return
    code = main(["validate", str(cfg)])
    out = capsys.readouterr()
    assert code in (0, 2), out
    assert "Traceback" not in out.err
    if code == 2:
        assert out.err.startswith("raynas: error: "), out.err
    # An existing experiment folder is never overwritten, valid config or not.
    name = exp.get("name")
    if isinstance(name, str) and name and "/" not in name and name not in (".", ".."):
        folder = Path(exp["storage"]) / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "keep.txt").write_text("precious")
        assert main(["run", str(cfg)]) == 2
        assert (folder / "keep.txt").read_text() == "precious"
        assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
        capsys.readouterr()


space_defs = st.recursive(
    st.one_of(
        st.integers(-5, 5),
        st.text(max_size=5),
        st.none(),
        st.booleans(),
        st.fixed_dictionaries(
            {
                "_type": st.sampled_from(
                    ["choice", "int", "float", "repeat", "cell", "const", "choise", 3]
                )
            },
            optional={
                "options": st.lists(st.integers(0, 3), max_size=3),
                "low": junk,
                "high": junk,
                "step": junk,
                "log": junk,
                "min": junk,
                "max": junk,
                "node": junk,
                "ops": junk,
                "nodes": junk,
                "mode": junk,
                "value": junk,
                "extra": junk,
            },
        ),
    ),
    lambda inner: st.dictionaries(st.text(min_size=1, max_size=5), inner, max_size=3),
    max_leaves=5,
)


@settings(max_examples=100, deadline=None)
@given(definition=st.dictionaries(st.text(min_size=1, max_size=5), space_defs, max_size=3))
def test_space_files_load_or_fail_with_a_named_error(definition: dict[str, Any]) -> None:
    try:
        space = Space.from_dict(definition)
    except SpaceDefinitionError:
        return
    arch = space.sample(0)
    space.validate(arch)
    assert space.decode(space.encode(arch)) == space.canonical(arch)


def test_garbage_yaml_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for text in ("{", "name: [", "\t- x", "a: b: c", "!!python/object:os.system x"):
        cfg = tmp_path / "bad.yaml"
        cfg.write_text(text)
        assert main(["validate", str(cfg)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("raynas: error: config:"), err
