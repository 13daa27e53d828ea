"""The adapters against whatever a model or compatible server sends: every call that appeared
gets exactly one answer, nothing raises, and the answers name the calls of the conversation."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ConfigDict
from scripted_openai import ScriptedServer, completion, httpx2, sse_tool_call_chunks, tool_calls

from toolweave import BatchResult, Orchestrator, ToolCall, UsageError, tool
from toolweave.adapters.langchain import ToolweaveNode
from toolweave.adapters.openai import (
    calls_from_openai,
    dispatch_stream,
    run_openai_agent,
    to_openai_messages,
    to_responses_items,
)


@tool
async def search(q: str) -> dict[str, Any]:
    """Search the web."""
    return {"hits": [{"url": f"https://example.org/{q}"}]}


@tool
async def fetch(url: str) -> str:
    """Fetch a page."""
    return f"<p>{url}</p>"


@tool
def ping() -> str:
    """Take no arguments."""
    return "pong"


TOOLS = [search, fetch, ping]
Row = tuple[str, str, str | None]
"""(call id, status, error type) of one result."""


def rows(result: BatchResult) -> list[Row]:
    return [(r.call_id, r.status, r.error_type) for r in result.results]


def error_of(result: BatchResult, call_id: str) -> str:
    return result.get(call_id).error or ""


def run_calls(calls: list[ToolCall]) -> BatchResult:
    return Orchestrator(TOOLS).run_sync(calls)


def fn(call_id: Any, name: Any, arguments: Any = '{"q": "x"}') -> dict[str, Any]:
    """A chat tool call entry."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def message(*entries: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": list(entries)}


# ------------------------------------------------------------------ A: calls_from_openai, chat

CUSTOM = {"id": "cu", "type": "custom", "custom": {"name": "grammar", "input": "SELECT 1"}}
ONLY_FUNCTIONS = "this is a custom tool call with free-form input; only function tools run here"
NO_NAME = "the call names no tool, so it was not run"


