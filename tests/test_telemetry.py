"""Spans: whole trees compared, links against the plan, content opt-in, context nesting."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from toolweave import Decision, DecisionContext, Orchestrator, ToolCall, tool
from toolweave.telemetry import CAPTURE_ENV, TraceContent
from toolweave.telemetry import attributes as A

SHOWN = {
    A.GEN_AI_OPERATION_NAME,
    A.GEN_AI_TOOL_NAME,
    A.GEN_AI_TOOL_CALL_ID,
    A.TW_STATUS,
    A.TW_GROUP_INDEX,
    A.TW_EXECUTION_ORDER,
    A.TW_DECISION_ACTION,
}


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def tree(
    finished: tuple[ReadableSpan, ...] | list[ReadableSpan], keys: set[str] = SHOWN
) -> list[dict[str, Any]]:
    """Finished spans as nested ``{name, attributes, children}``, children in start order."""
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    ids = {s.context.span_id for s in finished}
    for s in finished:
        parent = s.parent.span_id if s.parent is not None and s.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(s)

    def build(parent: int | None) -> list[dict[str, Any]]:
        out = []
        for s in sorted(by_parent.get(parent, []), key=lambda s: (s.start_time, s.name)):
            attrs = {k: v for k, v in (s.attributes or {}).items() if k in keys}
            out.append({"name": s.name, "attributes": attrs, "children": build(s.context.span_id)})
        return out

    return build(None)


@tool
async def search(q: str) -> dict[str, Any]:
    """Search."""
    return {"hits": [{"url": "https://x/" + q}]}


@tool
async def fetch(url: str) -> str:
    """Fetch."""
    await asyncio.sleep(0)
    return "page " + url


@tool
async def broken() -> None:
    """Fail."""
    raise ValueError("service down")


BATCH = [
    ToolCall("s", "search", {"q": "cats"}),
    ToolCall("f", "fetch", {"url": "${s.hits[0].url}"}),
    ToolCall("b", "broken"),
    ToolCall("after", "fetch", {"url": "${b}"}),
]


def run(orchestrator: Orchestrator, calls: list[ToolCall] = BATCH, **kwargs: Any) -> Any:
    return asyncio.run(orchestrator.run(calls, **kwargs))


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    found = {}
    for s in exporter.get_finished_spans():
        key = s.attributes.get(A.GEN_AI_TOOL_CALL_ID) if s.attributes else None
        found[str(key) if key else s.name] = s
    return found


def test_the_span_tree_of_a_batch(spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    run(Orchestrator([search, fetch, broken], tracer_provider=provider, workflow_name="agent"))
    [batch] = tree(exporter.get_finished_spans())
    assert batch["name"] == "invoke_workflow agent"
    assert batch["attributes"] == {A.GEN_AI_OPERATION_NAME: "invoke_workflow"}
    calls = sorted(batch["children"], key=lambda c: c["attributes"][A.GEN_AI_TOOL_CALL_ID])
    assert [(c["name"], c["attributes"][A.TW_STATUS]) for c in calls] == [
        ("execute_tool fetch", "skipped"),
        ("execute_tool broken", "error"),
        ("execute_tool fetch", "ok"),
        ("execute_tool search", "ok"),
    ]
    for c in calls:
        assert c["attributes"][A.GEN_AI_OPERATION_NAME] == "execute_tool"
        assert c["children"] == []


def test_every_call_attribute(spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    result = run(Orchestrator([search, fetch, broken], tracer_provider=provider))
    found = by_name(exporter)
    f = found["f"].attributes or {}
    assert dict(f) == {
        A.GEN_AI_OPERATION_NAME: "execute_tool",
        A.GEN_AI_TOOL_NAME: "fetch",
        A.GEN_AI_TOOL_CALL_ID: "f",
        A.GEN_AI_TOOL_TYPE: "function",
        A.GEN_AI_TOOL_DESCRIPTION: "Fetch.",
        A.TW_STATUS: "ok",
        A.TW_ATTEMPTS: 1,
        A.TW_DEPENDS_ON: ("s",),
        A.TW_GROUP_INDEX: 1,
        A.TW_EXECUTION_ORDER: result.get("f").execution_order,
    }
    b = found["b"]
    assert b.status.status_code is StatusCode.ERROR
    assert (b.attributes or {})[A.ERROR_TYPE] == "tool_error"
    [event] = b.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "ValueError"
    after = found["after"].attributes or {}
    assert after[A.TW_STATUS] == "skipped"
    assert after[A.TW_SKIP_REASON] == result.get("after").error
    assert A.TW_EXECUTION_ORDER not in after


def test_links_match_the_plans_edges(spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    calls = [
        ToolCall("a", "search", {"q": "x"}),
        ToolCall("b", "search", {"q": "y"}),
        ToolCall("c", "fetch", {"url": "${a.hits[0].url}"}, ["b"]),
        ToolCall("d", "fetch", {"url": "${c}"}),
    ]
    result = run(Orchestrator([search, fetch], tracer_provider=provider), calls)
    found = by_name(exporter)
    span_id_of = {k: s.context.span_id for k, s in found.items()}
    for call_id, deps in result.plan.dependencies.items():
        linked = {link.context.span_id for link in found[call_id].links}
        assert linked == {span_id_of[d] for d in deps}, call_id


def test_the_batch_span_carries_the_plan(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    result = run(Orchestrator([search, fetch, broken], tracer_provider=provider))
    batch = by_name(exporter)["invoke_workflow toolweave"]
    attrs = batch.attributes or {}
    assert attrs[A.TW_STRATEGY] == "dag"
    assert attrs[A.TW_TOTAL_GROUPS] == 2
    assert attrs[A.TW_TOTAL_TOOLS] == 4
    assert attrs[A.TW_TOOL_IDS] == ("s", "f", "b", "after")
    assert attrs[A.TW_STOPPED] is False
    assert A.TW_STOP_REASON not in attrs
    [event] = [e for e in batch.events if e.name == "toolweave.plan"]
    assert json.loads((event.attributes or {})[A.TW_PLAN_JSON]) == result.plan.to_dict()


def test_decision_spans(spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans

    async def decide(ctx: DecisionContext) -> Decision:
        ctx.report_usage(50, 7, model="judge-1")
        return Decision(action="stop", reason="enough")

    class Decider:
        async def decide(self, ctx: DecisionContext) -> Decision:
            return await decide(ctx)

    result = run(Orchestrator([search, fetch, broken], tracer_provider=provider, decider=Decider()))
    assert result.stopped == "enough"
    found = by_name(exporter)
    decisions = [s for s in exporter.get_finished_spans() if s.name == "toolweave.decide"]
    assert len(decisions) == 1
    d = decisions[0]
    assert d.parent is not None
    assert d.parent.span_id == found["invoke_workflow toolweave"].context.span_id
    assert dict(d.attributes or {}) == {
        A.TW_DECISION_CALL_IDS: ("f",),
        A.TW_DECISION_TRIGGER: "step",
        A.TW_DECISION_ACTION: "stop",
        A.TW_DECISION_FALLBACK: False,
        A.TW_DECISION_REASON: "enough",
        A.GEN_AI_REQUEST_MODEL: "judge-1",
        A.GEN_AI_USAGE_INPUT_TOKENS: 50,
        A.GEN_AI_USAGE_OUTPUT_TOKENS: 7,
    }
    batch = found["invoke_workflow toolweave"].attributes or {}
    assert batch[A.TW_STOPPED] is True
    assert batch[A.TW_STOP_REASON] == "enough"


def test_a_failed_decision_span_says_why(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans

    def bad(ctx: DecisionContext) -> Decision:
        raise ConnectionError("no route")

    run(Orchestrator([search, fetch, broken], tracer_provider=provider, decider=bad))
    [d] = [s for s in exporter.get_finished_spans() if s.name == "toolweave.decide"]
    assert (d.attributes or {})[A.ERROR_TYPE] == "ConnectionError"
    assert (d.attributes or {})[A.TW_DECISION_FALLBACK] is True
    assert d.status.status_code is StatusCode.ERROR


def test_no_content_is_recorded_by_default(
    spans: tuple[TracerProvider, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CAPTURE_ENV, raising=False)
    provider, exporter = spans
    run(Orchestrator([search, fetch, broken], tracer_provider=provider))
    for s in exporter.get_finished_spans():
        attrs = s.attributes or {}
        assert A.GEN_AI_TOOL_CALL_ARGUMENTS not in attrs
        assert A.GEN_AI_TOOL_CALL_RESULT not in attrs
        assert "cats" not in json.dumps(dict(attrs), default=str)


def test_content_is_recorded_truncated_and_redacted_when_opted_in(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans

    def redact(kind: str, value: Any) -> Any:
        return (
            {"q": "***"}
            if kind == "arguments" and isinstance(value, dict) and "q" in value
            else value
        )

    content = TraceContent(enabled=True, max_chars=20, redact=redact)
    run(Orchestrator([search, fetch, broken], tracer_provider=provider, trace_content=content))
    found = by_name(exporter)
    s = found["s"].attributes or {}
    assert s[A.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"q": "***"}'
    assert s[A.GEN_AI_TOOL_CALL_RESULT] == '{"hits": [{"url":...'
    assert len(str(s[A.GEN_AI_TOOL_CALL_RESULT])) == 20
    assert A.GEN_AI_TOOL_CALL_RESULT not in (found["b"].attributes or {})


def test_the_standard_environment_variable_turns_content_on(
    spans: tuple[TracerProvider, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CAPTURE_ENV, "true")
    provider, exporter = spans
    run(Orchestrator([search], tracer_provider=provider), [ToolCall("s", "search", {"q": "z"})])
    attrs = by_name(exporter)["s"].attributes or {}
    assert attrs[A.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"q": "z"}'


def test_the_batch_span_nests_under_the_callers_span(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    tracer = provider.get_tracer("agent")

    async def agent() -> None:
        with tracer.start_as_current_span("agent turn"):
            await Orchestrator([search], tracer_provider=provider).run(
                [ToolCall("s", "search", {"q": "z"})]
            )

    asyncio.run(agent())
    [turn] = tree(exporter.get_finished_spans())
    assert turn["name"] == "agent turn"
    assert [c["name"] for c in turn["children"]] == ["invoke_workflow toolweave"]
    assert [c["name"] for c in turn["children"][0]["children"]] == ["execute_tool search"]


def test_a_sync_tools_own_spans_nest_under_its_call_span(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    inner = provider.get_tracer("driver")

    @tool
    def query(sql: str) -> int:
        """A blocking tool with its own instrumentation (a database driver, say)."""
        with inner.start_as_current_span("db.query"):
            return len(sql)

    run(
        Orchestrator([query], tracer_provider=provider),
        [ToolCall("q", "query", {"sql": "x"}), ToolCall("r", "query", {"sql": "yy"})],
    )
    [batch] = tree(exporter.get_finished_spans(), keys=set())
    assert [(c["name"], [g["name"] for g in c["children"]]) for c in batch["children"]] == [
        ("execute_tool query", ["db.query"]),
        ("execute_tool query", ["db.query"]),
    ]


class Exploding(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        raise RuntimeError("exporter down")


def test_telemetry_never_breaks_a_run() -> None:
    provider = TracerProvider()

    class Raising(SimpleSpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            raise RuntimeError("processor down")

    provider.add_span_processor(Raising(Exploding()))
    result = run(Orchestrator([search, fetch, broken], tracer_provider=provider))
    assert [r.status for r in result.results] == ["ok", "ok", "error", "skipped"]


def test_the_global_provider_is_used_by_default() -> None:
    assert isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
    )
    result = run(Orchestrator([search, fetch, broken]))
    assert result.get("f").ok
