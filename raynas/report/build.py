"""``raynas report DIR``: one self-contained HTML page of an experiment folder.

The page is built from the folder alone (:func:`raynas.results.analysis.load`: no Ray; mid-run and
crashed folders work) and needs nothing at view time: plotly.js is embedded once, the
table's sorting and filtering is a few lines of inline JavaScript, the architectures are
inline SVG (:func:`raynas.report.draw.draw_arch`). The charts draw the tables of
:mod:`raynas.results.prep`, as the PNG plots do.

Sections: header (space, strategy, scheduler, budget, status counts, wall time, config), the
trial table, best so far against trials and wall time, learning curves, Pareto fronts
(against the cost columns present; the front over completed trials only), op frequencies per
edge among the top-k, the PBT family tree (when trials have parents), one-shot architecture
weights (when reported) and a drawing of every top-k architecture.

Kept as one module (over 450 lines): the page's sections (one function each) write one HTML
document with shared formatting and one chart registry; the architecture drawings are in
raynas.report.draw.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from raynas.report.draw import draw_arch
from raynas.results.analysis import ExperimentResult, load
from raynas.results.prep import (
    arch_weight_history,
    best_so_far,
    cost_columns,
    family_edges,
    metric_label,
    op_frequencies,
    pareto_points,
    robust_range,
    top_curves,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["build_report", "report_path", "write_report"]

#: The report's file name inside the experiment folder.
REPORT_FILE = "report.html"
_TABLE_COSTS = ("params", "flops", "latency_ms")
_STATUS_COLOR = {
    "completed": "#1f77b4",
    "early_stopped": "#ff7f0e",
    "timed_out": "#9467bd",
    "stopped_at_target": "#17becf",
    "running": "#2ca02c",
    "error": "#d62728",
    "diverged": "#8c564b",
    "constraint_violated": "#7f7f7f",
    "oom": "#e377c2",
}
_MAX_TREE_NODES = 300
_WEBGL_POINTS = 5000

_CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1400px;padding:0 18px 40px;
color:#222}
h1{margin:18px 0 4px}h2{margin-top:34px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;font-size:14px}
.meta b{font-weight:600}.note{color:#666;font-size:13px}
.status{display:inline-block;padding:1px 7px;border-radius:9px;color:#fff;font-size:12px}
table.trials{border-collapse:collapse;font-size:12px;width:100%}
table.trials th{position:sticky;top:0;background:#f0f0f0;cursor:pointer;text-align:left;
padding:4px;border-bottom:1px solid #bbb;white-space:nowrap}
table.trials td{padding:3px 4px;border-bottom:1px solid #eee;vertical-align:top}
table.trials td.arch{font-family:monospace;font-size:11px;max-width:520px;
word-break:break-all}
.tablebox{max-height:560px;overflow:auto;border:1px solid #ddd}
.controls{margin:8px 0;font-size:14px}.controls input{width:320px}
.cards{display:flex;flex-wrap:wrap;gap:14px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px;overflow-x:auto;max-width:100%}
.card .arch-str{font-family:monospace;font-size:11px;word-break:break-all;max-width:1000px}
.charts{display:flex;flex-wrap:wrap;gap:8px}
.chart{width:calc(50% - 6px);min-width:520px}
pre.config{background:#f7f7f7;padding:8px;font-size:12px;max-height:400px;overflow:auto}
"""