@pytest.mark.parametrize(
    ("entries", "expected", "errors"),
    [
        pytest.param(
            [fn("a", "search"), CUSTOM, fn("b", "ping", "{}")],
            [("a", "ok", None), ("cu", "error", "invalid_call"), ("b", "ok", None)],
            {"cu": f"call 'cu' (grammar): {ONLY_FUNCTIONS}"},
            id="custom-call-beside-function-calls",
        ),
        pytest.param(
            [{"type": "function", "function": {"name": "search", "arguments": '{"q": "x"}'}}],
            [("call_0", "ok", None)],
            {},
            id="missing-id",
        ),
        pytest.param(
            [fn("a", "ping", "{}"), fn("", "search"), fn(None, "search"), fn(7, "search")],
            [
                ("a", "ok", None),
                ("call_1", "ok", None),
                ("call_2", "ok", None),
                ("call_3", "ok", None),
            ],
            {},
            id="empty-none-and-non-string-ids",
        ),
        pytest.param(
            [fn(None, "search"), fn("call_0", "ping", "{}")],
            [("call_0#1", "ok", None), ("call_0", "ok", None)],
            {},
            id="generated-id-avoids-an-id-the-model-wrote",
        ),
        pytest.param(
            [fn("a", "search", {"q": "dict"}), fn("b", "ping", None)],
            [("a", "ok", None), ("b", "ok", None)],
            {},
            id="arguments-as-a-dict-and-as-null",
        ),
        pytest.param(
            [fn("a", "search", ["q"]), fn("b", "search", 5)],
            [("a", "error", "invalid_arguments"), ("b", "error", "invalid_arguments")],
            {
                "a": "call 'a' (search): arguments must be a JSON object, got list",
                "b": "call 'b' (search): arguments must be a JSON object, got int",
            },
            id="arguments-neither-object-nor-text",
        ),
        pytest.param(
            [fn("a", None), fn("b", 42), {"id": "c", "type": "function"}, fn("d", "")],
            [
                ("a", "error", "invalid_call"),
                ("b", "error", "invalid_call"),
                ("c", "error", "invalid_call"),
                ("d", "error", "invalid_call"),
            ],
            {
                "a": f"call 'a' ((no name)): {NO_NAME}",
                "b": "call 'b' ((no name)): the call's tool name is 42, not text",
                "c": f"call 'c' ((no name)): {NO_NAME}",
                "d": f"call 'd' ((no name)): {NO_NAME}",
            },
            id="missing-none-non-string-name-and-missing-function",
        ),
        pytest.param(
            [fn("a", "search"), fn("a", "ping", "{}"), fn("a#1", "ping", "{}"), fn("a", "ping")],
            [
                ("a", "ok", None),
                ("a#2", "error", "invalid_call"),
                ("a#1", "ok", None),
                ("a#3", "error", "invalid_call"),
            ],
            {
                "a#2": "call 'a#2' (ping): its id 'a' repeats the id of call 1 of the same "
                "response, so it was not run. Give every call its own id.",
                "a#3": "call 'a#3' (ping): its id 'a' repeats the id of call 1",
            },
            id="duplicate-ids-renamed-with-an-error",
        ),
        pytest.param(
            [fn("a", None), fn("a", None)],
            [("a", "error", "invalid_call"), ("a#1", "error", "invalid_call")],
            {
                "a#1": f"call 'a#1' ((no name)): {NO_NAME}. Name one of the tools. Its id 'a' "
                "repeats the id of call 1"
            },
            id="duplicate-id-and-no-name-both-said",
        ),
        pytest.param(
            [{"id": "w", "type": "web_search", "function": {"name": "search"}}],
            [("w", "error", "invalid_call")],
            {"w": "call 'w' (search): this tool call is of type 'web_search'; only function"},
            id="unknown-call-type",
        ),
        pytest.param(
            ["junk", None, 5, fn("a", "ping", "{}")],
            [("a", "ok", None)],
            {},
            id="entries-that-are-not-objects-are-ignored",
        ),
    ],
)
def test_chat_calls_are_all_kept(
    entries: list[Any], expected: list[Row], errors: dict[str, str]
) -> None:
    result = run_calls(calls_from_openai(message(*entries)))
    assert rows(result) == expected
    for call_id, text in errors.items():
        assert error_of(result, call_id).startswith(text), error_of(result, call_id)


@pytest.mark.parametrize(
    "response",
    [
        pytest.param({"role": "assistant", "content": "hi"}, id="no-tool-calls-key"),
        pytest.param({"role": "assistant", "tool_calls": None}, id="tool-calls-null"),
        pytest.param({"role": "assistant", "tool_calls": "x"}, id="tool-calls-text"),
        pytest.param({"choices": []}, id="no-choices"),
        pytest.param({"choices": "x"}, id="choices-not-a-list"),
        pytest.param({"choices": [None]}, id="choice-not-an-object"),
        pytest.param({"choices": [{"message": None}]}, id="message-null"),
        pytest.param({"output": "x"}, id="output-not-a-list"),
        pytest.param([], id="empty-responses-output"),
    ],
)
def test_responses_without_calls_give_no_calls(response: Any) -> None:
    assert calls_from_openai(response) == []


def test_a_single_call_not_wrapped_in_a_list_is_kept() -> None:
    calls = calls_from_openai({"role": "assistant", "tool_calls": fn("a", "ping", "{}")})
    assert [(c.id, c.name) for c in calls] == [("a", "ping")]


def test_a_value_of_no_known_shape_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="takes a ChatCompletion, a message or a Responses"):
        calls_from_openai(42)


def test_custom_calls_from_a_real_chat_completion_object() -> None:
    body = tool_calls(("a", "search", '{"q": "x"}'))
    body["choices"][0]["message"]["tool_calls"].append(CUSTOM)
    parsed = ChatCompletion.model_validate(body)
    result = run_calls(calls_from_openai(parsed))
    assert rows(result) == [("a", "ok", None), ("cu", "error", "invalid_call")]
    assert ONLY_FUNCTIONS in error_of(result, "cu")


