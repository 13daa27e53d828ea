"""One batch as the Inspector shows it, built from trace spans or from ``BatchResult.to_trace()``:
its calls on the batch's time axis, its dependency edges with the reference paths that carried
data, its decisions, and the numbers of its summary. Plus the text timeline for a terminal.

Everything read here may come from a file anyone wrote: every value is checked or shown as
bounded text, and nothing raises on odd data.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import attributes as A
from ._values import safe_str, to_jsonable, to_text

if TYPE_CHECKING:
    from .inspect import TraceSpan

__all__ = ["BatchView", "CallView", "DecisionView", "from_record", "from_spans", "text_block"]

STATUSES = ("ok", "error", "skipped")
ORIGINS = ("replayed", "cached", "deduplicated")
"""Where a call's result came from when its tool was not called for it (``CallView.origin``)."""
EDGE_KINDS = ("data", "order", "resource")
"""Why a call waited for another: a reference, ``depends_on``, or a resource they share."""
UNCERTAIN = "uncertain: may or may not have taken effect"
"""How the Inspector words an ``uncertain`` call's outcome."""
LEDGER_TYPES = frozenset({"uncertain", "ledger_conflict", "ledger_error"})
"""Error types of the call ledger, marked on the bar and the node as well as in the error."""
_ID = 200  # characters of an id or a tool name kept
_MESSAGE = 2_000  # characters of an error or a reason kept
_CONTENT = 20_000  # characters of captured arguments or output kept
_REF = re.compile(r"\$\{([^}]*)\}")


@dataclass
class CallView:
    """One call: what the timeline, the graph and the details panel show."""

    call_id: str
    tool: str
    status: str
    """``ok``, ``error`` or ``skipped``."""
    start_ms: float | None
    """Milliseconds after the batch started; None when unknown."""
    end_ms: float | None
    attempts: int = 0
    depends_on: list[str] = field(default_factory=list)
    group: int | None = None
    order: int | None = None
    error: str = ""
    arguments: str | None = None
    """Captured arguments as (pretty) JSON text; None when not captured."""
    output: str | None = None
    error_type: str = ""
    """The short class of the failure (``CallResult.error_type``); empty when none is known."""
    replayed: bool = False
    """The result came from the call ledger: the tool was not called."""
    cached: bool = False
    """The result came from the cache, or from an identical call running in another batch."""
    deduplicated_from: str | None = None
    """The id of the identical call of the batch whose result this call took."""
    ordered_after: list[str] = field(default_factory=list)
    """Ids of the calls it ran after because of resources they share (``reads``/``writes``)."""

    @property
    def origin(self) -> str | None:
        """``replayed``, ``cached`` or ``deduplicated`` when the tool was not called for this
        call (the first that applies, in that order); None when it was, or did not run."""
        if self.replayed:
            return "replayed"
        if self.cached:
            return "cached"
        if self.deduplicated_from is not None:
            return "deduplicated"
        return None

    @property
    def uncertain(self) -> bool:
        """An earlier run of the batch started the call and died before recording it."""
        return self.status == "error" and self.error_type == "uncertain"

    @property
    def badges(self) -> list[tuple[str, str]]:
        """(kind, text) of the marks drawn by the call's bar and node: where its result came
        from (``replayed``, ``cached``, ``= ID``), and a ledger error type."""
        out = []
        origin = self.origin
        if origin == "deduplicated":
            out.append((origin, f"= {self.deduplicated_from}"))
        elif origin is not None:
            out.append((origin, origin))
        if self.status == "error" and self.error_type in LEDGER_TYPES:
            out.append((self.error_type, self.error_type))
        return out

    @property
    def status_text(self) -> str:
        """The status in words: ``uncertain: may or may not have taken effect`` for an
        uncertain call, else the status."""
        return UNCERTAIN if self.uncertain else self.status

    @property
    def waits_for(self) -> list[str]:
        """Every call it waited for: its dependencies, then the calls it was ordered after."""
        if not self.ordered_after:
            return self.depends_on
        deps = set(self.depends_on)
        return self.depends_on + [a for a in self.ordered_after if a not in deps]

    @property
    def ran(self) -> bool:
        """True when the call has a time span to draw (skipped calls are drawn as a mark)."""
        return self.start_ms is not None and self.end_ms is not None

    @property
    def duration_ms(self) -> float:
        """Milliseconds from start to outcome; 0 for a call that never ran."""
        if self.start_ms is None or self.end_ms is None or self.status == "skipped":
            return 0.0
        return max(0.0, self.end_ms - self.start_ms)


