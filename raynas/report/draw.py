"""Architectures as inline SVG: cell DAGs, block chains, layer stacks, decision trees.

:func:`draw_arch` draws any architecture of the built-in spaces and of any DSL space from its
canonical dict alone, part by part:

- an edge cell (``{"edge_0_1": op, ...}``, NB201) and a node cell (``{"node_2": {"inputs":
  [...], "ops": [...]}, ...}``, DARTS' normal and reduction cells) as a DAG: nodes left to
  right, each edge labelled with its operation (``none`` edges dashed);
- ``stages`` (lists of blocks with ``kernel`` / ``expand``, mobilenet) as one row of blocks
  per stage;
- ``layers`` (lists of ``{"width": ...}``, mlp) as a layer stack from input to output;
- anything else as an indented list of its decisions.

``raynas draw`` and ``raynas report`` both call it. The SVG has ``class="arch"`` and ids
unique to the drawing, so many drawings can share one HTML page.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["draw_arch"]

_EDGE = re.compile(r"^edge_(\d+)_(\d+)$")
_NODE = re.compile(r"^node_(\d+)$")
_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)
_NONE_OPS = ("none", "zero")
_FONT = "font-family:sans-serif"
_CHAR_W = 6.4  # px per character at 11px


class _Part:
    """A drawn piece: SVG elements in local coordinates and the box they fill."""

    def __init__(self, body: str, width: float, height: float) -> None:
        self.body, self.width, self.height = body, width, height


def _op_color(op: str) -> str:
    if op in _NONE_OPS:
        return "#b0b0b0"
    digest = int(hashlib.md5(op.encode()).hexdigest(), 16)
    return _PALETTE[digest % len(_PALETTE)]


def _text(
    x: float,
    y: float,
    text: str,
    *,
    size: int = 11,
    anchor: str = "middle",
    weight: str = "normal",
    color: str = "#222",
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'font-weight="{weight}" fill="{color}" style="{_FONT}">{escape(text)}</text>'
    )


def _label(x: float, y: float, text: str, color: str) -> str:
    w = len(text) * _CHAR_W + 8
    return (
        f'<rect x="{x - w / 2:.1f}" y="{y - 9:.1f}" width="{w:.1f}" height="16" rx="3" '
        f'fill="white" stroke="{color}" stroke-width="0.8" opacity="0.95"/>'
        + _text(x, y + 3, text, color=color)
    )


def _is_edge_cell(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(
            isinstance(k, str) and _EDGE.match(k) and isinstance(v, str) for k, v in value.items()
        )
    )


def _is_node_cell(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(
            isinstance(k, str)
            and _NODE.match(k)
            and isinstance(v, Mapping)
            and isinstance(v.get("inputs"), list)
            and isinstance(v.get("ops"), list)
            for k, v in value.items()
        )
    )


def _is_blocks(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(stage, list) and all(isinstance(b, Mapping) for b in stage) for stage in value
    )


def _is_layers(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(layer, Mapping) and "width" in layer for layer in value
    )


def _dag(
    title: str,
    nodes: Sequence[tuple[int, str]],
    edges: Sequence[tuple[int, int, str]],
    uid: str,
) -> _Part:
    """Nodes on a line left to right; an edge between neighbours straight, a longer one an arc
    (even spans above, odd spans below) labelled with its op at its middle."""
    gap, r, margin = 150.0, 17.0, 40.0
    pos = {n: margin + r + i * gap for i, (n, _) in enumerate(nodes)}
    index = {n: i for i, (n, _) in enumerate(nodes)}
    spans = [abs(index[b] - index[a]) for a, b, _ in edges if a in index and b in index]
    rise = 34.0
    up = max([s for s in spans if s % 2 == 0] or [0]) * rise / 2 + 20
    down = max([s for s in spans if s % 2 == 1 and s > 1] or [0]) * rise / 2 + 20
    top = 24.0
    mid = top + up + 10
    height = mid + down + 16
    width = 2 * (margin + r) + gap * (len(nodes) - 1)
    out = [_text(8, 16, title, size=12, anchor="start", weight="bold")]
    labels = []
    for a, b, op in edges:
        if a not in pos or b not in pos:
            continue
        x1, x2 = pos[a], pos[b]
        span = abs(index[b] - index[a])
        color = _op_color(op)
        dash = ' stroke-dasharray="4 3"' if op in _NONE_OPS or op == "concat" else ""
        if span <= 1:
            path = f"M{x1 + r:.1f},{mid:.1f} L{x2 - r:.1f},{mid:.1f}"
            lx, ly = (x1 + x2) / 2, mid
        else:
            sign = -1.0 if span % 2 == 0 else 1.0
            cy = mid + sign * span * rise
            y0 = mid + sign * r
            path = f"M{x1:.1f},{y0:.1f} Q{(x1 + x2) / 2:.1f},{cy:.1f} {x2:.1f},{y0:.1f}"
            lx, ly = (x1 + x2) / 2, (mid + sign * r + cy) / 2
        out.append(
            f'<path d="{path}" fill="none" stroke="{color}" stroke-width="1.6"{dash} '
            f'marker-end="url(#{uid}-arrow)"/>'
        )
        if op != "concat":
            labels.append(_label(lx, ly, op, color))
    for n, name in nodes:
        out.append(
            f'<circle cx="{pos[n]:.1f}" cy="{mid:.1f}" r="{r}" fill="#f4f4f4" stroke="#333"/>'
        )
        out.append(_text(pos[n], mid + 4, name, size=11, weight="bold"))
    return _Part("".join(out + labels), width, height)


def _edge_cell(title: str, cell: Mapping[str, str], uid: str) -> _Part:
    pairs = [(int(m[1]), int(m[2]), op) for k, op in cell.items() if (m := _EDGE.match(k))]
    ids = sorted({n for a, b, _ in pairs for n in (a, b)})
    last = ids[-1] if ids else 0
    names = [(n, "in" if n == 0 else "out" if n == last else str(n)) for n in ids]
    return _dag(title, names, sorted(pairs, key=lambda p: (p[1], p[0])), uid)


def _node_cell(title: str, cell: Mapping[str, Any], uid: str) -> _Part:
    inner = sorted(int(m[1]) for k in cell if (m := _NODE.match(k)))
    first = inner[0] if inner else 2
    edges: list[tuple[int, int, str]] = []
    for j in inner:
        node = cell[f"node_{j}"]
        for src, op in zip(node["inputs"], node["ops"]):
            edges.append((int(src), j, str(op)))
    out_id = (inner[-1] + 1) if inner else first
    edges += [(j, out_id, "concat") for j in inner]
    names = [(i, f"c{i - first}" if first - i > 0 else str(i)) for i in range(first)]
    names = [
        (i, "c_{k-2}" if i == 0 and first == 2 else "c_{k-1}" if i == first - 1 else n)
        for i, n in names
    ]
    names += [(j, str(j)) for j in inner] + [(out_id, "c_{k}")]
    return _dag(title, names, edges, uid)


def _box(x: float, y: float, w: float, h: float, lines: Sequence[str], fill: str) -> str:
    out = [
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="5" '
        f'fill="{fill}" stroke="#444"/>'
    ]
    for i, line in enumerate(lines):
        out.append(_text(x + w / 2, y + 15 + 13 * i, line, size=11))
    return "".join(out)


def _arrow(x1: float, y1: float, x2: float, y2: float, uid: str) -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#555" '
        f'stroke-width="1.3" marker-end="url(#{uid}-arrow)"/>'
    )


def _blocks(title: str, stages: list[list[Mapping[str, Any]]], plan: Any, uid: str) -> _Part:
    """One row per stage: a stage label, then its blocks (MBConv expand, kernel, SE)."""
    bw, bh, gap, left = 92.0, 44.0, 22.0, 130.0
    out = [_text(8, 16, title, size=12, anchor="start", weight="bold")]
    y = 28.0
    widest = 0.0
    for s, stage in enumerate(stages):
        info = ""
        if plan is not None and s < len(plan):
            c, stride = plan[s]
            info = f" ({c} ch, s{stride})"
        out.append(_text(8, y + bh / 2 + 4, f"stage {s + 1}{info}", anchor="start"))
        x = left
        for b, block in enumerate(stage):
            kernel = block.get("kernel", "?")
            lines = [f"MB{block.get('expand', '?')} {kernel}x{kernel}"]
            extra = [f"{k}={v}" for k, v in block.items() if k not in ("kernel", "expand", "se")]
            lines.append(("SE " if block.get("se") else "") + " ".join(extra) or "no SE")
            out.append(_box(x, y, bw, bh, lines, "#e8f0fb" if block.get("se") else "#f6f6f6"))
            if b:
                out.append(_arrow(x - gap, y + bh / 2, x - 2, y + bh / 2, uid))
            x += bw + gap
        if not stage:
            out.append(_text(left, y + bh / 2 + 4, "(no blocks)", anchor="start", color="#888"))
        widest = max(widest, x)
        if s + 1 < len(stages):
            out.append(_arrow(left + bw / 2, y + bh, left + bw / 2, y + bh + 14, uid))
        y += bh + 16
    return _Part("".join(out), max(widest + 10, 300.0), y + 4)


def _layers(
    title: str, layers: list[Mapping[str, Any]], arch: Mapping[str, Any], uid: str
) -> _Part:
    """input -> one box per layer (width, activation, dropout) -> output, top to bottom."""
    bw, bh, gap, x = 230.0, 30.0, 16.0, 20.0
    act, drop = arch.get("activation"), arch.get("dropout")
    rows = [["input"]]
    for i, layer in enumerate(layers, start=1):
        extra = [f"{k}={v}" for k, v in layer.items() if k != "width"]
        parts = [f"Linear -> {layer['width']}", *(extra or [])]
        if act is not None:
            parts.append(str(act))
        if isinstance(drop, int | float) and drop > 0:
            parts.append(f"dropout {drop}")
        rows.append([f"{i}: " + ", ".join(parts)])
    rows.append(["Linear -> classes (output)"])
    out = [_text(8, 16, title, size=12, anchor="start", weight="bold")]
    y = 28.0
    for i, lines in enumerate(rows):
        fill = "#f6f6f6" if i in (0, len(rows) - 1) else "#eaf5ea"
        w = max(bw, len(lines[0]) * _CHAR_W + 20)
        out.append(_box(x, y, w, bh - 6, lines, fill))
        if i + 1 < len(rows):
            out.append(_arrow(x + 40, y + bh - 6, x + 40, y + bh + gap - 8, uid))
        y += bh + gap - 6
    width = max(bw, *(len(r[0]) * _CHAR_W + 20 for r in rows)) + 2 * x
    return _Part("".join(out), width, y + 4)


def _tree_lines(value: Any, indent: int, out: list[tuple[int, str]], key: str = "") -> None:
    head = f"{key}: " if key else ""
    if isinstance(value, Mapping):
        if key:
            out.append((indent, key))
        for k, v in value.items():
            _tree_lines(v, indent + (1 if key else 0), out, str(k))
    elif isinstance(value, list) and any(isinstance(v, Mapping | list) for v in value):
        out.append((indent, f"{key} ({len(value)})" if key else f"({len(value)})"))
        for i, v in enumerate(value):
            _tree_lines(v, indent + 1, out, f"[{i}]")
    else:
        out.append((indent, head + json.dumps(value)))


def _tree(title: str, value: Any) -> _Part:
    lines: list[tuple[int, str]] = []
    _tree_lines(value, 0, lines)
    out = [_text(8, 16, title, size=12, anchor="start", weight="bold")]
    width = 200.0
    for i, (indent, line) in enumerate(lines):
        x = 14 + 16 * indent
        out.append(_text(x, 36 + 15 * i, line, anchor="start"))
        width = max(width, x + len(line) * _CHAR_W + 10)
    return _Part("".join(out), width, 36 + 15 * len(lines))


def _parts(arch: Mapping[str, Any], space: Any, uid: str) -> list[_Part]:
    parts: list[_Part] = []
    rest: dict[str, Any] = {}
    used_by_layers = ("activation", "dropout")
    for key, value in arch.items():
        name = (
            "cell" if key == "cell" else f"{key} cell" if key in ("normal", "reduce") else str(key)
        )
        if _is_edge_cell(value):
            parts.append(_edge_cell(name, value, f"{uid}{len(parts)}"))
        elif _is_node_cell(value):
            parts.append(_node_cell(name, value, f"{uid}{len(parts)}"))
        elif key == "stages" and _is_blocks(value) and value:
            plan = getattr(space, "stages", None)
            parts.append(_blocks("block chain (stem -> stages -> head)", value, plan, uid))
        elif key == "layers" and _is_layers(value):
            parts.append(_layers("layer stack", value, arch, uid))
        elif not (key in used_by_layers and _is_layers(arch.get("layers"))):
            rest[str(key)] = value
    if rest:
        parts.append(_tree("decisions" if parts else "architecture decisions", rest))
    return parts


def draw_arch(arch: Mapping[str, Any], *, space: Any = None, title: str = "") -> str:
    """An ``<svg class="arch">`` drawing of ``arch`` (a canonical architecture dict).

    Args:
        arch: The architecture, e.g. ``space.canonical(...)`` or a trial's ``params.json``
            ``arch``.
        space: Optional: the space, for details the arch does not hold (mobilenet's stage
            plan of channels and strides).
        title: A caption drawn on top (e.g. the trial and its metric).

    Returns:
        The SVG text, self-contained (no external references), with ids unique to it.

    Raises:
        TypeError: ``arch`` is not a mapping.
    """
    if not isinstance(arch, Mapping):
        raise TypeError(
            f"arch must be a dict (a canonical architecture), got {type(arch).__name__}"
        )
    uid = (
        "a"
        + hashlib.sha1(
            (json.dumps(arch, sort_keys=True, default=str) + title).encode()
        ).hexdigest()[:10]
    )
    parts = _parts(arch, space, uid) or [_tree("architecture", {"(empty)": None})]
    y = 26.0 if title else 4.0
    body = [_text(8, 17, title, size=13, anchor="start", weight="bold")] if title else []
    width = max(p.width for p in parts) + 8
    for p in parts:
        body.append(f'<g transform="translate(4,{y:.1f})">{p.body}</g>')
        y += p.height + 10
    defs = (
        f'<defs><marker id="{uid}-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>'
    )
    return (
        f'<svg class="arch" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
        f'height="{y:.0f}" viewBox="0 0 {width:.0f} {y:.0f}" role="img">'
        f"<title>{escape(title or 'architecture')}</title>{defs}"
        f'<rect width="100%" height="100%" fill="white"/>{"".join(body)}</svg>'
    )
