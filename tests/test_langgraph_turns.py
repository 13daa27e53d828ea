"""One AI message, one toolweave batch, even when LangGraph sends each call to the tool node
on its own: references and order across the calls' tasks, interrupts that hold dependents
and never re-run finished calls (in this process or, through the checkpointer, another),
thread pools smaller than the batch, toolweave's middleware and decider, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ToolRetryMiddleware
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool as lc_tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command, interrupt
from tenacity import wait_none

from toolweave import Decision, SkipCall, UsageError, policies, tool
from toolweave.adapters._turns import ARRIVAL_GRACE
from toolweave.adapters.langchain import (
    ToolweaveMiddleware,
    ToolweaveNode,
    as_langchain_tools,
    reference_instructions,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from langgraph.prebuilt import create_react_agent


class FakeModel(GenericFakeChatModel):
    """A fake chat model that can be bound to tools (and remembers what it was shown)."""

    def bind_tools(self, tools: Sequence[Any], **_: Any) -> FakeModel:
        self.__dict__.setdefault("shown", []).append([convert_to_openai_tool(t) for t in tools])
        return self


def model(*turns: AIMessage) -> FakeModel:
    return FakeModel(messages=iter([*turns, AIMessage(content="done")]))


def calls(*written: tuple[str, str, dict[str, Any]]) -> AIMessage:
    return AIMessage(
        content="", tool_calls=[{"id": i, "name": n, "args": a} for i, n, a in written]
    )


class Log:
    """What the tools did, in order, from any thread."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self._lock = threading.Lock()

    def add(self, event: str) -> None:
        with self._lock:
            self.events.append(event)


KINDS = ["react-sync", "react-async", "agent-sync", "agent-async", "graph-sync", "graph-async"]


def agent(kind: str, fake: FakeModel, tools: list[Any], **options: Any) -> Any:
    """The agent as a user builds it, toolweave adopted in one line."""
    saver = options.pop("checkpointer", None)
    if kind.startswith("react"):
        return create_react_agent(fake, ToolweaveNode(tools, **options), checkpointer=saver)
    if kind.startswith("agent"):
        middleware = [ToolweaveMiddleware(**options)]
        return create_agent(fake, tools, middleware=middleware, checkpointer=saver)
    node = ToolweaveNode(tools, **options)

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [fake.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", call_model)
    graph.add_node("tools", node)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=saver)


def invoke(kind: str, graph: Any, value: Any, config: dict[str, Any] | None = None) -> Any:
    if kind.endswith("async"):
        return asyncio.run(graph.ainvoke(value, config))
    return graph.invoke(value, config)


def tool_messages(state: dict[str, Any]) -> dict[str, ToolMessage]:
    return {m.tool_call_id: m for m in state["messages"] if isinstance(m, ToolMessage)}


def search_and_fetch(log: Log) -> list[Any]:
    @lc_tool
    def search(query: str) -> dict[str, Any]:
        """Search the web."""
        log.add(f"search {query} start")
        time.sleep(0.02)
        log.add(f"search {query} end")
        return {"hits": [{"url": f"https://example.org/{query}"}]}

    @lc_tool
    def fetch(url: str) -> str:
        """Fetch a page."""
        log.add(f"fetch {url}")
        return f"<p>{url}</p>"

    return [search, fetch]


@pytest.mark.parametrize("kind", KINDS)
def test_a_dependent_call_starts_after_its_dependency_and_gets_its_output(kind: str) -> None:
    log = Log()
    fake = model(
        calls(
            ("f", "fetch", {"url": "${s.hits[0].url}"}),  # written first, runs second
            ("s", "search", {"query": "owls"}),
            ("p", "fetch", {"url": "${2.hits[0].url}"}),  # by position
        )
    )
    final = invoke(
        kind, agent(kind, fake, search_and_fetch(log)), {"messages": [HumanMessage("owls")]}
    )
    answers = tool_messages(final)
    assert answers["f"].content == answers["p"].content == "<p>https://example.org/owls</p>"
    assert log.events.index("search owls end") < log.events.index("fetch https://example.org/owls")
    assert log.events.count("search owls start") == 1
    assert final["messages"][-1].content == "done"