# ------------------------------------------------------------------ A: Responses items


def fc(call_id: Any, name: Any = "ping", arguments: Any = "{}") -> dict[str, Any]:
    return {"type": "function_call", "id": "fc", "call_id": call_id, "name": name,
            "arguments": arguments}  # fmt: skip


@pytest.mark.parametrize(
    ("item", "expected", "error"),
    [
        pytest.param(fc("c1"), ("c1", "ok", None), None, id="function_call"),
        pytest.param(
            {"type": "custom_tool_call", "call_id": "c1", "name": "grammar", "input": "x"},
            ("c1", "error", "invalid_call"),
            "call 'c1' (grammar): this is a custom tool call; only function tools run here",
            id="custom_tool_call",
        ),
        *(
            pytest.param(
                {"type": kind, "id": "item_1", "call_id": "c1", "action": {}},
                ("c1", "error", "invalid_call"),
                f"call 'c1' ({kind}): this is a '{kind}'; only function tools run here",
                id=kind,
            )
            for kind in ("computer_call", "local_shell_call", "shell_call", "apply_patch_call")
        ),
        pytest.param(
            {
                "type": "mcp_approval_request",
                "id": "mcpr_1",
                "name": "deploy",
                "server_label": "ops",
                "arguments": "{}",
            },
            ("mcpr_1", "error", "invalid_call"),
            "call 'mcpr_1' (deploy): this is a 'mcp_approval_request'",
            id="mcp_approval_request",
        ),
        pytest.param(
            {"type": "tool_search_call", "id": "ts", "call_id": "c1", "execution": "client"},
            ("c1", "error", "invalid_call"),
            "this is a 'tool_search_call'",
            id="tool_search_call-run-by-the-client",
        ),
        pytest.param(
            {"type": "future_call", "id": "x", "call_id": "c1"},
            ("c1", "error", "invalid_call"),
            "call 'c1' (future_call): this is a 'future_call'",
            id="unknown-item-with-a-call-id",
        ),
    ],
)
def test_responses_items_that_need_an_answer_get_one(
    item: dict[str, Any], expected: Row, error: str | None
) -> None:
    result = run_calls(calls_from_openai({"output": [{"type": "reasoning"}, item]}))
    assert rows(result) == [expected]
    if error is not None:
        assert error in error_of(result, expected[0])


@pytest.mark.parametrize(
    "item",
    [
        *(
            pytest.param({"type": kind, "id": "x", "status": "completed"}, id=kind)
            for kind in (
                "message",
                "reasoning",
                "web_search_call",
                "file_search_call",
                "image_generation_call",
                "code_interpreter_call",
                "mcp_call",
                "mcp_list_tools",
            )
        ),
        pytest.param(
            {"type": "tool_search_call", "id": "ts", "call_id": None, "execution": "server"},
            id="tool_search_call-run-by-the-server",
        ),
        pytest.param({"type": "function_call_output", "call_id": "c9"}, id="an-output-item"),
        pytest.param({"type": "future_thing", "id": "x"}, id="unknown-item-without-call-id"),
        pytest.param({"type": 5, "call_id": "c9"}, id="type-not-text"),
        pytest.param({"call_id": "c9"}, id="no-type"),
        pytest.param("junk", id="text"),
        pytest.param(None, id="null"),
        pytest.param(["nested"], id="list"),
    ],
)
def test_responses_items_that_need_no_answer_are_ignored(item: Any) -> None:
    calls = calls_from_openai([item, fc("c1")])
    assert [c.id for c in calls] == ["c1"]


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        pytest.param(
            [fc(None), fc(""), fc(3)],
            [("call_0", "ok", None), ("call_1", "ok", None), ("call_2", "ok", None)],
            id="generated-ids",
        ),
        pytest.param(
            [fc("c1"), fc("c1")],
            [("c1", "ok", None), ("c1#1", "error", "invalid_call")],
            id="duplicate-call-ids",
        ),
        pytest.param(
            [fc("c1", None), fc("c2", "search", None), fc("c3", "search", {"q": "d"})],
            [
                ("c1", "error", "invalid_call"),
                ("c2", "error", "invalid_arguments"),
                ("c3", "ok", None),
            ],
            id="no-name-null-and-dict-arguments",
        ),
    ],
)
def test_responses_function_calls_are_checked_like_chat_calls(
    items: list[dict[str, Any]], expected: list[Row]
) -> None:
    assert rows(run_calls(calls_from_openai(items))) == expected


