"""The Inspector's page: one self-contained HTML file for any number of batches.

The timeline, the graph (SVG) and the summary are drawn here, in Python, with every value
escaped; a small inline script only switches batches and fills the details panel from the
page's data, embedded once as JSON in a ``<script type="application/json">``. No network, no
external file, nothing but text nodes built from the data (never ``innerHTML``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any

from ._view import STATUSES, BatchView, CallView, DecisionView, ms

__all__ = ["page"]

# Graph geometry, in SVG user units (px).
_NODE_W, _NODE_H, _PITCH = 150, 34, 46
_GAP = 140  # between columns; an edge's handle (its label) sits in the gap before its target
_MARGIN = 16
_SLOT = 17  # vertical room of one edge handle
_LABEL = 18  # characters of a reference path shown on an edge
_NODE_CHARS = 21

_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                 0x2028: "\\u2028", 0x2029: "\\u2029"}  # fmt: skip


def _a(text: str) -> str:
    """Text for an attribute value: quotes and markup escaped, and CR kept as a reference (the
    parser would turn a raw CR LF into LF and the value would no longer match the data)."""
    return escape(text, quote=True).replace("\r", "&#13;")


def _t(text: str) -> str:
    return escape(text, quote=False)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _json_for_script(data: Any) -> str:
    """JSON that cannot end its ``<script>`` nor open a comment: ``<``, ``>``, ``&`` and the two
    JavaScript line separators as escapes."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).translate(_JSON_ESCAPES)


def _num(value: float) -> str:
    return f"{value:.2f}"


# --- data for the details panel -------------------------------------------------------------


def _call_data(call: CallView, dependents: list[str], ready: float | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": call.call_id,
        "tool": call.tool,
        "status": call.status,
        "error": call.error,
        "duration": ms(call.duration_ms),
        "start": None if call.start_ms is None else ms(call.start_ms),
        "end": None if call.end_ms is None else ms(call.end_ms),
        "attempts": call.attempts,
        "group": call.group,
        "order": call.order,
        "deps": call.depends_on,
        "dependents": dependents,
    }
    if ready is not None:
        entry["waited"] = ms(ready)
    if call.arguments is not None:
        entry["arguments"] = call.arguments
    if call.output is not None:
        entry["output"] = call.output
    return entry


# --- one batch ------------------------------------------------------------------------------


def _summary(view: BatchView) -> str:
    makespan, critical, serial = view.makespan_ms, view.critical_path_ms, view.serial_ms
    fields = [
        ("strategy", "strategy", view.strategy),
        ("calls", "calls", str(len(view.calls))),
        *((f"calls-{s}", s, str(view.count(s))) for s in STATUSES),
        ("groups", "groups", str(view.groups)),
        ("makespan-ms", "makespan (ms)", str(ms(makespan))),
        ("critical-path-ms", "critical path (ms)", str(ms(critical))),
        (
            "critical-ratio",
            "makespan / critical path",
            _num(makespan / critical) if critical else "-",
        ),
        ("serial-ms", "one by one (ms)", str(ms(serial))),
        ("speed-up", "one by one / makespan", _num(serial / makespan) if makespan else "-"),
    ]
    if view.stopped is not None:
        fields.append(("stopped", "stopped", view.stopped))
    rows = "".join(
        f'<div><dt>{_t(label)}</dt><dd data-field="{name}">{_t(value)}</dd></div>'
        for name, label, value in fields
    )
    decisions = ""
    if view.decisions:
        items = []
        for d in view.decisions:
            cls = ' class="fallback"' if d.fallback else ""
            items.append(f"<li{cls}>{_t(_decision_text(d))}</li>")
        fallbacks = sum(1 for d in view.decisions if d.fallback)
        decisions = (
            f'<h3>Decisions: {len(view.decisions)}, <span data-field="fallbacks">{fallbacks}'
            f'</span> by fallback</h3><ul data-field="decisions">{"".join(items)}</ul>'
        )
    return f'<div data-view="summary" class="summary"><dl>{rows}</dl>{decisions}</div>'