@pytest.mark.parametrize("kind", KINDS)
def test_the_model_is_shown_tools_that_take_references(kind: str) -> None:
    fake = model()
    invoke(kind, agent(kind, fake, search_and_fetch(Log())), {"messages": [HumanMessage("hi")]})
    if kind.startswith("graph"):
        node = ToolweaveNode(search_and_fetch(Log()))
        shown = [convert_to_openai_tool(t) for t in node.tools_by_name.values()]
    else:
        shown = fake.__dict__["shown"][-1]
    by_name = {t["function"]["name"]: t["function"] for t in shown}
    assert "${N.path}" in by_name["fetch"]["description"]
    assert by_name["fetch"]["parameters"]["properties"]["url"] == {"type": "string"}


def test_non_string_parameters_accept_a_reference_and_get_the_value() -> None:
    seen: list[Any] = []

    @lc_tool
    def count(n: int) -> int:
        """Count."""
        seen.append(n)
        return n + 1

    node = ToolweaveNode([count])
    [spec] = [convert_to_openai_tool(t) for t in node.tools_by_name.values()]
    assert {"type": "string"} in spec["function"]["parameters"]["properties"]["n"]["anyOf"]
    out = node.invoke(calls(("a", "count", {"n": 1}), ("b", "count", {"n": "${a}"})))
    assert [m.content for m in out] == ["2", "3"]
    assert seen == [1, 2]
    plain = ToolweaveNode([count], references=False)
    [spec] = [convert_to_openai_tool(t) for t in plain.tools_by_name.values()]
    assert spec["function"]["parameters"]["properties"]["n"]["type"] == "integer"


def test_as_langchain_tools_can_advertise_references() -> None:
    @tool
    def double(n: int) -> int:
        """Double a number."""
        return 2 * n

    [plain] = as_langchain_tools([double])
    [referring] = as_langchain_tools([double], references=True)
    assert convert_to_openai_tool(plain)["function"]["parameters"]["properties"]["n"]["type"] == (
        "integer"
    )
    spec = convert_to_openai_tool(referring)["function"]
    assert {"type": "string"} in spec["parameters"]["properties"]["n"]["anyOf"]
    assert "reference" in spec["description"]
    assert asyncio.run(referring.ainvoke({"n": 4})) == 8
    assert "${N.field[0].name}" in reference_instructions()


# ------------------------------------------------------------------ interrupts


def approval_tools(log: Log) -> list[Any]:
    @lc_tool
    def price(item: str) -> dict[str, Any]:
        """Price an item."""
        log.add(f"price {item}")
        return {"amount": 42}

    @lc_tool
    def approve(amount: int) -> str:
        """Ask a human to approve an amount."""
        log.add(f"approve {amount}")
        answer = interrupt({"approve": amount})
        return f"approved {amount}: {answer}"

    @lc_tool
    def pay(note: str) -> str:
        """Pay."""
        log.add(f"pay {note}")
        return f"paid ({note})"

    return [price, approve, pay]


APPROVAL_TURN = calls(
    ("p", "price", {"item": "book"}),
    ("a", "approve", {"amount": "${p.amount}"}),
    ("y", "pay", {"note": "${a}"}),
)


RESUMES = [
    pytest.param(kind, by, id=f"{by}-{kind}")
    for kind in KINDS
    for by in ("same-agent", "new-agent-same-checkpointer")
    if not (kind.startswith("graph") and by != "same-agent")  # see the test after this one
]


@pytest.mark.parametrize(("kind", "resumed_by"), RESUMES)
def test_an_interrupt_holds_its_dependents_and_finished_calls_never_run_again(
    kind: str, resumed_by: str
) -> None:
    log = Log()
    saver = InMemorySaver()
    fake = model(APPROVAL_TURN)
    graph = agent(kind, fake, approval_tools(log), checkpointer=saver)
    config = {"configurable": {"thread_id": "t1"}}
    paused = invoke(kind, graph, {"messages": [HumanMessage("buy the book")]}, config)
    assert [i.value for i in paused["__interrupt__"]] == [{"approve": 42}]
    assert "pay approved 42: yes" not in log.events
    if resumed_by != "same-agent":
        graph = agent(kind, fake, approval_tools(log), checkpointer=saver)
    final = invoke(kind, graph, Command(resume="yes"), config)
    answers = tool_messages(final)
    assert answers["y"].content == "paid (approved 42: yes)"
    assert log.events.count("price book") == 1  # finished before the interrupt: not again
    assert log.events.count("approve 42") == 2  # LangGraph re-runs the interrupted tool
    assert log.events.count("pay approved 42: yes") == 1
    assert [type(m).__name__ for m in final["messages"]][-1] == "AIMessage"


