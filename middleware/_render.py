"""Plain-text views of plans and results for the command line (pure functions, no printing)."""

from __future__ import annotations

import unicodedata
from typing import Any

from toolweave.telemetry._values import safe_str, to_text

from ._models import BatchResult, CallResult, ExecutionPlan

__all__ = ["format_plan", "format_results", "format_timeline", "visible"]

_CELL = 48
_LINE = 200
# Characters that move the cursor, reorder text or hide it: shown as escapes, never sent raw.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def visible(value: Any, limit: int = _LINE) -> str:
    """``value`` as one line of at most ``limit`` characters that a terminal shows as it is:
    control, bidirectional and lone surrogate characters become ``\\xNN``-style escapes, so
    an id or an output cannot clear the screen or reorder the line."""
    text = " ".join(safe_str(value, limit * 4).split())
    shown = []
    for ch in text:
        if ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cs"):
            shown.append(ch.encode("unicode_escape", "backslashreplace").decode("ascii"))
        else:
            shown.append(ch)
    out = "".join(shown)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _cut(text: str, width: int = _CELL) -> str:
    return visible(text, width)


def _show(value: Any) -> str:
    # Any tool output (huge ints, deep or cyclic containers, objects that cannot be shown) as
    # bounded text; a cell shows only its start anyway.
    return to_text(value, _CELL * 20)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[k]) for r in rows)) if rows else len(h) for k, h in enumerate(header)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def format_plan(plan: ExecutionPlan) -> str:
    """Strategy, then one line per group with each call, what it waits for and its references."""
    lines = [
        f"strategy: {plan.strategy}  ({_count(len(plan.calls), 'call')} in "
        f"{_count(len(plan.groups), 'group')})"
    ]
    for index, group in enumerate(plan.groups):
        mode = "parallel" if len(group) > 1 else "single"
        lines.append(f"group {index} ({mode}):")
        for call_id in group:
            planned = plan.get(call_id)
            line = f"  {visible(call_id)} [{visible(planned.tool_name)}]"
            if planned.depends_on:
                line += f"  waits for {visible(', '.join(planned.depends_on))}"
            if planned.output_mapping:
                refs = ", ".join(f"{k}={v}" for k, v in planned.output_mapping.items())
                line += f"  ({_cut(refs, 60)})"
            if planned.ordered_after:
                line += f"  after {visible(', '.join(planned.ordered_after))} (shared resource)"
            lines.append(line)
    errors = plan.errors
    unplaced = [c.call_id for c in plan.calls if c.group_index is None]
    if unplaced:
        lines.append(f"not placed (on or behind a cycle): {visible(', '.join(unplaced), 2000)}")
    if errors:
        lines.append("errors found before running:")
        lines += [f"  {visible(message, 2000)}" for message in errors.values()]
    return "\n".join(lines)


def format_results(result: BatchResult) -> str:
    """A table with one row per call, then a summary line."""
    rows = []
    for r in result.results:
        detail = _show(r.error or "") if r.status != "ok" else _show(r.output)
        rows.append(
            [
                visible(r.call_id),
                visible(r.name),
                _status(r),
                "-" if r.group_index is None else str(r.group_index),
                "-" if r.execution_order is None else str(r.execution_order),
                str(r.attempts),
                "-" if r.duration is None else f"{r.duration * 1000:.0f}",
                _cut(detail),
            ]
        )
    header = ["id", "tool", "status", "group", "order", "tries", "ms", "output / error"]
    counts = ", ".join(f"{len(result.by_status(s))} {s}" for s in ("ok", "error", "skipped"))
    return f"{_table(header, rows)}\n{counts} in {result.elapsed * 1000:.0f} ms"


def _status(r: CallResult) -> str:
    """The status, and where a result came from when its tool did not run for it."""
    if r.replayed:
        return f"{r.status} (replayed)"
    if r.cached:
        return f"{r.status} (cached)"
    if r.deduplicated_from is not None:
        return f"{r.status} (= {visible(r.deduplicated_from)})"
    return r.status


def format_timeline(result: BatchResult, width: int = 50) -> str:
    """One bar per call that ran, placed on the batch's time axis."""
    total = max(result.elapsed, 1e-9)
    ids = [visible(r.call_id) for r in result.results]
    label = max(map(len, ids), default=2)
    lines = []
    for r, shown_id in zip(result.results, ids, strict=True):
        if r.started_at is None or r.ended_at is None:
            lines.append(f"{shown_id.ljust(label)} |{' ' * width}| {r.status}")
            continue
        start = int(r.started_at / total * width)
        end = max(start + 1, round(r.ended_at / total * width))
        bar = " " * start + "#" * (min(end, width) - start)
        took = (r.ended_at - r.started_at) * 1000
        lines.append(f"{shown_id.ljust(label)} |{bar.ljust(width)}| {took:.0f} ms")
    end_label = f"{total * 1000:.0f} ms"
    lines.append(f"{' ' * label}  0 ms{end_label.rjust(width - 4)}")
    return "\n".join(lines)
