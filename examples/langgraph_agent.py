"""A LangGraph agent with ToolweaveNode in place of ToolNode.

    pip install langgraph langchain-openai   # (included in the dev extra)
    python examples/langgraph_agent.py

Offline it starts a scripted OpenAI-compatible server on 127.0.0.1; with OPENAI_API_KEY set
(and OPENAI_BASE_URL for another compatible server) ChatOpenAI talks to the real model.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition

from toolweave import tool
from toolweave.adapters.langchain import ToolweaveNode, as_langchain_tools
from toolweave.adapters.openai import reference_instructions
from toolweave.adapters.scripted_server import ScriptedOpenAIServer


@tool
async def search_web(query: str, limit: int = 3) -> dict:
    """Search the web; returns hits with urls."""
    slug = query.replace(" ", "-")
    return {"hits": [{"url": f"https://example.org/{slug}/{i}"} for i in range(limit)]}


@tool
async def fetch_page(url: str) -> dict:
    """Fetch a page and return its text."""
    return {"url": url, "text": f"A page about {url.split('/')[-2]}."}


@tool
def summarize(text: str) -> str:
    """Summarise a text in one line."""
    return f"Summary: {text}"


@tool
async def get_weather(city: str) -> dict:
    """Current weather for a city."""
    return {"city": city, "temp_c": 19}


TOOLS = [search_web, fetch_page, summarize, get_weather]


def build(model: ChatOpenAI) -> Any:
    llm = model.bind_tools(as_langchain_tools(TOOLS))

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [llm.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolweaveNode(TOOLS))  # the one line that changes
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "agent")
    return graph.compile()


def main() -> None:
    with contextlib.ExitStack() as stack:
        if os.environ.get("OPENAI_API_KEY"):
            model = ChatOpenAI(model=os.environ.get("MODEL", "gpt-4.1-mini"))
        else:
            server = stack.enter_context(ScriptedOpenAIServer())
            model = ChatOpenAI(model="scripted", base_url=server.base_url, api_key="offline")
        final = build(model).invoke(
            {
                "messages": [
                    ("system", reference_instructions()),
                    HumanMessage("Summarise a page on dependency graphs; Lisbon weather?"),
                ]
            }
        )
    for message in final["messages"]:
        print(f"{type(message).__name__}: {str(message.content)[:90]}")


if __name__ == "__main__":
    main()
