"""The OpenAI Agents SDK adapter: ``weave(agent)`` runs the function calls of each model turn as
one toolweave batch. Every test runs the real ``openai-agents`` runner against
``ScriptedOpenAIServer`` on 127.0.0.1 (Responses and Chat Completions models, streamed and
not), with the SDK's own trace export switched off."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any, Literal

import agents
import pytest
from agents import (
    Agent,
    FunctionTool,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    ToolGuardrailFunctionOutput,
    WebSearchTool,
    function_tool,
    tool_input_guardrail,
    tool_output_guardrail,
)
from agents.exceptions import UserError
from agents.run_config import ToolExecutionConfig
from agents.tracing import TracingProcessor, custom_span
from agents.tracing.processors import default_processor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from toolweave import BatchResult, Decision, UsageError
from toolweave.adapters import agents as agents_adapter
from toolweave.adapters.agents import reference_instructions, weave
from toolweave.testing import (
    ScriptedDecider,
    ScriptedOpenAIServer,
    completion,
    response,
    tool_calls,
)

agents.set_tracing_disabled(True)  # the SDK's own traces would go to api.openai.com

ROOT = pathlib.Path(__file__).resolve().parent.parent
Api = Literal["responses", "chat"]
Call = tuple[str, str, "dict[str, Any] | str"]


# ---------------------------------------------------------------- helpers


def research_tools(fetched: list[str]) -> tuple[FunctionTool, FunctionTool]:
    """``search`` returns two hits per query; ``fetch`` records every url it is given."""

    @function_tool
    def search(query: str, limit: int = 2) -> dict[str, Any]:
        """Search the web; returns ranked hits."""
        return {"hits": [{"url": f"https://example.org/{query}/{i}"} for i in range(limit)]}

    @function_tool
    async def fetch(url: str) -> str:
        """Fetch a page."""
        fetched.append(url)
        return f"<html>{url}</html>"

    return search, fetch


def model_turn(api: Api, *calls: Call) -> dict[str, Any]:
    return response(function_calls=calls) if api == "responses" else tool_calls(*calls)


def model_answer(api: Api, text: str) -> dict[str, Any]:
    return response(text) if api == "responses" else completion(text)


def model_for(server: ScriptedOpenAIServer, api: Api) -> Any:
    if api == "responses":
        return OpenAIResponsesModel("scripted", server.client())
    return OpenAIChatCompletionsModel("scripted", server.client())


def outputs(request: dict[str, Any]) -> dict[str, str]:
    """Call id -> the tool output a model request carries (either API)."""
    if "input" in request:
        return {
            i["call_id"]: i["output"]
            for i in request["input"]
            if isinstance(i, dict) and i.get("type") == "function_call_output"
        }
    return {m["tool_call_id"]: m["content"] for m in request["messages"] if m["role"] == "tool"}


def shown_tools(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Name -> the function tool a model request offers, in one shape for both APIs."""
    shown = {}
    for t in request.get("tools") or []:
        if t.get("type") != "function":
            shown[t["type"]] = t
            continue
        body = t.get("function", t)
        shown[body["name"]] = body
    return shown


async def run(agent: Agent[Any], text: str, *, streamed: bool = False, **options: Any) -> Any:
    if streamed:
        result = Runner.run_streamed(agent, text, **options)
        async for _ in result.stream_events():
            pass
        return result
    return await Runner.run(agent, text, **options)


def batches() -> tuple[list[BatchResult], Callable[[BatchResult], None]]:
    seen: list[BatchResult] = []
    return seen, seen.append


REFERENCE_TURN: tuple[Call, ...] = (
    ("c1", "search", {"query": "graphs", "limit": 2}),
    ("c2", "fetch", {"url": "${1.hits[1].url}"}),
)