@pytest.mark.parametrize("kind", ["graph-sync", "graph-async"])
def test_a_whole_message_node_in_another_process_runs_finished_calls_again(kind: str) -> None:
    """A node given the whole AI message loses its writes when one call interrupts (LangGraph
    keeps no writes of an interrupted task), so toolweave keeps finished calls in memory: a
    node built anew (another process, say) runs them again, as ToolNode always does."""
    log = Log()
    saver = InMemorySaver()
    fake = model(APPROVAL_TURN)
    config = {"configurable": {"thread_id": "t1"}}
    invoke(
        kind, agent(kind, fake, approval_tools(log), checkpointer=saver), {"messages": []}, config
    )
    graph = agent(kind, fake, approval_tools(log), checkpointer=saver)
    final = invoke(kind, graph, Command(resume="yes"), config)
    assert tool_messages(final)["y"].content == "paid (approved 42: yes)"
    assert log.events.count("price book") == 2


# ------------------------------------------------------------------ liveness


@lc_tool
def plus_one(x: int) -> int:
    """Add one."""
    time.sleep(0.005)
    return x + 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_thread_pool_smaller_than_the_batch_does_not_deadlock(mode: str) -> None:
    # Eleven calls wait for the twelfth: LangGraph's pool (max_concurrency) runs fewer tasks
    # than that at once, so the batch runs the twelfth itself.
    n = 12
    turn = [{"id": f"c{i}", "name": "plus_one", "args": {"x": f"${{{n}}}"}} for i in range(1, n)]
    turn.append({"id": f"c{n}", "name": "plus_one", "args": {"x": 0}})
    graph = create_react_agent(
        model(AIMessage(content="", tool_calls=turn)), ToolweaveNode([plus_one])
    )
    config = {"max_concurrency": 2}
    value = {"messages": [HumanMessage("go")]}
    final = (
        asyncio.run(graph.ainvoke(value, config))
        if mode == "async"
        else graph.invoke(value, config)
    )
    answers = tool_messages(final)
    assert [answers[f"c{i}"].content for i in range(1, n + 1)] == ["2"] * (n - 1) + ["1"]


# ------------------------------------------------------------------ toolweave's own options


# Not agent-sync: create_agent's ToolNode cannot run an async tool under invoke().
@pytest.mark.parametrize("kind", ["react-async", "react-sync", "agent-async", "graph-sync"])
def test_toolweave_middleware_and_timeouts_apply_to_each_call(kind: str) -> None:
    @lc_tool
    async def slow(seconds: float) -> str:
        """Sleep."""
        await asyncio.sleep(seconds)
        return "woke"

    @lc_tool
    def secret(name: str) -> str:
        """Read a secret."""
        return "s3cr3t"

    async def no_secrets(request: Any, call_next: Any) -> Any:
        if request.tool.name == "secret":
            raise SkipCall("secrets are not for models")
        return await call_next(request)

    fake = model(
        calls(
            ("s", "slow", {"seconds": 30}),
            ("q", "secret", {"name": "x"}),
            ("f", "slow", {"seconds": 0}),
        )
    )
    options = {"middleware": [no_secrets, policies.timeout(0.5)]}
    started = time.monotonic()
    final = invoke(
        kind, agent(kind, fake, [slow, secret], **options), {"messages": [HumanMessage("x")]}
    )
    assert time.monotonic() - started < 20  # the 30 s sleep was cut short
    answers = tool_messages(final)
    assert answers["s"].status == "error"
    assert "timed out" in str(answers["s"].content)
    assert answers["q"].status == "error"
    assert "secrets are not for models" in str(answers["q"].content)
    assert (answers["f"].status, answers["f"].content) == ("success", "woke")


