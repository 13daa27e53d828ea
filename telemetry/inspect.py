"""Read toolweave traces offline: the JSON-lines files ``configure_tracing("jsonl:PATH")``
writes, shown as one tree per batch. It imports nothing from the engine."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import attributes as A

__all__ = ["TraceSpan", "format_batches", "load_spans"]


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

    @property
    def duration_ms(self) -> float:
        """How long the span lasted, in milliseconds."""
        return (self.end - self.start) * 1000


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def load_spans(path: str | os.PathLike[str]) -> list[TraceSpan]:
    """Every span in a JSON-lines trace file; ``ValueError`` names a line that is not one."""
    spans = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                spans.append(
                    TraceSpan(
                        name=raw["name"],
                        span_id=raw["context"]["span_id"],
                        parent_id=raw.get("parent_id"),
                        trace_id=raw["context"]["trace_id"],
                        start=_seconds(raw["start_time"]),
                        end=_seconds(raw["end_time"]),
                        attributes=raw.get("attributes") or {},
                        status=(raw.get("status") or {}).get("status_code", "UNSET"),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(
                    f"line {number} of {os.fspath(path)} is not a span: {exc}"
                ) from None
    return spans


def format_batches(spans: Iterable[TraceSpan]) -> str:
    """One block per batch span: its plan in brief, then its calls in execution order (status,
    level, duration, what they waited for) and its decisions."""
    spans = list(spans)
    by_id = {s.span_id: s for s in spans}
    for s in spans:
        parent = by_id.get(s.parent_id or "")
        if parent is not None:
            parent.children.append(s)
    batches = sorted(
        (s for s in spans if s.attributes.get(A.GEN_AI_OPERATION_NAME) == A.OP_INVOKE_WORKFLOW),
        key=lambda s: s.start,
    )
    blocks = []
    for batch in batches:
        a = batch.attributes
        head = (
            f"{batch.name}  {a.get(A.TW_STRATEGY, '?')}, {a.get(A.TW_TOTAL_TOOLS, '?')} calls "
            f"in {a.get(A.TW_TOTAL_GROUPS, '?')} groups, {batch.duration_ms:.0f} ms"
        )
        if a.get(A.TW_STOPPED):
            head += f"  STOPPED: {a.get(A.TW_STOP_REASON, '')}"
        lines = [head]
        children = sorted(batch.children, key=lambda s: s.start)
        calls = [c for c in children if A.GEN_AI_TOOL_CALL_ID in c.attributes]
        calls.sort(key=lambda c: (c.attributes.get(A.TW_EXECUTION_ORDER, 1 << 30), c.start))
        for c in calls:
            ca = c.attributes
            order = ca.get(A.TW_EXECUTION_ORDER)
            waits = ", ".join(ca.get(A.TW_DEPENDS_ON) or [])
            line = (
                f"  {'-' if order is None else order:>3}  {ca[A.GEN_AI_TOOL_CALL_ID]} "
                f"[{ca.get(A.GEN_AI_TOOL_NAME, '?')}] {ca.get(A.TW_STATUS, '?')}"
                f"  group {ca.get(A.TW_GROUP_INDEX, '-')}  {c.duration_ms:.0f} ms"
            )
            if waits:
                line += f"  waited for {waits}"
            if ca.get(A.TW_STATUS) == "skipped":
                line += f"  ({ca.get(A.TW_SKIP_REASON, '')})"
            elif ca.get(A.TW_STATUS) == "error":
                line += f"  ({ca.get(A.TW_ERROR_TYPE, 'error')})"
            lines.append(line)
        for d in (c for c in children if c.name == A.DECISION_SPAN):
            da = d.attributes
            ids = ", ".join(da.get(A.TW_DECISION_CALL_IDS) or [])
            fallback = "  fallback" if da.get(A.TW_DECISION_FALLBACK) else ""
            lines.append(
                f"  decide [{ids}]: {da.get(A.TW_DECISION_ACTION, '?')}{fallback}  "
                f"{d.duration_ms:.0f} ms  {da.get(A.TW_DECISION_REASON, '')}"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "no toolweave batches in these spans"