_JS = """
(function(){
  var table=document.getElementById('trials');if(!table)return;
  var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
  var filter=document.getElementById('filter'),status=document.getElementById('status-filter');
  var shown=document.getElementById('shown'),heads=table.tHead.rows[0].cells;
  var state={q:'',s:'',col:-1,dir:1};
  try{state=Object.assign(state,JSON.parse(sessionStorage.getItem('raynas-table')||'{}'));}
  catch(e){}
  function save(){try{sessionStorage.setItem('raynas-table',JSON.stringify(state));}catch(e){}}
  function apply(){
    state.q=filter.value;state.s=status.value;save();
    var q=state.q.toLowerCase(),n=0;
    rows.forEach(function(r){
      var ok=(!q||r.textContent.toLowerCase().indexOf(q)>=0)&&
        (!state.s||r.dataset.status===state.s);
      r.style.display=ok?'':'none';if(ok)n++;
    });
    shown.textContent=n+' of '+rows.length+' trials shown';
  }
  function sortBy(i,d){
    var num=heads[i].dataset.type==='num';
    rows.sort(function(a,b){
      var x=a.cells[i].dataset.v,y=b.cells[i].dataset.v;
      if(num){x=x===''?NaN:+x;y=y===''?NaN:+y;
        if(isNaN(x))return isNaN(y)?0:1;if(isNaN(y))return -1;return d*(x-y);}
      return d*String(x).localeCompare(String(y));
    });
    rows.forEach(function(r){body.appendChild(r);});
    state.col=i;state.dir=d;save();
  }
  filter.addEventListener('input',apply);status.addEventListener('change',apply);
  Array.prototype.forEach.call(heads,function(th,i){
    th.addEventListener('click',function(){sortBy(i,state.col===i?-state.dir:1);});
  });
  filter.value=state.q;
  if(Array.prototype.some.call(status.options,function(o){return o.value===state.s;}))
    status.value=state.s;
  if(state.col>=0&&state.col<heads.length)sortBy(state.col,state.dir);
  apply();
})();
"""


def report_path(folder: str | Path, out: str | Path | None = None) -> Path:
    """Where the report of ``folder`` goes: ``out``, or ``folder/report.html``."""
    return Path(out).expanduser() if out else Path(folder).expanduser() / REPORT_FILE


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _json_scalar(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


# --- sections --------------------------------------------------------------------------------
def _header(result: ExperimentResult, generated: float, watch_s: float | None) -> str:
    cfg = result.config
    t = result.trials
    name = cfg.get("name") or result.path.name
    space = str(cfg.get("space", "?"))
    if cfg.get("space_args"):
        space += " " + json.dumps(cfg["space_args"], sort_keys=True)
    strategy = cfg.get("strategy") or {}
    strat = str(strategy.get("name", "?")) if isinstance(strategy, Mapping) else str(strategy)
    extra = (
        {k: v for k, v in strategy.items() if k != "name"} if isinstance(strategy, Mapping) else {}
    )
    if extra:
        strat += " " + json.dumps(extra, sort_keys=True, default=str)
    sched = cfg.get("scheduler") or {}
    sched_s = str(sched.get("name", "fifo")) if isinstance(sched, Mapping) else str(sched)
    budget = cfg.get("budget") or {}
    budget_s = ", ".join(f"{k} {v}" for k, v in budget.items() if v is not None) or "?"
    counts = result.status_counts()
    badges = " ".join(
        f'<span class="status" style="background:{_STATUS_COLOR.get(s, "#555")}">'
        f"{escape(s)} {n}</span>"
        for s, n in counts.items()
    )
    wall = ""
    if len(t) and t["start_time"].notna().any() and t["end_time"].notna().any():
        seconds = float(t["end_time"].max() - t["start_time"].min())
        wall = f"{seconds:.1f} s" if seconds < 600 else f"{seconds / 60:.1f} min"
    state = "finished" if result.finished else "not finished (running, or stopped early)"
    best = result.best()
    best_s = (
        f"{escape(str(best['trial_id']))}: {result.metric} {_fmt(best[result.metric])}"
        if best is not None
        else "none yet"
    )
    objectives = ", ".join(f"{m} ({mode})" for m, mode in result.objectives)
    rows = [
        ("folder", escape(str(result.path))),
        ("state", escape(state)),
        ("space", escape(space)),
        ("strategy", escape(strat)),
        ("scheduler", escape(sched_s)),
        ("objective", escape(objectives)),
        ("budget", escape(budget_s)),
        ("trials", f"{len(t)} &nbsp; {badges}"),
        ("wall time", escape(wall or "?")),
        ("best", best_s),
        (
            "generated",
            escape(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(generated)))
            + (f" (rewritten every {watch_s:g} s while the search runs)" if watch_s else ""),
        ),
    ]
    meta = "".join(f"<b>{k}</b><span>{v}</span>" for k, v in rows)
    config = yaml.safe_dump(cfg, sort_keys=False) if cfg else "(no raynas_experiment.yaml)"
    return (
        f'<h1>{escape(str(name))}</h1><div class="meta">{meta}</div>'
        f'<details><summary>experiment config</summary><pre class="config">'
        f"{escape(config)}</pre></details>"
    )


