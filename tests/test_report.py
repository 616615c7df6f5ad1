"""``raynas report`` / ``raynas draw`` (fast): the HTML page of a folder in Tune's layout, the
drawings of every space family, the CLI's errors, ``--watch`` on a folder that grows, and the
shared data preparation (:mod:`raynas.results.prep`)."""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import raynas
import raynas.cli
from raynas.registry import get_space
from raynas.report import build_report, draw_arch, watch, write_report
from raynas.results.analysis import ExperimentResult, load
from raynas.results.prep import (
    best_so_far,
    family_edges,
    op_frequencies,
    pareto_points,
    robust_range,
)
from tests.test_analysis import write_experiment, write_state, write_trial

NB201_OPS = ["none", "skip_connect", "nor_conv_3x3"]
EDGES = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]


class PageStats(HTMLParser):
    """What the tests count in a report: table rows, drawings, external references."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = 0
        self.arch_svgs = 0
        self.external: list[str] = []
        self.scripts = 0
        self.refresh = False
        self._tbody = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tbody":
            self._tbody = True
        if tag == "tr" and self._tbody:
            self.rows += 1
        if tag == "svg" and a.get("class") == "arch":
            self.arch_svgs += 1
        if tag == "script":
            self.scripts += 1
        if tag == "meta" and a.get("http-equiv") == "refresh":
            self.refresh = True
        for key in ("src", "href"):
            value = a.get(key) or ""
            if tag in ("script", "link", "img", "iframe") and re.match(r"(https?:)?//", value):
                self.external.append(f"<{tag} {key}={value}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._tbody = False


def page_stats(html: str) -> PageStats:
    stats = PageStats()
    stats.feed(html)
    stats.close()
    return stats


def nb201_arch(rng: np.random.Generator) -> dict[str, Any]:
    return {"cell": {f"edge_{a}_{b}": NB201_OPS[int(rng.integers(3))] for a, b in EDGES}}


def add_trials(exp: Path, first: int, count: int, seed: int = 0) -> list[str]:
    """``count`` trials (every third stopped after 1 of 3 epochs), ids t<first>..."""
    rng = np.random.default_rng(seed + first)
    ids = []
    for i in range(first, first + count):
        n = 1 if i % 3 == 0 else 3
        final = float(rng.uniform(0.3, 0.95))
        write_trial(
            exp,
            f"t{i:02d}",
            i,
            [final * (e + 1) / n for e in range(n)],
            arch=nb201_arch(rng),
            params=int(rng.integers(1, 9)) * 1000,
        )
        ids.append(f"t{i:02d}")
    return ids


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """12 trials (completed and early-stopped), one refused child, one error; Tune says over."""
    exp = write_experiment(tmp_path / "exp")
    ids = add_trials(exp, 0, 12)
    write_trial(exp, "cv", 20, [], status="constraint_violated", params=10**6)
    write_trial(exp, "err", 21, [], error="RuntimeError: boom")
    write_state(exp, {**dict.fromkeys(ids, "TERMINATED"), "cv": "TERMINATED", "err": "ERROR"})
    return exp


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``raynas.cli.main`` with this module's subcommands registered (whether or not
    ``raynas.cli.CLI_EXTENSIONS`` lists them yet)."""
    if "raynas.report.cli" not in raynas.cli.CLI_EXTENSIONS:
        monkeypatch.setattr(
            raynas.cli, "CLI_EXTENSIONS", (*raynas.cli.CLI_EXTENSIONS, "raynas.report.cli")
        )
    yield raynas.cli.main