# ---------------------------------------------------------------- the two-turn run


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
@pytest.mark.parametrize("api", ["responses", "chat"])
def test_a_reference_in_the_first_turn_is_resolved_and_both_outputs_reach_the_model(
    api: Api, streamed: bool
) -> None:
    fetched: list[str] = []
    seen, keep = batches()
    steps = [model_turn(api, *REFERENCE_TURN), model_answer(api, "Page 1 is about graphs.")]

    async def main(server: ScriptedOpenAIServer) -> Any:
        agent = Agent(name="researcher", tools=list(research_tools(fetched)))
        woven = weave(agent.clone(model=model_for(server, api)), on_batch=keep)
        return await run(woven, "Read about graphs", streamed=streamed)

    with ScriptedOpenAIServer(*steps) as server:
        result = asyncio.run(main(server))
        server.assert_done()

    assert result.final_output == "Page 1 is about graphs."
    assert fetched == ["https://example.org/graphs/1"]  # resolved, not "${1.hits[1].url}"
    second = outputs(server.requests[1])
    assert second["c2"] == "<html>https://example.org/graphs/1</html>"
    assert "https://example.org/graphs/0" in second["c1"]
    [batch] = seen
    assert batch.plan.groups == [["c1"], ["c2"]]
    assert [(r.call_id, r.status) for r in batch.results] == [("c1", "ok"), ("c2", "ok")]


def test_without_weave_the_sdk_passes_the_reference_literally() -> None:
    """The behaviour weave() fixes, pinned so a change in the SDK shows up here."""
    fetched: list[str] = []
    steps = [model_turn("responses", *REFERENCE_TURN), model_answer("responses", "done")]
    with ScriptedOpenAIServer(*steps) as server:
        agent = Agent(
            name="plain",
            tools=list(research_tools(fetched)),
            model=model_for(server, "responses"),
        )
        asyncio.run(run(agent, "Read about graphs"))
    assert fetched == ["${1.hits[1].url}"]


# ---------------------------------------------------------------- what the model is shown


def test_the_model_sees_the_same_tools_whose_parameters_also_take_references() -> None:
    search, fetch = research_tools([])

    @function_tool(strict_mode=False)
    def tag(labels: list[str], weight: float | None = None) -> str:
        """Tag the page."""
        return ",".join(labels)

    steps = [model_answer("chat", "nothing to do"), model_answer("chat", "nothing to do")]
    with ScriptedOpenAIServer(*steps) as server:
        plain = Agent(name="a", tools=[search, fetch, tag], model=model_for(server, "chat"))
        asyncio.run(run(weave(plain), "hi"))
        asyncio.run(run(weave(plain, references=False), "hi"))
    shown, unchanged = (shown_tools(r) for r in server.requests)

    assert list(shown) == ["search", "fetch", "tag"]
    for original in (search, fetch, tag):
        body = shown[original.name]
        assert body["description"].startswith(original.description + "\n\n")
        assert '"${N.path}"' in body["description"]
        assert body["strict"] is original.strict_json_schema
        assert unchanged[original.name]["description"] == original.description
        assert unchanged[original.name]["parameters"] == original.params_json_schema
    search_params = shown["search"]["parameters"]
    assert search_params["properties"]["query"] == search.params_json_schema["properties"]["query"]
    assert search_params["properties"]["limit"]["anyOf"] == [
        {"type": "integer"},
        {"type": "string"},
    ]
    assert search_params["required"] == ["query", "limit"]
    assert search_params["additionalProperties"] is False
    weight = shown["tag"]["parameters"]["properties"]["weight"]["anyOf"]
    assert weight == [{"type": "number"}, {"type": "null"}, {"type": "string"}]  # one level
    assert "${" in reference_instructions()


def test_weave_keeps_the_agent_and_its_tools_as_they_were() -> None:
    search, fetch = research_tools([])
    agent = Agent(name="a", instructions="Be brief.", tools=[search, fetch])
    woven = weave(agent)
    assert woven is not agent
    assert agent.tools == [search, fetch]
    assert agent.hooks is None
    assert woven.instructions == "Be brief."
    assert [t.name for t in woven.tools] == ["search", "fetch"]
    assert search.description == "Search the web; returns ranked hits."


