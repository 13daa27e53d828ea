"""Review probes: ``toolweave.adapters.agents.weave`` and ``dispatch_stream`` /
``run_openai_agent(stream=True)`` driven the way a new user and an attacker would drive them.

Tests whose comment starts "Was:" pin a bug found in review and since fixed (the comment says
what went wrong); the rest pin behaviour a user relies on. The Agents SDK tests run the real
runner against ``ScriptedOpenAIServer``; the hostile Responses/Chat streams are fed to
``dispatch_stream`` as async iterators of event dicts (the shapes the ``openai`` client yields,
dumped), and the end-to-end ones go through the real ``openai`` client and the scripted server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import agents
import pytest
from agents import (
    Agent,
    FunctionTool,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
)
from agents.exceptions import MaxTurnsExceeded

from toolweave import Orchestrator, tool
from toolweave.adapters.agents import weave
from toolweave.adapters.openai import (
    StreamedBatch,
    dispatch_stream,
    run_openai_agent,
    to_openai_messages,
    to_responses_items,
)
from toolweave.testing import ScriptedOpenAIServer, completion, response, tool_calls

agents.set_tracing_disabled(True)  # the SDK's own traces would go to api.openai.com

Api = Literal["responses", "chat"]
Call = tuple[str, str, "dict[str, Any] | str"]


# ---------------------------------------------------------------- helpers


def model_for(server: ScriptedOpenAIServer, api: Api) -> Any:
    client = server.client(max_retries=0)
    if api == "responses":
        return OpenAIResponsesModel("scripted", client)
    return OpenAIChatCompletionsModel("scripted", client)


def turn(api: Api, *calls: Call) -> dict[str, Any]:
    return response(function_calls=calls) if api == "responses" else tool_calls(*calls)


def answer(api: Api, text: str) -> dict[str, Any]:
    return response(text) if api == "responses" else completion(text)


def outputs(request: dict[str, Any]) -> dict[str, str]:
    """Call id -> the tool output a model request carries (either API)."""
    if "input" in request:
        return {
            i["call_id"]: i["output"]
            for i in request["input"]
            if isinstance(i, dict) and i.get("type") == "function_call_output"
        }
    return {m["tool_call_id"]: m["content"] for m in request["messages"] if m["role"] == "tool"}


def other_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def settle_tasks(limit: float = 5.0) -> set[asyncio.Task[Any]]:
    """The tasks still alive after giving cancelled ones ``limit`` seconds to unwind."""
    for _ in range(int(limit / 0.05)):
        if not other_tasks():
            break
        await asyncio.sleep(0.05)
    return other_tasks()


@function_tool
def echo(v: str) -> str:
    """Echo the text."""
    return "got:" + v


def hanging_tool(log: list[str]) -> FunctionTool:
    @function_tool
    async def hang(v: str) -> str:
        """Never answers."""
        log.append("start " + v)
        try:
            await asyncio.sleep(300)
        finally:
            log.append("end " + v)
        return "never"

    return hang


# ================================================================ Agents SDK: weave()


class Interrupt(BaseException):
    """A control-flow exception that is not an ``Exception`` (like pytest's ``Failed``)."""


@function_tool
def interrupting() -> str:
    """Raises a BaseException subclass."""
    raise Interrupt("stop the run")


@pytest.mark.parametrize(
    "woven",
    [
        pytest.param(False, id="plain"),
        pytest.param(True, id="woven"),
    ],
)
def test_a_tool_raising_a_base_exception_subclass_ends_the_run_as_without_weave(
    woven: bool,
) -> None:
    # Was (woven): the SDK lets a non-Exception BaseException from a tool end the run (its
    # failure_error_function handles Exception only). Woven, adapters/agents.py `_invoke`
    # catches only Exception, so the engine turns the BaseException into a call result and the
    # model is told "Error: call 'c1' (interrupting): failed: Interrupt: stop the run"; the
    # run goes on. README promises "A tool that raises is answered as the SDK answers it".
    steps = [turn("responses", ("c1", "interrupting", {})), answer("responses", "done")]
    with ScriptedOpenAIServer(*steps) as server:
        agent = Agent(name="a", tools=[interrupting, echo], model=model_for(server, "responses"))
        agent = weave(agent) if woven else agent
        with pytest.raises(Interrupt, match="stop the run"):
            asyncio.run(Runner.run(agent, "go"))
    assert len(server.requests) == 1, "the model must not be asked again"


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_a_chain_of_fifty_references_in_one_turn_answers_every_call(api: Api) -> None:
    chain: list[Call] = [("c0", "echo", {"v": "start"})]
    chain += [(f"c{i}", "echo", {"v": f"${{c{i - 1}}}"}) for i in range(1, 50)]
    with ScriptedOpenAIServer(turn(api, *chain), answer(api, "done")) as server:
        agent = weave(Agent(name="a", tools=[echo], model=model_for(server, api)))
        result = asyncio.run(Runner.run(agent, "go"))
        server.assert_done()
    assert result.final_output == "done"
    sent = outputs(server.requests[1])
    assert list(sent) == [f"c{i}" for i in range(50)]
    assert sent["c49"] == "got:" * 50 + "start"


def test_arguments_that_are_not_json_are_answered_with_an_error_naming_call_and_fix() -> None:
    calls: list[Call] = [
        ("c1", "echo", '{"v": '),
        ("c2", "echo", {"v": "${c1}"}),
        ("c3", "echo", "[1, 2]"),
    ]
    with ScriptedOpenAIServer(turn("responses", *calls), answer("responses", "ok")) as server:
        agent = weave(Agent(name="a", tools=[echo], model=model_for(server, "responses")))
        asyncio.run(Runner.run(agent, "go"))
        server.assert_done()
    sent = outputs(server.requests[1])
    assert sent["c1"].startswith("Error: call 'c1' (echo): arguments are not valid JSON")
    assert "Send the arguments as one JSON object" in sent["c1"]
    assert sent["c2"] == (
        "Not run: skipped: it depends on call 'c1' (echo), which failed. Fix that call first."
    )
    assert "must be a JSON object, got list" in sent["c3"]


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_cancelling_a_run_mid_batch_cancels_its_tools_and_leaves_no_task(api: Api) -> None:
    log: list[str] = []

    @function_tool
    async def first(v: str) -> str:
        """Answers after a moment."""
        await asyncio.sleep(0.2)
        return "first:" + v

    calls: list[Call] = [
        ("c1", "first", {"v": "a"}),
        ("c2", "hang", {"v": "${c1}"}),  # starts once c1 is done, then hangs
        ("c3", "hang", {"v": "z"}),
    ]

    async def main(server: ScriptedOpenAIServer) -> set[asyncio.Task[Any]]:
        tools: list[Any] = [first, hanging_tool(log)]
        agent = weave(Agent(name="a", tools=tools, model=model_for(server, api)))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(Runner.run(agent, "go"), 3.0)
        return await settle_tasks()

    with ScriptedOpenAIServer(turn(api, *calls), answer(api, "unused")) as server:
        left = asyncio.run(main(server))
    assert left == set()
    assert sorted(log) == ["end first:a", "end z", "start first:a", "start z"]
    assert len(server.requests) == 1


def test_max_turns_reached_mid_way_raises_as_the_sdk_does_and_leaves_no_task() -> None:
    t1: list[Call] = [("c1", "echo", {"v": "a"}), ("c2", "echo", {"v": "${c1}"})]
    t2: list[Call] = [("d1", "echo", {"v": "b"}), ("d2", "echo", {"v": "${d1}"})]
    steps = [turn("chat", *t1), turn("chat", *t2), answer("chat", "unused")]

    async def main(server: ScriptedOpenAIServer) -> set[asyncio.Task[Any]]:
        agent = weave(Agent(name="a", tools=[echo], model=model_for(server, "chat")))
        with pytest.raises(MaxTurnsExceeded, match=r"Max turns \(2\) exceeded"):
            await Runner.run(agent, "go", max_turns=2)
        return await settle_tasks()

    with ScriptedOpenAIServer(*steps) as server:
        assert asyncio.run(main(server)) == set()
    assert outputs(server.requests[1]) == {"c1": "got:a", "c2": "got:got:a"}


def test_cancelling_one_of_two_concurrent_runs_leaves_the_other_whole() -> None:
    @function_tool
    async def slow(v: str) -> dict[str, str]:
        """Answers after a while: soon for owls, late for bats."""
        await asyncio.sleep(0.3 if v == "owls" else 30)
        return {"u": "slow:" + v}

    def model(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        topic = next(m["content"] for m in messages if m["role"] == "user")
        results = [m["content"] for m in messages if m["role"] == "tool"]
        if results:
            return {"content": " | ".join(results)}
        return {"tool_calls": [("c1", "slow", {"v": topic}), ("c2", "echo", {"v": "${c1.u}"})]}

    async def main(server: ScriptedOpenAIServer) -> tuple[Any, set[asyncio.Task[Any]]]:
        agent = weave(Agent(name="a", tools=[slow, echo], model=model_for(server, "chat")))
        owls = asyncio.ensure_future(Runner.run(agent, "owls"))
        bats = asyncio.ensure_future(Runner.run(agent, "bats"))
        await asyncio.sleep(0.15)
        bats.cancel()
        result = await owls
        with pytest.raises(asyncio.CancelledError):
            await bats
        return result, await settle_tasks()

    with ScriptedOpenAIServer(script=model) as server:
        result, left = asyncio.run(main(server))
    assert result.final_output == "{'u': 'slow:owls'} | got:slow:owls"
    assert left == set()


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_a_streamed_run_abandoned_mid_batch_and_cancelled_leaves_no_task(api: Api) -> None:
    log: list[str] = []

    async def main(server: ScriptedOpenAIServer) -> set[asyncio.Task[Any]]:
        tools: list[Any] = [echo, hanging_tool(log)]
        agent = weave(Agent(name="a", tools=tools, model=model_for(server, api)))
        result = Runner.run_streamed(agent, "go")
        async for event in result.stream_events():
            if getattr(event, "name", None) == "tool_called":
                break  # the batch is running; walk away from the stream
        for _ in range(100):
            if log:
                break
            await asyncio.sleep(0.05)
        result.cancel()
        return await settle_tasks()

    calls: list[Call] = [("c1", "echo", {"v": "a"}), ("c2", "hang", {"v": "${c1}"})]
    with ScriptedOpenAIServer(turn(api, *calls), answer(api, "unused")) as server:
        left = asyncio.run(main(server))
    assert left == set()
    assert log == ["start got:a", "end got:a"]


# ================================================================ dispatch_stream


seen: list[tuple[str, Any]] = []


@tool
async def search(q: str) -> dict[str, Any]:
    """Search."""
    seen.append(("search", q))
    return {"hits": [q]}


@tool
async def fetch(url: str) -> str:
    """Fetch a page."""
    seen.append(("fetch", url))
    return f"<p>{url}</p>"


def fc(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": json.dumps(arguments),
        "status": "completed",
    }


SEARCH = fc("c1", "search", {"q": "owls"})
FETCH = fc("c2", "fetch", {"url": "${c1.hits[0]}"})


def added(index: Any, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "response.output_item.added",
        "output_index": index,
        "item": {**item, "arguments": "", "status": "in_progress"},
    }


def done(index: Any, item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "response.output_item.done", "output_index": index, "item": item}


def completed(*items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "response.completed", "response": {"output": list(items)}}


async def events(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        await asyncio.sleep(0)
        if isinstance(item, BaseException):
            raise item
        yield item


def dispatch(items: list[Any]) -> StreamedBatch:
    seen.clear()

    async def main() -> StreamedBatch:
        return await asyncio.wait_for(
            dispatch_stream(events(items), Orchestrator([search, fetch])), 30
        )

    return asyncio.run(main())


def ran_with(batch: StreamedBatch) -> dict[str, tuple[str, str]]:
    """Call id -> (name, arguments) each function call item of ``output`` echoes."""
    return {
        i["call_id"]: (i["name"], i["arguments"])
        for i in batch.output
        if i.get("type") == "function_call"
    }


def assert_every_call_answered_once(batch: StreamedBatch) -> None:
    echoed = [i["call_id"] for i in batch.output if i.get("type") == "function_call"]
    answered = [i["call_id"] for i in to_responses_items(batch)]
    assert echoed == answered
    json.dumps([*batch.output, *to_responses_items(batch)])  # what goes back is JSON


def test_a_clean_responses_stream_runs_each_call_once_and_echoes_it() -> None:
    batch = dispatch([added(0, SEARCH), done(0, SEARCH), added(1, FETCH), done(1, FETCH)])
    assert seen == [("search", "owls"), ("fetch", "owls")]
    assert ran_with(batch) == {
        "c1": ("search", '{"q": "owls"}'),
        "c2": ("fetch", '{"url": "${c1.hits[0]}"}'),
    }
    assert_every_call_answered_once(batch)


def test_done_before_added_echoes_the_arguments_the_call_ran_with() -> None:
    # Was: _StreamedItems.feed stores every added/done item in _items[index] unconditionally.
    # An `output_item.added` arriving after the `done` of the same index (out of order)
    # replaces the finished item with the in-progress snapshot, so `output` echoes
    # c1 with arguments "" (and status in_progress) although it ran with {"q": "owls"}.
    batch = dispatch([done(0, SEARCH), added(0, SEARCH), added(1, FETCH), done(1, FETCH)])
    assert seen == [("search", "owls"), ("fetch", "owls")]
    assert ran_with(batch)["c1"] == ("search", '{"q": "owls"}')


def test_a_second_done_for_a_call_that_ran_does_not_change_its_echo() -> None:
    # Was: same root cause. The call ran with q=owls, the echo says q=bats.
    batch = dispatch([added(0, SEARCH), done(0, SEARCH), done(0, fc("c1", "search", {"q": "b"}))])
    assert seen == [("search", "owls")]
    assert ran_with(batch)["c1"] == ("search", '{"q": "owls"}')


@pytest.mark.parametrize("index", [0, -1], ids=["reused-index", "negative-index"])
def test_a_second_call_at_a_used_or_bad_index_is_run_and_answered(index: int) -> None:
    # Was: the second call (fetch, c2) is written over item 0, whose call already ran: c2
    # gets no result at all, and `output` echoes c1 as `fetch` with c2's arguments while the
    # answer for c1 is search's output. (A negative output_index falls back to "the latest
    # item" in _StreamedItems._index and does the same.) The Chat reader already treats
    # "another id at a used index" as a new call; this one should too.
    batch = dispatch([added(0, SEARCH), done(0, SEARCH), added(index, FETCH), done(index, FETCH)])
    assert [r.call_id for r in batch.results] == ["c1", "c2"]
    assert ran_with(batch) == {
        "c1": ("search", '{"q": "owls"}'),
        "c2": ("fetch", '{"url": "${c1.hits[0]}"}'),
    }


def test_done_events_without_index_and_without_added_still_run_their_calls() -> None:
    # Was: _StreamedItems.feed gives an index to an `added` that has none, but a `done`
    # without one goes through _index, which returns None while no item is known: both
    # calls vanish with no result, no echo and no log line.
    batch = dispatch([{**done(None, SEARCH)}, {**done(None, FETCH)}])
    assert [r.call_id for r in batch.results] == ["c1", "c2"]


def test_calls_that_appeared_get_a_result_when_completed_lists_other_items() -> None:
    # Was: c1 is still open and c2 is done (held back behind c1, to keep the model's order)
    # when `response.completed` arrives with other items at those indexes; both are
    # replaced and never answered, with no log line, although dispatch_stream promises
    # "Every call that appeared in the stream gets exactly one result".
    message = {"type": "message", "role": "assistant", "content": []}
    batch = dispatch(
        [
            added(0, SEARCH),
            added(1, FETCH),
            done(1, FETCH),
            completed(message, fc("c9", "search", {})),
        ]
    )
    assert {"c1", "c2"} <= {r.call_id for r in batch.results}


def test_missing_output_index_is_found_by_item_id() -> None:
    delta = {
        "type": "response.function_call_arguments.delta",
        "item_id": "fc_c1",
        "delta": '{"q": "owls"}',
    }
    batch = dispatch(
        [added(None, SEARCH), delta, done(None, SEARCH), added(None, FETCH), done(None, FETCH)]
    )
    assert seen == [("search", "owls"), ("fetch", "owls")]
    assert_every_call_answered_once(batch)


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param({"type": "error", "message": "boom"}, id="error-event"),
        pytest.param(ConnectionResetError("peer reset"), id="iterator-raises"),
    ],
)
def test_a_stream_failing_mid_batch_answers_the_open_call_with_the_failure(failure: Any) -> None:
    batch = dispatch([added(0, SEARCH), done(0, SEARCH), added(1, FETCH), failure])
    assert seen == [("search", "owls")]
    first, second = batch.results
    assert (first.call_id, first.status) == ("c1", "ok")
    assert (second.call_id, second.status) == ("c2", "error")
    assert "the response stream failed before this call was complete" in str(second.error)
    assert_every_call_answered_once(batch)


def test_a_hanging_stream_ends_at_the_callers_timeout_and_cancels_running_calls() -> None:
    log: list[str] = []

    @tool
    async def slow(q: str) -> str:
        """Never answers."""
        log.append("start")
        try:
            await asyncio.sleep(300)
        finally:
            log.append("end")
        return q

    async def stream() -> AsyncIterator[Any]:
        item = fc("s1", "slow", {"q": "x"})
        yield added(0, item)
        yield done(0, item)
        await asyncio.sleep(300)

    async def main() -> set[asyncio.Task[Any]]:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(dispatch_stream(stream(), Orchestrator([slow])), 1.0)
        return await settle_tasks()

    assert asyncio.run(main()) == set()
    assert log == ["start", "end"]


def test_a_stream_raising_cancelled_error_propagates_it_and_leaves_no_task() -> None:
    async def main() -> set[asyncio.Task[Any]]:
        stream = events([added(0, SEARCH), done(0, SEARCH), asyncio.CancelledError()])
        with pytest.raises(asyncio.CancelledError):
            await dispatch_stream(stream, Orchestrator([search, fetch]))
        return await settle_tasks()

    assert asyncio.run(main()) == set()


def chunk(content: str | None = None, calls: list[dict[str, Any]] | None = None) -> Any:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if calls is not None:
        delta["tool_calls"] = calls
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}


