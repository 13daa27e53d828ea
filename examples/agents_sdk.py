"""An OpenAI Agents SDK agent whose tool calls of each model turn run as one toolweave batch.

    python examples/agents_sdk.py

Offline it starts a scripted OpenAI-compatible server on 127.0.0.1; with OPENAI_API_KEY set
(and OPENAI_BASE_URL for another compatible server) it talks to the real model (MODEL, by
default gpt-4.1-mini).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

from toolweave import BatchResult
from toolweave.adapters.agents import reference_instructions, weave
from toolweave.adapters.scripted_server import demo_script
from toolweave.testing import ScriptedOpenAIServer


@function_tool
async def search_web(query: str, limit: int = 3) -> dict[str, Any]:
    """Search the web; returns hits with urls."""
    slug = query.replace(" ", "-")
    return {"hits": [{"url": f"https://example.org/{slug}/{i}"} for i in range(limit)]}


@function_tool
async def fetch_page(url: str) -> dict[str, str]:
    """Fetch a page and return its text."""
    return {"url": url, "text": f"A page about {url.split('/')[-2]}."}


@function_tool
def summarize(text: str) -> str:
    """Summarise a text in one line."""
    return f"Summary: {text}"


@function_tool
async def get_weather(city: str) -> dict[str, Any]:
    """Current weather for a city."""
    return {"city": city, "temp_c": 19}


def show(batch: BatchResult) -> None:
    print("batch", batch.plan.strategy, batch.plan.groups)
    for r in batch.results:
        print(" ", r.call_id, r.status, r.output if r.ok else r.error)


async def main() -> None:
    async with contextlib.AsyncExitStack() as stack:
        if os.environ.get("OPENAI_API_KEY"):
            model: Any = os.environ.get("MODEL", "gpt-4.1-mini")
            set_tracing_disabled("OPENAI_BASE_URL" in os.environ)  # its traces go to OpenAI
        else:
            server = stack.enter_context(ScriptedOpenAIServer(script=demo_script))
            client = AsyncOpenAI(base_url=server.base_url, api_key="offline")
            model = OpenAIResponsesModel("scripted", client)
            set_tracing_disabled(True)

        # The lines that adopt toolweave: weave() the agent, run it as usual.
        agent = weave(
            Agent(
                name="researcher",
                instructions="Answer from the tools. " + reference_instructions(),
                tools=[search_web, fetch_page, summarize, get_weather],
                model=model,
            ),
            on_batch=show,
        )
        result = await Runner.run(
            agent, "Summarise a page on dependency graphs; what is the weather in Lisbon?"
        )
    print("final:", result.final_output)


if __name__ == "__main__":
    asyncio.run(main())
