"""``toolweave.testing`` with the real ``openai`` client: the scripted server on both APIs,
streamed and not, and how it fails; the scripted decider with a real ``Orchestrator``."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import json
import pathlib
import re
import subprocess
import sys
import threading
import time
from typing import Any

import openai
import pytest

from toolweave import Decision, DecisionContext, Orchestrator, ToolCall, UsageError, tool
from toolweave.testing import (
    ScriptedDecider,
    ScriptedOpenAIServer,
    completion,
    response,
    tool_calls,
)

GUARD = 20.0
README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
USER = [{"role": "user", "content": "find owls"}]
SEARCH = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
CHAT_TOOLS = [{"type": "function", "function": {"name": "search", "parameters": SEARCH}}]
RESPONSES_TOOLS = [{"type": "function", "name": "search", "parameters": SEARCH, "strict": False}]
CALLS = [
    ("call_1", "search", {"q": "owls"}),
    ("call_2", "fetch", '{"url": "${call_1.hits[0].url}"}'),
]
AS_SENT = [(i, n, a if isinstance(a, str) else json.dumps(a)) for i, n, a in CALLS]


class Model:
    """A script: the calls first, then an answer naming the results; keeps what it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Any:
        self.seen.append((messages, tools))
        results = [m["content"] for m in messages if m["role"] == "tool"]
        if results:
            return {"content": "found: " + ", ".join(results)}
        return {"tool_calls": CALLS}


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, GUARD))


# ---------------------------------------------------------------------- Chat Completions


def test_chat_completions_play_the_steps_in_order() -> None:
    with ScriptedOpenAIServer(tool_calls(*CALLS), completion("done", usage=(5, 2))) as server:
        client = server.client()

        async def main() -> tuple[Any, Any]:
            first = await client.chat.completions.create(model="m", messages=USER, tools=CHAT_TOOLS)
            second = await client.chat.completions.create(model="m", messages=USER)
            return first, second

        first, second = run(main())
    server.assert_done()
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == AS_SENT
    assert second.choices[0].message.content == "done"
    assert second.usage.total_tokens == 7
    assert server.requests[0]["messages"] == USER
    assert server.requests[0]["tools"] == CHAT_TOOLS


def test_a_script_answers_every_request_and_sees_the_conversation() -> None:
    model = Model()
    with ScriptedOpenAIServer(script=model) as server:
        client = server.sync_client()
        first = client.chat.completions.create(model="m", messages=USER, tools=CHAT_TOOLS)
        calls = first.choices[0].message.tool_calls
        conversation = [
            *USER,
            first.choices[0].message.model_dump(exclude_none=True),
            *[{"role": "tool", "tool_call_id": c.id, "content": f"r{c.id}"} for c in calls],
        ]
        second = client.chat.completions.create(model="m", messages=conversation)
    server.assert_done()
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == AS_SENT
    assert second.choices[0].message.content == "found: rcall_1, rcall_2"
    assert model.seen[0] == (USER, CHAT_TOOLS)


def test_streamed_tool_calls_reassemble_to_the_script() -> None:
    with ScriptedOpenAIServer(script=Model()) as server:
        client = server.client()

        async def main() -> Any:
            async with client.chat.completions.stream(
                model="m", messages=USER, tools=CHAT_TOOLS
            ) as stream:
                return await stream.get_final_completion()

        final = run(main())
    server.assert_done()
    assert server.requests[0]["stream"] is True
    assert final.choices[0].finish_reason == "tool_calls"
    calls = final.choices[0].message.tool_calls
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == AS_SENT


def test_streamed_chunks_are_shaped_like_the_apis() -> None:
    with ScriptedOpenAIServer(tool_calls(*CALLS, content="Let me look.")) as server:
        client = server.client()

        async def main() -> list[Any]:
            stream = await client.chat.completions.create(
                model="m", messages=USER, stream=True, stream_options={"include_usage": True}
            )
            return [chunk async for chunk in stream]

        chunks = run(main())
    server.assert_done()
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Let me look."
    fragments = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and
                 c.choices[0].delta.tool_calls]  # fmt: skip
    firsts = [f for f in fragments if f.id is not None]
    assert [(f.index, f.id, f.type, f.function.name) for f in firsts] == [
        (0, "call_1", "function", "search"),
        (1, "call_2", "function", "fetch"),
    ]
    assert all(f.function.name is None for f in fragments if f.id is None)
    for index, (_, _, arguments) in enumerate(AS_SENT):
        pieces = [f.function.arguments for f in fragments if f.index == index]
        assert len(pieces) > 1, "the arguments arrive in fragments"
        assert "".join(pieces) == arguments
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens == 0