# --- the page --------------------------------------------------------------------------------
def test_report_has_a_row_per_trial_and_a_drawing_per_top_trial(folder: Path) -> None:
    path = write_report(folder)
    assert path == folder / "report.html"
    html = path.read_text()
    result = load(folder)
    stats = page_stats(html)
    assert stats.rows == len(result.trials) == 14
    assert stats.arch_svgs == len(result.top(5)) == 5
    assert stats.external == [] and not stats.refresh
    assert html.count("plotly.js v") == 1, "plotly.js must be embedded exactly once"
    for section in (
        "Trials",
        "Search progress",
        "Learning curves",
        "Pareto fronts",
        "Operation frequencies",
        "Top 5 architectures",
    ):
        assert f">{section}" in html, section
    for t in result.trials["trial_id"]:
        assert f">{t}<" in html
    assert "params" in html and "latency_ms" in html  # cost columns and Pareto axes
    assert "nor_conv_3x3" in html  # edge labels of the drawings
    assert not list(folder.glob(".report.html.*")), "the temporary file was left behind"


def test_report_out_and_top_k(folder: Path, tmp_path: Path) -> None:
    out = write_report(folder, tmp_path / "sub" / "r.html", k=2)
    assert out == tmp_path / "sub" / "r.html"
    assert page_stats(out.read_text()).arch_svgs == 2


def test_report_of_a_folder_mid_run_and_of_an_empty_one(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "exp")
    html = build_report(exp)
    assert page_stats(html).rows == 0 and "no trial has reported" in html
    write_trial(exp, "r0", 0, [0.4])  # 1 of 3 epochs, no Tune state: running
    result = load(exp)
    assert list(result.trials["status"]) == ["running"]
    stats = page_stats(build_report(result))
    assert stats.rows == 1 and stats.arch_svgs == 1  # a live look ranks running trials


def test_family_tree_of_parent_links(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "exp")
    write_trial(exp, "p0", 0, [0.5, 0.6, 0.7])
    write_trial(exp, "p1", 1, [0.5, 0.6, 0.8], extra={"parent": "p0"})
    write_trial(exp, "p2", 2, [0.5, 0.6, 0.9], extra={"parent": "p1"})
    result = load(exp)
    assert family_edges(result).to_dict("records") == [
        {"child": "p1", "parent": "p0"},
        {"child": "p2", "parent": "p1"},
    ]
    html = build_report(result)
    assert ">Family tree<" in html and html.count('class="family"') == 1


def test_oneshot_architecture_weights(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "exp")
    w = {"arch_weight.cell.edge_0_1.none": 0.3, "arch_weight.cell.edge_0_1.skip_connect": 0.7}
    write_trial(exp, "o0", 0, [0.5, 0.6, 0.7], extra={**w, "arch_entropy": 0.6})
    html = build_report(exp)
    assert ">One-shot architecture weights<" in html and "edge_0_1: skip_connect" in html
    exp2 = write_experiment(tmp_path / "exp2")
    write_trial(exp2, "o0", 0, [0.5, 0.6, 0.7], extra={"arch_entropy": 0.6})
    assert "entropy of the architecture weights" in build_report(exp2)
    exp3 = write_experiment(tmp_path / "exp3")
    write_trial(exp3, "c0", 0, [0.5, 0.6, 0.7])
    assert "One-shot" not in build_report(exp3)


# --- shared data preparation -----------------------------------------------------------------
def test_pareto_front_is_over_completed_trials_only(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "exp")
    write_trial(exp, "full", 0, [0.5, 0.6, 0.7], params=5000)
    # Stopped after one epoch: cheaper and (by chance) better, yet partly trained.
    write_trial(exp, "part", 1, [0.9], params=1000)
    write_state(exp, {"full": "TERMINATED", "part": "TERMINATED"})
    result = load(exp)
    assert dict(zip(result.trials["trial_id"], result.trials["status"])) == {
        "full": "completed",
        "part": "early_stopped",
    }
    pts = pareto_points(result, "params")
    assert set(pts["trial_id"]) == {"full", "part"}
    assert list(pts.loc[pts["front"], "trial_id"]) == ["full"]


def test_best_so_far_and_op_frequencies(folder: Path) -> None:
    result = load(folder)
    b = best_so_far(result)
    assert len(b) == len(result.trials) and list(b["order"]) == list(range(1, len(b) + 1))
    best = b["best"].dropna().to_numpy()
    assert (np.diff(best) >= 0).all() and best[-1] == result.trials["val_acc"].max()
    freq = op_frequencies(result, k=4)
    assert set(freq["edge"]) == {f"edge_{a}_{b}" for a, b in EDGES}
    sums = freq.groupby("edge")[["top_share", "all_share"]].sum()
    assert np.allclose(sums.to_numpy(), 1.0)


