"""The report of a real tiny experiment, rendered by headless Chromium (slow).

Drives the system's Chromium (``/usr/bin/chromium``, ``apt-get install chromium``; never a
downloaded browser) with Playwright, or, where Playwright cannot start it, with Chromium's own
``--headless --dump-dom`` / ``--screenshot`` and its console messages on stderr. Checks: no
JavaScript error, one table row per trial, one drawing per top-k trial, every chart drawn. The
screenshot goes under ``tmp_path`` and to ``/tmp/report_screenshot.png``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from raynas.report import write_report
from raynas.results.analysis import load
from tests.test_analysis import real_experiment

CHROMIUM = next(
    (
        p
        for p in ("/usr/bin/chromium", shutil.which("chromium") or "")
        if p and os.access(p, os.X_OK)
    ),
    None,
)
SCREENSHOT_COPY = Path("/tmp/report_screenshot.png")
K = 3

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (apt-get install -y chromium; .ci/run does it)",
    ),
]


def _with_playwright(url: str, shot: Path) -> dict[str, Any] | None:
    """Counts and console errors from Playwright driving the system Chromium; None when
    Playwright is missing or cannot start that browser."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        return None
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                errors: list[str] = []
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
                page.goto(url)
                page.wait_for_function(
                    "document.querySelectorAll('.plot').length > 0 && "
                    "[...document.querySelectorAll('.plot')].every("
                    "d => d.querySelector('.main-svg'))",
                    timeout=60_000,
                )
                counts = page.evaluate(
                    """() => ({
                        rows: document.querySelectorAll('#trials tbody tr').length,
                        arch_svgs: document.querySelectorAll('svg.arch').length,
                        plots: document.querySelectorAll('.plot').length,
                        drawn: document.querySelectorAll('.plot .main-svg').length > 0
                            ? [...document.querySelectorAll('.plot')].filter(
                                d => d.querySelector('.main-svg')).length : 0,
                        shown: document.getElementById('shown').textContent,
                    })"""
                )
                # The table's JS: filtering by status hides the other rows.
                page.select_option("#status-filter", "completed")
                counts["completed_shown"] = page.evaluate(
                    "[...document.querySelectorAll('#trials tbody tr')]"
                    ".filter(r => r.style.display !== 'none').length"
                )
                page.select_option("#status-filter", "")
                # Sorting by a column (a click on its header) survives the reload a watched
                # page does every few seconds.
                page.click("#trials thead th:nth-child(4)")
                column = (
                    "[...document.querySelectorAll('#trials tbody tr')]"
                    ".map(r => r.cells[3].dataset.v)"
                )
                counts["sorted"] = page.evaluate(column)
                page.reload()
                page.wait_for_selector("#trials tbody tr")
                counts["sorted_after_reload"] = page.evaluate(column)
                page.screenshot(path=str(shot), full_page=True)
            finally:
                browser.close()
    except Error as err:
        print(f"playwright could not drive {CHROMIUM}: {err}; falling back to --dump-dom")
        return None
    return {**counts, "errors": errors}


def _with_chromium_cli(url: str, shot: Path, tmp: Path) -> dict[str, Any]:
    """The fallback: Chromium's --dump-dom (the DOM after scripts ran) and --screenshot."""
    base: list[str] = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={tmp / 'profile'}",
        "--virtual-time-budget=20000",
    ]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1400,6000", url],
        capture_output=True,
        timeout=180,
        check=False,
    )
    console = re.findall(r":(?:ERROR|INFO):CONSOLE[^\n]*\"(.*?)\", source", dom.stderr)
    errors = [m for m in console if re.search(r"error|uncaught", m, re.I)]
    html = dom.stdout
    tbody = html.split("<tbody>", 1)[-1].split("</tbody>", 1)[0]
    return {
        "rows": tbody.count("<tr "),
        "arch_svgs": len(re.findall(r'<svg class="arch"', html)),
        "plots": len(re.findall(r'class="chart plot"', html)),
        "drawn": len(
            re.findall(r'class="chart plot"><div[^>]*>\s*<div[^>]*class="[^"]*js-plotly-plot', html)
        )
        or html.count('class="main-svg"') // 2,
        "errors": errors,
    }


def test_report_renders_in_chromium(
    tmp_path_factory: pytest.TempPathFactory, ray_session: None, tmp_path: Path
) -> None:
    folder = real_experiment(tmp_path_factory, "mixed")
    out = write_report(folder, tmp_path / "report.html", k=K)
    result = load(folder)
    top = result.top(K)
    shot = tmp_path / "report.png"
    seen = _with_playwright(out.as_uri(), shot) or _with_chromium_cli(out.as_uri(), shot, tmp_path)
    print(seen)
    assert seen["errors"] == [], seen["errors"]
    assert seen["rows"] == len(result.trials) == 8
    assert seen["arch_svgs"] == len(top) == K
    # best so far x2, learning curves (val_acc, val_loss), Pareto x3 (params, flops,
    # latency), op frequencies: all drawn.
    assert seen["plots"] >= 7 and seen["drawn"] == seen["plots"], seen
    if "completed_shown" in seen:
        assert seen["completed_shown"] == int((result.trials["status"] == "completed").sum())
        values = [float(v) for v in seen["sorted"] if v != ""]
        assert values == sorted(values) and len(values) == len(result.trials)
        assert seen["sorted_after_reload"] == seen["sorted"]
    assert shot.stat().st_size > 50_000
    shutil.copyfile(shot, SCREENSHOT_COPY)