def test_the_wire_is_server_sent_events() -> None:
    def post(server: ScriptedOpenAIServer, path: str, body: dict[str, Any]) -> str:
        port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=GUARD)
        try:
            connection.request("POST", path, json.dumps(body))
            reply = connection.getresponse()
            assert reply.getheader("Content-Type") == "text/event-stream"
            return reply.read().decode()
        finally:
            connection.close()

    with ScriptedOpenAIServer(completion("hi"), response("hi")) as server:
        chat = post(server, "/v1/chat/completions", {"stream": True})
        responses = post(server, "/v1/responses", {"stream": True})
    server.assert_done()
    assert chat.startswith('data: {"id": "chatcmpl-scripted-1-')
    assert '", "object": "chat.completion.chunk"' in chat.splitlines()[0]
    assert chat.endswith("\n\ndata: [DONE]\n\n")
    assert "event:" not in chat
    assert responses.startswith('event: response.created\ndata: {"type": "response.created"')
    assert responses.endswith("\n\n")
    assert "[DONE]" not in responses


# ---------------------------------------------------------------------- Responses API


def test_responses_api_not_streamed_with_a_script() -> None:
    model = Model()
    with ScriptedOpenAIServer(script=model) as server:
        client = server.client()

        async def main() -> tuple[Any, Any]:
            first = await client.responses.create(
                model="m", input="find owls", instructions="be brief", tools=RESPONSES_TOOLS
            )
            items: list[Any] = [{"role": "user", "content": "find owls"}]
            items += [item.model_dump(exclude_none=True) for item in first.output]
            items += [
                {"type": "function_call_output", "call_id": item.call_id, "output": "r"}
                for item in first.output
            ]
            second = await client.responses.create(model="m", input=items)
            return first, second

        first, second = run(main())
    server.assert_done()
    assert [(i.type, i.call_id, i.name, i.arguments) for i in first.output] == [
        ("function_call", *call) for call in AS_SENT
    ]
    assert second.output_text == "found: r, r"
    assert second.output[0].type == "message"
    messages, tools = model.seen[0]
    assert messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "find owls"},
    ]
    assert tools == [{"type": "function", "function": {"name": "search",
                      "parameters": SEARCH, "strict": False}}]  # fmt: skip
    messages, _ = model.seen[1]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["call_1", "call_2"]


def test_responses_api_streamed_events() -> None:
    with ScriptedOpenAIServer(response("Owls hoot at night.")) as server:
        client = server.client()

        async def main() -> list[Any]:
            stream = await client.responses.create(model="m", input="owls?", stream=True)
            return [event async for event in stream]

        events = run(main())
    server.assert_done()
    kinds = [e.type for e in events]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(deltas),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert len(deltas) > 1
    assert "".join(deltas) == "Owls hoot at night."
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].response.output_text == "Owls hoot at night."


def test_the_responses_stream_helper_builds_the_final_response() -> None:
    with ScriptedOpenAIServer(script=Model()) as server:
        client = server.client()

        async def main() -> tuple[list[str], Any]:
            async with client.responses.stream(
                model="m", input="find owls", tools=RESPONSES_TOOLS
            ) as stream:
                kinds = [event.type async for event in stream]
                return kinds, await stream.get_final_response()

        kinds, final = run(main())
    server.assert_done()
    assert kinds.count("response.function_call_arguments.delta") >= 4
    assert [(i.type, i.call_id, i.name, i.arguments) for i in final.output] == [
        ("function_call", *call) for call in AS_SENT
    ]


# ---------------------------------------------------------------------- failing loudly


def test_error_steps_answer_with_their_status_and_headers() -> None:
    with ScriptedOpenAIServer((429, {"retry-after": "7"}), (503, {})) as server:
        client = server.sync_client(max_retries=0)
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(model="m", messages=USER)
        with pytest.raises(openai.InternalServerError) as down:
            client.responses.create(model="m", input="x")
    server.assert_done()
    assert limited.value.status_code == 429
    assert limited.value.response.headers["retry-after"] == "7"
    assert down.value.status_code == 503
    assert down.value.body == {"message": "scripted error 503"}