# ------------------------------------------------------------------ A: the agent loop's echo


def test_the_echoed_assistant_message_carries_the_ids_that_ran() -> None:
    body = tool_calls(("a", "search", '{"q": "x"}'), ("a", "ping", "{}"), ("", "ping", "{}"))
    body["choices"][0]["message"]["tool_calls"].append(CUSTOM)
    server = ScriptedServer(body, completion("done"))
    run = asyncio.run(
        run_openai_agent(server.client(), "m", [{"role": "user", "content": "go"}],
                         Orchestrator(TOOLS), references=False)
    )  # fmt: skip
    server.assert_done()
    assert run.final == "done"
    sent = server.requests[1]["messages"]
    [assistant] = [m for m in sent if m["role"] == "assistant"]
    answers = [m for m in sent if m["role"] == "tool"]
    assert [c["id"] for c in assistant["tool_calls"]] == ["a", "a#1", "call_2", "cu"]
    assert [m["tool_call_id"] for m in answers] == ["a", "a#1", "call_2", "cu"]
    assert assistant["tool_calls"][0]["function"] == {"name": "search", "arguments": '{"q": "x"}'}
    assert assistant["tool_calls"][3] == {
        "id": "cu", "type": "custom", "custom": {"name": "grammar", "input": "SELECT 1"},
    }  # fmt: skip
    assert answers[1]["content"].startswith("Error: call 'a#1' (ping): its id 'a' repeats")
    assert answers[2]["content"] == "pong"


# ------------------------------------------------------------------ B: any output becomes text


class Unshowable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@dataclasses.dataclass
class Guarded:
    name: str
    lock: Any


class Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