def _trial_table(result: ExperimentResult) -> str:
    t = result.trials
    metric = result.metric
    cols: list[tuple[str, str, str]] = [  # (column, header, type)
        ("trial_index", "#", "num"),
        ("trial_id", "trial", "str"),
        ("status", "status", "str"),
        (metric, metric, "num"),
        (f"best_{metric}", f"best {metric}", "num"),
        ("epochs", "epochs", "num"),
    ]
    cols += [(c, c, "num") for c in _TABLE_COSTS if c in t and t[c].notna().any()]
    cols += [
        ("wall_time_s", "wall time (s)", "num"),
        ("arch", "arch", "str"),
        ("lineage", "lineage", "str"),
    ]
    cols = [c for c in cols if c[0] in t]
    head = "".join(
        f'<th data-type="{typ}" title="click to sort">{escape(h)}</th>' for _, h, typ in cols
    )
    lines = []
    data = {c: t[c].tolist() for c, _, _ in cols}
    for i in range(len(t)):
        status = str(data["status"][i])
        cells = []
        for c, _, _ in cols:
            v = data[c][i]
            shown = _fmt(v)
            if c == "status":
                color = _STATUS_COLOR.get(status, "#555")
                shown_html = (
                    f'<span class="status" style="background:{color}">{escape(shown)}</span>'
                )
            else:
                shown_html = escape(shown)
            cls = ' class="arch"' if c == "arch" else ""
            cells.append(f'<td{cls} data-v="{escape(_json_scalar(v))}">{shown_html}</td>')
        lines.append(f'<tr data-status="{escape(status)}">{"".join(cells)}</tr>')
    options = "".join(
        f'<option value="{escape(s)}">{escape(s)} ({n})</option>'
        for s, n in result.status_counts().items()
    )
    return (
        '<h2 id="trials-section">Trials</h2><div class="controls">filter: '
        '<input id="filter" type="search" placeholder="trial id, arch, status, lineage ..."> '
        f'status: <select id="status-filter"><option value="">all</option>{options}</select> '
        '<span id="shown" class="note"></span></div>'
        f'<div class="tablebox"><table id="trials" class="trials"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(lines)}</tbody></table></div>"
    )


class _Charts:
    """Plotly figures as ``<div>``s; plotly.js itself goes once into the page's head."""

    def __init__(self) -> None:
        self.count = 0

    def html(self, fig: go.Figure, height: int = 420) -> str:
        fig.update_layout(
            height=height,
            margin={"l": 60, "r": 20, "t": 50, "b": 50},
            template="plotly_white",
            legend={"font": {"size": 11}},
        )
        self.count += 1
        div = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"chart{self.count}",
            config={"displaylogo": False, "responsive": True},
        )
        return f'<div class="chart plot">{div}</div>'


def _progress(result: ExperimentResult, charts: _Charts) -> str:
    import plotly.graph_objects as go

    b = best_so_far(result)
    if b.empty:
        return '<h2>Search progress</h2><p class="note">no trial has reported the objective yet</p>'
    metric, mode = result.metric, result.mode
    out = []
    for xcol, xlabel, title in (
        ("order", "trials finished (count)", "against trials"),
        ("time_s", "wall time since the first trial started (s)", "against wall time"),
    ):
        fig = go.Figure()
        for status in b["status"].unique():
            sel = b[(b["status"] == status) & b["ok"]]
            if sel.empty:
                continue
            fig.add_trace(
                go.Scatter(
                    x=sel[xcol],
                    y=sel["value"],
                    mode="markers",
                    name=f"{status} ({len(sel)})",
                    marker={"color": _STATUS_COLOR.get(status, "#555"), "size": 6, "opacity": 0.7},
                    text=sel["trial_id"],
                    hovertemplate="%{text}<br>%{y:.4g}<extra></extra>",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=b[xcol],
                y=b["best"],
                mode="lines",
                name=f"best so far ({mode})",
                line={"shape": "hv", "color": "black", "width": 2},
            )
        )
        fig.update_layout(
            title=f"Best {metric} so far {title}",
            xaxis_title=xlabel,
            yaxis_title=metric_label(metric),
        )
        if xcol == "order":
            fig.update_xaxes(tickformat="d")
        out.append(charts.html(fig))
    return f'<h2>Search progress</h2><div class="charts">{"".join(out)}</div>'


