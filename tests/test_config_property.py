"""Property tests: every malformed input gets one clear answer.

Each generated case is invalid by construction (a mutation of a good config that cannot be
valid) and must get exit code 2, a message naming the offending field path, no traceback,
and leave the file system as it was: no experiment folder created, an existing one never
touched. Categories (``max_examples`` summed >= 500): config fields (wrong types,
out-of-range numbers, unknown keys, bad nested fields), ``--set`` overrides (bad values, bad
keys, bad YAML), YAML space files, and CLI arguments (unknown subcommand, a folder that is no
experiment, an unknown trial, a finished experiment, a YAML syntax error and its line).

No case starts Ray or trains: ``validate`` and ``run`` fail before Ray starts, and the
``ray_forbidden`` fixture turns any attempt into a test failure.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raynas.cli import main
from raynas.experiment.config import Experiment
from raynas.experiment.config_rules import DATASET_CLASSES
from raynas.registry import SPACES, TRAINABLES
from raynas.strategies import STRATEGIES
from tests.conftest import small_experiment
from tests.test_analysis import write_state, write_trial

CASES = {"config": 160, "set_value": 90, "set_syntax": 60, "space": 120, "cli": 100}
SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
COMMANDS: tuple[str, ...] = ("run", "resume", "validate", "spaces", "strategies", "analyze")
COMMANDS += ("bench", "export", "retrain")
BOOL_WORDS = {"yes", "no", "true", "false", "on", "off", "y", "n", "t", "f", "null", "none"}
FLOAT_WORDS = {"inf", "nan", "infinity"}


@pytest.fixture(scope="module", autouse=True)
def ray_forbidden() -> Iterator[None]:
    """A case that reached Ray would be a bug of the test or of raynas: fail it loudly."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a malformed input reached Ray")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("raynas.experiment.runner.init_ray", refuse)
        mp.setattr(
            "raynas.experiment.ray_setup.init_ray", refuse
        )  # retrain and proxies look it up here
        mp.setattr("raynas.experiment.runner.fit_experiment", refuse)
        yield


# --- generators -------------------------------------------------------------------------
word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(
    lambda w: w not in BOOL_WORDS | FLOAT_WORDS
)
containers = st.one_of(
    st.lists(st.integers(-3, 3), max_size=2), st.dictionaries(word, st.integers(-3, 3), max_size=2)
)
not_a_number = st.one_of(word, containers)
non_finite = st.sampled_from([math.inf, -math.inf, math.nan])
fractional = st.floats(-1e6, 1e6).filter(lambda x: not float(x).is_integer())


def bad_int(low: int, *, optional: bool = False) -> st.SearchStrategy[Any]:
    """Values an int field ``>= low`` refuses."""
    bad = [st.integers(low - 10**6, low - 1), fractional, non_finite, not_a_number]
    return st.one_of(*bad, *([] if optional else [st.none()]))


def bad_float(ok: Any, *, optional: bool = False) -> st.SearchStrategy[Any]:
    """Values a float field accepting ``ok(x)`` refuses (inf and NaN never pass)."""
    bad = [st.floats(-1e6, 1e6).filter(lambda x: not ok(x)), non_finite, not_a_number]
    return st.one_of(*bad, *([] if optional else [st.none()]))


def bad_choice(allowed: Any) -> st.SearchStrategy[Any]:
    return st.one_of(word.filter(lambda w: w not in allowed), st.integers(), containers)


def unknown_key(model: Any) -> st.SearchStrategy[str]:
    fields = set(model.model_fields)
    return word.filter(lambda w: w not in fields)


SECTIONS: tuple[str, ...] = ("data", "train", "budget", "resources", "objective", "checkpoint")
SECTIONS += ("failure", "strategy", "scheduler")
SECTION_MODELS = {s: Experiment.model_fields[s].annotation for s in SECTIONS}
CPUS = os.cpu_count() or 1