class WithOpaque(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    label: str
    thing: Opaque


def nested(depth: int) -> list[Any]:
    top: list[Any] = []
    current = top
    for _ in range(depth):
        inner: list[Any] = []
        current.append(inner)
        current = inner
    return top


def cyclic() -> list[Any]:
    loop: list[Any] = [1]
    loop.append(loop)
    return loop


def numbers() -> Iterator[int]:
    yield 1
    yield 2


HOSTILE = [
    pytest.param(Unshowable, "<Unshowable object (cannot be shown)>", id="str-repr-raise"),
    pytest.param(lambda: 10**5000, "<int of about 500", id="int-of-5000-digits"),
    pytest.param(lambda: nested(1000), "<nested too deep>", id="list-nested-1000-deep"),
    pytest.param(cyclic, '[1, "<cycle>"]', id="cyclic-list"),
    pytest.param(lambda: {(1, "a"): "v"}, '{"(1, a)": "v"}', id="dict-with-tuple-keys"),
    pytest.param(lambda: Guarded("g", threading.Lock()), '"name": "g"', id="dataclass-with-lock"),
    pytest.param(
        lambda: WithOpaque(label="L", thing=Opaque()), '"label": "L"', id="pydantic-arbitrary-type"
    ),
    pytest.param(lambda: "plain \ud800 text", "plain \ufffd text", id="text-with-lone-surrogate"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "shown"), HOSTILE)
def test_any_output_becomes_one_answer_per_call(make: Any, shown: str) -> None:
    value = make()

    @tool
    def hostile() -> Any:
        """Return the value under test."""
        return value

    calls = [ToolCall("h", "hostile"), ToolCall("p", "ping")]
    result = Orchestrator([hostile, ping]).run_sync(calls)
    assert [r.status for r in result.results] == ["ok", "ok"]
    for answers, key, text in (
        (to_openai_messages(result), "tool_call_id", "content"),
        (to_responses_items(result), "call_id", "output"),
    ):
        assert [a[key] for a in answers] == ["h", "p"]
        assert shown in answers[0][text]
        assert answers[1][text] == "pong"
        json.dumps(answers).encode("utf-8")  # the client can send it


def test_a_generator_output_is_shown_without_being_consumed() -> None:
    gen = numbers()

    @tool
    def lazy() -> Any:
        """Return a generator."""
        return gen

    result = Orchestrator([lazy]).run_sync([ToolCall("g", "lazy")])
    [answer] = to_openai_messages(result)
    assert "<generator object numbers" in answer["content"]
    assert to_responses_items(result)[0]["output"] == answer["content"]
    assert next(gen) == 1, "the generator was consumed"


def test_text_outputs_stay_as_they_are() -> None:
    result = Orchestrator([fetch]).run_sync([ToolCall("f", "fetch", {"url": "u"})])
    assert to_openai_messages(result)[0]["content"] == "<p>u</p>"


# ------------------------------------------------------------------ C: ToolweaveNode


def invalid(call_id: Any, name: Any, args: Any, error: str | None = None) -> dict[str, Any]:
    return {"type": "invalid_tool_call", "id": call_id, "name": name, "args": args,
            "error": error}  # fmt: skip


def node_answers(ai: AIMessage) -> list[tuple[str, str]]:
    out = ToolweaveNode(TOOLS).invoke(ai)
    assert all(isinstance(m, ToolMessage) for m in out)
    return [(m.tool_call_id, m.status) for m in out]


@pytest.mark.parametrize(
    ("ai", "expected", "errors"),
    [
        pytest.param(
            AIMessage(
                content="",
                tool_calls=[{"id": "v", "name": "ping", "args": {}}],
                invalid_tool_calls=[
                    invalid("j", "search", '{"q": '),
                    invalid("n", None, "{}", "no name"),
                    invalid("r", "search", None, "could not parse"),
                ],
            ),
            [("v", "success"), ("j", "error"), ("n", "error"), ("r", "error")],
            {
                "j": "Error: call 'j' (search): arguments are not valid JSON",
                "n": f"Error: call 'n' ((no name)): {NO_NAME}",
                "r": "Error: call 'r' (search): the call could not be read (could not parse), "
                "so it was not run.",
            },
            id="invalid-tool-calls-after-the-valid-ones",
        ),
        pytest.param(
            AIMessage(
                content="",
                tool_calls=[{"id": None, "name": "ping", "args": {}}],
                invalid_tool_calls=[invalid(None, "search", "{")],
            ),
            [("call_0", "success"), ("call_1", "error")],
            {"call_1": "Error: call 'call_1' (search): arguments are not valid JSON"},
            id="generated-ids-for-missing-ids",
        ),
        pytest.param(
            AIMessage(
                content="",
                tool_calls=[
                    {"id": "d", "name": "ping", "args": {}},
                    {"id": "d", "name": "search", "args": {"q": "x"}},
                ],
                invalid_tool_calls=[invalid("d", "search", "{")],
            ),
            [("d", "success"), ("d#1", "error"), ("d#2", "error")],
            {"d#1": "Error: call 'd#1' (search): its id 'd' repeats the id of call 1"},
            id="duplicate-ids",
        ),
    ],
)
def test_the_node_answers_every_tool_call_id_once(
    ai: AIMessage, expected: list[tuple[str, str]], errors: dict[str, str]
) -> None:
    out = ToolweaveNode(TOOLS).invoke(ai)
    assert [(m.tool_call_id, m.status) for m in out] == expected
    by_id = {m.tool_call_id: m.content for m in out}
    for call_id, text in errors.items():
        assert str(by_id[call_id]).startswith(text), by_id[call_id]


def test_toolnode_leaves_invalid_calls_unanswered_the_node_does_not() -> None:
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    from toolweave.adapters.langchain import as_langchain_tools

    ai = AIMessage(
        content="",
        tool_calls=[{"id": "v", "name": "ping", "args": {}}],
        invalid_tool_calls=[invalid("j", "search", '{"q": ')],
    )
    graph = StateGraph(MessagesState)
    graph.add_node("tools", ToolNode(as_langchain_tools(TOOLS)))
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    theirs = graph.compile().invoke({"messages": [ai]})["messages"][1:]
    assert [m.tool_call_id for m in theirs] == ["v"]
    assert node_answers(ai) == [("v", "success"), ("j", "error")]


@pytest.mark.parametrize(("make", "shown"), HOSTILE)
def test_the_node_shows_any_output(make: Any, shown: str) -> None:
    value = make()

    @tool
    def hostile() -> Any:
        """Return the value under test."""
        return value

    out = ToolweaveNode([hostile]).invoke(
        AIMessage(content="", tool_calls=[{"id": "h", "name": "hostile", "args": {}}])
    )
    assert [(m.tool_call_id, m.status) for m in out] == [("h", "success")]
    assert shown in out[0].content


# ------------------------------------------------------------------ D: dispatch_stream


def chunk(*parts: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"tool_calls": list(parts)}}]}


