"""Read toolweave traces offline: the JSON-lines files ``configure_tracing("jsonl:PATH")``
writes, or OTLP JSON (the OpenTelemetry file exporter's documents), shown per batch as text
(``format_batches``) or as one self-contained HTML page (``format_html``). It imports nothing
from the engine."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import attributes as A
from ._html import page
from ._otlp import is_otlp, read_document
from ._values import a_json_kind, json_kind, to_text
from ._view import UNCERTAIN, from_spans, text_block

__all__ = [
    "Trace",
    "TraceEvent",
    "TraceSpan",
    "format_batches",
    "format_html",
    "load_spans",
    "load_trace",
    "orphaned_calls",
    "parse_trace",
]


@dataclass
class TraceEvent:
    """One span event (the ``toolweave.plan`` event carries the plan)."""

    name: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class TraceSpan:
    """One span from a JSON-lines trace file."""

    name: str
    span_id: str
    parent_id: str | None
    trace_id: str
    start: float
    """Seconds since the epoch."""
    end: float
    attributes: dict[str, Any] = field(default_factory=dict)
    status: str = "UNSET"
    children: list[TraceSpan] = field(default_factory=list)
    status_message: str = ""
    """The status description (a failed call's error, with content capture on)."""
    events: list[TraceEvent] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        """How long the span lasted, in milliseconds."""
        return (self.end - self.start) * 1000


_FIX = (
    "each line must be one span object, as --trace jsonl:PATH writes them, or an OTLP JSON "
    'document ({"resourceSpans": [...]})'
)
_SHOWN = 60  # characters of an odd value quoted in an error
_LAST = 1 << 30  # the execution order of a call that has none: after every other

_INT, _TEXT, _FLAG, _IDS = "an integer", "a string", "a boolean", "a list of strings"
_ATTRIBUTE_KINDS = {
    A.GEN_AI_OPERATION_NAME: _TEXT,
    A.GEN_AI_TOOL_CALL_ID: _TEXT,
    A.GEN_AI_TOOL_NAME: _TEXT,
    A.TW_STRATEGY: _TEXT,
    A.TW_TOTAL_GROUPS: _INT,
    A.TW_TOTAL_TOOLS: _INT,
    A.TW_TOOL_IDS: _IDS,
    A.TW_STOPPED: _FLAG,
    A.TW_STOP_REASON: _TEXT,
    A.TW_GROUP_INDEX: _INT,
    A.TW_EXECUTION_ORDER: _INT,
    A.TW_DEPENDS_ON: _IDS,
    A.TW_ORDERED_AFTER: _IDS,
    A.TW_REPLAYED: _FLAG,
    A.TW_CACHED: _FLAG,
    A.TW_DEDUPLICATED_FROM: _TEXT,
    A.TW_STATUS: _TEXT,
    A.TW_ATTEMPTS: _INT,
    A.TW_ERROR_TYPE: _TEXT,
    A.TW_SKIP_REASON: _TEXT,
    A.TW_DECISION_ACTION: _TEXT,
    A.TW_DECISION_FALLBACK: _FLAG,
    A.TW_DECISION_CALL_IDS: _IDS,
    A.TW_DECISION_REASON: _TEXT,
}
"""The type toolweave writes for each attribute ``format_batches`` shows."""


class _NotASpan(Exception):
    """What is wrong with one line; ``load_spans`` adds the line number and the file."""


@dataclass
class Trace:
    """The spans of one trace file, and those of its OTLP documents that could not be read."""

    source: str
    """The file's name (``standard input`` for ``-``)."""
    spans: list[TraceSpan]
    unreadable: int = 0
    """How many spans (or parts of documents) of OTLP documents could not be read."""
    problems: list[str] = field(default_factory=list)
    """Why, for the first few of them."""

    @property
    def notes(self) -> list[str]:
        """A sentence about the unreadable spans, and one about call spans whose batch span
        is not in the trace, when there are any."""
        notes = []
        if self.unreadable:
            first = f" (first: {self.problems[0]})" if self.problems else ""
            notes.append(
                f"{self.unreadable} span(s) of {self.source} could not be read and are left "
                f"out{first}"
            )
        orphans = orphaned_calls(self.spans)
        if orphans:
            notes.append(
                f"{orphans} call span(s) of {self.source} have no batch span in it (the batch "
                "is still running, or its span was lost) and are not shown"
            )
        return notes


def orphaned_calls(spans: Iterable[TraceSpan]) -> int:
    """How many call spans have no batch span among ``spans`` to be drawn under."""
    spans = list(spans)
    batches = {
        (s.trace_id, s.span_id)
        for s in spans
        if _attributes(s).get(A.GEN_AI_OPERATION_NAME) == A.OP_INVOKE_WORKFLOW
    }
    return sum(
        1
        for s in spans
        if A.GEN_AI_TOOL_CALL_ID in _attributes(s) and (s.trace_id, s.parent_id) not in batches
    )


def load_spans(path: str | os.PathLike[str]) -> list[TraceSpan]:
    """Every span in a trace file (JSON lines or OTLP JSON). ``ValueError`` names the first
    line that is not a span (not UTF-8, not JSON, not an object, a field missing or of the
    wrong type) and the file; ``OSError`` if the file cannot be read. Spans of an OTLP
    document that cannot be read are left out: ``load_trace`` counts them."""
    return load_trace(path).spans


def load_trace(path: str | os.PathLike[str]) -> Trace:
    """The spans of a trace file (JSON lines or OTLP JSON), with the OTLP spans that could not
    be read counted. Errors as ``load_spans``."""
    with open(path, "rb") as file:  # bytes, so that a bad byte is reported with its line
        data = file.read()
    return parse_trace(data, os.fspath(path))


_PROBLEMS = 5  # reasons kept for unreadable OTLP spans


def parse_trace(data: bytes, source: str = "the trace") -> Trace:
    """The spans in ``data``: JSON lines as ``--trace jsonl:PATH`` writes them, OTLP JSON
    documents one per line, or one OTLP JSON document (pretty-printed or not). ``ValueError``
    names the first line that is neither a span nor an OTLP document, and ``source``."""
    trace = Trace(source=source, spans=[])
    whole: Any = None
    broken: json.JSONDecodeError | None = None  # why a document over several lines is not JSON
    if data.lstrip()[:1] == b"{" and b"resourceSpans" in data[:4096]:
        try:  # one document over several lines
            whole = json.loads(data.decode("utf-8-sig"))
        except json.JSONDecodeError as exc:
            broken = exc
        except (ValueError, RecursionError):
            whole = None
    if isinstance(whole, dict) and is_otlp(whole):
        try:
            _add_document(trace, whole, 1)
        except _NotASpan as exc:
            raise ValueError(f"line 1 of {source} is not a span: {exc}; {_FIX}") from None
        return _without_repeats(trace)
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = _parse(line)
            if is_otlp(raw):
                _add_document(trace, raw, number)
            else:
                trace.spans.append(_span(raw))
        except _NotASpan as exc:
            if broken is not None and not trace.spans and b"\n" in data.strip():
                raise ValueError(
                    f"{source} looks like one OTLP JSON document but is not JSON "
                    f"({broken.msg} at line {broken.lineno}, column {broken.colno}); {_FIX}"
                ) from None
            raise ValueError(f"line {number} of {source} is not a span: {exc}; {_FIX}") from None
    return _without_repeats(trace)


def _without_repeats(trace: Trace) -> Trace:
    """The trace with each span once: the same span twice (a file concatenated with itself,
    an export sent again) is one span, as the live receiver keeps it."""
    seen: set[tuple[Any, Any]] = set()
    kept = []
    for span in trace.spans:
        key = (span.trace_id, span.span_id)
        if key not in seen:
            seen.add(key)
            kept.append(span)
    trace.spans = kept
    return trace


def _add_document(trace: Trace, document: dict[str, Any], number: int) -> None:
    try:
        for item in read_document(document):
            if isinstance(item, str):
                trace.unreadable += 1
                if len(trace.problems) < _PROBLEMS:
                    trace.problems.append(f"line {number}: {item}")
                continue
            trace.spans.append(
                TraceSpan(
                    name=item.name,
                    span_id=item.span_id,
                    parent_id=item.parent_id,
                    trace_id=item.trace_id,
                    start=item.start,
                    end=item.end,
                    attributes=item.attributes,
                    status=item.status,
                    status_message=item.status_message,
                    events=[TraceEvent(n, a) for n, a in item.events],
                )
            )
    except ValueError as exc:
        raise _NotASpan(f"an OTLP document, but {exc}") from None


def _parse(line: bytes) -> Any:
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = line[exc.start]
        raise _NotASpan(f"byte {bad:#04x} at column {exc.start + 1} is not UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _NotASpan(f"not JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise _NotASpan("JSON nested too deeply to read") from None
    except ValueError:  # an int past sys.get_int_max_str_digits()
        raise _NotASpan("a number with too many digits to read") from None


def _span(raw: Any) -> TraceSpan:
    if not isinstance(raw, dict):
        raise _NotASpan(f"it is a JSON {json_kind(raw)}, not an object")
    context = _field(raw, "context", dict)
    parent_id = raw.get("parent_id")
    if parent_id is not None and not isinstance(parent_id, str):
        raise _NotASpan(f"'parent_id' is {a_json_kind(parent_id)}, not a string or null")
    attributes = raw.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        raise _NotASpan(f"'attributes' is {a_json_kind(attributes)}, not an object")
    _check_attributes(attributes or {})
    status = raw.get("status")
    if status is not None and not isinstance(status, dict):
        raise _NotASpan(f"'status' is {a_json_kind(status)}, not an object")
    code = (status or {}).get("status_code", "UNSET")
    if not isinstance(code, str):
        raise _NotASpan(f"'status.status_code' is {a_json_kind(code)}, not a string")
    message = (status or {}).get("description")
    return TraceSpan(
        name=_field(raw, "name", str),
        span_id=_field(context, "span_id", str, "context.span_id"),
        parent_id=parent_id,
        trace_id=_field(context, "trace_id", str, "context.trace_id"),
        start=_seconds(raw, "start_time"),
        end=_seconds(raw, "end_time"),
        attributes=attributes or {},
        status=code,
        status_message=message if isinstance(message, str) else "",
        events=_events(raw.get("events")),
    )


def _events(raw: Any) -> list[TraceEvent]:
    # Events are read for what the Inspector shows (the plan); odd ones are left out.
    if not isinstance(raw, list):
        return []
    return [
        TraceEvent(e["name"], e["attributes"] if isinstance(e.get("attributes"), dict) else {})
        for e in raw
        if isinstance(e, dict) and isinstance(e.get("name"), str)
    ]


def _check_attributes(attributes: dict[str, Any]) -> None:
    for key, wanted in _ATTRIBUTE_KINDS.items():
        if key not in attributes:
            continue
        value = attributes[key]
        if wanted is _INT:
            fits = isinstance(value, int) and not isinstance(value, bool)
        elif wanted is _TEXT:
            fits = isinstance(value, str)
        elif wanted is _FLAG:
            fits = isinstance(value, bool)
        else:
            fits = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not fits:
            shown = "a list of other values" if isinstance(value, list) else a_json_kind(value)
            raise _NotASpan(f"attribute '{key}' is {shown}, not {wanted}")


def _field(raw: dict[str, Any], key: str, kind: type, label: str | None = None) -> Any:
    label = label or key
    if key not in raw:
        raise _NotASpan(f"it has no '{label}'")
    value = raw[key]
    if not isinstance(value, kind):
        wanted = "a string" if kind is str else "an object"
        raise _NotASpan(f"'{label}' is {a_json_kind(value)}, not {wanted}")
    return value


def _seconds(raw: dict[str, Any], key: str) -> float:
    stamp = _field(raw, key, str)
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        raise _NotASpan(f"'{key}' {to_text(stamp, _SHOWN)!r} is not an ISO 8601 time") from None


def _text(value: Any, limit: int = 80) -> str:
    # Attribute values are whatever a file held (or a caller built): show any of them.
    return to_text(value, limit)


def _ids(value: Any) -> str:
    if not value:
        return ""
    if isinstance(value, list | tuple):
        return _text(", ".join(_text(v, 40) for v in value[:20]), 200)
    return _text(value)


def _order(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else _LAST


def _start(span: TraceSpan) -> float:
    return span.start if isinstance(span.start, int | float) else 0.0


def _ms(span: TraceSpan) -> str:
    try:
        duration = span.duration_ms
        return f"{duration:.0f}" if duration >= 0 else "?"  # a span that ends before it starts
    except (TypeError, ValueError, OverflowError):
        return "?"


def _attributes(span: TraceSpan) -> dict[str, Any]:
    return span.attributes if isinstance(span.attributes, dict) else {}


def format_batches(spans: Iterable[TraceSpan]) -> str:
    """One block per batch span: its plan in brief, then its calls in execution order (status,
    level, duration, what they waited for, the calls they ran after by resource, whether their
    result was replayed, cached or merged into an identical call's, ``uncertain`` in words)
    and its decisions. Attribute values of any type are
    shown as bounded text; this never raises on what a trace file held."""
    spans = list(spans)
    # Keyed by trace too: span ids repeat across traces (a copied file, a replayed export).
    by_id = {(s.trace_id, s.span_id): s for s in spans if isinstance(s.span_id, str)}
    for s in spans:  # the tree is built afresh: a second call must not list a span twice
        s.children = []
    for s in spans:
        parent = by_id.get((s.trace_id, s.parent_id)) if isinstance(s.parent_id, str) else None
        if parent is not None:
            parent.children.append(s)
    batches = sorted(
        (s for s in spans if _attributes(s).get(A.GEN_AI_OPERATION_NAME) == A.OP_INVOKE_WORKFLOW),
        key=_start,
    )
    blocks = []
    for batch in batches:
        a = _attributes(batch)
        head = (
            f"{_text(batch.name)}  {_text(a.get(A.TW_STRATEGY, '?'))}, "
            f"{_text(a.get(A.TW_TOTAL_TOOLS, '?'))} calls "
            f"in {_text(a.get(A.TW_TOTAL_GROUPS, '?'))} groups, {_ms(batch)} ms"
        )
        if a.get(A.TW_STOPPED):
            head += f"  STOPPED: {_text(a.get(A.TW_STOP_REASON, ''), 200)}"
        lines = [head]
        children = sorted(batch.children, key=_start)
        calls = [c for c in children if A.GEN_AI_TOOL_CALL_ID in _attributes(c)]
        calls.sort(key=lambda c: (_order(_attributes(c).get(A.TW_EXECUTION_ORDER)), _start(c)))
        for c in calls:
            ca = _attributes(c)
            order = ca.get(A.TW_EXECUTION_ORDER)
            waits = _ids(ca.get(A.TW_DEPENDS_ON))
            status = ca.get(A.TW_STATUS, "?")
            line = (
                f"  {'-' if order is None else _text(order, 12):>3}  "
                f"{_text(ca[A.GEN_AI_TOOL_CALL_ID])} "
                f"[{_text(ca.get(A.GEN_AI_TOOL_NAME, '?'))}] {_text(status, 20)}"
                f"  group {_text(ca.get(A.TW_GROUP_INDEX, '-'), 12)}  {_ms(c)} ms"
            )
            if waits:
                line += f"  waited for {waits}"
            after = _ids(ca.get(A.TW_ORDERED_AFTER))
            if after:
                line += f"  after {after} (resource)"
            if ca.get(A.TW_REPLAYED) is True:
                line += "  replayed"
            if ca.get(A.TW_CACHED) is True:
                line += "  cached"
            if ca.get(A.TW_DEDUPLICATED_FROM) is not None:
                line += f"  = {_text(ca[A.TW_DEDUPLICATED_FROM])}"
            if status == "skipped":
                line += f"  ({_text(ca.get(A.TW_SKIP_REASON, ''), 200)})"
            elif status == "error" and ca.get(A.TW_ERROR_TYPE) == "uncertain":
                line += f"  ({UNCERTAIN})"
            elif status == "error":
                line += f"  ({_text(ca.get(A.TW_ERROR_TYPE, 'error'))})"
            lines.append(line)
        for d in (c for c in children if c.name == A.DECISION_SPAN):
            da = _attributes(d)
            ids = _ids(da.get(A.TW_DECISION_CALL_IDS))
            fallback = "  fallback" if da.get(A.TW_DECISION_FALLBACK) else ""
            lines.append(
                f"  decide [{ids}]: {_text(da.get(A.TW_DECISION_ACTION, '?'))}{fallback}  "
                f"{_ms(d)} ms  {_text(da.get(A.TW_DECISION_REASON, ''), 200)}"
            )
        blocks.append("\n".join(lines))
    for k, view in enumerate(from_spans(spans)):
        if k < len(blocks):
            blocks[k] += "\n\n" + text_block(view)
    return "\n\n".join(blocks) if blocks else "no toolweave batches in these spans"


def format_html(
    spans: Iterable[TraceSpan], *, title: str = "trace", notes: Iterable[str] = ()
) -> str:
    """One self-contained HTML page (no network: styles and script inline) showing every
    batch span of ``spans``: a picker, and per batch a timeline, the dependency graph, a
    summary and a details panel. ``notes`` are shown at the top (unreadable spans, say).
    Every value is escaped; this never raises on what a trace file held."""
    return page(from_spans(spans), title=title, notes=list(notes))
