"""Spans from OTLP JSON: the OpenTelemetry file exporter's documents (``{"resourceSpans": ...}``,
one per line or one per file), as the JSON-lines reader gives them. A span that cannot be read
is counted with the reason, never a crash."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ._values import a_json_kind, to_text

__all__ = ["OtlpSpan", "is_otlp", "read_document"]

_HEX = frozenset("0123456789abcdefABCDEF")
_DEPTH = 32  # nesting of attribute values read; deeper is shown as text


@dataclass
class OtlpSpan:
    """The fields of one span, in the shape ``TraceSpan`` takes."""

    name: str
    span_id: str
    parent_id: str | None
    trace_id: str
    start: float
    end: float
    attributes: dict[str, Any]
    status: str
    status_message: str
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class _Unreadable(Exception):
    """Why one span cannot be read."""


def is_otlp(document: Any) -> bool:
    """True for an OTLP JSON traces document."""
    return isinstance(document, dict) and "resourceSpans" in document


def read_document(document: dict[str, Any]) -> Iterator[OtlpSpan | str]:
    """Every span of one document, or for one that cannot be read, why (a sentence). Raises
    ``ValueError`` when the document itself is not of the OTLP shape."""
    resources = document["resourceSpans"]
    if not isinstance(resources, list):
        raise ValueError(f"'resourceSpans' is {_kind(resources)}, not a list")
    for r, resource in enumerate(resources):
        if not isinstance(resource, dict):
            yield f"resourceSpans[{r}] is {_kind(resource)}, not an object"
            continue
        scopes = resource.get("scopeSpans", resource.get("instrumentationLibrarySpans", []))
        if not isinstance(scopes, list):
            yield f"resourceSpans[{r}].scopeSpans is {_kind(scopes)}, not a list"
            continue
        for s, scope in enumerate(scopes):
            spans = scope.get("spans", []) if isinstance(scope, dict) else None
            if not isinstance(spans, list):
                yield f"resourceSpans[{r}].scopeSpans[{s}] has no list of spans"
                continue
            for k, raw in enumerate(spans):
                try:
                    yield _span(raw)
                except _Unreadable as exc:
                    yield f"span {k} of resourceSpans[{r}].scopeSpans[{s}]: {exc}"


def _span(raw: Any) -> OtlpSpan:
    if not isinstance(raw, dict):
        raise _Unreadable(f"it is {_kind(raw)}, not an object")
    name = raw.get("name")
    if not isinstance(name, str):
        raise _Unreadable("it has no 'name' string")
    parent = raw.get("parentSpanId")
    found = raw.get("status")
    status: dict[str, Any] = found if isinstance(found, dict) else {}
    code = status.get("code", 0)
    message = status.get("message", "")
    events = []
    found_events = raw.get("events")
    for event in found_events if isinstance(found_events, list) else []:
        if isinstance(event, dict) and isinstance(event.get("name"), str):
            events.append((event["name"], _attributes(event.get("attributes"))))
    return OtlpSpan(
        name=name,
        span_id=_id(raw.get("spanId"), "spanId"),
        parent_id=_id(parent, "parentSpanId") if parent else None,
        trace_id=_id(raw.get("traceId"), "traceId"),
        start=_time(raw.get("startTimeUnixNano"), "startTimeUnixNano"),
        end=_time(raw.get("endTimeUnixNano"), "endTimeUnixNano"),
        attributes=_attributes(raw.get("attributes")),
        status={2: "ERROR", "STATUS_CODE_ERROR": "ERROR", 1: "OK", "STATUS_CODE_OK": "OK"}.get(
            code if isinstance(code, int | str) else 0, "UNSET"
        ),
        status_message=message if isinstance(message, str) else "",
        events=events,
    )


def _id(value: Any, key: str) -> str:
    """An id as the JSON-lines exporter writes it (``0x`` and hex), from hex (the OTLP JSON
    encoding) or base64 (what protobuf's generic JSON printer writes for bytes)."""
    if not isinstance(value, str) or not value:
        raise _Unreadable(f"it has no '{key}' string")
    if len(value) in (16, 32) and set(value) <= _HEX:
        return "0x" + value.lower()
    try:
        return "0x" + base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        raise _Unreadable(f"'{key}' {to_text(value, 60)!r} is neither hex nor base64") from None


def _time(value: Any, key: str) -> float:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        nanos = int(value)
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**20:
        nanos = value
    else:
        raise _Unreadable(f"'{key}' is {_kind(value)}, not a count of nanoseconds")
    # The instant the JSON-lines exporter's ISO time holds (the SDK goes through a float of
    # seconds, then whole microseconds): one trace read either way gives the same numbers.
    try:
        return datetime.fromtimestamp(nanos / 1e9, tz=UTC).timestamp()
    except (OverflowError, OSError, ValueError):
        raise _Unreadable(f"'{key}' is out of range") from None


def _attributes(raw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = _value(item.get("value"), 0)
    return out


def _value(raw: Any, depth: int) -> Any:
    if not isinstance(raw, dict) or depth > _DEPTH:
        return None if raw is None or raw == {} else to_text(raw, 200)
    if "stringValue" in raw:
        return raw["stringValue"]
    if "boolValue" in raw:
        return raw["boolValue"]
    if "intValue" in raw:
        number = raw["intValue"]
        if isinstance(number, str) and len(number) <= 20:
            try:
                return int(number)
            except ValueError:
                return number
        return number
    if "doubleValue" in raw:
        number = raw["doubleValue"]
        if isinstance(number, str):  # "NaN", "Infinity" or digits
            try:
                return float(number)
            except ValueError:
                return number
        return number
    if "arrayValue" in raw:
        array = raw["arrayValue"]
        values = array.get("values", []) if isinstance(array, dict) else []
        return [_value(v, depth + 1) for v in values] if isinstance(values, list) else []
    if "kvlistValue" in raw:
        kv = raw["kvlistValue"]
        values = kv.get("values", []) if isinstance(kv, dict) else []
        return {
            item["key"]: _value(item.get("value"), depth + 1)
            for item in (values if isinstance(values, list) else [])
            if isinstance(item, dict) and isinstance(item.get("key"), str)
        }
    if "bytesValue" in raw:
        return raw["bytesValue"]
    return None


def _kind(value: Any) -> str:
    return "null" if value is None else a_json_kind(value)