def part(index: Any = None, call_id: Any = None, name: Any = None, args: Any = None) -> Any:
    out: dict[str, Any] = {"function": {}}
    if index is not None:
        out["index"] = index
    if call_id is not None:
        out["id"] = call_id
    if name is not None:
        out["function"]["name"] = name
    if args is not None:
        out["function"]["arguments"] = args
    return out


def stream_of(*chunks: Any, fail: BaseException | None = None) -> AsyncIterator[Any]:
    async def gen() -> AsyncIterator[Any]:
        for c in chunks:
            await asyncio.sleep(0)
            yield c
        if fail is not None:
            raise fail

    return gen()


def dispatch(*chunks: Any, fail: BaseException | None = None) -> BatchResult:
    async def main() -> BatchResult:
        return await asyncio.wait_for(
            dispatch_stream(stream_of(*chunks, fail=fail), Orchestrator(TOOLS)), 10
        )

    return asyncio.run(main())


def call(index: Any, call_id: Any, name: Any, *args: Any) -> list[dict[str, Any]]:
    """A call's chunks: the head (id and name) then one chunk per argument fragment."""
    head = chunk(part(index, call_id, name))
    return [head, *(chunk(part(index, args=a)) for a in args)]


@pytest.mark.parametrize(
    ("chunks", "expected", "errors"),
    [
        pytest.param(
            [*call(0, "a", "search", '{"q":', ' "x"}'), *call(2, "b", "ping", "{}")],
            [("a", "ok", None), ("b", "ok", None)],
            {},
            id="index-gap",
        ),
        pytest.param(
            [*call(1, "a", "search", '{"q": "x"}'), *call(2, "b", "ping", "{}")],
            [("a", "ok", None), ("b", "ok", None)],
            {},
            id="indexes-start-at-1",
        ),
        pytest.param(
            [
                chunk(part(None, "a", "search", '{"q"')),
                chunk(part(None, None, None, ': "x"}')),
                chunk(part(None, "b", "ping", "{")),
                chunk(part(None, "b", None, "}")),
            ],
            [("a", "ok", None), ("b", "ok", None)],
            {},
            id="no-index-the-id-or-the-latest-call-decides",
        ),
        pytest.param(
            [
                chunk(part(-1, "a", "search", '{"q": "x"}')),
                chunk(part("0", "b", "ping")),
                chunk(part(1.5, None, None, "{}")),
                chunk(part(True, "c", "ping", "{}")),
            ],
            [("a", "ok", None), ("b", "ok", None), ("c", "ok", None)],
            {},
            id="negative-text-float-and-bool-indexes",
        ),
        pytest.param(
            [
                chunk(part(0, None, "search", '{"q": "x"}')),
                chunk(part(0, "late")),
                *call(1, "b", "ping", "{}"),
            ],
            [("late", "ok", None), ("b", "ok", None)],
            {},
            id="id-after-complete-arguments",
        ),
        pytest.param(
            [chunk(part(0, "a", None, '{"q": "x"}')), chunk(part(0, None, "search"))],
            [("a", "ok", None)],
            {},
            id="name-after-complete-arguments",
        ),
        pytest.param(
            [chunk(part(0, None, "search", '{"q": "x"}')), *call(1, "b", "ping", "{}")],
            [("call_0", "ok", None), ("b", "ok", None)],
            {},
            id="id-never-sent-the-next-call-begins",
        ),
        pytest.param(
            [chunk(part(0, "a", None, "{}"))],
            [("a", "error", "invalid_call")],
            {"a": f"call 'a' ((no name)): {NO_NAME}"},
            id="name-never-sent-the-stream-ends",
        ),
        pytest.param(
            [
                "junk",
                None,
                5,
                {"choices": "x"},
                {"choices": [None, 3]},
                {"choices": [{"delta": "x"}]},
                {"choices": [{"delta": {"tool_calls": "x"}}]},
                chunk("x", None, 7),
                chunk({"index": 0, "id": "a", "function": "search"}),
                chunk(part(0, None, "search", '{"q": "x"}')),
                {
                    "choices": [
                        {"index": 1, "delta": {"tool_calls": [part(5, "other", "ping", "{}")]}}
                    ]
                },
            ],
            [("a", "ok", None)],
            {},
            id="malformed-chunks-are-skipped",
        ),
        pytest.param(
            [chunk(part(0, "a", "search", {"q": "dict"})), chunk(part(1, "b", "search", 5))],
            [("a", "ok", None), ("b", "error", "invalid_arguments")],
            {"b": "call 'b' (search): arguments must be a JSON object, got int"},
            id="arguments-sent-as-an-object-and-a-number",
        ),
        pytest.param(
            [*call(0, "a", "search", '{"q": "x"}'), *call(1, "a", "ping", "{}")],
            [("a", "ok", None), ("a#1", "error", "invalid_call")],
            {"a#1": "call 'a#1' (ping): its id 'a' repeats the id of call 1"},
            id="duplicate-ids",
        ),
        pytest.param(
            [*call(0, "a", "search", '{"q": "x"}'), *call(0, "b", "ping", "{}")],
            [("a", "ok", None), ("b", "ok", None)],
            {},
            id="every-call-at-index-0",
        ),
        pytest.param(
            [chunk(part(0, None, "ping", "{}")), chunk(part(1, "call_0", "ping", "{}"))],
            [("call_0#1", "ok", None), ("call_0", "ok", None)],
            {},
            id="generated-id-avoids-an-id-seen-in-the-stream",
        ),
        pytest.param(
            [chunk(part(0, "a", "search", '{"q": "x"}')), chunk(part(0, "a", "search", " "))],
            [("a", "ok", None)],
            {},
            id="id-and-name-repeated-in-every-chunk",
        ),
        pytest.param(
            [chunk(part(0, "a", "search", '{"q": ' + "1" * 5000 + "}"))],
            [("a", "error", "invalid_arguments")],
            {"a": "call 'a' (search): arguments hold a number with more than"},
            id="a-number-past-the-int-to-string-limit",
        ),
        pytest.param([], [], {}, id="no-chunks"),
    ],
)
def test_every_streamed_call_gets_one_result(
    chunks: list[Any], expected: list[Row], errors: dict[str, str]
) -> None:
    result = dispatch(*chunks)
    assert rows(result) == expected
    for call_id, text in errors.items():
        assert error_of(result, call_id).startswith(text), error_of(result, call_id)


