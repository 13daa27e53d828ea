"""LangChain and LangGraph: LangChain tools in the engine, toolweave tools in LangChain,
ToolweaveNode in a real StateGraph in place of ToolNode, and the LangChain decider."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import BaseTool
from langchain_core.tools import tool as lc_tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition

from toolweave import Decision, Orchestrator, ToolCall, tool
from toolweave.adapters.langchain import LangChainDecider, ToolweaveNode, as_langchain_tools
from toolweave.adapters.openai import openai_tools


@lc_tool
async def lc_search(query: str, limit: int = 2) -> dict[str, Any]:
    """Search the web for a query."""
    return {"hits": [{"url": f"https://example.org/{query}/{i}"} for i in range(limit)]}


class PageTool(BaseTool):
    """A hand-written BaseTool subclass, defined in user code."""

    name: str = "lc_fetch"
    description: str = "Fetch a page by url."

    def _run(self, url: str) -> str:
        return f"<p>{url}</p>"


lc_fetch = PageTool()


def test_langchain_tools_are_accepted_wherever_tools_are() -> None:
    orchestrator = Orchestrator([lc_search, lc_fetch])
    assert orchestrator.tools["lc_search"].description == "Search the web for a query."
    schema = orchestrator.tools["lc_search"].parameters
    assert schema["properties"]["limit"]["default"] == 2
    assert schema["required"] == ["query"]
    result = orchestrator.run_sync(
        [
            ToolCall("s", "lc_search", {"query": "cats"}),
            ToolCall("f", "lc_fetch", {"url": "${s.hits[1].url}"}),
            ToolCall("bad", "lc_search", {"limit": "many"}),
        ]
    )
    assert result.get("f").output == "<p>https://example.org/cats/1</p>"
    assert "'query': required argument is missing" in (result.get("bad").error or "")
    [spec] = openai_tools([orchestrator.tools["lc_search"]], references=False)
    assert spec["function"]["parameters"]["required"] == ["query", "limit"]


@tool
async def add(a: int, b: int = 1) -> int:
    """Add two numbers."""
    return a + b


def test_toolweave_tools_become_langchain_tools() -> None:
    [converted] = as_langchain_tools([add])
    assert (converted.name, converted.description) == ("add", "Add two numbers.")
    assert asyncio.run(converted.ainvoke({"a": 2, "b": 3})) == 5
    assert converted.args_schema is add.args_schema


def ai_with_calls(*calls: tuple[str, str, dict[str, Any]]) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"id": i, "name": n, "args": a} for i, n, a in calls])


def test_the_node_answers_every_call_in_toolnode_shapes() -> None:
    node = ToolweaveNode([lc_search, lc_fetch])
    message = ai_with_calls(
        ("c1", "lc_search", {"query": "dogs"}),
        ("c2", "lc_fetch", {"url": "${c1.hits[0].url}"}),
        ("c3", "nope", {}),
    )
    out = node.invoke(message)
    assert [m.tool_call_id for m in out] == ["c1", "c2", "c3"]
    assert [m.status for m in out] == ["success", "success", "error"]
    assert out[1].content == "<p>https://example.org/dogs/0</p>"
    assert out[2].content.startswith("Error: nope is not a valid tool")  # ToolNode's words
    state = asyncio.run(node.ainvoke({"messages": [HumanMessage("find dogs"), message]}))
    assert list(state) == ["messages"]
    assert all(isinstance(m, ToolMessage) for m in state["messages"])
    assert node.last_result is not None
    assert node.last_result.plan.strategy == "dag"
    assert isinstance(node.invoke([HumanMessage("x"), message]), list)


def test_an_agent_loop_with_a_fake_chat_model() -> None:
    model = GenericFakeChatModel(
        messages=iter(
            [
                ai_with_calls(
                    ("c1", "lc_search", {"query": "owls"}),
                    ("c2", "lc_fetch", {"url": "${1.hits[0].url}"}),
                ),
                AIMessage(content="Owls are at https://example.org/owls/0."),
            ]
        )
    )
    node = ToolweaveNode([lc_search, lc_fetch])
    messages: list[Any] = [HumanMessage("tell me about owls")]
    for _ in range(4):
        reply = model.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            break
        messages.extend(node.invoke(reply))
    assert messages[-1].content == "Owls are at https://example.org/owls/0."
    assert [m.content for m in messages if isinstance(m, ToolMessage)][1] == (
        "<p>https://example.org/owls/0</p>"
    )


def test_toolweave_node_in_a_real_stategraph_in_place_of_toolnode() -> None:
    model = GenericFakeChatModel(
        messages=iter(
            [
                ai_with_calls(
                    ("a", "lc_search", {"query": "graphs", "limit": 1}),
                    ("b", "lc_fetch", {"url": "${a.hits[0].url}"}),
                ),
                AIMessage(content="done"),
            ]
        )
    )

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolweaveNode([lc_search, lc_fetch]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "agent")
    final = graph.compile().invoke({"messages": [HumanMessage("read about graphs")]})
    kinds = [type(m).__name__ for m in final["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "ToolMessage", "AIMessage"]
    assert final["messages"][3].content == "<p>https://example.org/graphs/0</p>"
    assert final["messages"][-1].content == "done"


class StructuredFake:
    """A chat model stand-in whose structured output is scripted (fake chat models in
    langchain-core do not implement with_structured_output)."""

    model_name = "fake-judge"

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.prompts: list[Any] = []

    def with_structured_output(self, schema: Any, include_raw: bool = False) -> Any:
        assert schema is Decision
        assert include_raw

        def respond(messages: Any) -> Any:
            self.prompts.append(messages)
            parsed = self.answers.pop(0)
            raw = AIMessage(content="", usage_metadata={"input_tokens": 40, "output_tokens": 6,
                                                        "total_tokens": 46})  # fmt: skip
            if isinstance(parsed, Exception):
                return {"raw": raw, "parsed": None, "parsing_error": parsed}
            return {"raw": raw, "parsed": parsed, "parsing_error": None}

        return RunnableLambda(respond)


@pytest.mark.parametrize(
    ("answer", "statuses", "fallback"),
    [
        pytest.param(Decision(action="stop", reason="enough"), ["ok", "skipped"], False, id="stop"),
        pytest.param(ValueError("not JSON"), ["ok", "ok"], True, id="parsing-error"),
    ],
)
def test_the_langchain_decider(answer: Any, statuses: list[str], fallback: bool) -> None:
    model = StructuredFake(answer)
    orchestrator = Orchestrator([lc_search, lc_fetch], decider=LangChainDecider(model))
    result = orchestrator.run_sync(
        [
            ToolCall("s", "lc_search", {"query": "x"}),
            ToolCall("f", "lc_fetch", {"url": "${s.hits[0].url}"}),
        ],
        goal="read x",
    )
    assert [r.status for r in result.results] == statuses
    [record] = result.decisions
    assert record.fallback is fallback
    assert record.usage == {"input_tokens": 40, "output_tokens": 6}
    assert record.model == "fake-judge"
    assert '"goal": "read x"' in model.prompts[0][1][1]