@dataclass
class DecisionView:
    """One decision point of the batch."""

    call_ids: list[str]
    action: str
    fallback: bool
    reason: str
    error: str
    start_ms: float | None
    end_ms: float | None
    trigger: str = "step"


@dataclass
class BatchView:
    """One batch: calls in the model's order, decisions, edges and the summary's numbers."""

    batch_id: str
    name: str
    strategy: str
    groups: int
    makespan_ms: float
    calls: list[CallView]
    decisions: list[DecisionView] = field(default_factory=list)
    paths: dict[tuple[str, str], str] = field(default_factory=dict)
    """(waited for, waiting) -> the reference path(s) that carried data along that edge."""
    stopped: str | None = None

    @property
    def edges(self) -> list[tuple[str, str]]:
        """One (FROM, TO) per dependency whose both ends are calls of the batch."""
        known = {c.call_id for c in self.calls}
        out: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()
        for c in self.calls:
            for dep in c.depends_on:
                edge = (dep, c.call_id)
                if dep in known and edge not in seen:
                    seen.add(edge)
                    out.append(edge)
        return out

    @property
    def resource_edges(self) -> list[tuple[str, str]]:
        """One (FROM, TO) per resource ordering (TO ran after FROM because of a resource they
        share) whose both ends are calls of the batch and that no dependency edge repeats."""
        known = {c.call_id for c in self.calls}
        out: list[tuple[str, str]] = []
        seen = set(self.edges)
        for c in self.calls:
            for before in c.ordered_after:
                edge = (before, c.call_id)
                if before in known and before != c.call_id and edge not in seen:
                    seen.add(edge)
                    out.append(edge)
        return out

    def edge_kind(self, edge: tuple[str, str]) -> str:
        """``data`` for a dependency edge that carried a reference, else ``order``; resource
        orderings are ``resource_edges``."""
        return "data" if edge in self.paths else "order"

    def count(self, status: str) -> int:
        """How many calls ended with ``status``."""
        return sum(1 for c in self.calls if c.status == status)

    @property
    def marked(self) -> dict[str, int]:
        """How many calls were replayed, cached, merged (deduplicated) or uncertain, for the
        kinds that have any."""
        counts = {
            "replayed": sum(1 for c in self.calls if c.replayed),
            "cached": sum(1 for c in self.calls if c.cached),
            "merged": sum(1 for c in self.calls if c.deduplicated_from is not None),
            "uncertain": sum(1 for c in self.calls if c.uncertain),
        }
        return {kind: n for kind, n in counts.items() if n}

    @property
    def serial_ms(self) -> float:
        """The time the calls would take one by one: the sum of their durations."""
        return sum(c.duration_ms for c in self.calls)

    @property
    def critical_path_ms(self) -> float:
        """The longest chain of durations along dependency edges and resource orderings: no
        schedule beats it."""
        by_id = {c.call_id: c for c in self.calls}
        longest: dict[str, float] = {}
        for root in by_id:
            stack: list[tuple[str, bool]] = [(root, False)]
            on_path: set[str] = set()
            while stack:  # iterative: a chain of 1,000 calls must not hit the recursion limit
                call_id, done = stack.pop()
                if call_id in longest:
                    continue
                deps = [d for d in by_id[call_id].waits_for if d in by_id]
                if done:
                    on_path.discard(call_id)
                    before = max((longest.get(d, 0.0) for d in deps), default=0.0)
                    longest[call_id] = by_id[call_id].duration_ms + before
                    continue
                on_path.add(call_id)
                stack.append((call_id, True))
                # A cycle (calls on one never run) is cut where it closes.
                stack.extend((d, False) for d in deps if d not in longest and d not in on_path)
        return max(longest.values(), default=0.0)

    def ready_ms(self) -> dict[str, float]:
        """Call id -> when the last of the calls it waited for (dependencies, and calls it was
        ordered after) ended, in ms after the batch started, for calls that waited for any:
        the time before it was spent waiting for them."""
        by_id = {c.call_id: c for c in self.calls}
        out = {}
        for c in self.calls:
            ends = [e for d in c.waits_for if (e := _end(by_id.get(d))) is not None]
            if ends:
                out[c.call_id] = max(ends)
        return out

    def dependents(self) -> dict[str, list[str]]:
        """Call id -> ids of the calls that waited for it."""
        out: dict[str, list[str]] = {c.call_id: [] for c in self.calls}
        for source, target in self.edges:
            out[source].append(target)
        return out

    def ordered_before(self) -> dict[str, list[str]]:
        """Call id -> ids of the calls that ran after it because of a resource they share."""
        out: dict[str, list[str]] = {c.call_id: [] for c in self.calls}
        for source, target in self.resource_edges:
            out[source].append(target)
        return out