def _learning_curves(result: ExperimentResult, charts: _Charts, k: int) -> str:
    import plotly.graph_objects as go

    curves = result.curves
    metric = result.metric
    metrics = [m for m in (metric, "val_loss") if m in curves and curves[m].notna().any()]
    if curves.empty or not metrics:
        return ""
    top = top_curves(result, k)
    out = []
    for m in metrics:
        fig = go.Figure()
        # Every trial in one trace (NaN breaks the line between trials): small for 1,000s.
        c = curves[["trial_id", "epoch", m]].dropna(subset=[m])
        xs: list[Any] = []
        ys: list[Any] = []
        names: list[str] = []
        for tid, g in c.groupby("trial_id", sort=False):
            xs += [*g["epoch"].astype(float).tolist(), None]
            ys += [*g[m].astype(float).tolist(), None]
            names += [str(tid)] * (len(g) + 1)
        # WebGL only where SVG would be slow: a browser without a GPU warns about it.
        trace = go.Scattergl if len(xs) > _WEBGL_POINTS else go.Scatter
        fig.add_trace(
            trace(
                x=xs,
                y=ys,
                mode="lines+markers",
                name=f"all trials ({c['trial_id'].nunique()})",
                line={"color": "rgba(120,120,120,0.35)", "width": 1},
                marker={"size": 3},
                text=names,
                hovertemplate="trial %{text}<br>epoch %{x}: %{y:.4g}<extra></extra>",
            )
        )
        for rank, g in top.groupby("rank", sort=True):
            tid = str(g["trial_id"].iloc[0])
            fig.add_trace(
                go.Scatter(
                    x=g["epoch"],
                    y=g[m],
                    mode="lines+markers",
                    name=f"#{rank} {tid}",
                    hovertemplate=f"trial {tid}<br>epoch %{{x}}: %{{y:.4g}}<extra></extra>",
                )
            )
        span = robust_range(c[m]) if "loss" in m else None
        fig.update_layout(
            title=f"Learning curves: {m} (top {top['rank'].nunique()} in colour)",
            xaxis_title="epoch",
            yaxis_title=metric_label(m),
        )
        fig.update_xaxes(tickformat="d")
        if span:
            fig.update_yaxes(range=list(span))
        out.append(charts.html(fig))
    return f'<h2>Learning curves</h2><div class="charts">{"".join(out)}</div>'


def _pareto_hover(pts: pd.DataFrame) -> dict[str, Any]:
    """The hover label of Pareto chart points: trial id, architecture, cost and value."""
    return {
        "text": pts["trial_id"] + "<br>" + pts["arch"].astype(str),
        "hovertemplate": "%{text}<br>%{x:.4g}, %{y:.4g}<extra></extra>",
    }


