"""``run_openai_agent`` on both APIs, streamed or not, and ``dispatch_stream``'s assembled
message, against the real ``openai`` client and ``toolweave.testing.ScriptedOpenAIServer``."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolweave import Orchestrator, tool
from toolweave.adapters.openai import (
    StreamedBatch,
    dispatch_stream,
    run_openai_agent,
    to_openai_messages,
    to_responses_items,
)
from toolweave.testing import (
    ScriptedOpenAIServer,
    completion,
    completion_chunks,
    response,
    response_events,
)

seen: list[tuple[str, Any]] = []


@tool
async def search(q: str) -> dict[str, Any]:
    """Search the web."""
    seen.append(("search", q))
    return {"hits": [{"url": f"https://example.org/{q}"}]}


@tool
async def fetch(url: str) -> str:
    """Fetch a page."""
    seen.append(("fetch", url))
    return f"<p>{url}</p>"


def model(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """Turn 1: a batch whose second call takes the first one's output; turn 2: the answer."""
    if messages[-1]["role"] == "tool":
        answers = [m["content"] for m in messages if m["role"] == "tool"]
        return {"content": "read: " + " | ".join(answers)}
    return {
        "content": "Looking.",
        "tool_calls": [
            ("call_s", "search", {"q": "owls"}),
            ("call_f", "fetch", {"url": "${call_s.hits[0].url}"}),
        ],
    }


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_two_turn_run_resolves_a_reference_on_either_api(
    api: Literal["chat", "responses"], stream: bool
) -> None:
    seen.clear()
    with ScriptedOpenAIServer(script=model) as server:
        run = asyncio.run(
            run_openai_agent(
                server.client(max_retries=0),
                "scripted-model",
                [{"role": "user", "content": "find owls"}],
                Orchestrator([search, fetch]),
                api=api,
                stream=stream,
            )
        )
        server.assert_done()
    assert seen == [("search", "owls"), ("fetch", "https://example.org/owls")]
    assert run.final == "read: {\"hits\": [{\"url\": \"https://example.org/owls\"}]} | " \
        "<p>https://example.org/owls</p>"  # fmt: skip
    assert run.turns == 2
    assert [r.status for r in run.batches[0].results] == ["ok", "ok"]
    first, second = server.requests
    assert bool(first.get("stream")) is stream
    if api == "chat":
        assert first["tools"][0]["function"]["name"] == "search"
        said = second["messages"][2]  # system, user, then what the model said
        assert said["role"] == "assistant"
        assert said["content"] == "Looking."
        assert [c["id"] for c in said["tool_calls"]] == ["call_s", "call_f"]
        assert said["tool_calls"][1]["function"]["arguments"] == json.dumps(
            {"url": "${call_s.hits[0].url}"}
        ), "the call is echoed as the model wrote it"
        answers = [m for m in second["messages"] if m["role"] == "tool"]
        assert [m["tool_call_id"] for m in answers] == ["call_s", "call_f"]
    else:
        assert first["tools"][0]["name"] == "search", "Responses tools are flat"
        kinds = [i.get("type", "message") for i in second["input"]]
        assert kinds == [
            "message", "message", "message", "function_call", "function_call",
            "function_call_output", "function_call_output",
        ]  # fmt: skip
        outputs = [i for i in second["input"] if i.get("type") == "function_call_output"]
        assert [o["call_id"] for o in outputs] == ["call_s", "call_f"]
        assert all(None not in i.values() for i in second["input"]), "no null fields sent back"
    assert run.messages[-1]["content"] == run.final or run.messages[-1].get("type") == "message"


def test_a_streamed_chat_batch_returns_the_assistant_message_it_assembled() -> None:
    body = completion(
        "Two searches.",
        tool_calls=[
            ("dup", "search", {"q": "a"}),
            ("dup", "search", {"q": "b"}),
            ("", "fetch", {"url": "u"}),
        ],
    )

    async def main() -> StreamedBatch:
        async def chunks() -> Any:
            for chunk in completion_chunks(body):
                yield chunk

        return await dispatch_stream(chunks(), Orchestrator([search, fetch]))

    batch = asyncio.run(main())
    assert isinstance(batch, StreamedBatch)
    assert batch.api == "chat"
    assert batch.text == "Two searches."
    assert batch.message is not None
    assert batch.message["content"] == "Two searches."
    ids = [c["id"] for c in batch.message["tool_calls"]]
    assert ids == [r.call_id for r in batch.results], "echoed under the ids the calls ran with"
    assert ids == ["dup", "dup#1", "call_2"]
    assert batch.get("dup#1").error_type == "invalid_call"
    assert [m["tool_call_id"] for m in to_openai_messages(batch)] == ids
    assert batch.output == []


def test_a_streamed_responses_batch_returns_its_output_items() -> None:
    calls = [("c1", "search", {"q": "x"}), ("c1", "fetch", {"url": "${c1.hits[0].url}"})]
    body = response("Let me look.", function_calls=calls)

    async def main() -> StreamedBatch:
        async def events() -> Any:
            for event in response_events(body):
                yield event

        return await dispatch_stream(events(), Orchestrator([search, fetch]))

    batch = asyncio.run(main())
    assert batch.api == "responses"
    assert batch.text == "Let me look."
    assert batch.message is None
    assert [i["type"] for i in batch.output] == ["message", "function_call", "function_call"]
    assert [i["call_id"] for i in batch.output[1:]] == ["c1", "c1#1"]
    assert batch.get("c1").ok
    assert batch.get("c1#1").error_type == "invalid_call", "a repeated id is not run"
    assert [i["call_id"] for i in to_responses_items(batch)] == ["c1", "c1#1"]