def _end(call: CallView | None) -> float | None:
    return None if call is None else call.end_ms


# --- reading values that may be anything ----------------------------------------------------


def _text(value: Any, limit: int = _ID) -> str:
    if isinstance(value, str) and len(value) <= limit:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: the page must encode as UTF-8
            return to_text(value, limit)
        return value
    return to_text(value, limit)


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53:
        return value
    return None


def _ids(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [_text(v) for v in value[:10_000]]
    return [] if value is None else [_text(value)]


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        return number if number == number and abs(number) < 1e15 else None
    return None


def _status(value: Any) -> str:
    return value if value in STATUSES else "error"


def _content(value: Any, *, is_json_text: bool) -> str:
    """Captured content as readable text: JSON pretty-printed, bounded."""
    data = value
    if is_json_text and isinstance(value, str):
        try:
            data = json.loads(value)
        except (ValueError, RecursionError):
            return to_text(value, _CONTENT)
    try:
        return to_text(json.dumps(to_jsonable(data), indent=2, ensure_ascii=False), _CONTENT)
    except (ValueError, TypeError, RecursionError):
        return to_text(data, _CONTENT)


# --- reference paths from the plan ----------------------------------------------------------


def _paths(plan: Any, ids: list[str]) -> dict[tuple[str, str], str]:
    """(FROM, TO) -> reference paths, from a plan dict (``ExecutionPlan.to_dict()`` shape)."""
    if not isinstance(plan, Mapping):
        return {}
    index_of = {call_id: i for i, call_id in enumerate(ids)}
    found: dict[tuple[str, str], list[str]] = {}
    groups = plan.get("execution_groups")
    for group in groups if isinstance(groups, list) else []:
        tools = group.get("tools") if isinstance(group, Mapping) else None
        for entry in tools if isinstance(tools, list) else []:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("tool_id"), str):
                continue
            mapping = entry.get("output_mapping")
            if not isinstance(mapping, Mapping):
                continue
            deps = entry.get("depends_on")
            waits = {d for d in deps if isinstance(d, str)} if isinstance(deps, list) else set()
            for refs in mapping.values():
                for written in _REF.findall(refs) if isinstance(refs, str) else []:
                    split = _split_reference(written.strip(), index_of, ids, waits)
                    if split is not None:
                        source, rest = split
                        paths = found.setdefault((source, entry["tool_id"]), [])
                        if f"${rest}" not in paths:
                            paths.append(f"${rest}")
    return {edge: _text(", ".join(paths), 400) for edge, paths in found.items()}