# ---------------------------------------------------------------- answers without running


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_a_bad_reference_and_a_failing_tool_are_answered_to_the_model(api: Api) -> None:
    fetched: list[str] = []
    search, fetch = research_tools(fetched)

    @function_tool
    def explode(reason: str) -> str:
        """Always fails."""
        raise ValueError(f"boom: {reason}")

    turn = model_turn(
        api,
        ("c1", "search", {"query": "graphs"}),
        ("c2", "fetch", {"url": "${1.hits[9].url}"}),  # there are two hits
        ("c3", "explode", {"reason": "test"}),
        ("c4", "fetch", {"url": "${c3}"}),
        ("c5", "fetch", {"url": "${c9.url}"}),  # no such call
        ("c6", "fetch", '{"url": '),  # cut off
    )
    with ScriptedOpenAIServer(turn, model_answer(api, "sorry")) as server:
        agent = Agent(name="a", tools=[search, fetch, explode], model=model_for(server, api))
        result = asyncio.run(run(weave(agent), "go"))
        server.assert_done()

    assert result.final_output == "sorry"
    assert fetched == []
    told = outputs(server.requests[1])
    assert told["c2"].startswith("Error: call 'c2' (fetch): reference '${1.hits[9].url}' found")
    assert "https://example.org/graphs/1" in told["c2"]  # shows the output to fix the path
    assert told["c3"] == "An error occurred while running the tool. Please try again."
    assert told["c4"].startswith("Not run: ")
    assert "c3" in told["c4"]
    assert told["c5"].startswith("Error: call 'c5' (fetch): ")
    assert "c9" in told["c5"]
    assert told["c6"].startswith("Error: call 'c6' (fetch): ")
    assert "JSON" in told["c6"]


def test_a_tool_without_a_failure_function_fails_the_run_as_it_does_without_weave() -> None:
    @function_tool(failure_error_function=None)
    def explode() -> str:
        """Always fails."""
        raise ValueError("boom")

    for wrap in (lambda a: a, weave):
        with ScriptedOpenAIServer(model_turn("chat", ("c1", "explode", {}))) as server:
            agent = Agent(name="a", tools=[explode], model=model_for(server, "chat"))
            with pytest.raises(UserError, match="Error running tool explode: boom"):
                asyncio.run(run(wrap(agent), "go"))


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        pytest.param(
            Decision(action="skip", skip=["c2"], reason="the search found enough"),
            "Not run: skipped by decider: the search found enough",
            id="skip",
        ),
        pytest.param(
            Decision(action="stop", reason="the user asked for one search only"),
            "Not run: stopped by decider: the user asked for one search only",
            id="stop",
        ),
    ],
)
def test_a_deciders_skip_or_stop_is_what_the_model_reads(decision: Decision, expected: str) -> None:
    fetched: list[str] = []
    decider = ScriptedDecider((["c2"], decision))
    steps = [model_turn("responses", *REFERENCE_TURN), model_answer("responses", "ok")]
    with ScriptedOpenAIServer(*steps) as server:
        agent = Agent(
            name="a", tools=list(research_tools(fetched)), model=model_for(server, "responses")
        )
        asyncio.run(run(weave(agent, decider=decider), "Read about graphs"))
        server.assert_done()
    decider.assert_done()
    told = outputs(server.requests[1])
    assert fetched == []
    assert told["c2"].startswith(expected)
    assert "example.org/graphs/0" in told["c1"]


def test_a_tools_timeout_answers_as_the_sdk_does_and_its_dependents_do_not_run() -> None:
    fetched: list[str] = []
    _, fetch = research_tools(fetched)

    @function_tool(timeout=0.2)
    async def slow_search(query: str) -> dict[str, Any]:
        """Never answers in time."""
        await asyncio.sleep(30)
        return {"hits": []}

    turn = model_turn(
        "chat", ("c1", "slow_search", {"query": "x"}), ("c2", "fetch", {"url": "${1.hits[0]}"})
    )
    with ScriptedOpenAIServer(turn, model_answer("chat", "too slow")) as server:
        agent = Agent(name="a", tools=[slow_search, fetch], model=model_for(server, "chat"))
        asyncio.run(run(weave(agent), "go"))
    told = outputs(server.requests[1])
    assert told["c1"] == "Tool 'slow_search' timed out after 0.2 seconds."
    assert told["c2"].startswith("Not run: ")
    assert fetched == []


# ---------------------------------------------------------------- guardrails see what runs