def _pareto(result: ExperimentResult, charts: _Charts) -> str:
    import plotly.graph_objects as go

    costs = cost_columns(result)
    out = []
    for cost in costs:
        pts = pareto_points(result, cost)
        if pts.empty:
            continue
        fig = go.Figure()
        for label, sel, style in (
            (
                "completed",
                pts[(pts["status"] == "completed") & ~pts["front"]],
                {"color": "#888", "size": 6},
            ),
            (
                "partly trained (not on the front)",
                pts[pts["status"] != "completed"],
                {"color": "#ff7f0e", "size": 5, "symbol": "triangle-down", "opacity": 0.6},
            ),
        ):
            if len(sel):
                fig.add_trace(
                    go.Scatter(
                        x=sel["cost"],
                        y=sel["value"],
                        mode="markers",
                        name=f"{label} ({len(sel)})",
                        marker=style,
                        **_pareto_hover(sel),
                    )
                )
        front = pts[pts["front"]]
        fig.add_trace(
            go.Scatter(
                x=front["cost"],
                y=front["value"],
                mode="lines+markers",
                name=f"Pareto front ({len(front)})",
                line={"shape": "hv", "color": "#d62728"},
                marker={"color": "#d62728", "size": 9},
                **_pareto_hover(front),
            )
        )
        lo, hi = float(pts["cost"].min()), float(pts["cost"].max())
        fig.update_layout(
            title=f"{result.metric} ({result.mode}) vs {cost} (min)",
            xaxis_title=metric_label(cost),
            yaxis_title=metric_label(result.metric),
        )
        if lo > 0 and hi / lo > 20:
            fig.update_xaxes(type="log")
        out.append(charts.html(fig))
    if not out:
        return ""
    return (
        '<h2>Pareto fronts</h2><p class="note">The front is computed over fully trained '
        "(completed) trials only; early-stopped trials are shown but not ranked.</p>"
        f'<div class="charts">{"".join(out)}</div>'
    )


def _op_frequencies(result: ExperimentResult, charts: _Charts, k: int) -> str:
    import plotly.graph_objects as go

    freq = op_frequencies(result, k)
    if freq.empty:
        return ""
    out = []
    n_top = len(result.top(k))
    for cell, g in freq.groupby("cell", sort=False):
        table = g.pivot(index="edge", columns="op", values="top_share")
        table = table.reindex(list(dict.fromkeys(g["edge"])))
        fig = go.Figure(
            go.Heatmap(
                z=table.to_numpy(),
                x=list(table.columns),
                y=list(table.index),
                zmin=0,
                zmax=1,
                colorscale="Blues",
                text=[[f"{v:.2f}" for v in row] for row in table.to_numpy()],
                texttemplate="%{text}",
                colorbar={"title": "share"},
                hovertemplate="%{y}: %{x}<br>share of top %{customdata}: %{z:.2f}<extra></extra>",
                customdata=[[n_top] * table.shape[1]] * table.shape[0],
            )
        )
        fig.update_layout(
            title=f"arch.{cell}: operation share per edge among the top {n_top}",
            yaxis={"autorange": "reversed"},
        )
        out.append(charts.html(fig, height=max(300, 60 + 28 * len(table))))
    return f'<h2>Operation frequencies (top {n_top})</h2><div class="charts">{"".join(out)}</div>'