def _ordered_after(plan: Any) -> dict[str, list[str]]:
    """Call id -> the ids it was ordered after by resource, from a plan dict's
    ``ordered_after`` entries (orderings known before the batch ran)."""
    if not isinstance(plan, Mapping):
        return {}
    found: dict[str, list[str]] = {}
    groups = plan.get("execution_groups")
    for group in groups if isinstance(groups, list) else []:
        tools = group.get("tools") if isinstance(group, Mapping) else None
        for entry in tools if isinstance(tools, list) else []:
            if isinstance(entry, Mapping) and isinstance(entry.get("tool_id"), str):
                after = _ids(entry.get("ordered_after"))
                if after:
                    found[_text(entry["tool_id"])] = after
    return found


def _split_reference(
    written: str, index_of: dict[str, int], ids: list[str], waits: Iterable[str]
) -> tuple[str, str] | None:
    """The call a reference's text names and the path after it. Ids may hold ``.`` and ``[``
    (the plan writes ``${lookup.v2[0].text}`` for the object form's ``{"$ref": "lookup.v2[0]",
    "path": "$.text"}``): the longest id the text starts with wins, then a 1-based position."""
    cuts = [i for i, ch in enumerate(written) if ch in ".["]
    found = [(written[:c], written[c:]) for c in [len(written), *reversed(cuts)]]
    named = [(t, rest) for t, rest in found if t in index_of]
    first = cuts[0] if cuts else len(written)
    position = written[:first]
    digits = position.isascii() and position.isdigit() and len(position) <= 9
    if digits and 1 <= int(position) <= len(ids):
        named.append((ids[int(position) - 1], written[first:]))
    # Among several readings ("a.b" and "a" both ids), the call it waited for is the one.
    return next((n for n in named if n[0] in waits), named[0] if named else None)


# --- from spans -----------------------------------------------------------------------------


def _attrs(span: TraceSpan) -> dict[str, Any]:
    return span.attributes if isinstance(span.attributes, dict) else {}


def _seconds(value: Any) -> float | None:
    return _number(value)


def _relative(span: TraceSpan, origin: float | None) -> tuple[float | None, float | None]:
    start, end = _seconds(span.start), _seconds(span.end)
    if origin is None or start is None or end is None:
        return None, None
    return (start - origin) * 1000, (max(start, end) - origin) * 1000  # never ends before it starts


def _plan_of(span: TraceSpan) -> Any:
    for event in getattr(span, "events", None) or []:
        if getattr(event, "name", None) != A.PLAN_EVENT:
            continue
        attributes = getattr(event, "attributes", None)
        text = attributes.get(A.TW_PLAN_JSON) if isinstance(attributes, dict) else None
        if isinstance(text, str):
            try:
                return json.loads(text)
            except (ValueError, RecursionError):
                return None
    return None


BATCH_ID_KEYS = (A.TW_BATCH_ID, "toolweave.batch_id")
"""Where a batch span may carry the engine's batch id; without one the span id names it."""


def from_spans(spans: Iterable[TraceSpan]) -> list[BatchView]:
    """One view per batch span (``gen_ai.operation.name = invoke_workflow``), by start time."""
    spans = list(spans)
    # Keyed by trace too: span ids repeat across traces (a copied file, a replayed export).
    children: dict[tuple[str, str], list[TraceSpan]] = {}
    for s in spans:
        if isinstance(s.parent_id, str):
            children.setdefault((s.trace_id, s.parent_id), []).append(s)
    batches = [s for s in spans if _attrs(s).get(A.GEN_AI_OPERATION_NAME) == A.OP_INVOKE_WORKFLOW]
    batches.sort(key=lambda s: _seconds(s.start) or 0.0)
    views = []
    used: set[str] = set()
    for batch in batches:
        view = _batch_view(
            batch,
            children.get((batch.trace_id, batch.span_id), [])
            if isinstance(batch.span_id, str)
            else [],
        )
        while view.batch_id in used:  # two batches must never share a picker entry
            view.batch_id += "'"
        used.add(view.batch_id)
        views.append(view)
    return views