def test_an_input_guardrail_judges_the_resolved_arguments_not_the_reference() -> None:
    fetched: list[str] = []
    judged: list[str] = []

    @tool_input_guardrail
    def no_internal_hosts(data: Any) -> ToolGuardrailFunctionOutput:
        url = json.loads(data.context.tool_arguments)["url"]
        judged.append(url)
        if "internal" in url:
            return ToolGuardrailFunctionOutput.reject_content("blocked: internal host")
        return ToolGuardrailFunctionOutput.allow()

    @function_tool
    def search(query: str) -> dict[str, Any]:
        """A search whose results an attacker controls."""
        return {"hits": [{"url": "http://internal.corp/secrets"}]}

    @function_tool(tool_input_guardrails=[no_internal_hosts])
    def fetch(url: str) -> str:
        """Fetch a page."""
        fetched.append(url)
        return "page"

    turn = model_turn(
        "responses", ("c1", "search", {"query": "x"}), ("c2", "fetch", {"url": "${1.hits[0].url}"})
    )
    with ScriptedOpenAIServer(turn, model_answer("responses", "blocked")) as server:
        agent = Agent(name="a", tools=[search, fetch], model=model_for(server, "responses"))
        asyncio.run(run(weave(agent), "go"))
    assert judged == ["http://internal.corp/secrets"]
    assert fetched == []
    assert outputs(server.requests[1])["c2"] == "blocked: internal host"


def test_an_output_guardrail_stops_the_output_before_another_call_reads_it() -> None:
    fetched: list[str] = []

    @tool_output_guardrail
    def no_secrets(data: Any) -> ToolGuardrailFunctionOutput:
        if "secret" in str(data.output):
            return ToolGuardrailFunctionOutput.reject_content("redacted: the output held a secret")
        return ToolGuardrailFunctionOutput.allow()

    @function_tool(tool_output_guardrails=[no_secrets])
    def lookup(key: str) -> dict[str, Any]:
        """Look a key up."""
        return {"value": "secret-token-123"}

    _, fetch = research_tools(fetched)
    turn = model_turn(
        "chat", ("c1", "lookup", {"key": "k"}), ("c2", "fetch", {"url": "${1.value}"})
    )
    with ScriptedOpenAIServer(turn, model_answer("chat", "redacted")) as server:
        agent = Agent(name="a", tools=[lookup, fetch], model=model_for(server, "chat"))
        asyncio.run(run(weave(agent), "go"))
    told = outputs(server.requests[1])
    assert told["c1"] == "redacted: the output held a secret"
    assert told["c2"].startswith("Not run: ")
    assert fetched == []
    assert "secret-token" not in json.dumps(server.requests[1])


# ---------------------------------------------------------------- tracing


def test_the_batch_is_traced_with_a_span_per_call_and_the_tools_spans_inside() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    @function_tool
    def search(query: str) -> dict[str, Any]:
        """Search."""
        return {"hits": [{"url": f"https://example.org/{query}"}]}

    @function_tool
    async def fetch(url: str) -> str:
        """Fetch, with a span of its own."""
        with tracer.start_as_current_span("http GET"):
            return f"<html>{url}</html>"

    turn = model_turn(
        "responses", ("c1", "search", {"query": "x"}), ("c2", "fetch", {"url": "${1.hits[0].url}"})
    )
    with ScriptedOpenAIServer(turn, model_answer("responses", "done")) as server:
        agent = Agent(
            name="researcher", tools=[search, fetch], model=model_for(server, "responses")
        )
        woven = weave(agent, tracer_provider=provider)

        async def main() -> None:
            with tracer.start_as_current_span("my agent run"):
                await run(woven, "go")

        asyncio.run(main())

    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {
        "my agent run",
        "invoke_workflow researcher",
        "execute_tool search",
        "execute_tool fetch",
        "http GET",
    }
    batch, search_span, fetch_span = (
        spans["invoke_workflow researcher"],
        spans["execute_tool search"],
        spans["execute_tool fetch"],
    )
    assert parent(batch) == spans["my agent run"].context.span_id
    assert parent(search_span) == parent(fetch_span) == batch.context.span_id
    assert parent(spans["http GET"]) == fetch_span.context.span_id
    assert fetch_span.attributes is not None
    assert fetch_span.attributes["gen_ai.tool.call.id"] == "c2"
    assert [link.context.span_id for link in fetch_span.links] == [search_span.context.span_id]


def parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


