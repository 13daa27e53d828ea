"""An OpenAI agent whose tools come from an MCP server, run through toolweave.

    python examples/mcp_agent.py

It starts the MCP server ``mcp_server.py`` over stdio. Offline it also starts a scripted
OpenAI-compatible model on 127.0.0.1, whose first turn searches and reads the first hit in
one batch (``"${call_search.items[0].id}"``); with OPENAI_API_KEY set (and OPENAI_BASE_URL
for another compatible server) it talks to the real model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import sys
from typing import Any

from mcp import StdioServerParameters
from openai import AsyncOpenAI

from toolweave import Orchestrator
from toolweave.adapters.mcp import mcp_tools
from toolweave.adapters.openai import run_openai_agent
from toolweave.testing import ScriptedOpenAIServer

SERVER = StdioServerParameters(
    command=sys.executable, args=[str(pathlib.Path(__file__).with_name("mcp_server.py"))]
)


def model(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The scripted model: search and read the best hit in one batch, then answer."""
    results = [m for m in messages if m["role"] == "tool"]
    if not results:
        return {
            "tool_calls": [
                ("call_search", "docs_search", {"query": "dependency graphs"}),
                ("call_read", "docs_read", {"id": "${call_search.items[0].id}"}),
            ]
        }
    return {"content": "From the docs: " + json.loads(results[-1]["content"])["text"]}


async def main() -> None:
    async with contextlib.AsyncExitStack() as stack:
        if os.environ.get("OPENAI_API_KEY"):
            client, name = AsyncOpenAI(), os.environ.get("MODEL", "gpt-4.1-mini")
        else:
            scripted = stack.enter_context(ScriptedOpenAIServer(script=model))
            client, name = AsyncOpenAI(base_url=scripted.base_url, api_key="offline"), "scripted"

        # The lines that adopt toolweave: the MCP server's tools, an Orchestrator, the loop.
        tools = await stack.enter_async_context(mcp_tools(SERVER, prefix="docs_", timeout=30))
        print("MCP tools:", ", ".join(t.name for t in tools))
        run = await run_openai_agent(
            client,
            name,
            [{"role": "user", "content": "What do the docs say about dependency graphs?"}],
            Orchestrator(tools),
        )

    for batch in run.batches:
        print("batch", batch.plan.strategy, batch.plan.groups)
        for r in batch.results:
            print(" ", r.call_id, r.status, json.dumps(r.output) if r.ok else r.error)
    print("final:", run.final)


if __name__ == "__main__":
    asyncio.run(main())