#: field path -> values it refuses; the path is the one the message must name.
BAD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "name": st.one_of(st.text(max_size=6).filter(lambda t: not re.fullmatch(r"\w[\w.-]*", t))),
    "seed": bad_int(0),
    "plugins": st.one_of(st.integers(), st.dictionaries(word, word, min_size=1, max_size=2)),
    # Names not registered (the registries as they are when drawn: plugins may add some).
    "space": st.one_of(word.filter(lambda w: w not in SPACES), containers),
    "space_args": st.one_of(st.integers(), word, st.lists(st.integers(), min_size=1)),
    "trainable": st.one_of(word.filter(lambda w: w not in TRAINABLES), containers),
    "data.name": st.one_of(word.filter(lambda w: w not in DATASET_CLASSES), containers),
    "data.val_fraction": bad_float(lambda x: 0 <= x < 1),
    "data.limit": st.one_of(st.integers(-(10**6), 9), fractional, not_a_number),
    "train.epochs": bad_int(1),
    "train.batch_size": bad_int(1),
    "train.eval_batch_size": bad_int(1),
    "train.latency_repeats": bad_int(1),
    "train.optimizer": bad_choice(("sgd", "adamw")),
    "train.lr": bad_float(lambda x: x > 0),
    "train.momentum": bad_float(lambda x: 0 <= x < 1),
    "train.weight_decay": bad_float(lambda x: x >= 0),
    "train.warmup_epochs": bad_float(lambda x: x >= 0),
    "train.label_smoothing": bad_float(lambda x: 0 <= x < 1),
    "train.grad_clip": bad_float(lambda x: x > 0, optional=True),
    "train.progress_s": bad_float(lambda x: x > 0, optional=True),
    "train.amp": st.one_of(st.integers(2, 100), word, containers),
    "strategy.name": st.one_of(word.filter(lambda w: w not in STRATEGIES)),
    "scheduler.name": bad_choice(("fifo", "asha", "hyperband", "median", "pbt_evolution")),
    "objective.metric": word.filter(lambda w: w not in ("val_acc", "val_loss", "params")),
    "objective.mode": bad_choice(("max", "min")),
    "objective.constraints": st.one_of(
        word,
        st.integers(),
        st.lists(st.sampled_from(["params << 3", "depth <= 3", "params <= inf", "flops"])),
    ).filter(lambda v: v != []),
    "objective.scalarize": st.one_of(st.integers(), word, st.lists(st.integers(), min_size=1)),
    "objective.also": st.one_of(st.integers(), word),
    "budget.trials": bad_int(1),
    "budget.concurrent": bad_int(1, optional=True),
    "budget.sync_batch": bad_int(1, optional=True),
    "budget.time_s": bad_float(lambda x: x > 0, optional=True),
    "resources.cpu": st.one_of(bad_float(lambda x: 0 < x <= CPUS), st.integers(CPUS + 1, 10**4)),
    "resources.gpu": st.one_of(
        st.floats(-1e6, -1e-9), st.floats(1.01, 1e3).filter(lambda x: not x.is_integer())
    ),
    "checkpoint.every": bad_int(0, optional=True),
    "checkpoint.keep": bad_int(1, optional=True),
    "failure.max_retries": bad_int(-1),
}

#: Where the message names the section rather than the field (tests/test_config.py pins the
#: text ``strategy: unknown strategy ...``).
BLAMED = {"strategy.name": "strategy"}


@st.composite
def bad_config(draw: st.DrawFn) -> tuple[list[tuple[str, Any]], str]:
    """``([(path, value), ...], field)``: changes that make a good config name ``field``."""
    kind = draw(st.sampled_from(["value", "value", "value", "unknown", "section", "nested"]))
    if kind == "value":
        path = draw(st.sampled_from(sorted(BAD_VALUES)))
        return [(path, draw(BAD_VALUES[path]))], BLAMED.get(path, path)
    if kind == "unknown":
        section = draw(st.sampled_from(["", *SECTIONS[:-2]]))
        model = SECTION_MODELS[section] if section else Experiment
        key = draw(unknown_key(model))
        path = f"{section}.{key}" if section else key
        return [(path, draw(st.one_of(st.integers(), word)))], path
    if kind == "section":
        section = draw(st.sampled_from(SECTIONS))
        return [
            (section, draw(st.one_of(st.integers(), word, st.lists(word, min_size=1))))
        ], section
    # nested: a bad entry inside a list or mapping field
    which = draw(st.integers(0, 5))
    metric = draw(word.filter(lambda w: w not in ("val_acc", "val_loss", "params", "objective")))
    if which == 0:
        return [("objective.also", [{"mode": "min"}])], "objective.also.0.metric"
    if which == 1:
        mode = draw(bad_choice(("max", "min")))
        return [("objective.also", [{"metric": "val_loss", "mode": mode}])], "objective.also.0"
    if which == 2:
        return [("objective.scalarize", {"val_acc": draw(not_a_number)})], "objective.scalarize"
    if which == 3:
        return [("plugins", [draw(st.integers())])], "plugins.0"
    if which == 4:
        return [("plugins", [f"no_such_plugin_{metric}"])], "plugins"
    return [("space_args", {"C": 4, "N": 1, f"x{metric}": 1})], "space_args"


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its content (None for a folder)."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``raynas ARGV`` in-process: the exit code and stderr (argparse exits by SystemExit)."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = int(stop.code or 0)
    return code, capsys.readouterr().err


