"""Tracing overhead per call: without an SDK, and with the SDK and a batch span processor.

    python bench/bench_tracing.py

Measured in one run beside a raw asyncio.TaskGroup and the SDK's own cost per span. Spans go to
an exporter that drops them, so the figures are toolweave's and the SDK's, not a network's. The
plan event's JSON, written straight from the plan, is timed against ``json.dumps`` of
``ExecutionPlan.to_dict()`` on the same plan (the same text with content capture on, checked
here; the ratio is baseline / ours).
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

from bench_engine import noop, per_call, random_graph, raw_taskgroup, table, to_calls, work
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import use_span

from toolweave import Orchestrator, ToolCall
from toolweave._orchestrator import _GLOBAL_TRACER
from toolweave._tracing import end_span, plan_json, start_batch_span


class Dropping(SpanExporter):
    """Accepts spans and drops them."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def no_sdk_instrumentation_per_batch(reps: int = 50_000) -> float:
    """Microseconds of the code the engine runs for tracing when no SDK is configured: open the
    batch span (a no-op one), make it current, check it, end it."""
    start = time.perf_counter()
    for _ in range(reps):
        span = start_batch_span(_GLOBAL_TRACER, "toolweave")
        with use_span(span, end_on_exit=False, record_exception=False):
            span.is_recording()
        end_span(span)
    return (time.perf_counter() - start) / reps * 1e6


CALL_ATTRIBUTES = {
    "gen_ai.operation.name": "execute_tool",
    "gen_ai.tool.name": "noop",
    "gen_ai.tool.call.id": "c1",
    "gen_ai.tool.type": "function",
    "toolweave.status": "ok",
    "toolweave.attempts": 1,
    "toolweave.depends_on": [],
    "toolweave.group_index": 0,
    "toolweave.execution_order": 3,
}


def sdk_span_alone(
    provider: TracerProvider, attributes: dict[str, Any], reps: int = 20_000
) -> float:
    """The SDK's own cost for one span with these attributes (start + end), no toolweave."""
    tracer = provider.get_tracer("bench")
    start = time.perf_counter()
    for _ in range(reps):
        span = tracer.start_span("execute_tool noop")
        span.set_attributes(attributes)
        span.end()
    return (time.perf_counter() - start) / reps * 1e6


def plan_event_lines(rounds: int = 15) -> list[list[str]]:
    """Microseconds per call to write the ``toolweave.plan`` event's JSON, in alternating rounds
    against ``json.dumps(plan.to_dict())`` (random graphs with references and ``depends_on``).
    With content capture the event is that very text; without, ``output_mapping`` is also cut
    to argument names, work the baseline does not do."""
    rows = []
    for n in (100, 1000):
        plan = Orchestrator([work]).plan(to_calls(random_graph(7, n)))
        assert plan_json(plan, capture=True) == json.dumps(plan.to_dict())
        reps = max(1, 20_000 // n)
        runs = {
            "dumps": lambda plan=plan: json.dumps(plan.to_dict()),
            "same": lambda plan=plan: plan_json(plan, capture=True),
            "names": lambda plan=plan: plan_json(plan, capture=False),
        }
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(rounds):
            for name, fn in runs.items():
                gc.collect()
                start = time.perf_counter()
                for _ in range(reps):
                    fn()
                samples[name].append((time.perf_counter() - start) / reps / n * 1e6)
        dumps, same, names = (statistics.median(samples[name]) for name in runs)
        rows.append(
            [
                str(n),
                f"{dumps:.2f}",
                f"{same:.2f} ({dumps / same:.1f}x)",
                f"{names:.2f} ({dumps / names:.1f}x)",
            ]
        )
    return rows


async def main() -> None:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping(), max_queue_size=1 << 16))
    plain = Orchestrator([noop])
    traced = Orchestrator([noop], tracer_provider=provider)
    batch_cost = no_sdk_instrumentation_per_batch()
    bare_span = sdk_span_alone(provider, {"a": 1, "b": "two"})
    call_span = sdk_span_alone(provider, CALL_ATTRIBUTES)
    rows = []
    for n in (1, 10, 100, 1000):
        calls = [ToolCall(f"c{i}", "noop", {"i": i}) for i in range(n)]
        raw = await per_call(lambda n=n: raw_taskgroup(n), n, 20_000)
        untraced = await per_call(lambda calls=calls: plain.run(calls), n, 20_000)
        with_sdk = await per_call(lambda calls=calls: traced.run(calls), n, 20_000)
        rows.append(
            [
                str(n),
                f"{raw:.1f}",
                f"{untraced:.1f}",
                f"{batch_cost / n:.2f}",
                f"{with_sdk:.1f}",
                f"{with_sdk - raw:.1f}",
                f"{with_sdk - untraced:.1f}",
            ]
        )
    provider.shutdown()
    header = [
        "calls",
        "raw TaskGroup",
        "toolweave, no SDK",
        "tracing code, no SDK",
        "toolweave + SDK",
        "traced - raw",
        "SDK - no SDK",
    ]
    print(table("Tracing overhead, microseconds per call (trivial async tool)", header, rows))
    print(f"\nSDK alone, one span with 2 attributes: {bare_span:.1f} us")
    print(f"SDK alone, one span with the 9 attributes of a call span: {call_span:.1f} us")
    print(f"Tracing code run per batch with no SDK configured: {batch_cost:.2f} us")
    header = ["calls", "json.dumps(plan.to_dict())", "plan event, capture on", "capture off"]
    print()
    print(table("Plan event, microseconds per call (same run)", header, plan_event_lines()))


if __name__ == "__main__":
    asyncio.run(main())