@pytest.mark.parametrize("kind", ["react-sync", "agent-async"])
def test_a_decider_can_stop_the_rest_of_the_turn(kind: str) -> None:
    log = Log()

    def stop_after_search(context: Any) -> Decision:
        return Decision(action="stop", reason="enough")

    fake = model(
        calls(("s", "search", {"query": "x"}), ("f", "fetch", {"url": "${s.hits[0].url}"}))
    )
    graph = agent(kind, fake, search_and_fetch(log), decider=stop_after_search)
    answers = tool_messages(invoke(kind, graph, {"messages": [HumanMessage("x")]}))
    assert answers["s"].status == "success"
    assert answers["f"].status == "error"
    assert "enough" in str(answers["f"].content)
    assert not any(e.startswith("fetch") for e in log.events)


def test_a_toolweave_tools_own_retries_apply_in_the_node() -> None:
    attempts: list[int] = []

    @tool(retries=2, retry_wait=wait_none())
    def flaky() -> str:
        """Fail twice, then work."""
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "worked"

    graph = create_react_agent(model(calls(("f", "flaky", {}))), ToolweaveNode([flaky]))
    answers = tool_messages(graph.invoke({"messages": [HumanMessage("x")]}))
    assert (answers["f"].status, answers["f"].content, len(attempts)) == ("success", "worked", 3)


# ------------------------------------------------------------------ misuse and cancellation


def test_create_agent_given_a_node_says_to_use_the_middleware() -> None:
    with pytest.raises(TypeError, match=r"middleware=\[ToolweaveMiddleware\(\)\]"):
        create_agent(model(), ToolweaveNode(search_and_fetch(Log())))  # type: ignore[arg-type]


def test_bad_options_are_refused_when_written() -> None:
    with pytest.raises(UsageError, match="max_concurrency"):
        ToolweaveMiddleware(max_concurrency=0)
    with pytest.raises(UsageError, match="max_concurrency"):
        ToolweaveNode(search_and_fetch(Log()), max_concurrency=-1)
    with pytest.raises(UsageError):
        ToolweaveMiddleware(middleware=[policies.timeout])  # the factory, not a policy


def test_cancelling_the_graph_cancels_the_turn() -> None:
    started = threading.Event()

    @lc_tool
    async def hang() -> str:
        """Never return."""
        started.set()
        await asyncio.sleep(3600)
        return "never"

    @lc_tool
    def after(x: str) -> str:
        """Runs after hang."""
        raise AssertionError("must not run")

    node = ToolweaveNode([hang, after])
    graph = create_react_agent(model(calls(("h", "hang", {}), ("a", "after", {"x": "${h}"}))), node)

    async def main() -> None:
        task = asyncio.ensure_future(graph.ainvoke({"messages": [HumanMessage("x")]}))
        await asyncio.to_thread(started.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(200):  # the batch winds down on its own loop
            if not node._turns._open:
                break
            await asyncio.sleep(0.01)
        assert not node._turns._open

    asyncio.run(main())


# ------------------------------------------------------------------ any DAG a model writes


@st.composite
def dags(draw: st.DrawFn) -> list[tuple[int, list[int]]]:
    n = draw(st.integers(1, 7))
    out = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        deps = draw(st.lists(st.sampled_from(others), unique=True, max_size=2)) if others else []
        out.append((i, deps))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dag=dags(), mode=st.sampled_from(["sync", "async"]))
def test_every_call_of_any_turn_gets_one_answer_in_order(
    dag: list[tuple[int, list[int]]], mode: str
) -> None:
    @lc_tool
    def total(parts: list[int], own: int) -> int:
        """Sum the parts and add one's own."""
        return sum(parts) + own

    written = [
        {"id": f"c{i}", "name": "total", "args": {"parts": [f"${{c{j}}}" for j in deps], "own": 1}}
        for i, deps in dag
    ]
    graph = create_react_agent(
        model(AIMessage(content="", tool_calls=written)), ToolweaveNode([total])
    )
    value = {"messages": [HumanMessage("go")]}
    final = asyncio.run(graph.ainvoke(value)) if mode == "async" else graph.invoke(value)
    answers = [m for m in final["messages"] if isinstance(m, ToolMessage)]
    assert sorted(m.tool_call_id for m in answers) == sorted(c["id"] for c in written)
    expected: dict[int, int | None] = {}

    def value_of(i: int, seen: frozenset[int] = frozenset()) -> int | None:
        if i in seen:
            return None  # a cycle: the planner refuses the calls on it
        if i not in expected:
            parts = [value_of(j, seen | {i}) for j in dag[i][1]]
            expected[i] = None if None in parts else sum(p for p in parts if p is not None) + 1
        return expected[i]

    by_id = {m.tool_call_id: m for m in answers}
    for i, _ in dag:
        want = value_of(i)
        got = by_id[f"c{i}"]
        if want is None:
            assert got.status == "error"
        else:
            assert (got.status, got.content) == ("success", str(want))