def assert_refused(code: int, err: str, field: str, *, prefix: str = "raynas: error: ") -> None:
    """Exit 2, no traceback, and every error line names ``field`` (or a path under it)."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(prefix)]
    assert lines, err
    for line in lines:
        rest = line.removeprefix(prefix)
        assert rest.startswith(field) and (rest + " ")[len(field)] in ":.[ ", (field, err)


def refused_everywhere(
    root: Path, cfg: Path, field: str, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    """``validate`` and ``run`` both refuse ``cfg``, naming ``field``; nothing is written."""
    before = snapshot(root)
    for command in ("validate", "run"):
        code, err = cli([command, str(cfg), *extra], capsys)
        assert_refused(code, err, field)
        assert snapshot(root) == before, f"{command} wrote into {root}"


def write_config(root: Path, exp: dict[str, Any]) -> Path:
    cfg = root / "exp.yaml"
    cfg.write_text(yaml.safe_dump(exp, allow_unicode=True))
    return cfg


def base_experiment(root: Path) -> dict[str, Any]:
    """A good config whose experiment folder exists and holds a precious file."""
    exp = small_experiment(root)
    folder = root / "runs" / exp["name"]
    folder.mkdir(parents=True)
    (folder / "keep.txt").write_text("precious")
    return exp


# --- configs ----------------------------------------------------------------------------
@settings(SETTINGS, max_examples=CASES["config"])
@given(case=bad_config())
def test_malformed_configs_name_the_field(
    capsys: pytest.CaptureFixture[str], case: tuple[list[tuple[str, Any]], str]
) -> None:
    changes, field = case
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        exp = base_experiment(root)
        for path, value in changes:
            set_path(exp, path, value)
        refused_everywhere(root, write_config(root, exp), field, capsys, [])


def test_the_good_base_config_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    """The mutations above start from a config that validates, so each one is the culprit."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(Path(tmp), small_experiment(Path(tmp)))
        code, err = cli(["validate", str(cfg)], capsys)
        assert code == 0, err