def _batch_view(batch: TraceSpan, children: list[TraceSpan]) -> BatchView:
    a = _attrs(batch)
    origin = _seconds(batch.start)
    start, end = _relative(batch, origin)
    batch_id = next((a[k] for k in BATCH_ID_KEYS if isinstance(a.get(k), str) and a[k]), None)
    plan = _plan_of(batch)
    planned_after = _ordered_after(plan)
    calls = []
    for span in children:
        ca = _attrs(span)
        if A.GEN_AI_TOOL_CALL_ID not in ca:
            continue
        status = _status(ca.get(A.TW_STATUS))
        call_start, call_end = _relative(span, origin)
        if status == "error":
            error = " ".join(
                p
                for p in (
                    _text(ca.get(A.TW_ERROR_TYPE, "")),
                    _text(getattr(span, "status_message", "") or "", _MESSAGE),
                )
                if p
            )
        elif status == "skipped":
            error = _text(ca.get(A.TW_SKIP_REASON, "skipped"), _MESSAGE)
        else:
            error = ""
        arguments = ca.get(A.GEN_AI_TOOL_CALL_ARGUMENTS)
        output = ca.get(A.GEN_AI_TOOL_CALL_RESULT)
        call_id = _text(ca[A.GEN_AI_TOOL_CALL_ID])
        merged = ca.get(A.TW_DEDUPLICATED_FROM)
        # The span's own list holds orderings found as the batch ran; older spans have none.
        after = ca.get(A.TW_ORDERED_AFTER)
        calls.append(
            CallView(
                call_id=call_id,
                tool=_text(ca.get(A.GEN_AI_TOOL_NAME, "?")),
                status=status,
                start_ms=call_start,
                end_ms=call_end,
                attempts=_int(ca.get(A.TW_ATTEMPTS)) or 0,
                depends_on=_ids(ca.get(A.TW_DEPENDS_ON)),
                group=_int(ca.get(A.TW_GROUP_INDEX)),
                order=_int(ca.get(A.TW_EXECUTION_ORDER)),
                error=error,
                arguments=None if arguments is None else _content(arguments, is_json_text=True),
                output=None if output is None else _content(output, is_json_text=True),
                error_type=_text(ca.get(A.TW_ERROR_TYPE) or "") if status != "ok" else "",
                replayed=ca.get(A.TW_REPLAYED) is True,
                cached=ca.get(A.TW_CACHED) is True,
                deduplicated_from=None if merged is None else _text(merged),
                ordered_after=_ids(after) if after is not None else planned_after.get(call_id, []),
            )
        )
    # The model's order when the batch span lists it; else the order the calls started.
    model_order = {call_id: i for i, call_id in enumerate(_ids(a.get(A.TW_TOOL_IDS)))}
    calls.sort(key=lambda c: (model_order.get(c.call_id, 1 << 30), c.start_ms or 0.0))
    decisions = []
    for span in children:
        if span.name != A.DECISION_SPAN:
            continue
        da = _attrs(span)
        d_start, d_end = _relative(span, origin)
        decisions.append(
            DecisionView(
                call_ids=_ids(da.get(A.TW_DECISION_CALL_IDS)),
                action=_text(da.get(A.TW_DECISION_ACTION, "?"), 40),
                fallback=da.get(A.TW_DECISION_FALLBACK) is True,
                reason=_text(da.get(A.TW_DECISION_REASON, ""), _MESSAGE),
                error=_text(da.get(A.ERROR_TYPE, ""), _MESSAGE),
                start_ms=d_start,
                end_ms=d_end,
                trigger=_text(da.get(A.TW_DECISION_TRIGGER, "step"), 40),
            )
        )
    decisions.sort(key=lambda d: d.start_ms or 0.0)
    stopped = a.get(A.TW_STOP_REASON) if a.get(A.TW_STOPPED) is True else None
    return BatchView(
        batch_id=batch_id or _text(batch.span_id),
        name=_text(batch.name),
        strategy=_text(a.get(A.TW_STRATEGY, "?"), 40),
        groups=_int(a.get(A.TW_TOTAL_GROUPS)) or 0,
        makespan_ms=max(0.0, (end or 0.0) - (start or 0.0)),
        calls=calls,
        decisions=decisions,
        paths=_paths(plan, [c.call_id for c in calls]),
        stopped=None if stopped is None else _text(stopped, _MESSAGE),
    )


