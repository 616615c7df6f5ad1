"""The experiment report in the browser (``raynas report``) and architecture drawings
(``raynas draw``).

The names below are imported on first use, so ``raynas.report.cli`` (imported by every
``raynas`` command to register its subcommands) stays light.

Example:
    >>> from raynas.report import write_report, draw_arch
    >>> write_report("runs/quickstart")          # runs/quickstart/report.html
    >>> svg = draw_arch(space.canonical(arch), space=space)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from raynas.report.build import REPORT_FILE as REPORT_FILE
    from raynas.report.build import build_report as build_report
    from raynas.report.build import report_path as report_path
    from raynas.report.build import write_report as write_report
    from raynas.report.draw import draw_arch as draw_arch
    from raynas.report.live import experiment_over as experiment_over
    from raynas.report.live import watch as watch

_WHERE = {
    "REPORT_FILE": "raynas.report.build",
    "build_report": "raynas.report.build",
    "report_path": "raynas.report.build",
    "write_report": "raynas.report.build",
    "draw_arch": "raynas.report.draw",
    "experiment_over": "raynas.report.live",
    "watch": "raynas.report.live",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'raynas.report' has no attribute {name!r}")