# --- --set overrides --------------------------------------------------------------------
def flow(value: Any) -> str:
    """``value`` as a one-line YAML flow value that loads back as ``value``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("...").strip()


@settings(SETTINGS, max_examples=CASES["set_value"])
@given(case=bad_config())
def test_bad_set_values_name_the_field(
    capsys: pytest.CaptureFixture[str], case: tuple[list[tuple[str, Any]], str]
) -> None:
    changes, field = case
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = write_config(root, base_experiment(root))
        overrides = [a for path, value in changes for a in ("--set", f"{path}={flow(value)}")]
        refused_everywhere(root, cfg, field, capsys, overrides)


bad_yaml_value = st.one_of(
    word.map(lambda w: f"[{w}"),
    word.map(lambda w: f"{{{w}"),
    word.map(lambda w: f"'{w}"),
    word.map(lambda w: f'"{w}'),
    word.map(lambda w: f"{w}: {w}: {w}"),
    word.map(lambda w: f"*{w}"),
    word.map(lambda w: f"!!python/name:os.{w}"),
    word.map(lambda w: f"@{w}"),
)
bad_key = st.one_of(
    st.sampled_from(["", " ", ".", "train.", ".lr", "train..lr", "budget. .trials"]),
    word.map(lambda w: f"train..{w}"),
    word.map(lambda w: f"name.{w}"),  # name is a string, not a section
    word.map(lambda w: f"train.lr.{w}"),
)


@settings(SETTINGS, max_examples=CASES["set_syntax"])
@given(
    kind=st.sampled_from(["yaml", "key", "no_equals"]),
    value=bad_yaml_value,
    key=bad_key,
    bare=word,
)
def test_bad_set_syntax_names_the_flag(
    capsys: pytest.CaptureFixture[str], kind: str, value: str, key: str, bare: str
) -> None:
    if kind == "yaml":
        with pytest.raises(yaml.YAMLError):  # the generator's own promise
            yaml.safe_load(value)
        item = f"train.lr={value}"
    else:
        item = f"{key}=1" if kind == "key" else bare
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = write_config(root, base_experiment(root))
        refused_everywhere(root, cfg, f"--set {item!r}", capsys, ["--set", item])


# --- YAML space files -------------------------------------------------------------------
GOOD_SPACE: dict[str, Any] = {
    "layers": {
        "_type": "repeat",
        "min": 1,
        "max": 2,
        "node": {"width": {"_type": "choice", "options": [8, 16]}},
    },
    "lr": {"_type": "float", "low": 1e-3, "high": 1e-1, "log": True},
}
SPACE_TYPES = ("choice", "int", "float", "repeat", "cell", "const")


@st.composite
def defect(draw: st.DrawFn) -> tuple[Any, str]:
    """A malformed primitive and the path suffix its message names (under its own path)."""
    w = draw(word)
    n = draw(st.integers(1, 5))
    options: list[tuple[Any, str]] = [
        ({"_type": draw(word.filter(lambda t: t not in SPACE_TYPES)), "options": [1]}, "._type"),
        ({"_type": draw(st.integers()), "options": [1]}, "._type"),
        ({"_type": "int", "low": 1}, ""),
        ({"_type": "repeat", "node": 1, "min": 1}, ""),
        ({"_type": "choice", "options": [1, 2], f"x{w}": 1}, ""),
        ({"_type": "int", "low": n + 1, "high": n - 1}, ""),
        ({"_type": "float", "low": float(n), "high": -float(n)}, ""),
        ({"_type": "float", "low": -float(n), "high": 1.0, "log": True}, ""),
        ({"_type": "choice", "options": []}, ""),
        ({"_type": "choice", "options": w}, ""),
        ({"_type": "repeat", "node": 1, "min": n + 1, "max": n}, ""),
        ({"_type": "repeat", "node": 1, "min": -n, "max": 1}, ""),
        ({"_type": "cell", "ops": [], "nodes": n}, ""),
        ({"_type": "cell", "ops": ["a", "b"], "nodes": -n}, ""),
        ({"_type": "int", "low": w, "high": 3}, ""),
    ]
    return draw(st.sampled_from(options))


@st.composite
def bad_space(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A space definition with one defect somewhere inside, and the defect's path."""
    node, suffix = draw(defect())
    path = ""
    for _ in range(draw(st.integers(0, 3))):
        wrap = draw(st.sampled_from(["dict", "repeat", "choice", "list"]))
        if wrap == "dict":
            key = draw(word)
            node, path = {key: node}, f".{key}{path}"
        elif wrap == "repeat":
            node, path = {"_type": "repeat", "min": 1, "max": 2, "node": node}, f".node{path}"
        elif wrap == "choice":
            node, path = {"_type": "choice", "options": [1, node]}, f".options[1]{path}"
        else:
            node, path = [0, node], f"[1]{path}"
    key = draw(word.filter(lambda w: w not in GOOD_SPACE))
    return {**GOOD_SPACE, key: node}, f"space.{key}{path}{suffix}"


@settings(SETTINGS, max_examples=CASES["space"])
@given(case=bad_space())
def test_malformed_space_files_name_the_path(
    capsys: pytest.CaptureFixture[str], case: tuple[dict[str, Any], str]
) -> None:
    definition, path = case
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "space.yaml").write_text(yaml.safe_dump(definition))
        exp = {**base_experiment(root), "space": "space.yaml", "space_args": {}}
        refused_everywhere(root, write_config(root, exp), f"space: {path}", capsys, [])


@pytest.mark.parametrize(
    "text,space_args,field,message",
    [
        ("- a\n- b\n", {}, "space", "a space must be a mapping, got list"),
        ("", {}, "space", "a space must be a mapping"),
        ("x: 1\ny: a: b\n", {}, "space", "is not valid YAML: line 2, column 5: "),
        ("x:\n\t- 1\n", {}, "space", "is not valid YAML: line 2, column 1: "),
        ("x: {_type: choice, options: [1, 2]}\n", {"C": 4}, "space_args", "YAML space"),
        (None, {}, "space", "does not exist"),
    ],
)
def test_space_file_problems(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    text: str | None,
    space_args: dict[str, Any],
    field: str,
    message: str,
) -> None:
    if text is not None:
        (tmp_path / "space.yaml").write_text(text)
    exp = {**base_experiment(tmp_path), "space": "space.yaml", "space_args": space_args}
    cfg = write_config(tmp_path, exp)
    refused_everywhere(tmp_path, cfg, field, capsys, [])
    assert message in cli(["validate", str(cfg)], capsys)[1]