def part(index: int, call_id: str | None, name: str | None, arguments: str) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        out["id"] = call_id
    if name is not None:
        out["function"]["name"] = name
    return out


def test_chat_chunks_with_text_and_calls_interleaved_keep_both() -> None:
    batch = dispatch(
        [
            chunk("Let me "),
            chunk(calls=[part(0, "c1", "search", '{"q":')]),
            chunk("look "),
            chunk(calls=[part(0, None, None, '"owls"}')]),
            chunk("it up."),
            chunk(calls=[part(1, "c2", "fetch", '{"url": "${c1.hits[0]}"}')]),
        ]
    )
    assert seen == [("search", "owls"), ("fetch", "owls")]
    assert batch.message is not None
    assert batch.message["content"] == batch.text == "Let me look it up."
    echoed = [(c["id"], c["function"]["arguments"]) for c in batch.message["tool_calls"]]
    assert echoed == [("c1", '{"q":"owls"}'), ("c2", '{"url": "${c1.hits[0]}"}')]
    assert [m["tool_call_id"] for m in to_openai_messages(batch)] == ["c1", "c2"]
    json.dumps([batch.message, *to_openai_messages(batch)])


# ================================================================ run_openai_agent


def agent_run(steps: list[Any], api: Api) -> Callable[[], Any]:
    def go() -> Any:
        with ScriptedOpenAIServer(*steps) as server:
            return asyncio.run(
                run_openai_agent(
                    server.client(max_retries=0),
                    "scripted",
                    [{"role": "user", "content": "find owls"}],
                    Orchestrator([search, fetch]),
                    api=api,
                    stream=True,
                )
            ), server

    return go


