"""A streamed OpenAI agent loop: each tool call starts while the model is still writing the
rest of its batch, and the assembled assistant message carries the conversation on.

    python examples/openai_streaming.py            # Chat Completions
    python examples/openai_streaming.py responses  # the Responses API

Offline it starts a scripted OpenAI-compatible server on 127.0.0.1; with OPENAI_API_KEY set
(and OPENAI_BASE_URL for another compatible server) it talks to the real model.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from demo_tools import TOOLS  # search_web, fetch_page, summarize, get_weather
from openai import AsyncOpenAI

from toolweave import CallNext, CallRequest, Orchestrator
from toolweave.adapters.openai import (
    dispatch_stream,
    openai_tools,
    reference_instructions,
    to_openai_messages,
    to_responses_items,
)
from toolweave.adapters.scripted_server import demo_script
from toolweave.testing import ScriptedOpenAIServer

START = time.perf_counter()


def stamp(what: str) -> None:
    print(f"{(time.perf_counter() - START) * 1000:7.1f} ms  {what}")


async def show_starts(request: CallRequest, call_next: CallNext) -> Any:
    """A middleware that says when each call starts."""
    stamp(f"started {request.call.id}")
    return await call_next(request)


async def watched(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The model's stream, saying when it ends."""
    async for event in stream:
        yield event
    stamp("the model's stream ended")


async def main(api: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if os.environ.get("OPENAI_API_KEY"):
            client, model = AsyncOpenAI(), os.environ.get("MODEL", "gpt-4.1-mini")
        else:
            server = stack.enter_context(ScriptedOpenAIServer(script=demo_script))
            client, model = AsyncOpenAI(base_url=server.base_url, api_key="offline"), "scripted"

        orchestrator = Orchestrator(TOOLS, middleware=[show_starts])
        tools = openai_tools(orchestrator, api="responses" if api == "responses" else "chat")
        conversation: list[dict[str, Any]] = [
            {"role": "system", "content": reference_instructions()},
            {"role": "user", "content": "Summarise a page on dependency graphs; Lisbon weather?"},
        ]
        for _turn in range(4):
            if api == "responses":
                stream = await client.responses.create(
                    model=model, input=conversation, tools=tools, stream=True
                )
            else:
                stream = await client.chat.completions.create(
                    model=model, messages=conversation, tools=tools, stream=True
                )
            batch = await dispatch_stream(watched(stream), orchestrator)
            if not batch.results:
                print("final:", batch.text)
                break
            for r in batch.results:
                print(" ", r.call_id, r.status, r.output if r.ok else r.error)
            # What the model said, then one answer per call: the next request's conversation.
            if api == "responses":
                conversation += [*batch.output, *to_responses_items(batch)]
            else:
                conversation += [batch.message, *to_openai_messages(batch)]


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "chat"))