def test_a_disconnect_is_a_connection_error() -> None:
    with ScriptedOpenAIServer("disconnect", completion("back")) as server:
        client = server.sync_client(max_retries=0)
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model="m", messages=USER)
        answer = client.chat.completions.create(model="m", messages=USER)
    server.assert_done()
    assert answer.choices[0].message.content == "back"


def test_a_hang_holds_the_request_until_stop_which_does_not_wait_for_it() -> None:
    server = ScriptedOpenAIServer("hang").start()
    outcome: list[BaseException] = []

    def ask() -> None:
        try:
            server.sync_client(max_retries=0).chat.completions.create(model="m", messages=USER)
        except BaseException as exc:
            outcome.append(exc)

    asker = threading.Thread(target=ask)
    asker.start()
    deadline = time.monotonic() + GUARD
    while server.steps and time.monotonic() < deadline:
        time.sleep(0.01)  # until the server has taken the request
    assert server.steps == [], "the request reached the server"
    time.sleep(0.2)
    assert asker.is_alive(), "no answer while the server runs"
    assert outcome == []
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0
    asker.join(GUARD)
    assert [type(e) for e in outcome] == [openai.APIConnectionError]
    server.assert_done()


def test_assert_done_lists_unexpected_requests_and_unused_steps() -> None:
    server = ScriptedOpenAIServer(completion("one"), completion("two"), path="/v1/chat/completions")
    with server:
        client = server.sync_client(max_retries=0)
        assert client.chat.completions.create(model="m", messages=USER).choices
        with pytest.raises(openai.NotFoundError) as missing:
            client.responses.create(model="m", input="x")
    assert "ScriptedOpenAIServer: POST /v1/responses: this server answers" in str(missing.value)
    assert server.unexpected == [
        "POST /v1/responses: this server answers POST /v1/chat/completions"
    ]
    with pytest.raises(AssertionError) as failed:
        server.assert_done()
    lines = str(failed.value).splitlines()
    assert lines[:2] == [
        "ScriptedOpenAIServer is not done:",
        "  unexpected request: POST /v1/responses: this server answers POST /v1/chat/completions",
    ]
    assert lines[2].startswith("  unused step: {'id': 'chatcmpl-scripted', 'object': ")
    assert len(lines) == 3


def test_a_request_after_the_last_step_is_refused_and_recorded() -> None:
    with ScriptedOpenAIServer(completion("only")) as server:
        client = server.sync_client(max_retries=0)
        client.chat.completions.create(model="m", messages=USER)
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model="m", messages=USER)
    assert refused.value.status_code == 418
    assert refused.value.body == {
        "message": "ScriptedOpenAIServer: POST /v1/chat/completions: no step left (1 played)",
        "type": "scripted_server",
    }
    with pytest.raises(AssertionError, match=r"unexpected request: POST /v1/chat/completions: "):
        server.assert_done()
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        pytest.param(lambda m, t: 1 / 0, "the script raised ZeroDivisionError: division by zero",
                     id="raises"),
        pytest.param(lambda m, t: sys.exit(3), "the script raised SystemExit: 3", id="exits"),
        pytest.param(lambda m, t: {"text": "hi"},
                     "the script returned {'text': 'hi'}, not a turn (expected a dict with "
                     "'content' and/or 'tool_calls')", id="not-a-turn"),
    ],
)  # fmt: skip
def test_a_script_that_cannot_answer_is_a_422_asked_once(script: Any, reason: str) -> None:
    server = ScriptedOpenAIServer(script=script)
    with server, pytest.raises(openai.UnprocessableEntityError) as failed:
        server.sync_client().chat.completions.create(model="m", messages=USER)
    assert len(server.requests) == 1, "not retried by the client"
    assert server.unexpected == [f"POST /v1/chat/completions: {reason}"]
    assert reason in str(failed.value)


def test_mistakes_in_building_the_fakes_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="pass a function as script="):
        ScriptedOpenAIServer(lambda m, t: {"content": "x"})  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="steps or a script, not both"):
        ScriptedOpenAIServer(completion("x"), script=lambda m, t: {"content": "x"})
    with pytest.raises(UsageError, match="start the ScriptedOpenAIServer first"):
        _ = ScriptedOpenAIServer().base_url
    stopped = ScriptedOpenAIServer().start()
    stopped.stop()
    stopped.stop()
    with pytest.raises(UsageError, match="was stopped; create a new one"):
        stopped.start()
    with pytest.raises(UsageError, match=r"is \(expected waiting ids, answer\)"):
        ScriptedDecider(("c1", Decision(action="continue")))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="the only answer string is 'hang', not 'skip'"):
        ScriptedDecider((["c1"], "skip"))