class SpanCollector(TracingProcessor):
    """The SDK's own trace spans, kept in memory (nothing is exported)."""

    def __init__(self) -> None:
        self.spans: list[Any] = []

    def on_trace_start(self, trace: Any) -> None: ...

    def on_trace_end(self, trace: Any) -> None: ...

    def on_span_start(self, span: Any) -> None: ...

    def on_span_end(self, span: Any) -> None:
        self.spans.append(span)

    def shutdown(self) -> None: ...

    def force_flush(self) -> None: ...


def test_each_tool_runs_inside_its_own_calls_sdk_span() -> None:
    """The SDK's traces stay as without toolweave: a span a tool opens nests under the SDK's
    function span of its own call, not under another call's."""
    collector = SpanCollector()

    @function_tool
    def search(query: str) -> dict[str, Any]:
        """Search."""
        with custom_span("inside search"):
            return {"hits": [{"url": f"https://example.org/{query}"}]}

    @function_tool
    async def fetch(url: str) -> str:
        """Fetch."""
        with custom_span("inside fetch"):
            return f"<html>{url}</html>"

    turn = model_turn(
        "responses", ("c1", "search", {"query": "x"}), ("c2", "fetch", {"url": "${1.hits[0].url}"})
    )
    agents.set_trace_processors([collector])
    agents.set_tracing_disabled(False)
    try:
        with ScriptedOpenAIServer(turn, model_answer("responses", "done")) as server:
            agent = Agent(name="a", tools=[search, fetch], model=model_for(server, "responses"))
            asyncio.run(run(weave(agent), "go"))
    finally:
        agents.set_tracing_disabled(True)
        agents.set_trace_processors([default_processor()])
    by_name = {getattr(s.span_data, "name", None): s for s in collector.spans}
    for tool_name in ("search", "fetch"):
        assert by_name[f"inside {tool_name}"].parent_id == by_name[tool_name].span_id


# ---------------------------------------------------------------- concurrent runs


