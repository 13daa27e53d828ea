"""Every adapter names a model turn's batch by the model response's id, so a call ledger replays
the calls of a response dispatched again and never confuses two turns.

Real components throughout: ``ScriptedOpenAIServer`` with the ``openai`` client, LangGraph
graphs (``create_react_agent``, ``create_agent``, a ``StateGraph``), the Agents SDK runner, and
``SQLiteLedger`` on a temporary file.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import threading
import time
import warnings
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import agents
import pytest
from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, Runner, function_tool
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool as lc_tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition
from langgraph.types import Command, interrupt

from toolweave import BatchResult, CallContext, Orchestrator, SQLiteLedger, UsageError, tool
from toolweave.adapters.agents import weave
from toolweave.adapters.langchain import ToolweaveMiddleware, ToolweaveNode
from toolweave.adapters.openai import calls_from_openai, dispatch_stream, run_openai_agent
from toolweave.testing import (
    ScriptedOpenAIServer,
    completion,
    completion_chunks,
    response,
    response_events,
    tool_calls,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from langgraph.prebuilt import create_react_agent

agents.set_tracing_disabled(True)  # the SDK's own traces would go to api.openai.com

Api = Literal["chat", "responses"]
GUARD = 60.0  # seconds: only a hang reaches it


class Seen:
    """What a tool saw, from any thread: ``(argument, ctx.batch_id)`` per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def add(self, value: str, batch_id: str) -> None:
        with self._lock:
            self.calls.append((value, batch_id))


def lookup_tool(seen: Seen) -> Any:
    @tool
    async def lookup(q: str, ctx: CallContext) -> str:
        """Look something up."""
        seen.add(q, ctx.batch_id)
        return f"found {q}"

    return lookup


def ledger(tmp_path: pathlib.Path) -> SQLiteLedger:
    return SQLiteLedger(str(tmp_path / "l.db"))


# ------------------------------------------------------------------ the scripted server


def test_the_scripted_server_gives_each_response_its_own_id() -> None:
    mine = {**completion("kept"), "id": "chatcmpl-mine"}
    steps = [completion("a"), completion("b"), response("c"), response("d"), mine]
    with ScriptedOpenAIServer(*steps) as server:
        client = server.sync_client(max_retries=0)
        user = [{"role": "user", "content": "hi"}]
        first = client.chat.completions.create(model="m", messages=user)
        with client.chat.completions.create(model="m", messages=user, stream=True) as stream:
            streamed = {chunk.id for chunk in stream}
        third = client.responses.create(model="m", input="hi")
        with client.responses.create(model="m", input="hi", stream=True) as events:
            created = [e.response.id for e in events if e.type == "response.created"]
        kept = client.chat.completions.create(model="m", messages=user)
    server.assert_done()
    token = first.id.rpartition("-")[2]  # the server's own: ids unique across processes
    assert len(token) == 8
    assert first.id == f"chatcmpl-scripted-1-{token}"
    assert streamed == {f"chatcmpl-scripted-2-{token}"}  # every chunk of one response: one id
    assert third.id == f"resp_scripted-3-{token}"
    assert third.output[0].id == f"msg_scripted-3-{token}"
    assert created == [f"resp_scripted-4-{token}"]
    assert kept.id == "chatcmpl-mine"  # an id the test wrote goes out as written


# ------------------------------------------------------------------ OpenAI: the agent loop