def test_the_module_imports_without_openai() -> None:
    code = (
        "import sys; sys.modules['openai'] = None\n"
        "import toolweave.testing as t\n"
        "with t.ScriptedOpenAIServer(t.completion('x')) as s:\n"
        "    try:\n"
        "        s.client()\n"
        "    except ImportError:\n"
        "        print('no openai, as expected')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout == "no openai, as expected\n", proc.stderr[-2000:]


# ---------------------------------------------------------------------- ScriptedDecider


@tool
async def echo(value: Any = None) -> Any:
    """Return the value."""
    return value


def chain(n: int) -> list[ToolCall]:
    calls = [ToolCall("c0", "echo", {"value": 0})]
    calls += [ToolCall(f"c{i}", "echo", {"value": f"${{c{i - 1}}}"}) for i in range(1, n)]
    return calls


def test_a_scripted_decider_skips_a_call_of_a_real_batch() -> None:
    decider = ScriptedDecider(
        (["c1"], Decision(action="continue", reason="fine")),
        (["c2"], Decision(action="skip", skip=["c2"], reason="enough")),
    )
    result = run(Orchestrator([echo], decider=decider).run(chain(4)))
    decider.assert_done()
    assert [r.status for r in result.results] == ["ok", "ok", "skipped", "skipped"]
    assert result.get("c2").error == "skipped by decider: enough"
    assert [c.waiting_ids for c in decider.contexts] == [["c1"], ["c2"]]


def test_a_scripted_decider_fails_loudly_on_a_decision_it_did_not_expect() -> None:
    decider = ScriptedDecider((["x"], Decision(action="continue")))
    result = run(Orchestrator([echo], decider=decider).run(chain(3)))
    assert [(d.fallback, d.error_type) for d in result.decisions] == [
        (True, "AssertionError"),
        (True, "AssertionError"),
    ]
    assert result.decisions[0].error == (
        "AssertionError: ScriptedDecider: a decision about ['c1'], but the step expected ['x']"
    )
    with pytest.raises(AssertionError) as failed:
        decider.assert_done()
    assert str(failed.value) == (
        "ScriptedDecider is not done:\n"
        "  unexpected decision: a decision about ['c1'], but the step expected ['x']\n"
        "  unexpected decision: a decision about ['c2'] after the last step"
    )


def test_a_scripted_decider_fails_on_unused_steps() -> None:
    decider = ScriptedDecider((["c1"], RuntimeError("down")), (["c9"], "hang"), breaker=5)
    result = run(Orchestrator([echo], decider=decider).run(chain(2)))
    assert result.decisions[0].error == "RuntimeError: down"
    with pytest.raises(AssertionError) as failed:
        decider.assert_done()
    assert str(failed.value) == "ScriptedDecider is not done:\n  unused step: (['c9'], 'hang')"


def test_scripted_decider_answers_hang_and_functions_and_has_a_fallback() -> None:
    stop = Decision(action="stop", reason="cannot check")
    decider = ScriptedDecider((["c1"], "hang"), fallback=stop)
    result = run(Orchestrator([echo], decider=decider, decider_timeout=0.05).run(chain(3)))
    decider.assert_done()
    assert result.decisions[0].error_type == "timeout"
    assert result.stopped == "cannot check"

    async def later(ctx: DecisionContext) -> Decision:
        return Decision(action="stop", reason=f"seen {ctx.waiting_ids}")

    decider = ScriptedDecider((["c1"], later))
    result = run(Orchestrator([echo], decider=decider).run(chain(3)))
    decider.assert_done()
    assert result.stopped == "seen ['c1']"


# ---------------------------------------------------------------------- the module and README


def test_all_is_sorted_and_the_docstring_examples_run() -> None:
    import doctest

    import toolweave.testing

    assert list(toolweave.testing.__all__) == sorted(toolweave.testing.__all__)
    failed, attempted = doctest.testmod(toolweave.testing, verbose=False)
    assert (failed, attempted > 10) == (0, True)


def test_the_readme_testing_example_prints_what_the_readme_says() -> None:
    text = README.read_text()
    found = re.search(
        r"## Testing your agent\n.*?```python\n(.*?)```\n\nprints\n\n```\n(.*?)```", text, re.S
    )
    assert found is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(found.group(1), "README.md", "exec"), {})
    assert out.getvalue() == found.group(2)