# --- CLI arguments ----------------------------------------------------------------------
def fake_finished(folder: Path, trials: int, epochs: int) -> None:
    """An experiment folder whose every trial ended: what a finished run leaves."""
    folder.mkdir(parents=True)
    (folder / "raynas_experiment.yaml").write_text(
        f"name: done\ntrain: {{epochs: {epochs}}}\nbudget: {{trials: {trials}}}\n"
    )
    for i in range(trials):
        write_trial(folder, f"t{i}", i + 1, [0.5] * epochs, epochs=epochs)
    write_state(folder, {f"t{i}": "TERMINATED" for i in range(trials)})


@st.composite
def bad_cli(draw: st.DrawFn) -> tuple[str, Any]:
    kind = draw(
        st.sampled_from(["subcommand", "not_experiment", "trial", "finished", "yaml_line", "top"])
    )
    if kind == "subcommand":
        return kind, draw(word.filter(lambda w: w not in COMMANDS))
    if kind == "not_experiment":
        command = draw(st.sampled_from(["analyze", "resume", "export", "retrain"]))
        files = draw(st.lists(word.map(lambda w: f"{w}.txt"), max_size=3, unique=True))
        return kind, (command, files, draw(st.booleans()))
    if kind == "trial":
        return kind, draw(word.filter(lambda w: not w.startswith("t")))
    if kind == "finished":
        return kind, (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if kind == "yaml_line":
        w = draw(word)
        line = draw(st.sampled_from([f"{w}: {w}: {w}", f"@{w}: 1", f"\t{w}: 1", f"{w}: `x"]))
        return kind, (line, draw(st.integers(0, 12)))
    return kind, draw(st.integers(-5, 0))


@settings(SETTINGS, max_examples=CASES["cli"])
@given(case=bad_cli())
def test_bad_cli_arguments_name_the_argument(
    capsys: pytest.CaptureFixture[str], case: tuple[str, Any]
) -> None:
    kind, arg = case
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "exp"
        if kind == "subcommand":
            argv, field = [arg], "COMMAND"
        elif kind == "not_experiment":
            command, files, exists = arg
            if exists:
                folder.mkdir()
                for name in files:
                    (folder / name).write_text("notes")
            argv = [command, str(folder)]
            argv += ["--out", str(root / "out")] if command == "export" else []
            field = "path" if command == "resume" else "dir"
        elif kind == "trial":
            fake_finished(folder, 2, 2)
            argv, field = (
                ["export", str(folder), "--trial", arg, "--out", str(root / "out")],
                ("--trial"),
            )
        elif kind == "finished":
            fake_finished(folder, *arg)
            argv, field = ["resume", str(folder)], "path"
        elif kind == "yaml_line":
            line, at = arg
            lines = yaml.safe_dump(base_experiment(root)).splitlines()
            at = min(at, len(lines))
            (root / "exp.yaml").write_text("\n".join([*lines[:at], line, *lines[at:]]) + "\n")
            argv, field = ["validate", str(root / "exp.yaml")], "config"
        else:
            fake_finished(folder, 1, 1)
            argv, field = ["analyze", str(folder), "--top", str(arg)], "--top"
        before = snapshot(root)
        code, err = cli(argv, capsys)
        if kind == "subcommand":
            assert_refused(code, err, field)
            assert all(c in err for c in COMMANDS), err
        else:
            assert_refused(code, err, field)
        if kind == "yaml_line":
            assert f"line {at + 1}, column " in err, err
        assert snapshot(root) == before


def test_garbage_yaml_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for text in ("{", "name: [", "\t- x", "a: b: c", "!!python/object:os.system x"):
        cfg = tmp_path / "bad.yaml"
        cfg.write_text(text)
        code, err = cli(["validate", str(cfg)], capsys)
        assert_refused(code, err, "config")
        assert "line 1, column " in err, err


def test_at_least_500_generated_cases() -> None:
    assert sum(CASES.values()) >= 500
