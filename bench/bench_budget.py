"""The engine's performance budget, each line measured against its baseline in this run.

    python bench/bench_budget.py            # about a minute
    python bench/bench_budget.py --quick    # fewer rounds

Baselines and toolweave are measured in alternating rounds and compared by their medians, so a
busy machine slows both alike. The budget (issue 9):

- overhead per call above a raw asyncio.TaskGroup, no middleware, 100 and 1,000 calls: <= 25 us
- each middleware layer: <= 10 us more per call
- a one-call batch: <= 35 us above raw
- planning 10,000 calls with 20,000 edges: <= 2x graphlib.TopologicalSorter on the same graph
- with the OpenTelemetry SDK and a batch span processor: <= 30 us per call above what the SDK
  alone costs for one span with the same attributes
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import graphlib
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bench_engine import noop, raw_taskgroup, table, work
from bench_plan import random_dag
from bench_tracing import CALL_ATTRIBUTES, Dropping
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from toolweave import CallNext, CallRequest, Orchestrator, ToolCall

Async = Callable[[], Awaitable[Any]]


async def passthrough(request: CallRequest, call_next: CallNext) -> Any:
    """A middleware that only passes the call on: its cost is the layer's."""
    return await call_next(request)


async def alternating(
    runs: dict[str, Async],
    n: int,
    rounds: int,
    reps: int,
    settle: Callable[[], Any] | None = None,
) -> dict[str, float]:
    """Median microseconds per call of each runner, measured in alternating rounds;
    ``settle`` runs untimed after each runner (a span processor's flush, say)."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        await fn()  # warm up
    for _ in range(rounds):
        for name, fn in runs.items():
            gc.collect()
            start = time.perf_counter()
            for _ in range(reps):
                await fn()
            samples[name].append((time.perf_counter() - start) / reps / n * 1e6)
            if settle is not None:
                settle()
    return {name: statistics.median(s) for name, s in samples.items()}


def verdict(value: float, limit: float) -> str:
    return "ok" if value <= limit else "OVER"


async def overhead_lines(rounds: int) -> list[list[str]]:
    lines = []
    bare = Orchestrator([noop])
    one = Orchestrator([noop], middleware=[passthrough])
    three = Orchestrator([noop], middleware=[passthrough] * 3)
    for n in (1, 100, 1000):
        calls = [ToolCall(f"c{i}", "noop", {"i": i}) for i in range(n)]
        reps = max(1, 2000 // n)
        t = await alternating(
            {
                "raw": lambda n=n: raw_taskgroup(n),
                "bare": lambda calls=calls: bare.run(calls),
                "one": lambda calls=calls: one.run(calls),
                "three": lambda calls=calls: three.run(calls),
            },
            n,
            rounds,
            reps,
        )
        over = t["bare"] - t["raw"]
        limit = 35.0 if n == 1 else 25.0
        what = "one-call batch" if n == 1 else f"{n} calls"
        lines.append(
            [
                f"overhead per call, {what}",
                f"{t['bare']:.1f} vs raw {t['raw']:.1f}",
                f"{over:.1f} us",
                f"<= {limit:g} us",
                verdict(over, limit),
            ]
        )
        if n > 1:
            layer = (t["three"] - t["bare"]) / 3
            lines.append(
                [
                    f"per middleware layer, {n} calls",
                    f"1: {t['one']:.1f}, 3: {t['three']:.1f}",
                    f"{layer:.1f} us",
                    "<= 10 us",
                    verdict(layer, 10.0),
                ]
            )
    return lines


def planning_batch(
    n: int = 10_000, edges: int = 20_000
) -> tuple[list[ToolCall], dict[int, list[int]]]:
    """``bench_plan``'s random graph: references and ``depends_on``, both edges."""
    deps = random_dag(n, edges, seed=7)
    calls = []
    for i, ordered in enumerate(deps):
        refs = [f"${{c{d}.value}}" for d in ordered[::2]]
        calls.append(
            ToolCall(f"c{i}", "work", {"ms": 1, "inputs": refs}, [f"c{d}" for d in ordered[1::2]])
        )
    return calls, dict(enumerate(deps))


def planning_line(rounds: int) -> list[str]:
    calls, graph = planning_batch()
    orchestrator = Orchestrator([work])
    ours: list[float] = []
    base: list[float] = []
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        orchestrator.plan(calls)
        ours.append(time.perf_counter() - start)
        gc.collect()
        start = time.perf_counter()
        list(graphlib.TopologicalSorter(graph).static_order())
        base.append(time.perf_counter() - start)
    a, b = statistics.median(ours) * 1000, statistics.median(base) * 1000
    return [
        "planning 10,000 calls / 20,000 edges",
        f"{a:.0f} ms vs graphlib {b:.0f} ms",
        f"{a / b:.2f}x",
        "<= 2x",
        verdict(a / b, 2.0),
    ]


def sdk_spans(provider: TracerProvider, attributes: dict[str, Any], n: int) -> Async:
    """The SDK alone: ``n`` spans with these attributes (start, set, end), no toolweave."""
    tracer = provider.get_tracer("bench")

    async def spans() -> None:
        for _ in range(n):
            span = tracer.start_span("execute_tool noop")
            span.set_attributes(attributes)
            span.end()

    return spans


async def tracing_lines(rounds: int) -> list[list[str]]:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping(), max_queue_size=1 << 16))
    plain = Orchestrator([noop])
    traced = Orchestrator([noop], tracer_provider=provider)
    lines = []
    for n in (100, 1000):
        calls = [ToolCall(f"c{i}", "noop", {"i": i}) for i in range(n)]
        reps = max(1, 2000 // n)
        t = await alternating(
            {
                "plain": lambda c=calls: plain.run(c),
                "traced": lambda c=calls: traced.run(c),
                "sdk": sdk_spans(provider, CALL_ATTRIBUTES, n),
            },
            n,
            rounds,
            reps,
            settle=provider.force_flush,  # no runner pays for another's exports
        )
        sdk = t["sdk"]
        over = t["traced"] - t["plain"] - sdk
        lines.append(
            [
                f"tracing per call above the SDK's own span, {n} calls",
                f"+{t['traced'] - t['plain']:.1f} vs SDK span {sdk:.1f}",
                f"{over:.1f} us",
                "<= 30 us",
                verdict(over, 30.0),
            ]
        )
    provider.shutdown()
    return lines


def report(lines: Sequence[list[str]]) -> str:
    return table(
        "Performance budget (medians of alternating rounds, this run)",
        ["measure", "measured", "over baseline", "budget", ""],
        list(lines),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    rounds = 5 if args.quick else 15
    lines = await overhead_lines(rounds)
    lines.append(planning_line(3 if args.quick else 7))
    lines += await tracing_lines(rounds)
    print(report(lines))


if __name__ == "__main__":
    asyncio.run(main())
