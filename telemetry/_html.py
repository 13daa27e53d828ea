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

from ._view import STATUSES, UNCERTAIN, BatchView, CallView, DecisionView, ms

__all__ = ["page"]

# Graph geometry, in SVG user units (px).
_NODE_W, _NODE_H, _PITCH = 150, 34, 46
_GAP = 140  # between columns; an edge's handle (its label) sits in the gap before its target
_MARGIN = 16
_SLOT = 17  # vertical room of one edge handle
_LABEL = 18  # characters of a reference path shown on an edge
_NODE_CHARS = 21
_BADGE_CHARS = 16  # characters of a badge's text ("= ID" for a merged call)

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


def _call_data(
    call: CallView, dependents: list[str], ready: float | None, before: list[str]
) -> dict[str, Any]:
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
    # What only side effects add is written only when present: a page of 1,000 plain calls
    # stays as small as before.
    if call.uncertain:
        entry["outcome"] = UNCERTAIN
    if call.error_type and call.status != "ok":
        entry["errorType"] = call.error_type
    if call.replayed:
        entry["replayed"] = True
    if call.cached:
        entry["cached"] = True
    if call.deduplicated_from is not None:
        entry["mergedFrom"] = call.deduplicated_from
    if call.ordered_after:
        entry["orderedAfter"] = call.ordered_after
    if before:
        entry["orderedBefore"] = before
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
    for kind, n in view.marked.items():
        fields.append((f"calls-{kind}", kind, str(n)))
    orderings = len(view.resource_edges)
    if orderings:
        fields.append(("resource-orderings", "resource orderings", str(orderings)))
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
        title = f"{_headline(c)}, {ms(width)} ms"
        if c.attempts > 1:
            title += f", {c.attempts} attempts"
        wait = ""
        if c.call_id in ready and c.start_ms is not None:
            title += f", waited {ms(ready[c.call_id])} ms for {_waited_for(c)}"
            wait = f'<i class="wait" style="width:{pct(min(ready[c.call_id], at))}"></i>'
        tries = f"\u00d7{c.attempts}" if c.attempts > 1 else ""
        badges = ""
        if c.badges:
            # Beside the bar (a replayed or cached bar is a few pixels wide): to its right in
            # the left part of the track, else to its left.
            if (at + width) / total < 0.6:
                where = f"left:calc({pct(at + width)} + 4px)"
            else:
                where = f"right:calc(100% - {pct(at)} + 4px)"
            badges = f'<span class="badges" style="{where}">{_badges_html(c)}</span>'
        rows.append(
            f'<div class="row" data-i="{i}"><span class="lab" title="{_a(c.call_id)}">'
            f'{_t(c.call_id)}</span><span class="track">{wait}'
            f'<b data-call-id="{_a(c.call_id)}" data-status="{c.status}"{_marks(c)} '
            f'data-i="{i}" title="{_a(title)}" style="left:min({pct(at)},calc(100% - 3px));'
            f'width:{pct(width)}">{tries}</b>{badges}'
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


def _headline(c: CallView) -> str:
    """The call in a line: id, tool, status (``uncertain: ...`` for an uncertain call) and
    where its result came from."""
    text = f"{c.call_id} [{c.tool}] {c.status_text}"
    if c.status == "error" and c.error_type and not c.uncertain:
        text += f" ({c.error_type})"
    if c.replayed:
        text += ", replayed from the call ledger"
    if c.cached:
        text += ", from the cache"
    if c.deduplicated_from is not None:
        text += f", merged: the result of {c.deduplicated_from}"
    if c.ordered_after:
        after = _short(", ".join(c.ordered_after[:10]), 200)
        if len(c.ordered_after) > 10:
            after += ", \u2026"
        text += f", ran after {after} (resource)"
    return text


def _waited_for(c: CallView) -> str:
    if not c.ordered_after:
        return "its dependencies"
    if not c.depends_on:
        return "the calls it was ordered after"
    return "its dependencies and the calls it was ordered after"


def _marks(c: CallView) -> str:
    """The data attributes of a bar or a node beyond its id and status: ``data-origin`` and
    ``data-error-type``."""
    out = ""
    origin = c.origin
    if origin is not None:
        out += f' data-origin="{origin}"'
    if c.status == "error" and c.error_type:
        out += f' data-error-type="{_a(c.error_type)}"'
    return out


def _badges_html(c: CallView) -> str:
    return "".join(
        f'<span class="badge" data-badge="{_a(kind)}">{_t(_short(text, _BADGE_CHARS))}</span>'
        for kind, text in c.badges
    )


_LEGEND = (
    '<p class="legend">Each bar is a call, from its start to its end: green ok, red error, '
    "striped grey skipped. A dashed line before a bar: the call waiting for its dependencies. "
    "\u00d7N: the attempts it took. Purple marks: decision points (orange: the decider failed "
    "and its fallback applied). Badges: replayed (the call ledger's result, the tool not "
    "called), cached, = ID (merged: the result of an identical call of the batch); amber: "
    f"{UNCERTAIN}. Dashed graph edges: resource orderings.</p>"
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
    edges = [(e, view.edge_kind(e)) for e in view.edges]
    edges += [(e, "resource") for e in view.resource_edges]
    # Edge handles: in the gap before their target's column, one slot each, never overlapping.
    # An edge back to a column not after its source's (a resource ordering found only as the
    # batch ran) has its handle to the right of both.
    wanted: dict[tuple[int, bool], list[tuple[float, int, int, int]]] = {}
    for k, ((source, target), _) in enumerate(edges):
        s, t = index_of[source], index_of[target]
        ty, sy = where[t][1], where[s][1]
        back = column_of[t] <= column_of[s]
        column = column_of[s] if back else column_of[t]
        want = (sy + ty) / 2 if back else ty + (sy - ty) * 0.2
        wanted.setdefault((column, back), []).append((want, k, s, t))
    lines, handles = [], []
    bottom = max((y for _, y in where.values()), default=0.0) + _NODE_H / 2
    for (_, back), items in wanted.items():
        items.sort()
        floor = -1e9
        for want, k, s, t in items:
            y = max(want, floor + _SLOT)
            floor = y
            (source, target), kind = edges[k]
            sx, sy = where[s][0] + _NODE_W, where[s][1]
            tx, ty = where[t]
            cls = ' class="resource"' if kind == "resource" else ""
            if back:
                hx = max(sx, tx + _NODE_W) + _GAP / 4
                lines.append(
                    f'<path{cls} d="M{sx:.1f} {sy:.1f}C{hx:.1f} {sy:.1f} {hx:.1f} {y:.1f} '
                    f'{hx:.1f} {y:.1f}S{hx:.1f} {ty:.1f} {tx + _NODE_W + 2:.1f} {ty:.1f}"/>'
                )
            elif column_of[t] - column_of[s] > 1:
                hx = tx - _GAP / 2
                lines.append(_long_edge(sx, sy, hx, y, tx, ty, cls))
            else:
                hx = tx - _GAP / 2
                bend = max(20.0, abs(hx - sx) / 2)
                lines.append(
                    f'<path{cls} d="M{sx:.1f} {sy:.1f}C{sx + bend:.1f} {sy:.1f} {hx - bend:.1f} '
                    f'{y:.1f} {hx:.1f} {y:.1f}L{tx - 2:.1f} {ty:.1f}"/>'
                )
            path = view.paths.get((source, target), "") if kind != "resource" else ""
            if kind == "resource":
                label, about = "resource", ": resource (ran after it, sharing a resource)"
            else:
                label = _short(path, _LABEL) if path else "\u2192"
                about = f": {path}" if path else ""
            half = max(8.0, len(label) * 3.1 + 6)
            handles.append(
                f'<g class="edge {kind}" data-edge="{_a(f"{source}->{target}")}" '
                f'data-edge-kind="{kind}" data-e="{k}" transform="translate({hx:.1f} {y:.1f})">'
                f"<title>{_t(f'{source} -> {target}{about}')}</title>"
                f'<rect x="{-half:.1f}" y="-7" width="{2 * half:.1f}" height="14" rx="7"/>'
                f'<text y="0.5">{_t(label)}</text></g>'
            )
            bottom = max(bottom, y + _SLOT / 2)
    nodes = []
    for i, c in enumerate(view.calls):
        x, y = where[i]
        nodes.append(
            f'<g class="node" data-call-id="{_a(c.call_id)}" data-status="{c.status}"{_marks(c)} '
            f'data-i="{i}" transform="translate({x:.1f} {y - _NODE_H / 2:.1f})">'
            f"<title>{_t(_headline(c))}</title>"
            f'<rect width="{_NODE_W}" height="{_NODE_H}" rx="5"/>'
            f'<text x="8" y="14">{_t(_short(c.call_id, _NODE_CHARS))}</text>'
            f'<text x="8" y="27" class="tool">{_t(_short(c.tool, _NODE_CHARS + 3))}</text>'
            f"{_node_badges(c)}</g>"
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


def _node_badges(c: CallView) -> str:
    """Pills on the node's top edge, right-aligned, one per badge."""
    out = []
    right = float(_NODE_W - 4)
    for kind, text in reversed(c.badges):
        shown = _short(text, _BADGE_CHARS)
        width = len(shown) * 6.1 + 10
        right -= width
        out.append(
            f'<g class="badge" data-badge="{_a(kind)}" transform="translate({right:.1f} -7)">'
            f'<rect width="{width:.1f}" height="13" rx="6"/>'
            f'<text x="{width / 2:.1f}" y="6.5">{_t(shown)}</text></g>'
        )
        right -= 3
    return "".join(out)


def _long_edge(
    sx: float, sy: float, hx: float, hy: float, tx: float, ty: float, cls: str = ""
) -> str:
    """An edge that skips a level: along the gap between two rows of nodes (free in every
    column, as all columns share the rows), so it never passes behind a node it does not
    touch, then to its handle and its target."""
    row = max(0, round((sy + hy) / 2 - _MARGIN - _PITCH + _NODE_H / 2) // _PITCH)
    cy = _MARGIN + row * _PITCH + _NODE_H + (_PITCH - _NODE_H) / 2
    g1, g2 = sx + _GAP / 2, tx - _GAP + 12
    return (
        f'<path{cls} d="M{sx:.1f} {sy:.1f}C{sx + 30:.1f} {sy:.1f} {g1 - 30:.1f} {cy:.1f} {g1:.1f} '
        f"{cy:.1f}L{g2:.1f} {cy:.1f}C{g2 + 25:.1f} {cy:.1f} {hx - 25:.1f} {hy:.1f} {hx:.1f} "
        f'{hy:.1f}L{tx - 2:.1f} {ty:.1f}"/>'
    )


def _batch(view: BatchView, index: int) -> tuple[str, dict[str, Any]]:
    ready = view.ready_ms()
    dependents = view.dependents()
    before = view.ordered_before()
    data = {
        "calls": [
            _call_data(c, dependents[c.call_id], ready.get(c.call_id), before[c.call_id])
            for c in view.calls
        ],
        # In the graph's order (``data-e``): dependency edges, then resource orderings.
        "edges": [
            *([s, t, view.paths.get((s, t), "")] for s, t in view.edges),
            *([s, t, "", "resource"] for s, t in view.resource_edges),
        ],
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
:root{--ok:#2e7d32;--error:#c62828;--skipped:#9e9e9e;--uncertain:#b26a00;--lab:11em;
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
b[data-error-type=uncertain]{
  background:repeating-linear-gradient(135deg,var(--uncertain) 0 4px,#f0b429 4px 8px)}
.track .badges{position:absolute;top:0;display:flex;gap:2px;white-space:nowrap;
  pointer-events:none}
.badge{font:10px/12px ui-monospace,monospace;padding:0 4px;border-radius:6px;
  background:#e8eaf6;color:#283593;border:1px solid #9fa8da}
.badge[data-badge=cached]{background:#e0f2f1;color:#00695c;border-color:#80cbc4}
.badge[data-badge=deduplicated]{background:#f3e5f5;color:#6a1b9a;border-color:#ce93d8}
.badge[data-badge=uncertain]{background:#fff3e0;color:#8a4b00;border-color:var(--uncertain)}
.badge[data-badge^=ledger_]{background:#fdecea;color:var(--error);border-color:var(--error)}
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
.node[data-error-type=uncertain]>rect{stroke:var(--uncertain);stroke-dasharray:7 3;
  fill:#fff3e0}
.node[data-origin]>rect{fill:#f5f7ff}
.graph .badge rect{fill:#e8eaf6;stroke:#9fa8da;stroke-width:1}
.graph .badge text{font-size:9.5px;text-anchor:middle;dominant-baseline:central;fill:#283593}
.graph .badge[data-badge=cached] rect{fill:#e0f2f1;stroke:#80cbc4}
.graph .badge[data-badge=cached] text{fill:#00695c}
.graph .badge[data-badge=deduplicated] rect{fill:#f3e5f5;stroke:#ce93d8}
.graph .badge[data-badge=deduplicated] text{fill:#6a1b9a}
.graph .badge[data-badge=uncertain] rect{fill:#fff3e0;stroke:var(--uncertain)}
.graph .badge[data-badge=uncertain] text{fill:#8a4b00}
.graph .badge[data-badge^=ledger_] rect{fill:#fdecea;stroke:var(--error)}
.graph .badge[data-badge^=ledger_] text{fill:var(--error)}
.graph .lines path.resource{stroke:#8d6e63;stroke-dasharray:6 4}
.edge.resource rect{fill:#efebe9;stroke:#8d6e63;stroke-dasharray:3 2}
.edge{cursor:pointer}
.edge rect{fill:#eceff1;stroke:#90a4ae}
.edge text{text-anchor:middle;dominant-baseline:central;font-size:10px}
.selected>rect,.edge.selected rect{stroke:#1d4ed8!important;stroke-width:3}
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
  if(edge){
    field(dl,"edge","edge",edge[0]+"->"+edge[1]);
    field(dl,"edge-kind","kind",edge[3]||(edge[2]?"data":"order"));
    field(dl,"path","reference path",edge[2]);
  }
  field(dl,"call-id","call",c.id);field(dl,"tool","tool",c.tool);field(dl,"status","status",c.status);
  if(c.outcome){field(dl,"outcome","outcome",c.outcome);}
  if(c.errorType){field(dl,"error-type","error type",c.errorType);}
  field(dl,"error","error",c.error);
  if(c.replayed){
    field(dl,"replayed","replayed","replayed from the call ledger: the tool was not called");
  }
  if(c.cached){field(dl,"cached","cached","from the cache: the tool was not called for it");}
  if(c.mergedFrom!==undefined){field(dl,"deduplicated-from","deduplicated from",c.mergedFrom);}
  field(dl,"duration-ms","duration (ms)",ms(c.duration));
  field(dl,"start-ms","started at (ms)",ms(c.start));field(dl,"end-ms","ended at (ms)",ms(c.end));
  if(c.waited!==undefined){field(dl,"waited-ms","dependencies done at (ms)",ms(c.waited));}
  field(dl,"attempts","attempts",String(c.attempts));
  field(dl,"group","level",c.group===null?"-":String(c.group));
  field(dl,"depends-on","depends on",c.deps.join(", "));
  field(dl,"dependents","dependents",c.dependents.join(", "));
  if(c.orderedAfter){
    field(dl,"ordered-after","ordered after (resource)",c.orderedAfter.join(", "));
  }
  if(c.orderedBefore){
    field(dl,"ordered-before","ordered before (resource)",c.orderedBefore.join(", "));
  }
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