def test_toolnode_is_still_what_runs_each_call() -> None:
    """The node is a ToolNode: isinstance checks in user code and in LangGraph hold."""
    node = ToolweaveNode(search_and_fetch(Log()))
    assert isinstance(node, ToolNode)
    assert node.name == "tools"


def test_concurrent_turns_with_the_same_call_ids_stay_apart() -> None:
    """Fake models, and some real ones, reuse ids like "c1" in every response."""

    @lc_tool
    async def echo(x: int) -> int:
        """Echo after a moment."""
        await asyncio.sleep(0.02)
        return x

    node = ToolweaveNode([echo])

    def turn_of(x: int) -> AIMessage:
        return calls(("c1", "echo", {"x": x}), ("c2", "echo", {"x": "${c1}"}))

    async def main() -> None:
        direct = await asyncio.gather(*(node.ainvoke([turn_of(x)]) for x in range(5)))
        assert [[m.content for m in out] for out in direct] == [[str(x)] * 2 for x in range(5)]
        graphs = [create_react_agent(model(turn_of(x)), node) for x in range(5)]
        finals = await asyncio.gather(
            *(g.ainvoke({"messages": [HumanMessage("x")]}) for g in graphs)
        )
        for x, final in enumerate(finals):
            assert {k: m.content for k, m in tool_messages(final).items()} == {
                "c1": str(x),
                "c2": str(x),
            }

    asyncio.run(main())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_tool_raising_system_exit_leaves_no_batch_behind(mode: str) -> None:
    @lc_tool
    def quit_now(code: int) -> str:
        """Exit."""
        raise SystemExit(code)

    node = ToolweaveNode([quit_now])
    turn = calls(("q", "quit_now", {"code": 3}), ("after", "quit_now", {"code": "${q}"}))

    def run() -> Any:
        return node.invoke(turn) if mode == "sync" else asyncio.run(node.ainvoke(turn))

    with pytest.raises(SystemExit):
        run()
    for _ in range(200):  # the batch ends on its own thread or loop
        if not any(t.name == "toolweave-langgraph-turn" for t in threading.enumerate()):
            break
        time.sleep(0.01)
    assert not any(t.name == "toolweave-langgraph-turn" for t in threading.enumerate())


@pytest.mark.parametrize("kind", ["react-async", "agent-sync"])
def test_many_turns_leave_nothing_behind_but_the_last_result(kind: str) -> None:
    @lc_tool
    def big(n: int) -> str:
        """A big output."""
        return "x" * 100_000

    big_turn = calls(("a", "big", {"n": 1}), ("b", "big", {"n": "${a}"}))
    fake = model(*[big_turn, AIMessage(content="ok")] * 60)
    host: Any
    if kind.startswith("react"):
        host = ToolweaveNode([big])
        graph = create_react_agent(fake, host)
    else:
        host = ToolweaveMiddleware()
        graph = create_agent(fake, [big], middleware=[host])
    for _ in range(60):
        invoke(kind, graph, {"messages": [HumanMessage("go")]})
    assert host.last_result is not None
    assert (host._turns._open, host._turns._memo) == ({}, {})
    closed = host._turns._closed  # what a late task needs: no outputs
    assert len(closed) <= 64
    assert all(not t.members and t.result is None for t in closed.values())


# ------------------------------------------------------------------ middleware before toolweave


class Guard(AgentMiddleware[Any, Any]):
    """A policy before toolweave: answers delete_all itself, never running it."""

    def wrap_tool_call(self, request: Any, handler: Any) -> Any:
        if request.tool_call["name"] == "delete_all":
            return ToolMessage("blocked", tool_call_id=request.tool_call["id"], status="error")
        return handler(request)


class Sandbox(AgentMiddleware[Any, Any]):
    """Rewrites every path before toolweave sees it."""

    def wrap_tool_call(self, request: Any, handler: Any) -> Any:
        call = request.tool_call
        return handler(
            request.override(tool_call={**call, "args": {"path": "/box" + call["args"]["path"]}})
        )


