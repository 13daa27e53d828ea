"""MCP calls over one session: one toolweave batch against the same calls one after another.

    python bench/bench_mcp.py

It starts itself as an MCP server over stdio (``--serve``, the SDK's ``MCPServer``) whose
tool ``slow`` sleeps for a given time, and measures in one run, over one session (an
``mcp.Client`` and ``tools_from_session``): N calls of ``slow(0.2)`` as one batch
(``Orchestrator.run``), the same N calls run one after another (one ``run`` each), and, as
the floor, N ``session.call_tool`` awaited together with no toolweave at all. Best of 3.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

DELAY = 0.2  # seconds each server call sleeps
SIZES = (4, 16, 64)
ROUNDS = 3
SCRIPT = str(Path(__file__).resolve())


def serve() -> None:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bench", log_level="ERROR")

    @server.tool(structured_output=False)
    async def slow(seconds: float, tag: int = 0) -> str:
        """Sleep, then answer."""
        await asyncio.sleep(seconds)
        return f"done {tag}"

    server.run()


async def measure() -> None:
    from mcp import Client, StdioServerParameters

    from toolweave import Orchestrator, ToolCall
    from toolweave.adapters.mcp import tools_from_session

    params = StdioServerParameters(command=sys.executable, args=[SCRIPT, "--serve"])
    calls = {
        n: [ToolCall(f"c{i}", "slow", {"seconds": DELAY, "tag": i}) for i in range(n)]
        for n in SIZES
    }
    async with Client(params) as client:
        orchestrator = Orchestrator(await tools_from_session(client.session))
        await orchestrator.run(calls[SIZES[0]])  # warm up: imports, first request paths
        print(f"MCP over stdio, one session; each call sleeps {DELAY * 1000:.0f} ms on the server")
        print(
            f"{'calls':>5}  {'one after another':>17}  {'one batch':>9}  "
            f"{'gather, no toolweave':>20}  {'speed-up':>8}"
        )
        for n in SIZES:
            serial = min([await _timed(_one_by_one(orchestrator, calls[n])) for _ in range(ROUNDS)])
            batch = min([await _timed(_batch(orchestrator, calls[n])) for _ in range(ROUNDS)])
            floor = min([await _timed(_gather(client, n)) for _ in range(ROUNDS)])
            print(
                f"{n:>5}  {serial * 1000:>14.0f} ms  {batch * 1000:>6.0f} ms  "
                f"{floor * 1000:>17.0f} ms  {serial / batch:>7.1f}x"
            )


async def _timed(work: Awaitable[None]) -> float:
    t0 = time.perf_counter()
    await work
    return time.perf_counter() - t0


async def _one_by_one(orchestrator: Any, calls: list[Any]) -> None:
    for call in calls:
        result = await orchestrator.run([call])
        assert result.ok, result.results[0].error


async def _batch(orchestrator: Any, calls: list[Any]) -> None:
    result = await orchestrator.run(calls)
    assert result.ok, [r.error for r in result.results if not r.ok]


async def _gather(client: Any, n: int) -> None:
    await asyncio.gather(
        *(client.session.call_tool("slow", {"seconds": DELAY, "tag": i}) for i in range(n))
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        asyncio.run(measure())