def _decision_text(d: DecisionView) -> str:
    """One decision in a line: what was asked about, what was decided, and why."""
    text = f"decide [{', '.join(d.call_ids)}] ({d.trigger}): {d.action}"
    if d.fallback:
        text += f" by fallback{f' ({d.error})' if d.error else ''}"
    if d.reason:
        text += f" \u2014 {d.reason}"
    return text


def _timeline(view: BatchView, ready: dict[str, float]) -> str:
    total = max(view.makespan_ms, *(c.end_ms or 0.0 for c in view.calls), 1e-6)

    def pct(value: float) -> str:
        return f"{min(100.0, max(0.0, value / total * 100)):.3f}%"

    rows = []
    for i, c in enumerate(view.calls):
        at = c.start_ms if c.start_ms is not None else (c.end_ms or 0.0)
        width = c.duration_ms
        title = f"{c.call_id} [{c.tool}] {c.status}, {ms(width)} ms"
        if c.attempts > 1:
            title += f", {c.attempts} attempts"
        wait = ""
        if c.call_id in ready and c.start_ms is not None:
            title += f", waited {ms(ready[c.call_id])} ms for its dependencies"
            wait = f'<i class="wait" style="width:{pct(min(ready[c.call_id], at))}"></i>'
        tries = f"\u00d7{c.attempts}" if c.attempts > 1 else ""
        rows.append(
            f'<div class="row" data-i="{i}"><span class="lab" title="{_a(c.call_id)}">'
            f'{_t(c.call_id)}</span><span class="track">{wait}'
            f'<b data-call-id="{_a(c.call_id)}" data-status="{c.status}" data-i="{i}" '
            f'title="{_a(title)}" style="left:min({pct(at)},calc(100% - 3px));'
            f'width:{pct(width)}">{tries}</b>'
            "</span></div>"
        )
    lines, points = [], []
    for d in view.decisions:
        if d.start_ms is None:
            continue
        cls = "dec fallback" if d.fallback else "dec"
        what = _a(_decision_text(d))
        lines.append(f'<i class="{cls}" style="left:{pct(d.start_ms)}"></i>')
        points.append(f'<u class="{cls}" style="left:{pct(d.start_ms)}" title="{what}"></u>')
    decisions = (
        '<div class="decisions"><span class="lab">decisions</span>'
        f'<span class="track">{"".join(points)}</span></div>'
        if points
        else ""
    )
    axis = (
        f'<div class="axis"><span class="lab"></span><span class="track">'
        f"<span>0 ms</span><span>{ms(total)} ms</span></span></div>"
    )
    return (
        f'<div data-view="timeline" class="timeline"><h3>Timeline</h3>{_LEGEND}{decisions}'
        f'<div class="rows"><div class="inner">{"".join(rows)}'
        f'<div class="marks">{"".join(lines)}</div></div></div>{axis}</div>'
    )


_LEGEND = (
    '<p class="legend">Each bar is a call, from its start to its end: green ok, red error, '
    "striped grey skipped. A dashed line before a bar: the call waiting for its dependencies. "
    "\u00d7N: the attempts it took. Purple marks: decision points (orange: the decider failed "
    "and its fallback applied).</p>"
)