def two_turns(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The model asks for the same call (same id, same arguments) in two turns, then answers."""
    answers = [m for m in messages if m["role"] == "tool"]
    if len(answers) < 2:
        return {"tool_calls": [("c1", "lookup", {"q": "owls"})]}
    return {"content": "done"}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_each_turn_of_the_openai_loop_is_its_own_batch_under_its_response_id(
    api: Api, stream: bool, tmp_path: pathlib.Path
) -> None:
    seen = Seen()
    book = ledger(tmp_path)
    prefix = "chatcmpl-scripted" if api == "chat" else "resp_scripted"

    async def main(server: ScriptedOpenAIServer) -> Any:
        orchestrator = Orchestrator([lookup_tool(seen)], ledger=book)
        user = [{"role": "user", "content": "owls?"}]
        return await run_openai_agent(
            server.client(max_retries=0), "m", user, orchestrator, stream=stream, api=api
        )

    try:
        with ScriptedOpenAIServer(script=two_turns) as server:
            run = asyncio.run(asyncio.wait_for(main(server), GUARD))
        server.assert_done()
    finally:
        book.close()
    assert run.final == "done"
    ids = [b.batch_id for b in run.batches]
    token = ids[0].rpartition("-")[2]
    assert ids == [f"{prefix}-1-{token}", f"{prefix}-2-{token}"]
    # The same call id and arguments in the second turn ran again: not a replay of turn one.
    assert seen.calls == [("owls", ids[0]), ("owls", ids[1])]
    assert [r.replayed for b in run.batches for r in b.results] == [False, False]


def test_a_server_repeating_one_id_does_not_make_the_next_turn_a_replay(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Seen()
    book = ledger(tmp_path)
    same = {**tool_calls(("c1", "lookup", {"q": "owls"})), "id": "chatcmpl-same"}
    steps = [same, same, {**completion("done"), "id": "chatcmpl-same"}]

    async def main(server: ScriptedOpenAIServer) -> Any:
        orchestrator = Orchestrator([lookup_tool(seen)], ledger=book)
        user = [{"role": "user", "content": "owls?"}]
        return await run_openai_agent(server.client(max_retries=0), "m", user, orchestrator)

    try:
        with ScriptedOpenAIServer(*steps) as server, caplog.at_level(logging.WARNING, "toolweave"):
            run = asyncio.run(asyncio.wait_for(main(server), GUARD))
        server.assert_done()
    finally:
        book.close()
    first, second = run.batches
    assert first.batch_id == "chatcmpl-same"
    assert second.batch_id not in ("", "chatcmpl-same")  # the engine named it
    assert [c[1] for c in seen.calls] == [first.batch_id, second.batch_id]
    assert not second.results[0].replayed
    assert "response id 'chatcmpl-same' was already used by a batch of this run" in caplog.text


# ------------------------------------------------------------------ OpenAI: one response twice


def test_running_the_same_recorded_response_twice_calls_the_tool_once(
    tmp_path: pathlib.Path,
) -> None:
    seen = Seen()
    book = ledger(tmp_path)
    with ScriptedOpenAIServer(tool_calls(("c1", "lookup", {"q": "owls"}))) as server:
        answer = server.sync_client(max_retries=0).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "owls?"}]
        )

    async def twice() -> tuple[BatchResult, BatchResult]:
        orchestrator = Orchestrator([lookup_tool(seen)], ledger=book)
        calls = calls_from_openai(answer)
        first = await orchestrator.run(calls, batch_id=answer.id)
        return first, await orchestrator.run(calls, batch_id=answer.id)

    try:
        first, again = asyncio.run(asyncio.wait_for(twice(), GUARD))
    finally:
        book.close()
    assert len(seen.calls) == 1
    assert seen.calls[0][0] == "owls"
    assert seen.calls[0][1].startswith("chatcmpl-scripted-1-")
    assert (first.results[0].replayed, again.results[0].replayed) == (False, True)
    assert again.results[0].output == first.results[0].output == "found owls"


def recorded_stream(api: Api) -> list[dict[str, Any]]:
    """A streamed answer as a server sent it once (one id), to be played twice."""
    if api == "chat":
        body = {**tool_calls(("c1", "lookup", {"q": "owls"})), "id": "chatcmpl-rec"}
        return completion_chunks(body)
    body = {**response(function_calls=[("c1", "lookup", {"q": "owls"})]), "id": "resp_rec"}
    return response_events(body)


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_dispatching_the_same_stream_twice_replays_the_call(
    api: Api, tmp_path: pathlib.Path
) -> None:
    seen = Seen()
    book = ledger(tmp_path)
    events = recorded_stream(api)
    expected = "chatcmpl-rec" if api == "chat" else "resp_rec"

    async def dispatch(server: ScriptedOpenAIServer, orchestrator: Orchestrator) -> Any:
        client = server.client(max_retries=0)
        if api == "chat":
            user = [{"role": "user", "content": "owls?"}]
            stream = await client.chat.completions.create(model="m", messages=user, stream=True)
        else:
            stream = await client.responses.create(model="m", input="owls?", stream=True)
        async with stream:
            return await dispatch_stream(stream, orchestrator)

    async def main(server: ScriptedOpenAIServer) -> tuple[Any, Any]:
        orchestrator = Orchestrator([lookup_tool(seen)], ledger=book)
        return await dispatch(server, orchestrator), await dispatch(server, orchestrator)

    try:
        with ScriptedOpenAIServer(events, events) as server:
            first, again = asyncio.run(asyncio.wait_for(main(server), GUARD))
        server.assert_done()
    finally:
        book.close()
    assert (first.batch_id, again.batch_id) == (expected, expected)
    assert seen.calls == [("owls", expected)]
    assert (first.results[0].replayed, again.results[0].replayed) == (False, True)
    assert again.results[0].output == "found owls"


async def chunks(*items: Any) -> AsyncIterator[Any]:
    for item in items:
        yield item


def chat_chunks(chunk_id: Any) -> list[Any]:
    return [
        {**c, "id": chunk_id}
        for c in completion_chunks(tool_calls(("c1", "lookup", {"q": "owls"})))
    ]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * 1001, id="too-long"),
        pytest.param(12345, id="a-number"),
        pytest.param({"id": "nested"}, id="an-object"),
    ],
)
def test_a_stream_id_that_cannot_name_a_batch_is_ignored(bad: Any) -> None:
    seen = Seen()
    orchestrator = Orchestrator([lookup_tool(seen)])
    result = asyncio.run(dispatch_stream(chunks(*chat_chunks(bad)), orchestrator))
    assert [r.status for r in result.results] == ["ok"]
    assert result.batch_id  # the engine named it
    assert result.batch_id != bad
    assert seen.calls == [("owls", result.batch_id)]


def test_a_responses_stream_is_named_by_the_first_event_that_carries_the_response_id() -> None:
    seen = Seen()
    events = response_events(
        {**response(function_calls=[("c1", "lookup", {"q": "owls"})]), "id": "resp_late"}
    )
    late = [e for e in events if e["type"] not in ("response.created", "response.in_progress")]
    result = asyncio.run(dispatch_stream(chunks(*late), Orchestrator([lookup_tool(seen)])))
    # No event before the call was done named the response: the call did not wait for one.
    assert result.batch_id != "resp_late"
    assert seen.calls == [("owls", result.batch_id)]
    named = asyncio.run(dispatch_stream(chunks(*events), Orchestrator([lookup_tool(seen)])))
    assert named.batch_id == "resp_late"


def test_an_explicit_batch_id_overrides_the_streams_and_a_bad_one_is_refused() -> None:
    seen = Seen()
    orchestrator = Orchestrator([lookup_tool(seen)])
    given = asyncio.run(
        dispatch_stream(chunks(*chat_chunks("chatcmpl-x")), orchestrator, batch_id="mine")
    )
    assert given.batch_id == "mine"
    assert seen.calls == [("owls", "mine")]

    read: list[Any] = []

    async def watched() -> AsyncIterator[Any]:
        for item in chat_chunks("chatcmpl-x"):
            read.append(item)
            yield item

    with pytest.raises(UsageError, match="batch_id must be a non-empty string of at most 1,000"):
        asyncio.run(dispatch_stream(watched(), orchestrator, batch_id=""))
    assert read == []  # refused before the stream was read


# ------------------------------------------------------------------ LangGraph / LangChain


class FakeModel(GenericFakeChatModel):
    """A fake chat model that can be bound to tools."""

    def bind_tools(self, tools: Sequence[Any], **_: Any) -> FakeModel:
        self.__dict__.setdefault("shown", []).append([convert_to_openai_tool(t) for t in tools])
        return self


def fake(*turns: AIMessage) -> FakeModel:
    return FakeModel(messages=iter([*turns, AIMessage(content="done")]))


def ai(message_id: str, *written: tuple[str, str, dict[str, Any]]) -> AIMessage:
    calls = [{"id": i, "name": n, "args": a} for i, n, a in written]
    return AIMessage(content="", tool_calls=calls, id=message_id)


KINDS = ["react", "agent", "graph"]


def graph_of(kind: str, model: FakeModel, tools: list[Any], **options: Any) -> tuple[Any, Any]:
    """The agent as a user builds it, and the object whose ``last_result`` to read."""
    saver = options.pop("checkpointer", None)
    if kind == "react":
        node = ToolweaveNode(tools, **options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # moved to langchain.agents; still supported
            return create_react_agent(model, node, checkpointer=saver), node
    if kind == "agent":
        middleware = ToolweaveMiddleware(**options)
        return create_agent(model, tools, middleware=[middleware], checkpointer=saver), middleware
    node = ToolweaveNode(tools, **options)

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", call_model)
    graph.add_node("tools", node)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=saver), node


def settled(holder: Any, before: BatchResult | None) -> BatchResult:
    """``holder.last_result`` once the batch after ``before`` has ended: a call's task is
    answered as soon as its chain ends, and the batch (its ledger writes) ends just after."""
    deadline = time.monotonic() + GUARD
    while holder.last_result is None or holder.last_result is before:
        assert time.monotonic() < deadline, "the batch did not end"
        time.sleep(0.01)
    result: BatchResult = holder.last_result
    return result


async def asettled(holder: Any, before: BatchResult | None) -> BatchResult:
    async with asyncio.timeout(GUARD):
        # Nothing to wait on: last_result is a plain attribute the batch sets when it ends.
        while holder.last_result is None or holder.last_result is before:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    result: BatchResult = holder.last_result
    return result


@lc_tool
def double(x: int) -> int:
    """Double a number."""
    return 2 * x


@pytest.mark.parametrize("kind", KINDS)
def test_a_langgraph_turn_is_named_by_its_ai_message_id(kind: str) -> None:
    turn = ai("msg-turn-1", ("a", "double", {"x": 2}), ("b", "double", {"x": "${a}"}))
    graph, holder = graph_of(kind, fake(turn), [double])

    async def main() -> tuple[Any, BatchResult]:
        final = await graph.ainvoke({"messages": [HumanMessage("double twice")]})
        return final, await asettled(holder, None)

    final, result = asyncio.run(main())
    answers = {m.tool_call_id: m.content for m in final["messages"] if isinstance(m, ToolMessage)}
    assert answers == {"a": "4", "b": "8"}
    assert result.batch_id == "msg-turn-1"


@pytest.mark.parametrize("given", ["options", "orchestrator"])
def test_a_whole_message_dispatched_twice_to_a_node_with_a_ledger_runs_its_tool_once(
    given: str, tmp_path: pathlib.Path
) -> None:
    ran: list[int] = []

    @lc_tool
    def charge(amount: int) -> dict[str, Any]:
        """Charge a card."""
        ran.append(amount)
        return {"charged": amount}

    book = ledger(tmp_path)
    message = ai("msg-pay", ("c", "charge", {"amount": 5}), ("d", "double", {"x": "${c.charged}"}))
    if given == "options":
        node = ToolweaveNode([charge, double], ledger=book)
    else:  # the ledger of an Orchestrator given to the node is kept
        node = ToolweaveNode(Orchestrator([charge, double], ledger=book))

    async def twice() -> tuple[Any, Any, Any, Any]:
        first = await node.ainvoke({"messages": [message]})
        first_result = await asettled(node, None)
        again = await node.ainvoke({"messages": [message]})
        return first, first_result, again, await asettled(node, first_result)

    try:
        first, first_result, again, again_result = asyncio.run(twice())
    finally:
        book.close()
    assert ran == [5]
    assert [(m.tool_call_id, m.content, m.status) for m in again["messages"]] == [
        (m.tool_call_id, m.content, m.status) for m in first["messages"]
    ]
    assert [m.content for m in again["messages"]] == ['{"charged": 5}', "10"]
    assert first_result is not None
    assert again_result is not None
    assert [r.replayed for r in first_result.results] == [False, False]
    assert [r.replayed for r in again_result.results] == [True, True]
    assert again_result.batch_id == "msg-pay"


def approval_tools(log: list[str]) -> list[Any]:
    @lc_tool
    def price(item: str) -> dict[str, Any]:
        """Price an item."""
        log.append(f"price {item}")
        return {"amount": 42}

    @lc_tool
    def approve(amount: int) -> str:
        """Ask a human to approve an amount."""
        log.append(f"approve {amount}")
        return f"approved {amount}: {interrupt({'approve': amount})}"

    @lc_tool
    def pay(note: str) -> str:
        """Pay."""
        log.append(f"pay {note}")
        return f"paid ({note})"

    return [price, approve, pay]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", KINDS)
def test_an_interrupted_turn_resumes_with_a_ledger(
    kind: str, mode: str, tmp_path: pathlib.Path
) -> None:
    """The interrupted call was answered "waiting for a human" in the batch of the first run;
    the resume is a batch of its own, so the call runs again instead of being replayed."""
    log: list[str] = []
    book = ledger(tmp_path)
    turn = ai(
        "msg-buy",
        ("p", "price", {"item": "book"}),
        ("a", "approve", {"amount": "${p.amount}"}),
        ("y", "pay", {"note": "${a}"}),
    )
    graph, holder = graph_of(
        kind, fake(turn), approval_tools(log), checkpointer=InMemorySaver(), ledger=book
    )
    config = {"configurable": {"thread_id": "t1"}}

    async def both() -> tuple[Any, Any, BatchResult]:
        paused = await graph.ainvoke({"messages": [HumanMessage("buy the book")]}, config)
        before = await asettled(holder, None)
        final = await graph.ainvoke(Command(resume="yes"), config)
        return paused, final, await asettled(holder, before)

    try:
        if mode == "async":
            paused, final, resumed = asyncio.run(both())
        else:
            paused = graph.invoke({"messages": [HumanMessage("buy the book")]}, config)
            before = settled(holder, None)
            final = graph.invoke(Command(resume="yes"), config)
            resumed = settled(holder, before)
    finally:
        book.close()
    assert [i.value for i in paused["__interrupt__"]] == [{"approve": 42}]
    answers = {m.tool_call_id: m.content for m in final["messages"] if isinstance(m, ToolMessage)}
    assert answers["y"] == "paid (approved 42: yes)"
    assert log.count("price book") == 1
    assert log.count("approve 42") == 2  # LangGraph re-runs the interrupted tool
    assert log.count("pay approved 42: yes") == 1
    assert resumed.batch_id == "msg-buy#resume-1"


# ------------------------------------------------------------------ OpenAI Agents SDK


def agent_tool(seen: Seen) -> Any:
    @function_tool
    def find(q: str) -> str:
        """Find something."""
        seen.add(q, "")
        return f"found {q}"

    return find


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_an_agents_sdk_turn_is_named_by_its_model_response_id(
    api: Api, tmp_path: pathlib.Path
) -> None:
    seen = Seen()
    batches: list[BatchResult] = []
    book = ledger(tmp_path)
    # The SDK never runs a call id twice in one run: each turn has its own.
    if api == "responses":
        steps = [response(function_calls=[(c, "find", {"q": "owls"})]) for c in ("c1", "c2")]
        steps.append(response("done"))
    else:
        steps = [tool_calls((c, "find", {"q": "owls"})) for c in ("c1", "c2")]
        steps.append(completion("done"))

    async def main(server: ScriptedOpenAIServer) -> Any:
        client = server.client(max_retries=0)
        model: Any = (
            OpenAIResponsesModel("m", client)
            if api == "responses"
            else OpenAIChatCompletionsModel("m", client)
        )
        both = asyncio.Event()

        def on_batch(result: BatchResult) -> None:
            batches.append(result)
            if len(batches) == 2:
                both.set()

        woven = weave(
            Agent(name="finder", tools=[agent_tool(seen)], model=model),
            on_batch=on_batch,
            ledger=book,
        )
        result = await Runner.run(woven, "owls?")
        # The SDK has each answer as its call's chain ends; the batch ends a moment later
        # (its ledger record is already on its way): wait for it before the loop closes.
        await asyncio.wait_for(both.wait(), 30)
        return result

    try:
        with ScriptedOpenAIServer(*steps) as server:
            result = asyncio.run(asyncio.wait_for(main(server), GUARD))
        server.assert_done()
    finally:
        book.close()
    assert result.final_output == "done"
    first, second = batches
    if api == "responses":
        assert first.batch_id.startswith("resp_scripted-1-")
        assert second.batch_id.startswith("resp_scripted-2-")
    else:  # the SDK's Chat Completions model gives no response id: the engine names them
        assert first.batch_id
        assert second.batch_id not in ("", first.batch_id)
        assert not first.batch_id.startswith("chatcmpl")
    assert [q for q, _ in seen.calls] == ["owls", "owls"]
    assert [r.replayed for b in batches for r in b.results] == [False, False]


def test_a_node_keeps_what_its_toolweave_tools_declare_about_side_effects() -> None:
    """reads/writes order calls, idempotent merges them, and a CallContext reaches the tool,
    through ToolweaveNode as through the Orchestrator."""
    spans: dict[str, tuple[float, float]] = {}
    searched: list[str] = []

    @tool(writes=lambda a: a["path"])
    async def write_file(path: str, text: str) -> str:
        """Write a file."""
        start = time.perf_counter()
        await asyncio.sleep(0.05)
        spans[text] = (start, time.perf_counter())
        return "written"

    @tool(idempotent=True)
    async def search(q: str, ctx: CallContext) -> dict[str, str]:
        """Search."""
        searched.append(q)
        return {"q": q, "batch": ctx.batch_id, "key": ctx.idempotency_key}

    node = ToolweaveNode(Orchestrator([write_file, search]))
    message = ai(
        "msg-fx",
        ("a", "write_file", {"path": "f", "text": "one"}),
        ("b", "write_file", {"path": "f", "text": "two"}),
        ("c", "search", {"q": "owls"}),
        ("d", "search", {"q": "owls"}),
    )

    async def main() -> tuple[Any, BatchResult | None]:
        out = await node.ainvoke({"messages": [message]})
        return out, await asettled(node, None)

    out, result = asyncio.run(main())
    assert result is not None
    assert result.plan.orderings == {"b": ["a"]}
    assert spans["one"][1] <= spans["two"][0]  # the two writes of one file never overlap
    assert searched == ["owls"]
    assert result.get("d").deduplicated_from == "c"
    answers = {m.tool_call_id: m for m in out["messages"]}
    assert '"batch": "msg-fx"' in answers["c"].content
    assert '"key": "tw-' in answers["c"].content
    assert answers["d"].content == answers["c"].content  # merged: the same answer
    assert answers["d"].status == "success"