# --- from BatchResult.to_trace() ------------------------------------------------------------


def from_record(record: Mapping[str, Any], *, batch_id: str, name: str) -> BatchView:
    """The view of one batch from ``BatchResult.to_trace()``'s record (times in seconds since
    the batch started)."""
    plan = record.get("plan")
    plan = plan if isinstance(plan, Mapping) else {}
    planned_after = _ordered_after(plan)
    calls = []
    raw_calls = record.get("calls")
    for entry in raw_calls if isinstance(raw_calls, list) else []:
        if not isinstance(entry, Mapping):
            continue
        start, end = _number(entry.get("started_at")), _number(entry.get("ended_at"))
        status = _status(entry.get("status"))
        error = entry.get("error")
        if status == "error" and entry.get("error_type"):
            error = f"{_text(entry['error_type'])} {_text(error or '', _MESSAGE)}".strip()
        call_id = _text(entry.get("call_id", "?"))
        merged = entry.get("deduplicated_from")
        calls.append(
            CallView(
                call_id=call_id,
                tool=_text(entry.get("name", "?")),
                status=status,
                start_ms=None if start is None else start * 1000,
                end_ms=None if end is None else end * 1000,
                attempts=_int(entry.get("attempts")) or 0,
                depends_on=_ids(entry.get("depends_on")),
                group=_int(entry.get("group_index")),
                order=_int(entry.get("execution_order")),
                error="" if status == "ok" else _text(error or "", _MESSAGE),
                arguments=_content(entry["arguments"], is_json_text=False)
                if "arguments" in entry
                else None,
                output=_content(entry["output"], is_json_text=False) if "output" in entry else None,
                error_type=_text(entry.get("error_type") or "") if status != "ok" else "",
                replayed=entry.get("replayed") is True,
                cached=entry.get("cached") is True,
                deduplicated_from=None if merged is None else _text(merged),
                ordered_after=(
                    _ids(entry["ordered_after"])
                    if entry.get("ordered_after") is not None
                    else planned_after.get(call_id, [])
                ),
            )
        )
    decisions = []
    raw_decisions = record.get("decisions")
    for d in raw_decisions if isinstance(raw_decisions, list) else []:
        if not isinstance(d, Mapping):
            continue
        found = d.get("decision")
        decision: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        action = decision.get("action", "?")
        if action == "skip" and not decision.get("skip"):
            action = "continue"
        start = _number(d.get("started_at"))
        elapsed = _number(d.get("elapsed")) or 0.0
        decisions.append(
            DecisionView(
                call_ids=_ids(d.get("call_ids")),
                action=_text(action, 40),
                fallback=d.get("fallback") is True,
                reason=_text(decision.get("reason", ""), _MESSAGE),
                error=_text(d.get("error_type") or "", _MESSAGE),
                start_ms=None if start is None else start * 1000,
                end_ms=None if start is None else (start + elapsed) * 1000,
                trigger=_text(d.get("trigger", "step"), 40),
            )
        )
    stopped = record.get("stopped")
    return BatchView(
        batch_id=batch_id,
        name=name,
        strategy=_text(plan.get("strategy", "?"), 40),
        groups=_int(plan.get("total_groups")) or 0,
        makespan_ms=max(0.0, (_number(record.get("elapsed")) or 0.0) * 1000),
        calls=calls,
        decisions=decisions,
        paths=_paths(plan, [c.call_id for c in calls]),
        stopped=None if stopped is None else _text(stopped, _MESSAGE),
    )