def _graph(view: BatchView, index: int) -> str:
    columns: dict[int, list[int]] = {}
    last = max((c.group for c in view.calls if c.group is not None), default=-1) + 1
    for i, c in enumerate(view.calls):
        columns.setdefault(c.group if c.group is not None and c.group >= 0 else last, []).append(i)
    order = sorted(columns)
    column_of = {}
    where: dict[int, tuple[float, float]] = {}  # call index -> (left x, centre y)
    for col, key in enumerate(order):
        for row, i in enumerate(columns[key]):
            column_of[i] = col
            where[i] = (
                _MARGIN + col * (_NODE_W + _GAP) + _GAP / 2,
                _MARGIN + row * _PITCH + _NODE_H / 2,
            )
    index_of = {c.call_id: i for i, c in enumerate(view.calls)}
    # Edge handles: in the gap before their target's column, one slot each, never overlapping.
    wanted: dict[int, list[tuple[float, int, int, int]]] = {}
    for k, (source, target) in enumerate(view.edges):
        s, t = index_of[source], index_of[target]
        ty, sy = where[t][1], where[s][1]
        wanted.setdefault(column_of[t], []).append((ty + (sy - ty) * 0.2, k, s, t))
    lines, handles = [], []
    bottom = max((y for _, y in where.values()), default=0.0) + _NODE_H / 2
    for items in wanted.values():
        items.sort()
        floor = -1e9
        for want, k, s, t in items:
            y = max(want, floor + _SLOT)
            floor = y
            source, target = view.calls[s].call_id, view.calls[t].call_id
            sx, sy = where[s][0] + _NODE_W, where[s][1]
            tx, ty = where[t]
            hx = tx - _GAP / 2
            if column_of[t] - column_of[s] > 1:
                lines.append(_long_edge(sx, sy, hx, y, tx, ty))
            else:
                bend = max(20.0, abs(hx - sx) / 2)
                lines.append(
                    f'<path d="M{sx:.1f} {sy:.1f}C{sx + bend:.1f} {sy:.1f} {hx - bend:.1f} '
                    f'{y:.1f} {hx:.1f} {y:.1f}L{tx - 2:.1f} {ty:.1f}"/>'
                )
            path = view.paths.get((source, target), "")
            label = _short(path, _LABEL) if path else "\u2192"
            half = max(8.0, len(label) * 3.1 + 6)
            handles.append(
                f'<g class="edge" data-edge="{_a(f"{source}->{target}")}" data-e="{k}" '
                f'transform="translate({hx:.1f} {y:.1f})"><title>{_t(f"{source} -> {target}")}'
                f"{_t(f': {path}' if path else '')}</title>"
                f'<rect x="{-half:.1f}" y="-7" width="{2 * half:.1f}" height="14" rx="7"/>'
                f'<text y="0.5">{_t(label)}</text></g>'
            )
            bottom = max(bottom, y + _SLOT / 2)
    nodes = []
    for i, c in enumerate(view.calls):
        x, y = where[i]
        nodes.append(
            f'<g class="node" data-call-id="{_a(c.call_id)}" data-status="{c.status}" '
            f'data-i="{i}" transform="translate({x:.1f} {y - _NODE_H / 2:.1f})">'
            f"<title>{_t(f'{c.call_id} [{c.tool}] {c.status}')}</title>"
            f'<rect width="{_NODE_W}" height="{_NODE_H}" rx="5"/>'
            f'<text x="8" y="14">{_t(_short(c.call_id, _NODE_CHARS))}</text>'
            f'<text x="8" y="27" class="tool">{_t(_short(c.tool, _NODE_CHARS + 3))}</text></g>'
        )
    width = _MARGIN * 2 + len(order) * (_NODE_W + _GAP)
    height = bottom + _MARGIN * 2
    heads = "".join(
        f'<text class="level" x="{_MARGIN + col * (_NODE_W + _GAP) + _GAP / 2:.1f}" y="10">'
        f"{'level ' + str(key) if key < last else 'not placed'}</text>"
        for col, key in enumerate(order)
    )
    marker = f"tw-arrow-{index}"
    return (
        f'<div class="graphbox"><h3>Dependency graph</h3>'
        f'<svg data-view="graph" class="graph" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width:.0f}" height="{height + 12:.0f}" '
        f'viewBox="0 -4 {width:.0f} {height + 12:.0f}">'
        f'<defs><marker id="{marker}" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" '
        f'markerHeight="7" orient="auto"><path d="M0 0L8 4L0 8z"/></marker></defs>{heads}'
        f'<g class="lines" marker-end="url(#{marker})">{"".join(lines)}</g>'
        f'<g class="nodes">{"".join(nodes)}</g><g class="handles">{"".join(handles)}</g>'
        "</svg></div>"
    )


