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

from demo_tools import TOOLS  # the same four tools in every example
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition

from toolweave.adapters.langchain import ToolweaveNode, reference_instructions
from toolweave.adapters.scripted_server import demo_script
from toolweave.testing import ScriptedOpenAIServer


def build(model: ChatOpenAI) -> Any:
    node = ToolweaveNode(TOOLS)
    llm = model.bind_tools(list(node.tools_by_name.values()))  # they accept "${...}" references

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [llm.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", node)  # the one line that changes: was ToolNode(TOOLS)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "agent")
    return graph.compile()


def main() -> None:
    with contextlib.ExitStack() as stack:
        if os.environ.get("OPENAI_API_KEY"):
            model = ChatOpenAI(model=os.environ.get("MODEL", "gpt-4.1-mini"))
        else:
            server = stack.enter_context(ScriptedOpenAIServer(script=demo_script))
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
