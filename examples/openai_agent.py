"""An OpenAI agent whose tool calls run through toolweave.

    python examples/openai_agent.py

Offline it starts a scripted OpenAI-compatible server on 127.0.0.1; with OPENAI_API_KEY set
(and OPENAI_BASE_URL for another compatible server) it talks to the real model.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from demo_tools import TOOLS  # search_web, fetch_page, summarize, get_weather
from openai import AsyncOpenAI

from toolweave import Orchestrator
from toolweave.adapters.openai import run_openai_agent
from toolweave.adapters.scripted_server import demo_script
from toolweave.testing import ScriptedOpenAIServer


async def main() -> None:
    async with contextlib.AsyncExitStack() as stack:
        if os.environ.get("OPENAI_API_KEY"):
            client, model = AsyncOpenAI(), os.environ.get("MODEL", "gpt-4.1-mini")
        else:
            server = stack.enter_context(ScriptedOpenAIServer(script=demo_script))
            client, model = AsyncOpenAI(base_url=server.base_url, api_key="offline"), "scripted"

        # The few lines that adopt toolweave: an Orchestrator and the agent loop.
        orchestrator = Orchestrator(TOOLS)
        run = await run_openai_agent(
            client,
            model,
            [{"role": "user", "content": "Summarise a page on dependency graphs; Lisbon weather?"}],
            orchestrator,
        )

    for batch in run.batches:
        print("batch", batch.plan.strategy, batch.plan.groups)
        for r in batch.results:
            print(" ", r.call_id, r.status, r.output if r.ok else r.error)
    print("final:", run.final)


if __name__ == "__main__":
    asyncio.run(main())