def _long_edge(sx: float, sy: float, hx: float, hy: float, tx: float, ty: float) -> str:
    """An edge that skips a level: along the gap between two rows of nodes (free in every
    column, as all columns share the rows), so it never passes behind a node it does not
    touch, then to its handle and its target."""
    row = max(0, round((sy + hy) / 2 - _MARGIN - _PITCH + _NODE_H / 2) // _PITCH)
    cy = _MARGIN + row * _PITCH + _NODE_H + (_PITCH - _NODE_H) / 2
    g1, g2 = sx + _GAP / 2, tx - _GAP + 12
    return (
        f'<path d="M{sx:.1f} {sy:.1f}C{sx + 30:.1f} {sy:.1f} {g1 - 30:.1f} {cy:.1f} {g1:.1f} '
        f"{cy:.1f}L{g2:.1f} {cy:.1f}C{g2 + 25:.1f} {cy:.1f} {hx - 25:.1f} {hy:.1f} {hx:.1f} "
        f'{hy:.1f}L{tx - 2:.1f} {ty:.1f}"/>'
    )


def _batch(view: BatchView, index: int) -> tuple[str, dict[str, Any]]:
    ready = view.ready_ms()
    dependents = view.dependents()
    edges = view.edges
    data = {
        "calls": [_call_data(c, dependents[c.call_id], ready.get(c.call_id)) for c in view.calls],
        "edges": [[s, t, view.paths.get((s, t), "")] for s, t in edges],
    }
    counts = ", ".join(f"{view.count(s)} {s}" for s in STATUSES)
    head = (
        f"<h2>{_t(view.name)} <small>{_t(view.batch_id)}</small></h2>"
        f'<p class="lead">{_t(view.strategy)}: {len(view.calls)} calls ({counts}) in '
        f"{view.groups} groups, {ms(view.makespan_ms)} ms</p>"
    )
    details = '<aside data-view="details" class="details"><p>Click a call or an edge</p></aside>'
    hidden = " hidden" if index else ""
    html = (
        f'<section class="batch" data-batch="{_a(view.batch_id)}" data-i="{index}"{hidden}>'
        f'{head}<div class="cols"><div class="views">{_summary(view)}'
        f"{_timeline(view, ready)}{_graph(view, index)}</div>{details}</div></section>"
    )
    return html, data


def page(views: Sequence[BatchView], *, title: str, notes: Sequence[str] = ()) -> str:
    """The whole page for ``views``: a picker, then one section per batch (the first shown)."""
    sections, data = [], []
    for index, view in enumerate(views):
        html, entry = _batch(view, index)
        sections.append(html)
        data.append(entry)
    buttons = "".join(
        f'<button type="button" data-pick="{_a(v.batch_id)}" data-i="{i}" '
        f'aria-pressed="{"true" if i == 0 else "false"}">#{i + 1} {_t(_short(v.name, 40))} '
        f"<small>{_t(v.strategy)}, {len(v.calls)} calls, {ms(v.makespan_ms)} ms</small></button>"
        for i, v in enumerate(views)
    )
    empty = (
        ""
        if views
        else "<p>No toolweave batches in this trace yet: export spans with "
        "<code>--trace jsonl:PATH</code>, or to <code>toolweave inspect --serve</code>.</p>"
    )
    remarks = "".join(f'<p class="note">{_t(n)}</p>' for n in notes)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_t(f'toolweave inspect: {title}')}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>toolweave inspect <small>{_t(title)}</small></h1>{remarks}</header>"
        f'<nav data-view="batches">{buttons}</nav><main>{empty}{"".join(sections)}</main>'
        f'<script type="application/json" id="tw-data">{_json_for_script(data)}</script>'
        f"<script>{_JS}</script></body></html>"
    )


