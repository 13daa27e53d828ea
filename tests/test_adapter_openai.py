"""The OpenAI adapter: strict tool schemas, calls from model output, result messages, and a
two-turn agent loop against the real ``openai`` client on a scripted endpoint."""

from __future__ import annotations

import asyncio
import json
import logging
from enum import StrEnum
from typing import Any, Literal

import pytest
from openai.types.chat import ChatCompletion
from pydantic import BaseModel
from scripted_openai import ScriptedServer, completion, tool_calls

from toolweave import Orchestrator, ToolCall, tool
from toolweave.adapters.openai import (
    calls_from_openai,
    openai_tools,
    reference_instructions,
    run_openai_agent,
    to_openai_messages,
    to_responses_items,
)


class Color(StrEnum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    city: str
    zip: int | None = None


@tool
def everything(
    count: int,
    tags: list[str],
    home: Address,
    color: Color,
    mode: Literal["fast", "slow"] = "fast",
    note: str | None = None,
    limit: int = 10,
) -> str:
    """Take every kind of parameter."""
    return "ok"


@tool
def loose(options: dict[str, Any]) -> str:
    """Take a free-form object."""
    return "ok"


def assert_strict(node: Any, path: str = "$") -> None:
    """Check a schema against the strict-mode rules, everywhere in it."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            assert_strict(item, f"{path}[{i}]")
        return
    if not isinstance(node, dict):
        return
    assert "default" not in node, path
    if node.get("type") == "object" or "properties" in node:
        assert node.get("additionalProperties") is False, path
        assert sorted(node.get("required", [])) == sorted(node.get("properties", {})), path
    kinds = node.get("type")
    if kinds == "array" or (isinstance(kinds, list) and "array" in kinds):
        assert "items" in node, path
    for key, value in node.items():
        if key == "properties":
            for name, prop in value.items():
                assert_strict(prop, f"{path}.{name}")
        elif isinstance(value, dict | list):
            assert_strict(value, f"{path}.{key}")


def accepts_null(schema: dict[str, Any]) -> bool:
    kinds = schema.get("type")
    if kinds == "null" or (isinstance(kinds, list) and "null" in kinds):
        return True
    return any(accepts_null(s) for s in schema.get("anyOf", []))


def accepts_reference_string(schema: dict[str, Any]) -> bool:
    return any(s.get("type") == "string" for s in schema.get("anyOf", []))


@pytest.mark.parametrize("references", [True, False], ids=["references", "no-references"])
def test_strict_schemas_follow_the_rules(references: bool) -> None:
    [spec] = openai_tools([everything], references=references)
    function = spec["function"]
    assert spec["type"] == "function"
    assert function["strict"] is True
    params = function["parameters"]
    assert_strict(params)
    assert params["required"] == ["count", "tags", "home", "color", "mode", "note", "limit"]
    props = params["properties"]
    for optional in ("mode", "note", "limit"):
        assert accepts_null(props[optional]), optional
    for required in ("count", "tags", "home", "color"):
        assert not accepts_null(props[required]), required
    nested = params["$defs"]["Address"]
    assert nested["required"] == ["city", "zip"]
    for non_string in ("count", "tags", "home", "color", "limit"):
        assert accepts_reference_string(props[non_string]) is references, non_string
    assert ("${N.path}" in function["description"]) is references


def test_an_explicit_null_for_a_defaulted_parameter_means_the_default() -> None:
    calls = [ToolCall("1", "everything", json.dumps({
        "count": 1, "tags": [], "home": {"city": "Oslo", "zip": None}, "color": "red",
        "mode": None, "note": None, "limit": None,
    }))]  # fmt: skip
    result = Orchestrator([everything]).run_sync(calls)
    assert result.get("1").ok
    assert result.get("1").arguments["limit"] == 10
    assert result.get("1").arguments["mode"] == "fast"


def test_responses_api_shape() -> None:
    [spec] = openai_tools([everything], api="responses", references=False)
    assert set(spec) == {"type", "name", "description", "parameters", "strict"}
    assert spec["name"] == "everything"
    assert_strict(spec["parameters"])


def test_free_form_parameters_go_out_non_strict_with_a_logged_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="toolweave")
    [spec] = openai_tools([loose], references=False)
    assert spec["function"]["strict"] is False
    assert spec["function"]["parameters"]["properties"]["options"]["type"] == "object"
    assert "tool 'loose' goes out with strict: false: an object with free-form keys" in caplog.text


def test_calls_from_a_chat_completion_a_message_and_a_responses_output() -> None:
    body = tool_calls(("call_1", "search", '{"q": "x"}'), ("call_2", "fetch", '{"url": '))
    completion_object = ChatCompletion.model_validate(body)
    for source in (completion_object, completion_object.choices[0].message, body):
        calls = calls_from_openai(source)
        assert [(c.id, c.name, c.arguments) for c in calls] == [
            ("call_1", "search", '{"q": "x"}'),
            ("call_2", "fetch", '{"url": '),
        ]
    output = [
        {"type": "message", "content": []},
        {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "search",
         "arguments": '{"q": "y"}'},
    ]  # fmt: skip
    assert [(c.id, c.name) for c in calls_from_openai(output)] == [("call_9", "search")]
    assert calls_from_openai({"output": output})[0].arguments == '{"q": "y"}'


@tool
async def search(q: str) -> dict[str, Any]:
    """Search the web."""
    return {"hits": [{"url": f"https://example.org/{q}"}]}


@tool
async def fetch(url: str) -> str:
    """Fetch a page."""
    return f"<p>{url}</p>"


def test_every_call_is_answered_once_in_order_errors_included() -> None:
    calls = [
        ToolCall("c1", "search", {"q": "cats"}),
        ToolCall("c2", "fetch", '{"url": '),
        ToolCall("c3", "fetch", {"url": "${c2}"}),
    ]
    result = Orchestrator([search, fetch]).run_sync(calls)
    messages = to_openai_messages(result)
    assert [m["tool_call_id"] for m in messages] == ["c1", "c2", "c3"]
    assert json.loads(messages[0]["content"]) == {"hits": [{"url": "https://example.org/cats"}]}
    assert messages[1]["content"].startswith(
        "Error: call 'c2' (fetch): arguments are not valid JSON"
    )
    assert messages[2]["content"].startswith("Not run. skipped: it depends on call 'c2'")
    items = to_responses_items(result)
    assert [(i["type"], i["call_id"]) for i in items] == [
        ("function_call_output", "c1"),
        ("function_call_output", "c2"),
        ("function_call_output", "c3"),
    ]


def test_a_two_turn_agent_loop_with_references() -> None:
    server = ScriptedServer(
        tool_calls(
            ("call_a", "search", '{"q": "graphs"}'),
            ("call_b", "fetch", '{"url": "${1.hits[0].url}"}'),
            ("call_c", "fetch", '{"url": '),
        ),
        completion("The page says: graphs."),
    )
    orchestrator = Orchestrator([search, fetch])
    run = asyncio.run(
        run_openai_agent(
            server.client(), "agent-model", [{"role": "user", "content": "read about graphs"}],
            orchestrator, max_turns=4,
        )
    )  # fmt: skip
    server.assert_done()
    assert run.final == "The page says: graphs."
    assert run.turns == 2
    [batch] = run.batches
    assert batch.plan.strategy == "dag"
    assert batch.get("call_b").output == "<p>https://example.org/graphs</p>"
    assert batch.get("call_c").error_type == "invalid_arguments"

    first, second = server.requests
    assert first["messages"][0] == {"role": "system", "content": reference_instructions()}
    assert {t["function"]["name"] for t in first["tools"]} == {"search", "fetch"}
    assert all(t["function"]["strict"] for t in first["tools"])
    sent = second["messages"]
    assistant = sent[2]
    assert assistant["role"] == "assistant"
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_a", "call_b", "call_c"]
    answers = [m for m in sent if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in answers] == ["call_a", "call_b", "call_c"]
    assert answers[1]["content"] == "<p>https://example.org/graphs</p>"
    assert answers[2]["content"].startswith("Error: call 'call_c' (fetch): arguments are not valid")


def test_the_turn_limit_ends_the_loop() -> None:
    server = ScriptedServer(tool_calls(("c1", "search", '{"q": "x"}')))
    run = asyncio.run(
        run_openai_agent(server.client(), "m", [{"role": "user", "content": "go"}],
                         Orchestrator([search, fetch]), max_turns=1)
    )  # fmt: skip
    server.assert_done()
    assert run.final is None
    assert len(run.batches) == 1


def test_streaming_dispatch_starts_the_first_call_before_the_stream_ends() -> None:
    from openai import AsyncOpenAI
    from scripted_openai import httpx2, sse_tool_call_chunks

    from toolweave.adapters.openai import dispatch_stream

    first_started = asyncio.Event()

    @tool
    async def slow_search(q: str) -> dict[str, Any]:
        """Search."""
        first_started.set()
        return {"hits": [{"url": f"https://example.org/{q}"}]}

    chunks = sse_tool_call_chunks(
        [("c1", "slow_search", '{"q": "cats"}'), ("c2", "fetch", '{"url": "${c1.hits[0].url}"}')]
    )
    second = next(
        i
        for i, c in enumerate(chunks)
        if c["choices"][0]["delta"].get("tool_calls", [{}])[0].get("index") == 1
    )

    async def body() -> Any:
        for i, chunk in enumerate(chunks):
            if i == second:  # hold the rest of the stream until call 1 has started
                await asyncio.wait_for(first_started.wait(), 10)
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    def handler(request: Any) -> Any:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    async def main() -> Any:
        client = AsyncOpenAI(
            api_key="k",
            base_url="http://model.test/v1",
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
        )
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "go"}], stream=True
        )
        return await dispatch_stream(stream, Orchestrator([slow_search, fetch]))

    result = asyncio.run(asyncio.wait_for(main(), 20))
    assert [r.status for r in result.results] == ["ok", "ok"]
    assert result.get("c2").output == "<p>https://example.org/cats</p>"
    assert result.plan.dependencies == {"c1": [], "c2": ["c1"]}


def test_streamed_calls_complete_when_the_next_one_begins() -> None:
    from scripted_openai import sse_tool_call_chunks

    from toolweave.adapters.openai import dispatch_stream

    chunks = sse_tool_call_chunks([("a", "search", '{"q": "x"'), ("b", "search", '{"q": "y"}')])

    async def stream() -> Any:
        for chunk in chunks:
            yield chunk

    result = asyncio.run(dispatch_stream(stream(), Orchestrator([search, fetch])))
    assert result.get("a").error_type == "invalid_arguments", "bad JSON stays a per-call error"
    assert result.get("b").ok


def test_a_responses_api_round_trip_with_the_real_client() -> None:
    def response(output: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": "resp_1", "object": "response", "created_at": 0, "status": "completed",
            "model": "m", "output": output, "parallel_tool_calls": True, "tool_choice": "auto",
            "tools": [],
        }  # fmt: skip

    server = ScriptedServer(
        response(
            [
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "search",
                 "arguments": '{"q": "owls"}', "status": "completed"},
                {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "fetch",
                 "arguments": '{"url": "${call_1.hits[0].url}"}', "status": "completed"},
            ]
        ),
        response([{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                   "content": [{"type": "output_text", "text": "done", "annotations": []}]}]),
        path="/v1/responses",
    )  # fmt: skip

    async def main() -> Any:
        client = server.client()
        tools = openai_tools([search, fetch], api="responses")
        first = await client.responses.create(model="m", input="read about owls", tools=tools)
        result = await Orchestrator([search, fetch]).run(calls_from_openai(first))
        second = await client.responses.create(
            model="m", input=to_responses_items(result), tools=tools
        )
        return result, second

    result, second = asyncio.run(main())
    server.assert_done()
    assert result.get("call_2").output == "<p>https://example.org/owls</p>"
    assert server.requests[0]["tools"][0]["name"] == "search"
    assert server.requests[0]["tools"][0]["strict"] is True
    assert [i["call_id"] for i in server.requests[1]["input"]] == ["call_1", "call_2"]
    assert server.requests[1]["input"][1]["output"] == "<p>https://example.org/owls</p>"
    assert second.output_text == "done"