def _family_tree(result: ExperimentResult) -> str:
    edges = family_edges(result)
    if edges.empty:
        return ""
    t = result.trials.set_index(result.trials["trial_id"].astype(str))
    parent = dict(zip(edges["child"], edges["parent"]))
    nodes = list(dict.fromkeys([*edges["parent"], *edges["child"]]))[:_MAX_TREE_NODES]
    depth: dict[str, int] = {}

    def d(n: str, seen: frozenset[str] = frozenset()) -> int:
        if n not in depth:
            p = parent.get(n)
            depth[n] = 0 if p is None or p in seen else d(p, seen | {n}) + 1
        return depth[n]

    levels: dict[int, list[str]] = {}
    for n in nodes:
        levels.setdefault(d(n), []).append(n)
    gx, gy, w = 170, 34, 150
    pos = {n: (20 + lv * gx, 30 + i * gy) for lv, ns in levels.items() for i, n in enumerate(ns)}
    parts = []
    for c, p in parent.items():
        if c in pos and p in pos:
            (x1, y1), (x2, y2) = pos[p], pos[c]
            parts.append(
                f'<path d="M{x1 + w},{y1 + 10} C{x1 + w + 15},{y1 + 10} {x2 - 15},{y2 + 10}'
                f' {x2},{y2 + 10}" fill="none" stroke="#888"/>'
            )
    best_id = None if result.best() is None else str(result.best()["trial_id"])  # type: ignore[index]
    for n, (x, y) in pos.items():
        value = t[result.metric].get(n) if result.metric in t else None
        status = str(t["status"].get(n, "?")) if "status" in t else "?"
        color = _STATUS_COLOR.get(status, "#555")
        stroke = ' stroke-width="3"' if n == best_id else ""
        parts.append(
            f'<g><title>{escape(n)} ({escape(status)})</title><rect x="{x}" y="{y}" width="{w}" '
            f'height="20" rx="4" fill="#fff" stroke="{color}"{stroke}/>'
            f'<text x="{x + 6}" y="{y + 14}" font-size="11">{escape(n[:14])} '
            f"{escape(_fmt(value, 3))}</text></g>"
        )
    width = 40 + (max(levels) + 1) * gx
    height = 40 + max(len(v) for v in levels.values()) * gy
    n_parents = set(edges["parent"])
    note = (
        f'<p class="note">first {_MAX_TREE_NODES} of {len(set(edges["child"]) | n_parents)}'
        " trials shown</p>"
        if len(nodes) >= _MAX_TREE_NODES
        else ""
    )
    return (
        '<h2>Family tree</h2><p class="note">Each trial points to the trial it was cloned or '
        f"mutated from (left to right: generations; the best has a thick border).</p>{note}"
        f'<div class="card"><svg class="family" width="{width}" height="{height}" '
        f'style="font-family:sans-serif">{"".join(parts)}</svg></div>'
    )


def _oneshot(result: ExperimentResult, charts: _Charts) -> str:
    import plotly.graph_objects as go

    weights = arch_weight_history(result)
    curves = result.curves
    out = []
    if not weights.empty:
        for (tid, cell), g in weights.groupby(["trial_id", "cell"], sort=False):
            fig = go.Figure()
            for (edge, op), h in g.groupby(["edge", "op"], sort=True):
                fig.add_trace(
                    go.Scatter(
                        x=h["epoch"],
                        y=h["weight"],
                        mode="lines+markers",
                        name=f"{edge}: {op}",
                        legendgroup=str(edge),
                    )
                )
            fig.update_layout(
                title=f"{tid}: architecture weights of {cell} per edge",
                xaxis_title="epoch",
                yaxis_title="softmax weight",
            )
            fig.update_xaxes(tickformat="d")
            out.append(charts.html(fig))
    elif "arch_entropy" in curves and curves["arch_entropy"].notna().any():
        fig = go.Figure()
        for tid, g in curves.dropna(subset=["arch_entropy"]).groupby("trial_id", sort=False):
            fig.add_trace(
                go.Scatter(x=g["epoch"], y=g["arch_entropy"], mode="lines+markers", name=str(tid))
            )
        fig.update_layout(
            title="One-shot search: entropy of the architecture weights",
            xaxis_title="epoch",
            yaxis_title="mean entropy (nats)",
        )
        fig.update_xaxes(tickformat="d")
        out.append(charts.html(fig))
        out.append(
            '<p class="note">The trials do not report per-edge architecture weights '
            "(<code>arch_weight.&lt;cell&gt;.&lt;edge&gt;.&lt;op&gt;</code> result keys); "
            "their entropy is shown instead.</p>"
        )
    if not out:
        return ""
    return f'<h2>One-shot architecture weights</h2><div class="charts">{"".join(out)}</div>'


def _trial_arch(trial_dir: str) -> dict[str, Any] | None:
    """The arch a trial ended with: its last result's (one-shot, PBT), else params.json's."""
    folder = Path(trial_dir)
    try:
        lines = (folder / "result.json").read_text().splitlines()
    except OSError:
        lines = []
    for line in reversed(lines):
        try:
            last = json.loads(line)
        except ValueError:
            continue
        arch = last.get("arch") or (last.get("config") or {}).get("arch")
        if isinstance(arch, dict):
            return arch
        break
    try:
        params = json.loads((folder / "params.json").read_text())
    except (OSError, ValueError):
        return None
    arch = params.get("arch") if isinstance(params, dict) else None
    return arch if isinstance(arch, dict) else None