# --- the terminal's view --------------------------------------------------------------------

_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def visible(value: Any, limit: int = 200) -> str:
    """``value`` on one line a terminal shows as it is: control, bidirectional and surrogate
    characters as escapes, so an id cannot clear the screen or reorder the line."""
    text = " ".join(safe_str(value, limit * 4).split())
    shown = [
        ch.encode("unicode_escape", "backslashreplace").decode("ascii")
        if ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cs")
        else ch
        for ch in text
    ]
    out = "".join(shown)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def ms(value: float) -> int:
    """Milliseconds as the summary shows them: a whole number."""
    return round(value)


def text_timeline(view: BatchView, width: int = 50) -> str:
    """One bar per call on the batch's time axis, as ``toolweave demo`` draws it."""
    total = max(view.makespan_ms, *(c.end_ms or 0.0 for c in view.calls), 1e-6)
    ids = [visible(c.call_id, 48) for c in view.calls]
    label = max(map(len, ids), default=2)
    lines = []
    for c, shown in zip(view.calls, ids, strict=True):
        marks = "".join(f", {visible(text, 60)}" for kind, text in c.badges if kind != "uncertain")
        if c.uncertain:
            marks += f", {UNCERTAIN}"
        if not c.ran or c.status == "skipped" or c.start_ms is None or c.end_ms is None:
            lines.append(f"{shown.ljust(label)} |{' ' * width}| {c.status}{marks}")
            continue
        start = min(width - 1, max(0, int(c.start_ms / total * width)))
        end = max(start + 1, round(c.end_ms / total * width))
        bar = " " * start + "#" * (min(end, width) - start)
        tail = f"{c.duration_ms:.0f} ms"
        if c.status != "ok":
            tail += f" {c.status}"
        if c.attempts > 1:
            tail += f", {c.attempts} attempts"
        lines.append(f"{shown.ljust(label)} |{bar.ljust(width)}| {tail}{marks}")
    end_label = f"{total:.0f} ms"
    lines.append(f"{' ' * label}  0 ms{end_label.rjust(width - 4)}")
    return "\n".join(lines)


def text_summary(view: BatchView) -> list[str]:
    """The summary's lines: calls by status, makespan, critical path, one-by-one time, the
    calls replayed, cached, merged or uncertain and the resource orderings (when there are
    any), decisions and their fallbacks."""
    makespan, critical, serial = view.makespan_ms, view.critical_path_ms, view.serial_ms
    counts = ", ".join(f"{view.count(s)} {s}" for s in STATUSES)
    lines = [
        f"summary: {visible(view.strategy, 40)}, {len(view.calls)} calls ({counts}) "
        f"in {view.groups} groups",
        f"  makespan {ms(makespan)} ms, critical path {ms(critical)} ms"
        + (f" ({makespan / critical:.2f}x of it)" if critical > 0 else "")
        + f", one by one {ms(serial)} ms"
        + (f" ({serial / makespan:.2f}x speed-up)" if makespan > 0 else ""),
    ]
    marked = view.marked
    if marked:
        lines.append("  " + ", ".join(f"{n} {kind}" for kind, n in marked.items()))
    if view.resource_edges:
        n = len(view.resource_edges)
        lines.append(f"  {n} resource ordering{'' if n == 1 else 's'}")
    fallbacks = sum(1 for d in view.decisions if d.fallback)
    if view.decisions:
        lines.append(f"  {len(view.decisions)} decisions, {fallbacks} by fallback")
    return lines


def text_block(view: BatchView) -> str:
    """The timeline then the summary of one batch, for a terminal."""
    return "\n".join([text_timeline(view), *text_summary(view)])