def test_robust_range_ignores_one_spike() -> None:
    values = [*np.linspace(0.5, 1.0, 60), 1000.0]
    lo, hi = robust_range(values) or (0, 0)
    assert lo < 0.5 and 1.0 < hi < 2.0
    assert robust_range([float("nan")]) is None
    assert robust_range(pd.Series([2.0, 2.0])) is not None


# --- drawings --------------------------------------------------------------------------------
def _svg_ok(svg: str) -> None:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(svg)  # well-formed XML, so a browser and any viewer open it
    assert root.tag.endswith("svg") and root.get("class") == "arch"
    assert root.tag[1:].split("}")[0] == "http://www.w3.org/2000/svg"


@pytest.mark.parametrize(
    ("space", "args", "expect"),
    [
        ("nb201", {}, ["in", "out", ">cell<"]),
        ("darts", {}, ["normal cell", "reduce cell", "c_{k-2}", "c_{k}"]),
        ("mobilenet", {}, ["stage 1 (24 ch, s1)", "MB", "width_mult"]),
        ("mlp", {}, ["input", "Linear -&gt;", "output"]),
    ],
)
def test_draw_every_space_family(space: str, args: dict[str, Any], expect: list[str]) -> None:
    sp = get_space(space, **args)
    arch = sp.canonical(sp.sample(3))
    svg = draw_arch(arch, space=sp, title="t")
    _svg_ok(svg)
    for text in expect:
        assert text in svg, text
    ops = [
        v
        for k, v in _leaves(arch)
        if k.startswith(("arch.cell.", "arch.normal.node")) and ".inputs." not in k
    ]
    for op in ops:  # every edge is labelled with its op
        assert f">{op}<" in svg, op


def _leaves(value: Any, prefix: str = "arch") -> list[tuple[str, Any]]:
    from raynas.results.analysis import flatten_arch

    return list(flatten_arch(value, prefix).items())


def test_draw_any_dsl_space_as_its_decisions() -> None:
    arch = {"lr": 0.01, "block": {"kind": "res", "depth": 3}, "heads": [{"n": 2}, {"n": 4}]}
    svg = draw_arch(arch)
    _svg_ok(svg)
    for text in ("lr: 0.01", "kind: &quot;res&quot;", "heads (2)", "n: 4"):
        assert text in svg, text