_CSS = """
:root{--ok:#2e7d32;--error:#c62828;--skipped:#9e9e9e;--lab:11em;
  font:14px/1.4 system-ui,sans-serif;color:#1d1d1f}
body{margin:0 1.2em 2em}
h1{font-size:1.3em}
h2{font-size:1.15em;margin:.6em 0 .2em}
h3{font-size:1em;margin:.8em 0 .3em}
small{color:#666;font-weight:normal}
.note{color:#8a5300}
.legend{color:#555;font-size:12px;margin:0 0 6px}
nav{display:flex;flex-wrap:wrap;gap:.4em;margin:.5em 0;max-height:12em;overflow:auto}
nav button{font:inherit;padding:.3em .7em;border:1px solid #bbb;border-radius:4px;
  background:#f7f7f7;cursor:pointer}
nav button[aria-pressed=true]{background:#1d4ed8;color:#fff;border-color:#1d4ed8}
nav button[aria-pressed=true] small{color:#dde}
.cols{display:grid;grid-template-columns:minmax(0,1fr) minmax(16em,26em);gap:1.2em}
.summary dl{display:grid;grid-template-columns:repeat(auto-fill,minmax(10em,1fr));gap:.3em 1em;
  margin:0}
.summary dt{color:#666;font-size:.85em}
.summary dd{margin:0;font-weight:600}
.summary ul{margin:.2em 0;padding-left:1.2em}
.fallback{color:#8a5300}
.details{position:sticky;top:.5em;align-self:start;max-height:calc(100vh - 1em);overflow:auto;
  border:1px solid #ddd;border-radius:6px;padding:.5em .8em;background:#fafafa}
.details dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em .8em;margin:0}
.details dt{color:#666}
.details dd{margin:0;overflow-wrap:anywhere}
.details pre{margin:0;max-height:24em;overflow:auto;white-space:pre-wrap;font-size:.85em}
.timeline .rows{max-height:70vh;overflow:auto}
.timeline .inner{position:relative}
.row{display:grid;grid-template-columns:var(--lab) 1fr;align-items:center;height:18px;
  cursor:pointer}
.row:hover{background:#f0f4ff}
.lab{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;font:12px ui-monospace,monospace;
  padding-right:.5em}
.track{position:relative;height:14px;border-left:1px solid #ccc}
.track b{position:absolute;top:1px;height:12px;min-width:3px;border-radius:2px;
  font:10px/12px sans-serif;color:#fff;text-align:center;overflow:hidden}
.track .wait{position:absolute;left:0;top:6px;height:2px;
  background:repeating-linear-gradient(90deg,#9aa 0 4px,transparent 4px 7px)}
b[data-status=ok]{background:var(--ok)}
b[data-status=error]{background:var(--error)}
b[data-status=skipped]{
  background:repeating-linear-gradient(45deg,var(--skipped) 0 3px,#ddd 3px 6px)}
.marks{position:absolute;top:0;bottom:0;left:var(--lab);right:0;pointer-events:none}
.marks .dec{position:absolute;top:0;bottom:0;border-left:2px dashed #7b1fa2}
.marks .dec.fallback{border-left-color:#e65100}
.decisions u{position:absolute;top:2px;width:10px;height:10px;margin-left:-5px;background:#7b1fa2;
  transform:rotate(45deg)}
.decisions u.fallback{background:#e65100}
.axis,.decisions{display:grid;grid-template-columns:var(--lab) 1fr;height:18px}
.axis .track{display:flex;justify-content:space-between;font-size:.8em;color:#666;border:0}
.graphbox{overflow:auto;max-height:80vh;border:1px solid #eee;margin-top:.5em}
.graph text{font:11px ui-monospace,monospace}
.graph .level{fill:#888;font-size:10px}
.graph .lines path{fill:none;stroke:#90a4ae;stroke-width:1.3}
.graph marker path{fill:#90a4ae}
.node{cursor:pointer}
.node rect{fill:#fff;stroke-width:2}
.node .tool{fill:#666;font-size:10px}
.node[data-status=ok] rect{stroke:var(--ok)}
.node[data-status=error] rect{stroke:var(--error);fill:#fdecea}
.node[data-status=skipped] rect{stroke:var(--skipped);stroke-dasharray:4 3;fill:#f5f5f5}
.edge{cursor:pointer}
.edge rect{fill:#eceff1;stroke:#90a4ae}
.edge text{text-anchor:middle;dominant-baseline:central;font-size:10px}
.selected rect,.edge.selected rect{stroke:#1d4ed8!important;stroke-width:3}
b.selected{outline:2px solid #1d4ed8}
"""