def test_two_runs_of_one_agent_at_once_keep_their_batches_apart() -> None:
    """Both runs' models use the same call ids, and both searches are held until both have
    started, so the two batches are in flight together."""
    fetched: list[str] = []
    started: list[str] = []
    both = threading.Event()

    @function_tool
    async def search(query: str) -> dict[str, Any]:
        """Search."""
        started.append(query)
        if len(started) == 2:
            both.set()
        await asyncio.to_thread(both.wait, 30)
        return {"hits": [{"url": f"https://example.org/{query}"}]}

    _, fetch = research_tools(fetched)

    def model(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        topic = messages[0]["content"] if messages[0]["role"] == "user" else messages[1]["content"]
        results = [m["content"] for m in messages if m["role"] == "tool"]
        if results:
            return {"content": " | ".join(results)}
        return {
            "tool_calls": [
                ("c1", "search", {"query": topic}),
                ("c2", "fetch", {"url": "${c1.hits[0].url}"}),
            ]
        }

    with ScriptedOpenAIServer(script=model) as server:
        agent = weave(Agent(name="a", tools=[search, fetch], model=model_for(server, "chat")))

        async def main() -> list[Any]:
            return list(await asyncio.gather(run(agent, "owls"), run(agent, "bats")))

        owls, bats = asyncio.run(main())
        server.assert_done()
    assert both.is_set()
    assert sorted(fetched) == ["https://example.org/bats", "https://example.org/owls"]
    assert owls.final_output.endswith("<html>https://example.org/owls</html>")
    assert bats.final_output.endswith("<html>https://example.org/bats</html>")


def test_a_forward_reference_completes_under_the_sdks_concurrency_limit() -> None:
    """With one SDK tool task at a time, the first call waits for the second, whose task the
    SDK holds back: after a grace period the second runs on the first one's behalf."""
    fetched: list[str] = []
    turn = model_turn(
        "chat", ("c1", "fetch", {"url": "${2.hits[0].url}"}), ("c2", "search", {"query": "q"})
    )
    config = RunConfig(tool_execution=ToolExecutionConfig(max_function_tool_concurrency=1))
    with ScriptedOpenAIServer(turn, model_answer("chat", "done")) as server:
        agent = Agent(
            name="a", tools=list(research_tools(fetched)), model=model_for(server, "chat")
        )
        asyncio.run(run(weave(agent), "go", run_config=config))
        server.assert_done()
    assert fetched == ["https://example.org/q/0"]
    assert outputs(server.requests[1])["c1"] == "<html>https://example.org/q/0</html>"


# ---------------------------------------------------------------- what is not batched


def test_hosted_tools_handoffs_and_approval_tools_pass_through_untouched() -> None:
    fetched: list[str] = []
    seen, keep = batches()
    search, fetch = research_tools(fetched)

    @function_tool(needs_approval=True)
    def delete(path: str, count: int) -> str:
        """Delete files (a human approves)."""
        return "deleted"

    turn = model_turn(
        "responses",
        ("c1", "search", {"query": "graphs"}),
        ("c2", "transfer_to_helper", {}),
        ("c3", "fetch", {"url": "${1.hits[0].url}"}),
        ("c4", "fetch", {"url": "${2}"}),
    )
    with ScriptedOpenAIServer(turn, model_answer("responses", "helped")) as server:
        model = model_for(server, "responses")
        helper = Agent(name="helper", model=model, handoff_description="Helps.")
        agent = Agent(
            name="a",
            tools=[search, fetch, delete, WebSearchTool()],
            handoffs=[helper],
            model=model,
        )
        result = asyncio.run(run(weave(agent, on_batch=keep), "go"))
        server.assert_done()

    first = shown_tools(server.requests[0])
    assert set(first) == {"search", "fetch", "delete", "web_search", "transfer_to_helper"}
    assert first["delete"]["parameters"] == delete.params_json_schema  # no references
    assert first["delete"]["description"] == delete.description
    assert result.last_agent.name == "helper"
    assert fetched == ["https://example.org/graphs/0"]
    told = outputs(server.requests[1])  # the helper's request carries the batch's outputs
    assert told["c3"] == "<html>https://example.org/graphs/0</html>"
    assert told["c4"].startswith("Not run: ")
    [batch] = seen
    handoff = batch.get("c2")
    assert handoff.error_type == "invalid_call"
    assert handoff.error is not None
    assert "the Agents SDK runs 'transfer_to_helper' itself" in handoff.error
    assert batch.plan.groups == [["c1", "c2"], ["c3", "c4"]]


MCP_SERVER = """
from mcp.server.mcpserver import MCPServer

server = MCPServer("notes")


@server.tool()
def lookup(key: str) -> str:
    \"\"\"Look a note up.\"\"\"
    return f"note:{key}"


server.run()
"""


def test_an_mcp_servers_tools_run_beside_the_batch(tmp_path: pathlib.Path) -> None:
    from agents.mcp import MCPServerStdio

    fetched: list[str] = []
    script = tmp_path / "notes_server.py"
    script.write_text(MCP_SERVER)
    turn = model_turn(
        "responses",
        ("c1", "search", {"query": "graphs"}),
        ("c2", "lookup", {"key": "k"}),
        ("c3", "fetch", {"url": "${1.hits[0].url}"}),
        ("c4", "fetch", {"url": "${c2}"}),
    )

    async def main(model: Any) -> Any:
        params = {"command": sys.executable, "args": [str(script)]}
        async with MCPServerStdio(params=params) as notes:  # type: ignore[arg-type]
            agent = Agent(
                name="a", tools=list(research_tools(fetched)), mcp_servers=[notes], model=model
            )
            return await run(weave(agent), "go")

    with ScriptedOpenAIServer(turn, model_answer("responses", "done")) as server:
        result = asyncio.run(main(model_for(server, "responses")))
        server.assert_done()
    assert result.final_output == "done"
    assert "lookup" in shown_tools(server.requests[0])
    assert fetched == ["https://example.org/graphs/0"]
    told = outputs(server.requests[1])
    assert "note:k" in json.dumps(told["c2"])  # the SDK ran it, as without weave
    assert told["c4"].startswith("Not run: ")


def test_a_call_id_answered_in_an_earlier_turn_is_not_run_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SDK skips a repeated, identical call whose id it answered before; the batch must
    not run it on that call's behalf either, even once the grace for its task has passed."""
    monkeypatch.setattr(agents_adapter, "_ARRIVAL_GRACE", 0.01)
    searched: list[str] = []
    fetched: list[str] = []

    @function_tool
    def search(query: str) -> dict[str, Any]:
        """Search."""
        searched.append(query)
        return {"hits": [{"url": f"https://example.org/{query}"}]}

    _, fetch = research_tools(fetched)
    first = ("c1", "search", {"query": "owls"})
    steps = [
        model_turn("chat", first),
        model_turn("chat", first, ("c2", "fetch", {"url": "https://example.org/x"})),
        model_answer("chat", "done"),
    ]

    async def main(agent: Agent[Any]) -> Any:
        result = await run(weave(agent), "go")
        await asyncio.sleep(0.5)  # a batch left behind would run the call by now
        return result

    with ScriptedOpenAIServer(*steps) as server:
        agent = Agent(name="a", tools=[search, fetch], model=model_for(server, "chat"))
        result = asyncio.run(main(agent))
        server.assert_done()
    assert result.final_output == "done"
    assert searched == ["owls"]
    assert fetched == ["https://example.org/x"]


def test_handoff_targets_are_woven_too() -> None:
    fetched: list[str] = []
    steps = [
        model_turn("chat", ("h1", "transfer_to_helper", {})),
        model_turn("chat", *REFERENCE_TURN),
        model_answer("chat", "done"),
    ]
    with ScriptedOpenAIServer(*steps) as server:
        model = model_for(server, "chat")
        helper = Agent(name="helper", tools=list(research_tools(fetched)), model=model)
        triage = Agent(name="triage", handoffs=[helper], model=model)
        woven = weave(triage)
        result = asyncio.run(run(woven, "go"))
        server.assert_done()
    assert result.last_agent.name == "helper"
    assert result.last_agent is not helper
    assert fetched == ["https://example.org/graphs/1"]
    assert triage.handoffs == [helper]


def test_a_woven_agent_as_another_agents_tool_batches_its_own_calls() -> None:
    """The inner run shares the outer run's usage; both models use the same call ids."""
    fetched: list[str] = []
    inner_steps = [model_turn("chat", *REFERENCE_TURN), model_answer("chat", "inner done")]
    with (
        ScriptedOpenAIServer(*inner_steps) as inner_server,
        ScriptedOpenAIServer(
            model_turn(
                "responses",
                ("c1", "search", {"query": "owls"}),
                ("c2", "ask_inner", {"input": "${1.hits[0].url}"}),
            ),
            model_answer("responses", "outer done"),
        ) as outer_server,
    ):
        search, fetch = research_tools(fetched)
        inner = weave(
            Agent(name="inner", tools=[search, fetch], model=model_for(inner_server, "chat"))
        )
        outer = Agent(
            name="outer",
            tools=[search, inner.as_tool("ask_inner", "Ask the inner agent.")],
            model=model_for(outer_server, "responses"),
        )
        result = asyncio.run(run(weave(outer), "go"))
        inner_server.assert_done()
        outer_server.assert_done()
    assert result.final_output == "outer done"
    assert inner_server.requests[0]["messages"][-1]["content"] == "https://example.org/owls/0"
    assert fetched == ["https://example.org/graphs/1"]
    assert outputs(outer_server.requests[1])["c2"] == "inner done"


# ---------------------------------------------------------------- mistakes


def test_mistakes_are_told_when_weaving() -> None:
    search, fetch = research_tools([])
    agent = Agent(name="a", tools=[search, fetch])
    with pytest.raises(UsageError, match="max_concurrency must be None or an int >= 1"):
        weave(agent, max_concurrency=0)
    with pytest.raises(UsageError, match="agent 'a' is woven already"):
        weave(weave(agent))
    with pytest.raises(UsageError, match="two function tools named 'search'"):
        weave(Agent(name="a", tools=[search, search]))
    with pytest.raises(UsageError, match="pass no tools= to it"):
        weave(agent, tools=[search])
    with pytest.raises(UsageError, match=r"weave\(\) takes an agents.Agent"):
        weave("not an agent")  # type: ignore[type-var]


# ---------------------------------------------------------------- the example


def test_the_example_runs_offline() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    proc = subprocess.run(
        [sys.executable, "examples/agents_sdk.py"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "batch dag [['call_search', 'call_weather'], ['call_fetch'], ['call_sum']]" in (
        proc.stdout
    )
    assert "call_sum ok Summary: A page about dependency-graphs." in proc.stdout
    assert "final: Here is what the tools found:" in proc.stdout