def test_draw_cli_per_family(cli: Any, tmp_path: Path) -> None:
    nb = get_space("nb201")
    darts = get_space("darts")
    mobile = get_space("mobilenet", max_depth=2)
    mlp = get_space("mlp")
    yaml_space = tmp_path / "space.yaml"
    yaml_space.write_text(
        "act: {_type: choice, options: [relu, gelu]}\nwidth: {_type: int, low: 8, high: 64}\n"
    )
    cases = [
        (nb.to_string(nb.sample(0)), ["--space", "nb201"]),
        (darts.to_string(darts.sample(0)), ["--space", "darts", "--space-arg", "C=8"]),
        (json.dumps(mobile.sample(0)), ["--space", "mobilenet", "--space-arg", "max_depth=2"]),
        (json.dumps(mlp.sample(0)), ["--space", "mlp"]),
        ('{"act": "gelu", "width": 16}', ["--space", str(yaml_space)]),
    ]
    for i, (arch, opts) in enumerate(cases):
        out = tmp_path / f"d{i}.svg"
        assert cli(["draw", arch, *opts, "--out", str(out)]) == 0, opts
        _svg_ok(out.read_text())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["draw", "x", "--space", "nope"], "--space: unknown space 'nope'"),
        (
            ["draw", "x", "--space", "nb201", "--space-arg", "Q=1"],
            "--space-arg: space 'nb201' has no argument 'Q'",
        ),
        (["draw", "x", "--space", "nb201", "--space-arg", "C"], "--space-arg 'C': must be K=V"),
        (["draw", "|bad|", "--space", "nb201"], "ARCH: arch: '|bad|' must have 3 nodes"),
        (["draw", "{not json", "--space", "mlp"], "ARCH: not valid JSON"),
        (["draw", '{"layers": []}', "--space", "mlp"], "ARCH: arch"),
        (["draw", "Genotype(nonsense)", "--space", "darts"], "ARCH:"),
        (["report", "/no/such/folder"], "dir: folder '/no/such/folder' does not exist"),
        (["report", "{tmp}"], "is not an experiment folder"),
        (["report", "{tmp}", "--top", "0"], "--top: must be >= 1"),
        (["report", "{tmp}", "--interval", "0"], "--interval: must be > 0"),
    ],
)
def test_cli_user_errors_exit_2(
    cli: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert cli([*argv, "--out", str(tmp_path / "x.svg")] if argv[0] == "draw" else argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert err.count("raynas: error:") == 1
    assert not (tmp_path / "x.svg").exists()


def test_report_cli_writes_the_page(
    cli: Any, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["report", str(folder), "--top", "3"]) == 0
    assert f"wrote {folder / 'report.html'}" in capsys.readouterr().out
    assert page_stats((folder / "report.html").read_text()).arch_svgs == 3


# --- --watch ---------------------------------------------------------------------------------
def test_watch_rewrites_the_page_until_the_experiment_ends(tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "exp")
    ids = add_trials(exp, 0, 2)
    writes: queue.Queue[tuple[str, ExperimentResult]] = queue.Queue()
    out = exp / "report.html"
    done: dict[str, Any] = {}

    def run() -> None:
        try:
            done["path"] = watch(
                exp, interval_s=0.05, k=3, on_write=lambda p, r: writes.put((p.read_text(), r))
            )
        except BaseException as err:  # pragma: no cover - reported below
            done["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def next_write_with(n_trials: int) -> str:
        """The first page written after the folder held ``n_trials`` trials (the event the
        watcher records after each write, no fixed sleep)."""
        deadline = time.monotonic() + 60
        while True:
            html, result = writes.get(timeout=max(0.1, deadline - time.monotonic()))
            stats = page_stats(html)  # every version parses: the file was replaced whole
            assert stats.rows == len(result.trials) and stats.external == []
            if len(result.trials) >= n_trials:
                return html

    first = next_write_with(2)
    assert page_stats(first).refresh, "a watched page reloads itself"
    mtime = out.stat().st_mtime_ns
    ids += add_trials(exp, 2, 3)  # trials finish while the watcher runs
    later = next_write_with(5)
    assert page_stats(later).rows == 5 and out.stat().st_mtime_ns >= mtime
    assert "t04" in out.read_text() or "t04" in later
    write_state(exp, dict.fromkeys(ids, "TERMINATED"))  # Tune records the run as over
    thread.join(timeout=60)
    assert not thread.is_alive() and "error" not in done, done
    final = out.read_text()
    assert done["path"] == out and not page_stats(final).refresh
    assert page_stats(final).rows == 5


def test_watch_cli_ends_with_the_experiment_and_on_ctrl_c(
    cli: Any, folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["report", str(folder), "--watch", "--interval", "0.05"]) == 0  # already over
    assert "experiment over" in capsys.readouterr().out
    import raynas.report.live as watch_module

    def interrupted(*args: Any, **kwargs: Any) -> Path:
        raise KeyboardInterrupt

    monkeypatch.setattr(watch_module, "watch", interrupted)
    assert cli(["report", str(folder), "--watch"]) == 130
    assert "stopped watching" in capsys.readouterr().err


def test_watch_stops_on_a_crashed_drivers_folder(tmp_path: Path) -> None:
    import socket

    exp = write_experiment(tmp_path / "exp")
    add_trials(exp, 0, 2)  # not finished according to Tune
    dead = 2**22 + 12345  # above the default pid_max: no such process
    (exp / "raynas_driver.json").write_text(json.dumps({"pid": dead, "host": socket.gethostname()}))
    assert watch(exp, interval_s=0.01, max_rounds=50) == exp / "report.html"
    assert not page_stats((exp / "report.html").read_text()).refresh


@pytest.mark.slow
def test_watch_a_real_run(tmp_path: Path) -> None:
    """``raynas run`` in a subprocess; the watcher rewrites the page while its trials finish
    and stops by itself when the run ends (the driver's lock gone, Tune's state all ended)."""
    import os
    import subprocess
    import sys

    from tests.conftest import QUICKSTART, REPO

    folder = tmp_path / "w"
    sets = ["budget.trials=4", "budget.concurrent=1", "train.epochs=2", "space_args={C: 4, N: 1}"]
    cmd = [sys.executable, "-m", "raynas.cli", "run", str(QUICKSTART), "--storage", str(tmp_path),
           "--name", "w", *(a for s in sets for a in ("--set", s))]  # fmt: skip
    env = {**os.environ, "RAY_ADDRESS": "local"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    seen: list[tuple[int, int, bool]] = []  # (trials, ended trials, page reloads itself)

    def record(path: Path, result: ExperimentResult) -> None:
        stats = page_stats(path.read_text())  # each version is a whole, valid page
        assert stats.rows == len(result.trials) and stats.external == []
        ended = int((result.trials["status"] != "running").sum()) if len(result.trials) else 0
        seen.append((len(result.trials), ended, stats.refresh))

    try:
        deadline = time.monotonic() + 300
        while not (folder / "raynas_driver.json").is_file():  # the driver holds the folder
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the driver never started"
            time.sleep(0.1)
        watch(folder, interval_s=0.2, k=2, on_write=record)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)
    assert seen[-1][:2] == (4, 4) and not seen[-1][2], seen[-1]
    assert any(refresh for *_, refresh in seen[:-1]), "mid-run pages reload themselves"
    ended = [e for _, e, _ in seen]
    assert ended == sorted(ended) and len(set(ended)) > 2, f"saw {ended}"
    assert page_stats((folder / "report.html").read_text()).arch_svgs == 2


@pytest.mark.parametrize("space", ["nb201", "darts", "mobilenet", "mlp"])
def test_report_of_every_space_family(tmp_path: Path, space: str) -> None:
    exp = write_experiment(tmp_path / "exp")
    cfg = json.loads((exp / "raynas_experiment.yaml").read_text())
    (exp / "raynas_experiment.yaml").write_text(json.dumps({**cfg, "space": space}))
    sp = get_space(space)
    for i in range(4):
        write_trial(exp, f"s{i}", i, [0.2 + 0.1 * i] * 3, arch=sp.canonical(sp.sample(i)))
    html = build_report(exp, k=3)
    stats = page_stats(html)
    assert stats.rows == 4 and stats.arch_svgs == 3
    if space == "darts":
        assert "normal cell" in html and "reduce cell" in html
        assert "arch.normal: operation share per edge" in html
    if space == "mobilenet":
        assert "stage 1 (24 ch, s1)" in html  # the stage plan, from the experiment's space


def test_the_live_report_callback_rewrites_then_writes_the_final_page(folder: Path) -> None:
    from raynas.report.callback import LiveReport

    live = LiveReport(folder, interval_s=0.05)
    live.setup()
    assert live.written is not None and live.written.wait(60), "no live page written"
    during = page_stats((folder / "report.html").read_text())
    assert during.refresh and during.rows == len(load(folder).trials)
    live.on_experiment_end([])
    final = page_stats((folder / "report.html").read_text())
    assert not final.refresh and final.rows == during.rows and live.writes >= 2


@pytest.mark.slow
def test_a_run_with_report_live_leaves_the_final_page(tmp_path: Path, ray_session: None) -> None:
    from tests.conftest import small_experiment

    exp = small_experiment(tmp_path, name="live", report={"live": True, "interval_s": 0.5})
    result = raynas.run(exp, verbose=False)
    page = page_stats((result.path / "report.html").read_text())
    assert page.rows == len(result.trials) == 2 and not page.refresh and page.arch_svgs == 2
