"""LangChain v1's create_agent with its tools run through toolweave: one middleware.

    pip install langchain langchain-openai   # (included in the dev extra)
    python examples/create_agent.py

Offline it starts a scripted OpenAI-compatible server on 127.0.0.1; with OPENAI_API_KEY set
(and OPENAI_BASE_URL for another compatible server) ChatOpenAI talks to the real model.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from demo_tools import TOOLS  # the same four tools in every example
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

from toolweave.adapters.langchain import (
    ToolweaveMiddleware,
    as_langchain_tools,
    reference_instructions,
)
from toolweave.adapters.scripted_server import demo_script
from toolweave.testing import ScriptedOpenAIServer


def main() -> None:
    with contextlib.ExitStack() as stack:
        if os.environ.get("OPENAI_API_KEY"):
            model = ChatOpenAI(model=os.environ.get("MODEL", "gpt-4.1-mini"))
        else:
            server = stack.enter_context(ScriptedOpenAIServer(script=demo_script))
            model = ChatOpenAI(model="scripted", base_url=server.base_url, api_key="offline")
        toolweave = ToolweaveMiddleware(max_concurrency=4)
        agent = create_agent(
            model,
            as_langchain_tools(TOOLS),
            system_prompt=reference_instructions(),
            middleware=[toolweave],  # the one line that changes
        )
        question = HumanMessage("Summarise a page on dependency graphs; Lisbon weather?")
        # ainvoke: the demo tools are async, which create_agent's tool node runs only there
        final = asyncio.run(agent.ainvoke({"messages": [question]}))
    for message in final["messages"]:
        print(f"{type(message).__name__}: {str(message.content)[:90]}")
    if toolweave.last_result is not None:
        plan = toolweave.last_result.plan
        print("batch", plan.strategy, plan.groups)


if __name__ == "__main__":
    main()