FAILED = "the response stream failed before this call was complete: ConnectionError: peer left"


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        pytest.param(
            [*call(0, "a", "search", '{"q": "x"}'), *call(1, "b", "search", '{"q": ')],
            [("a", "ok", None), ("b", "error", "invalid_call")],
            id="one-complete-one-open",
        ),
        pytest.param(
            [*call(0, "a", "search", '{"q": '), *call(1, "b", "ping", "")],
            [("a", "error", "invalid_arguments"), ("b", "error", "invalid_call")],
            id="the-next-call-began-so-the-first-ran",
        ),
        pytest.param(
            [chunk(part(0, None, None, '{"q": "x"}'))],
            [("call_0", "error", "invalid_call")],
            id="whole-arguments-but-no-id-or-name-yet",
        ),
        pytest.param([], [], id="before-any-chunk"),
    ],
)
def test_a_stream_that_fails_midway_still_answers_every_call(
    chunks: list[Any], expected: list[Row], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="toolweave")
    result = dispatch(*chunks, fail=ConnectionError("peer left"))
    assert rows(result) == expected
    for r in result.results:
        if r.error_type == "invalid_call":
            assert r.error == f"call '{r.call_id}' ({r.name}): {FAILED}"
    [record] = [r for r in caplog.records if "response stream failed" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.name == "toolweave"
    assert "ConnectionError: peer left" in record.getMessage()


@pytest.mark.parametrize(
    "fail",
    [
        pytest.param(asyncio.CancelledError(), id="cancelled"),
        pytest.param(KeyboardInterrupt(), id="keyboard-interrupt"),
    ],
)
def test_cancellation_from_the_stream_propagates(fail: BaseException) -> None:
    with pytest.raises(type(fail)):
        dispatch(*call(0, "a", "search", '{"q": "x"}'), fail=fail)


def sse(chunks: list[Any], fail_after: int | None = None) -> Any:
    """An SSE body for the real client, optionally broken off after ``fail_after`` chunks."""

    async def body() -> AsyncIterator[bytes]:
        for i, c in enumerate(chunks):
            if i == fail_after:
                raise ConnectionError("peer left")
            yield f"data: {json.dumps(c)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    def handler(request: Any) -> Any:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    return handler


def real_dispatch(handler: Any) -> BatchResult:
    from openai import AsyncOpenAI

    async def main() -> BatchResult:
        client = AsyncOpenAI(
            api_key="k",
            base_url="http://model.test/v1",
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
        )
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "go"}], stream=True
        )
        return await dispatch_stream(stream, Orchestrator(TOOLS))

    return asyncio.run(asyncio.wait_for(main(), 20))