_JS = """
(function(){
"use strict";
var data=JSON.parse(document.getElementById("tw-data").textContent);
var sections=document.querySelectorAll("section[data-batch]");
var buttons=document.querySelectorAll("nav[data-view=batches] button");
function pick(i){
  for(var k=0;k<sections.length;k++){sections[k].hidden=(k!==i);}
  for(var k=0;k<buttons.length;k++){buttons[k].setAttribute("aria-pressed",k===i?"true":"false");}
}
for(var k=0;k<buttons.length;k++){
  buttons[k].addEventListener("click",function(){pick(Number(this.getAttribute("data-i")));});
}
function ms(v){return v===null||v===undefined?"":String(v);}
function field(dl,name,label,value,pre){
  var dt=document.createElement("dt");dt.textContent=label;
  var dd=document.createElement("dd");dd.setAttribute("data-field",name);
  if(pre){var p=document.createElement("pre");p.textContent=value;dd.appendChild(p);}
  else{dd.textContent=value;}
  dl.appendChild(dt);dl.appendChild(dd);
}
function show(section,batch,callIndex,edge){
  var c=batch.calls[callIndex],box=section.querySelector("[data-view=details]");
  var dl=document.createElement("dl");
  if(edge){field(dl,"edge","edge",edge[0]+"->"+edge[1]);field(dl,"path","reference path",edge[2]);}
  field(dl,"call-id","call",c.id);field(dl,"tool","tool",c.tool);field(dl,"status","status",c.status);
  field(dl,"error","error",c.error);field(dl,"duration-ms","duration (ms)",ms(c.duration));
  field(dl,"start-ms","started at (ms)",ms(c.start));field(dl,"end-ms","ended at (ms)",ms(c.end));
  if(c.waited!==undefined){field(dl,"waited-ms","dependencies done at (ms)",ms(c.waited));}
  field(dl,"attempts","attempts",String(c.attempts));
  field(dl,"group","level",c.group===null?"-":String(c.group));
  field(dl,"depends-on","depends on",c.deps.join(", "));
  field(dl,"dependents","dependents",c.dependents.join(", "));
  if("arguments" in c){field(dl,"arguments","arguments",c.arguments,true);}
  if("output" in c){field(dl,"output","output",c.output,true);}
  box.replaceChildren(dl);
  var old=section.querySelectorAll(".selected");
  for(var k=0;k<old.length;k++){old[k].classList.remove("selected");}
  var marked=section.querySelectorAll('[data-call-id][data-i="'+callIndex+'"]');
  for(var k=0;k<marked.length;k++){marked[k].classList.add("selected");}
}
for(var s=0;s<sections.length;s++){
  (function(section){
    var batch=data[Number(section.getAttribute("data-i"))];
    var index=new Map();
    batch.calls.forEach(function(c,i){index.set(c.id,i);});
    section.addEventListener("click",function(ev){
      var t=ev.target;if(!(t instanceof Element)){return;}
      var e=t.closest("[data-e]");
      if(e&&section.contains(e)){
        var edge=batch.edges[Number(e.getAttribute("data-e"))];
        if(edge&&index.has(edge[1])){show(section,batch,index.get(edge[1]),edge);}
        return;
      }
      var hit=t.closest("[data-i]");
      if(hit&&hit!==section&&section.contains(hit)){show(section,batch,Number(hit.getAttribute("data-i")),null);}
    });
  })(sections[s]);
}
})();
"""