def _space_of(result: ExperimentResult) -> Any:
    """The experiment's space, for details an arch does not hold; None when unavailable."""
    name = result.config.get("space")
    if not isinstance(name, str):
        return None
    try:
        from raynas.registry import load_plugins, resolve_space

        load_plugins(result.config.get("plugins") or [], result.config.get("plugin_path") or [])
        return resolve_space(name, result.config.get("space_args") or {})
    except Exception:  # a plugin space not importable here: draw from the arch alone
        return None


def _architectures(result: ExperimentResult, k: int) -> str:
    top = result.top(k)
    live = top.empty
    if live:
        top = result.top(k, include_running=True)
    if top.empty:
        return (
            '<h2>Top architectures</h2><p class="note">no trial has reported the objective yet</p>'
        )
    space: Any = None
    cards = []
    for rank, (_, row) in enumerate(top.iterrows(), start=1):
        arch = _trial_arch(str(row["trial_dir"]))
        costs = ", ".join(
            f"{c} {_fmt(row[c])}" for c in _TABLE_COSTS if c in row and pd.notna(row[c])
        )
        title = f"#{rank} {row['trial_id']}: {result.metric} {_fmt(row[result.metric])}"
        if arch is None:
            svg = '<p class="note">no architecture recorded (params.json missing)</p>'
        else:
            if space is None and "stages" in arch:
                space = _space_of(result)
            svg = draw_arch(arch, space=space)
        cards.append(
            f'<div class="card"><div><b>{escape(title)}</b> ({escape(str(row["status"]))}'
            f"{', ' + escape(costs) if costs else ''})</div>"
            f'<div class="arch-str">{escape(_fmt(row["arch"]))}</div>{svg}</div>'
        )
    which = "running trials included: none has ended yet" if live else "ended trials"
    return (
        f'<h2>Top {len(top)} architectures</h2><p class="note">by {escape(result.metric)} '
        f'({escape(result.mode)}), {which}</p><div class="cards">{"".join(cards)}</div>'
    )


# --- the page ---------------------------------------------------------------------------------
def build_report(
    source: str | Path | ExperimentResult, *, k: int = 5, refresh_s: float | None = None
) -> str:
    """The HTML report of an experiment folder (or of an already loaded result).

    Args:
        source: The experiment folder, or its :class:`~raynas.results.analysis.ExperimentResult`.
        k: How many of the best trials get curves in colour, op frequencies and drawings.
        refresh_s: In watch mode, the page reloads itself every ``refresh_s`` seconds (a meta
            refresh); None for a static page.

    Returns:
        One self-contained HTML document (plotly.js embedded once, no network request).

    Raises:
        FileNotFoundError: ``source`` is not a folder.
    """
    from plotly.offline import get_plotlyjs

    result = source if isinstance(source, ExperimentResult) else load(source)
    generated = time.time()
    charts = _Charts()
    sections = [
        _header(result, generated, refresh_s),
        _trial_table(result),
        _progress(result, charts),
        _learning_curves(result, charts, k),
        _pareto(result, charts),
        _op_frequencies(result, charts, k),
        _family_tree(result),
        _oneshot(result, charts),
        _architectures(result, k),
    ]
    refresh = (
        f'<meta http-equiv="refresh" content="{max(1, round(refresh_s))}">' if refresh_s else ""
    )
    title = escape(str(result.config.get("name") or result.path.name))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"{refresh}<title>raynas report: {title}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        + "".join(s for s in sections if s)
        + f"<script>{_JS}</script></body></html>\n"
    )


def write_report(
    folder: str | Path,
    out: str | Path | None = None,
    *,
    k: int = 5,
    refresh_s: float | None = None,
    result: ExperimentResult | None = None,
) -> Path:
    """Build the report of ``folder`` and write it atomically (a temporary file in the same
    folder, then :func:`os.replace`), so a reader never sees a half-written page.

    Returns:
        The path written (``out``, default ``folder/report.html``).
    """
    path = report_path(folder, out)
    html = build_report(result if result is not None else folder, k=k, refresh_s=refresh_s)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