def test_the_real_client_with_gaps_and_repeated_ids() -> None:
    chunks = sse_tool_call_chunks(
        [("a", "search", '{"q": "x"}'), ("gap", "ping", "{}"), ("a", "ping", "{}")]
    )
    for c in chunks:  # renumber the calls 0, 2, 3 and drop the second call's id
        for d in c["choices"][0]["delta"].get("tool_calls", []):
            d["index"] = {0: 0, 1: 2, 2: 3}[d["index"]]
            if d.get("id") == "gap":
                del d["id"]
    result = real_dispatch(sse(chunks))
    assert rows(result) == [("a", "ok", None), ("call_1", "ok", None),
                            ("a#1", "error", "invalid_call")]  # fmt: skip


def test_the_real_client_when_the_stream_breaks_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="toolweave")
    chunks = sse_tool_call_chunks([("a", "search", '{"q": "x"}'), ("b", "search", '{"q": "y"}')])
    second = next(
        i for i, c in enumerate(chunks)
        if c["choices"][0]["delta"].get("tool_calls", [{}])[0].get("index") == 1
    )  # fmt: skip
    result = real_dispatch(sse(chunks, fail_after=second + 1))
    assert rows(result) == [("a", "ok", None), ("b", "error", "invalid_call")]
    assert "the response stream failed before this call was complete:" in error_of(result, "b")
    assert "response stream failed" in caplog.text


def test_an_empty_fragment_between_calls_begins_no_call_of_its_own() -> None:
    # A server that omits index and sends an empty fragment after a complete call.
    result = dispatch(
        chunk(part(call_id="c1", name="search", args='{"q": "x"}')),
        chunk({"type": "function", "function": {"arguments": ""}}),
        chunk(part(call_id="c2", name="search", args='{"q": "y"}')),
    )
    assert [r.call_id for r in result.results] == ["c1", "c2"]
    assert [m["tool_call_id"] for m in to_openai_messages(result)] == ["c1", "c2"]