def test_a_middleware_before_toolweave_is_obeyed() -> None:
    done: list[str] = []

    @lc_tool
    def delete_all(path: str) -> str:
        """Delete everything."""
        done.append(f"deleted {path}")
        return "deleted"

    @lc_tool
    def ls(path: str) -> str:
        """List a folder."""
        done.append(f"ls {path}")
        return f"files in {path}"

    turn = calls(("d", "delete_all", {"path": "/"}), ("l", "ls", {"path": "/etc"}))
    guarded = create_agent(
        model(turn), [ls, delete_all], middleware=[Guard(), ToolweaveMiddleware()]
    )
    answers = tool_messages(guarded.invoke({"messages": [HumanMessage("x")]}))
    time.sleep(ARRIVAL_GRACE + 0.5)  # a call that never came is not run later either
    assert (answers["d"].content, done) == ("blocked", ["ls /etc"])
    boxed = create_agent(
        model(calls(("l", "ls", {"path": "/etc"}))),
        [ls],
        middleware=[Sandbox(), ToolweaveMiddleware()],
    )
    answers = tool_messages(boxed.invoke({"messages": [HumanMessage("x")]}))
    assert answers["l"].content == "files in /box/etc"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_retry_middleware_before_toolweave_runs_only_the_failed_call_again(mode: str) -> None:
    runs: list[str] = []

    @lc_tool
    def flaky(x: str) -> str:
        """Fail once."""
        runs.append("flaky")
        if runs.count("flaky") == 1:
            raise ConnectionError("try again")
        return "ok"

    @lc_tool
    def charge(amount: int) -> str:
        """Charge a card."""
        runs.append("charge")
        return f"charged {amount}"

    retry = ToolRetryMiddleware(max_retries=2, initial_delay=0, jitter=False)
    turn = calls(("f", "flaky", {"x": "1"}), ("c", "charge", {"amount": 100}))
    graph = create_agent(model(turn), [flaky, charge], middleware=[retry, ToolweaveMiddleware()])
    answers = tool_messages(invoke(f"agent-{mode}", graph, {"messages": [HumanMessage("x")]}))
    assert (answers["f"].content, answers["c"].content) == ("ok", "charged 100")
    assert sorted(runs) == ["charge", "flaky", "flaky"]


@pytest.mark.parametrize("kind", ["react-sync", "agent-async"])
def test_call_ids_reused_by_the_next_turn_are_that_turns_own(kind: str) -> None:
    @lc_tool
    def weather(city: str) -> str:
        """The weather."""
        return f"weather in {city}"

    @lc_tool
    def say(text: str) -> str:
        """Say something."""
        return f"said: {text}"

    first = calls(("call_0", "weather", {"city": "Paris"}), ("call_1", "say", {"text": "hi"}))
    second = calls(
        ("call_0", "weather", {"city": "Tokyo"}), ("call_1", "say", {"text": "${call_0}"})
    )
    graph = agent(kind, model(first, second), [weather, say])
    final = invoke(kind, graph, {"messages": [HumanMessage("x")]})
    contents = [m.content for m in final["messages"] if isinstance(m, ToolMessage)]
    assert contents == [
        "weather in Paris",
        "said: hi",
        "weather in Tokyo",
        "said: weather in Tokyo",
    ]


@pytest.mark.parametrize("kind", ["graph-sync", "graph-async"])
def test_chained_interrupts_in_one_node_get_their_own_answers(kind: str) -> None:
    @lc_tool
    def ask(question: str) -> str:
        """Ask a human."""
        return f"{question} -> {interrupt(question)}"

    turn = calls(
        ("a1", "ask", {"question": "first?"}), ("a2", "ask", {"question": "${a1}, second?"})
    )
    graph = agent(kind, model(turn), [ask], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    paused = invoke(kind, graph, {"messages": [HumanMessage("x")]}, config)
    assert [i.value for i in paused["__interrupt__"]] == ["first?"]
    paused = invoke(kind, graph, Command(resume="A"), config)
    assert [i.value for i in paused["__interrupt__"]] == ["first? -> A, second?"]
    final = invoke(kind, graph, Command(resume="B"), config)
    assert tool_messages(final)["a2"].content == "first? -> A, second? -> B"