def test_a_responses_call_starts_before_the_stream_ends() -> None:
    """The first call runs while the model is still writing the second."""
    started = asyncio.Event()

    @tool
    async def slow(q: str) -> str:
        """Slow."""
        started.set()
        return q

    body = response(function_calls=[("a", "slow", {"q": "1"}), ("b", "slow", {"q": "2"})])
    events = response_events(body)
    second = next(
        i for i, e in enumerate(events)
        if e["type"] == "response.output_item.added" and e["output_index"] == 1
    )  # fmt: skip

    async def main() -> StreamedBatch:
        async def stream() -> Any:
            for i, event in enumerate(events):
                if i == second:
                    await asyncio.wait_for(started.wait(), 30)  # never set: a timeout fails
                yield event

        return await dispatch_stream(stream(), Orchestrator([slow]))

    batch = asyncio.run(main())
    assert [r.output for r in batch.results] == ["1", "2"]


def test_a_responses_stream_that_fails_answers_the_open_call() -> None:
    body = response(function_calls=[("a", "search", {"q": "1"}), ("b", "search", {"q": "2"})])
    events = response_events(body)
    cut = next(
        i for i, e in enumerate(events) if e["type"] == "response.function_call_arguments.delta"
        and e["output_index"] == 1
    )  # fmt: skip
    broken = [*events[: cut + 1], {"type": "error", "message": "overloaded", "code": "server"}]

    async def main() -> StreamedBatch:
        async def stream() -> Any:
            for event in broken:
                yield event

        return await dispatch_stream(stream(), Orchestrator([search]))

    batch = asyncio.run(main())
    assert batch.get("a").ok
    b = batch.get("b")
    assert b.status == "error"
    assert "the response stream failed before this call was complete" in str(b.error)
    assert "overloaded" in str(b.error)


def test_a_stream_without_calls_is_an_empty_batch_with_the_text() -> None:
    async def main() -> StreamedBatch:
        async def stream() -> Any:
            for event in response_events(response("Just text.")):
                yield event

        return await dispatch_stream(stream(), Orchestrator([search]))

    batch = asyncio.run(main())
    assert batch.results == []
    assert batch.text == "Just text."
    assert [i["type"] for i in batch.output] == ["message"]


def test_api_must_be_one_of_the_two() -> None:
    from toolweave import UsageError

    with pytest.raises(UsageError, match="api must be 'chat' or 'responses'"):
        asyncio.run(
            run_openai_agent(object(), "m", [], Orchestrator([search]), api="completions")  # type: ignore[arg-type]
        )


# ------------------------------------------------------------------ hostile Responses streams


_junk = st.one_of(
    st.none(), st.integers(-2, 3), st.text(max_size=4), st.lists(st.integers(), max_size=2),
    st.floats(allow_nan=True),
)  # fmt: skip
_index = st.one_of(st.integers(0, 3), _junk)
_item = st.fixed_dictionaries(
    {"type": st.sampled_from(["function_call", "message", "reasoning", "custom_tool_call", "x"])},
    optional={
        "id": st.one_of(st.sampled_from(["i0", "i1", "i2"]), _junk),
        "call_id": st.one_of(st.sampled_from(["c0", "c1", ""]), _junk),
        "name": st.one_of(st.sampled_from(["search", "fetch", ""]), _junk),
        "arguments": st.one_of(st.sampled_from(['{"q": "x"}', '{"url": "u"}', "{", ""]), _junk),
        "content": st.one_of(st.just([{"type": "output_text", "text": "hi"}]), _junk),
    },
)
_event = st.one_of(
    st.builds(
        lambda i, item: {"type": "response.output_item.added", "output_index": i, "item": item},
        _index,
        _item,
    ),
    st.builds(
        lambda i, item: {"type": "response.output_item.done", "output_index": i, "item": item},
        _index,
        _item,
    ),
    st.builds(
        lambda i, d: {
            "type": "response.function_call_arguments.delta",
            "output_index": i,
            "delta": d,
        },
        _index,
        st.one_of(st.sampled_from(['{"q"', ': "y"}']), _junk),
    ),
    st.builds(
        lambda i, d: {"type": "response.output_text.delta", "output_index": i, "delta": d},
        _index,
        _junk,
    ),
    st.builds(
        lambda out: {"type": "response.completed", "response": {"output": out}},
        st.one_of(st.lists(_item, max_size=3), _junk),
    ),
    st.builds(lambda m: {"type": "error", "message": m}, _junk),
    _junk,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(_event, max_size=12))
def test_any_responses_stream_answers_every_call_it_carried_once(events: list[Any]) -> None:
    async def main() -> StreamedBatch:
        async def stream() -> Any:
            yield {"type": "response.created", "response": {}}
            for event in events:
                yield event

        return await asyncio.wait_for(dispatch_stream(stream(), Orchestrator([search, fetch])), 20)

    batch = asyncio.run(main())
    ids = [r.call_id for r in batch.results]
    assert len(ids) == len(set(ids)), "every call runs under its own id"
    echoed = [
        i["call_id"]
        for i in batch.output
        if i.get("type") == "function_call" and i.get("call_id") in ids
    ]
    assert echoed == [i for i in ids if i in echoed], "output items keep the batch's order"
    json.dumps(batch.output)  # what is sent back is JSON
