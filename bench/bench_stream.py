"""How much earlier tool calls start when dispatched from the stream.

    python bench/bench_stream.py

A simulated Chat Completions stream writes 4 tool calls, each call's arguments in 4 fragments
with a pause between chunks (the model's token pace). Measured in one run: dispatching each
call as soon as it is complete (``dispatch_stream``) against waiting for the whole message and
then running the batch.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from scripted_openai import sse_tool_call_chunks

from toolweave import Orchestrator, ToolCall, tool
from toolweave.adapters.openai import dispatch_stream

CHUNK_PAUSE = 0.02  # seconds between chunks
TOOL_LATENCY = 0.15
CALLS = [
    ("c1", "work", '{"name": "search", "pause": 0.15}'),
    ("c2", "work", '{"name": "weather", "pause": 0.15}'),
    ("c3", "work", '{"name": "fetch", "pause": 0.15, "after": "${c1}"}'),
    ("c4", "work", '{"name": "summary", "pause": 0.15, "after": "${c3}"}'),
]
starts: dict[str, float] = {}


@tool
async def work(name: str, pause: float, after: Any = None) -> str:
    """Note when it started, then take a while."""
    starts.setdefault(name, time.perf_counter())
    await asyncio.sleep(pause)
    return name


async def model_stream() -> AsyncIterator[dict[str, Any]]:
    for chunk in sse_tool_call_chunks(CALLS, pieces=4):
        await asyncio.sleep(CHUNK_PAUSE)
        yield chunk


async def streamed() -> tuple[float, float]:
    starts.clear()
    t0 = time.perf_counter()
    await dispatch_stream(model_stream(), Orchestrator([work]))
    return starts["search"] - t0, time.perf_counter() - t0


async def whole_message() -> tuple[float, float]:
    starts.clear()
    t0 = time.perf_counter()
    parts: dict[int, dict[str, str]] = {}
    async for chunk in model_stream():
        for delta in chunk["choices"][0]["delta"].get("tool_calls") or []:
            entry = parts.setdefault(delta["index"], {"id": "", "name": "", "arguments": ""})
            entry["id"] = delta.get("id") or entry["id"]
            entry["name"] += delta["function"].get("name") or ""
            entry["arguments"] += delta["function"].get("arguments") or ""
    calls = [ToolCall(p["id"], p["name"], p["arguments"]) for _, p in sorted(parts.items())]
    await Orchestrator([work]).run(calls)
    return starts["search"] - t0, time.perf_counter() - t0


async def main() -> None:
    rows = {"dispatch_stream": [], "whole message, then run": []}
    for _ in range(5):
        rows["dispatch_stream"].append(await streamed())
        rows["whole message, then run"].append(await whole_message())
    stream_ms = len(sse_tool_call_chunks(CALLS, pieces=4)) * CHUNK_PAUSE * 1000
    print(
        f"Stream of {len(CALLS)} calls over ~{stream_ms:.0f} ms, "
        f"tools {TOOL_LATENCY * 1000:.0f} ms each (median of 5)"
    )
    print(f"{'mode':26} {'first call starts':>18} {'batch done':>11}")
    for mode, values in rows.items():
        first = statistics.median(v[0] for v in values) * 1000
        done = statistics.median(v[1] for v in values) * 1000
        print(f"{mode:26} {first:15.0f} ms {done:8.0f} ms")
    s_first = statistics.median(v[0] for v in rows["dispatch_stream"])
    w_first = statistics.median(v[0] for v in rows["whole message, then run"])
    s_done = statistics.median(v[1] for v in rows["dispatch_stream"])
    w_done = statistics.median(v[1] for v in rows["whole message, then run"])
    print(
        f"first call starts {(w_first - s_first) * 1000:.0f} ms earlier; "
        f"batch done {(w_done - s_done) * 1000:.0f} ms earlier ({w_done / s_done:.2f}x)"
    )


if __name__ == "__main__":
    asyncio.run(main())