def test_the_next_turn_sends_back_output_items_and_answers_that_match() -> None:
    first = [
        {"type": "response.created", "sequence_number": 0, "response": response()},
        {**added(0, SEARCH), "sequence_number": 1},
        {**done(0, SEARCH), "sequence_number": 2},
        {**added(1, FETCH), "sequence_number": 3},
        {**done(1, FETCH), "sequence_number": 4},
        {
            "type": "response.completed",
            "sequence_number": 5,
            "response": response(function_calls=[("c1", "search", {"q": "owls"})]),
        },
    ]
    run, server = agent_run([first, response("done")], "responses")()
    assert run.final == "done"
    sent = server.requests[1]["input"]
    calls = [(i["call_id"], i["arguments"]) for i in sent if i.get("type") == "function_call"]
    answers = [i["call_id"] for i in sent if i.get("type") == "function_call_output"]
    assert calls == [("c1", '{"q": "owls"}'), ("c2", '{"url": "${c1.hits[0]}"}')]
    assert answers == ["c1", "c2"]


def test_an_error_event_first_is_reported_not_taken_for_a_final_answer() -> None:
    # Was: run_openai_agent(stream=True, api="responses") on a stream whose first event is
    # `error` (a rate limit, say) returns AgentRun(final=None, batches=[], turns=1): the
    # caller cannot tell it from a model that answered nothing, and only a log line says
    # otherwise. Without stream the same failure is an HTTP error the openai client raises.
    # Expected: an exception naming the failure (or a `failure` field on StreamedBatch and
    # AgentRun that run_openai_agent acts on).
    error = {
        "type": "error",
        "sequence_number": 0,
        "code": "rate_limit_exceeded",
        "message": "rate limited",
        "param": None,
    }
    go = agent_run([[error]], "responses")
    with pytest.raises(Exception, match="rate limited"):
        go()
