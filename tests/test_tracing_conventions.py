"""Tracing to the letter: the standard OTEL_* variables, OTLP over gRPC, HTTP/protobuf and
HTTP/JSON to real receivers on 127.0.0.1, and spans that follow the GenAI conventions for
``invoke_workflow`` and ``execute_tool`` (status, ``error.type``, attributes at start)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision as SamplingDecision
from opentelemetry.sdk.trace.sampling import Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, StatusCode
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
from otlp_receivers import GrpcReceiver, HttpReceiver, JsonReceiver

from toolweave import Decision, DecisionContext, Orchestrator, ToolCall, tool
from toolweave.telemetry import CAPTURE_ENV, TraceContent, Tracing, configure_tracing
from toolweave.telemetry import attributes as A

SECRET = "hunter2-Zq9"


@tool
async def search(q: str) -> dict[str, Any]:
    """Search the web."""
    return {"hits": [{"url": "https://x/" + q}]}


@tool
async def fetch(url: str) -> str:
    """Fetch a page."""
    return "page " + url


@tool
async def broken(value: str = "") -> None:
    """Always fails."""
    raise ValueError(f"service down for {value}")


@tool
async def plain() -> int:  # no docstring: no description
    return 1


CALLS = [
    ToolCall("a", "search", {"q": "cats"}),
    ToolCall("b", "search", {"q": "dogs"}),
    ToolCall("c", "fetch", {"url": "${a.hits[0].url}"}, ["b"]),
]
FAILING = [*CALLS, ToolCall("x", "broken", {"value": SECRET})]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* variable of the machine running the tests leaks into them."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def memory() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def run(provider: TracerProvider, calls: list[ToolCall], **options: Any) -> Any:
    tools = [search, fetch, broken, plain]
    return asyncio.run(Orchestrator(tools, tracer_provider=provider, **options).run(calls))


def export(tracing: Tracing, calls: list[ToolCall] = FAILING) -> Any:
    result = run(tracing.provider, calls)
    tracing.shutdown()
    return result


def spans_by_key(spans: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    """Call spans by call id, the rest by name."""
    found = {}
    for s in spans:
        call_id = (s.attributes or {}).get(A.GEN_AI_TOOL_CALL_ID)
        found[str(call_id) if call_id is not None else s.name] = s
    return found


def everything_on(spans: Sequence[ReadableSpan]) -> str:
    parts = []
    for s in spans:
        parts += [s.name, json.dumps(dict(s.attributes or {}), default=str)]
        parts.append(str(s.status.description))
        for event in s.events:
            parts += [event.name, json.dumps(dict(event.attributes or {}), default=str)]
    return "\n".join(parts)


# ------------------------------------------------------------------ the batch span


def test_a_batch_with_a_failed_call_is_an_error_with_the_count() -> None:
    provider, exporter = memory()
    run(provider, FAILING)
    batch = spans_by_key(exporter.get_finished_spans())["invoke_workflow toolweave"]
    assert batch.status.status_code is StatusCode.ERROR
    assert batch.status.description == "1 of 4 calls failed"
    assert (batch.attributes or {})[A.ERROR_TYPE] == "tool_error"
    assert (batch.attributes or {})[A.TW_CALLS_ERROR] == 1


def test_failures_of_several_kinds_give_the_fallback_error_type() -> None:
    provider, exporter = memory()
    run(provider, [*FAILING, ToolCall("u", "no_such_tool"), ToolCall("p", "plain")])
    batch = spans_by_key(exporter.get_finished_spans())["invoke_workflow toolweave"]
    assert batch.status.description == "2 of 6 calls failed"
    assert (batch.attributes or {})[A.ERROR_TYPE] == "_OTHER"


def stop(ctx: DecisionContext) -> Decision:
    return Decision(action="stop", reason="enough")


@pytest.mark.parametrize("decider", [pytest.param(None, id="all-ok"),
                                     pytest.param(stop, id="stopped-by-decider")])  # fmt: skip
def test_a_batch_without_failed_calls_leaves_the_status_unset(decider: Any) -> None:
    provider, exporter = memory()
    result = run(provider, CALLS, decider=decider)
    batch = spans_by_key(exporter.get_finished_spans())["invoke_workflow toolweave"]
    assert [r.status for r in result.results] == (
        ["ok", "ok", "ok"] if decider is None else ["ok", "ok", "skipped"]
    )
    # Success leaves the status UNSET (not OK), and a description only ever comes with ERROR.
    assert batch.status.status_code is StatusCode.UNSET
    assert batch.status.description is None
    assert A.ERROR_TYPE not in (batch.attributes or {})


def test_a_run_that_raises_marks_the_batch_with_the_exception_class_only() -> None:
    provider, exporter = memory()

    async def cancelled() -> None:
        task = asyncio.create_task(
            Orchestrator([search], tracer_provider=provider).run(
                [ToolCall("s", "search", {"q": SECRET})]
            )
        )
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())
    batch = spans_by_key(exporter.get_finished_spans())["invoke_workflow toolweave"]
    assert batch.status.status_code is StatusCode.ERROR
    assert (batch.attributes or {})[A.ERROR_TYPE] == "asyncio.exceptions.CancelledError"
    assert batch.status.description is None, "the type is error.type's; no message without opt-in"


# ------------------------------------------------------------------ call spans


def test_call_spans_follow_the_execute_tool_conventions() -> None:
    provider, exporter = memory()
    result = run(provider, [*FAILING, ToolCall("after", "fetch", {"url": "${x}"})])
    found = spans_by_key(exporter.get_finished_spans())
    for r in result.results:
        span = found[r.call_id]
        attrs = span.attributes or {}
        assert span.name == f"execute_tool {r.name}"
        assert span.kind is SpanKind.INTERNAL
        assert attrs[A.GEN_AI_OPERATION_NAME] == "execute_tool"
        assert attrs[A.GEN_AI_TOOL_NAME] == r.name
        assert attrs[A.GEN_AI_TOOL_CALL_ID] == r.call_id
        assert attrs[A.GEN_AI_TOOL_TYPE] == "function"
        if r.status == "error":
            assert span.status.status_code is StatusCode.ERROR
            assert attrs[A.ERROR_TYPE] == r.error_type
        else:  # ok and skipped calls did not fail: no error.type, status left UNSET
            assert span.status.status_code is StatusCode.UNSET, r.call_id
            assert span.status.description is None
            assert A.ERROR_TYPE not in attrs
    assert found["x"].status.description == "tool_error: ValueError"
    assert (found["after"].attributes or {})[A.TW_STATUS] == "skipped"


def test_a_failure_without_a_cause_does_not_repeat_error_type_as_the_description() -> None:
    provider, exporter = memory()
    run(provider, [ToolCall("u", "no_such_tool")])
    span = spans_by_key(exporter.get_finished_spans())["u"]
    assert (span.attributes or {})[A.ERROR_TYPE] == "unknown_tool"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description is None


def test_the_tool_description_is_recorded_when_the_tool_has_one() -> None:
    provider, exporter = memory()
    run(provider, [ToolCall("s", "search", {"q": "x"}), ToolCall("p", "plain"),
                   ToolCall("u", "no_such_tool")])  # fmt: skip
    found = spans_by_key(exporter.get_finished_spans())
    assert (found["s"].attributes or {})[A.GEN_AI_TOOL_DESCRIPTION] == "Search the web."
    assert A.GEN_AI_TOOL_DESCRIPTION not in (found["p"].attributes or {})
    assert A.GEN_AI_TOOL_DESCRIPTION not in (found["u"].attributes or {})


class RecordingSampler(Sampler):
    """Samples everything, and keeps the attributes each span had when it started."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        self.seen.append((name, dict(attributes or {})))
        return SamplingResult(SamplingDecision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "RecordingSampler"


def test_a_sampler_sees_the_genai_attributes_at_span_start() -> None:
    sampler = RecordingSampler()
    provider = TracerProvider(sampler=sampler)
    calls = [*FAILING, ToolCall("after", "fetch", {"url": "${x}"})]
    result = asyncio.run(
        Orchestrator([search, fetch, broken], tracer_provider=provider, workflow_name="agent").run(
            calls
        )
    )
    by_call = {a.get(A.GEN_AI_TOOL_CALL_ID): (name, a) for name, a in sampler.seen}
    name, batch = by_call.pop(None)
    assert name == "invoke_workflow agent"
    assert batch == {A.GEN_AI_OPERATION_NAME: "invoke_workflow", A.GEN_AI_WORKFLOW_NAME: "agent"}
    descriptions = {
        "search": "Search the web.",
        "fetch": "Fetch a page.",
        "broken": "Always fails.",
    }
    assert set(by_call) == {r.call_id for r in result.results}
    for r in result.results:
        name, started = by_call[r.call_id]
        expected = {
            A.GEN_AI_OPERATION_NAME: "execute_tool",
            A.GEN_AI_TOOL_NAME: r.name,
            A.GEN_AI_TOOL_CALL_ID: r.call_id,
            A.GEN_AI_TOOL_TYPE: "function",
            A.GEN_AI_TOOL_DESCRIPTION: descriptions[r.name],
            A.TW_GROUP_INDEX: r.group_index,
            A.TW_DEPENDS_ON: list(r.depends_on),
        }
        if r.execution_order is not None:  # it started: its rank is known then
            expected[A.TW_EXECUTION_ORDER] = r.execution_order
        assert name == f"execute_tool {r.name}"
        assert started == expected, r.call_id
        # Nothing known only at the end was there at the start.
        assert A.TW_STATUS not in started


# ------------------------------------------------------------------ content stays out


def test_no_argument_or_output_reaches_any_span_without_opt_in() -> None:
    provider, exporter = memory()
    result = run(provider, [*FAILING, ToolCall("e", "fetch", {"url": SECRET})])
    assert SECRET in (result.get("x").error or ""), "the model still sees it"
    text = everything_on(exporter.get_finished_spans())
    assert SECRET not in text
    assert "tool_error: ValueError" in text


def test_with_opt_in_the_failed_call_says_its_message_and_the_batch_still_counts() -> None:
    provider, exporter = memory()
    run(provider, FAILING, trace_content=TraceContent(enabled=True))
    found = spans_by_key(exporter.get_finished_spans())
    assert SECRET in str(found["x"].status.description)
    assert found["invoke_workflow toolweave"].status.description == "1 of 4 calls failed"


# ------------------------------------------------------------------ configure_tracing: resource


@pytest.mark.parametrize(
    ("environment", "argument", "expected"),
    [
        pytest.param({}, None, "toolweave", id="fallback"),
        pytest.param({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs"}, None, "from-attrs",
                     id="resource-attributes"),
        pytest.param({"OTEL_SERVICE_NAME": "from-name",
                      "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs"}, None, "from-name",
                     id="service-name-over-resource-attributes"),
        pytest.param({"OTEL_SERVICE_NAME": "from-name",
                      "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs"}, "given", "given",
                     id="argument-over-both"),
    ],
)  # fmt: skip
def test_the_service_name(
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    argument: str | None,
    expected: str,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    tracing = configure_tracing("memory", service_name=argument, set_global=False)
    assert tracing.provider.resource.attributes["service.name"] == expected


def test_resource_attributes_reach_an_otlp_http_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    with HttpReceiver() as receiver:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv(
            "OTEL_RESOURCE_ATTRIBUTES", "service.name=billing,deployment.environment.name=ci"
        )
        tracing = configure_tracing(set_global=False)
        assert tracing.kind == "otlp"
        export(tracing)
    assert receiver.paths[0] == "/v1/traces"
    [batch] = [s for s in receiver.spans if s["name"] == "invoke_workflow toolweave"]
    assert batch["resource"]["service.name"] == "billing"
    assert batch["resource"]["deployment.environment.name"] == "ci"
    assert batch["status"] == 2  # STATUS_CODE_ERROR: a call failed
    assert batch["attributes"][A.ERROR_TYPE] == "tool_error"


# ------------------------------------------------------------------ configure_tracing: exporter


def test_otel_traces_exporter_none_sets_up_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    before = trace.get_tracer_provider()
    tracing = configure_tracing()  # set_global, and yet
    assert tracing.kind == "none"
    assert trace.get_tracer_provider() is before, "the global provider is left alone"
    probe = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(probe))
    result = export(tracing)
    assert len(result.results) == 4
    assert probe.get_finished_spans() == (), "nothing is sampled, so nothing is exported"


def test_an_explicit_exporter_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    tracing = configure_tracing("memory", set_global=False)
    export(tracing, CALLS)
    assert len(tracing.spans()) == 4


def test_otel_traces_exporter_console_prints_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    tracing = configure_tracing(set_global=False)
    assert tracing.kind == "console"
    assert isinstance(tracing.exporter, ConsoleSpanExporter)
    tracing.exporter.out = printed = io.StringIO()  # its stdout was bound at import
    export(tracing, CALLS)
    out = printed.getvalue()
    assert '"name": "invoke_workflow toolweave"' in out
    assert out.count('"name": "execute_tool ') == 3


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        pytest.param("OTEL_TRACES_EXPORTER", "zipkin",
                     "unknown exporter 'zipkin' in OTEL_TRACES_EXPORTER: use otlp", id="zipkin"),
        pytest.param("OTEL_TRACES_EXPORTER", "otlp,console",
                     "OTEL_TRACES_EXPORTER='otlp,console': configure_tracing sets up one exporter",
                     id="a-list"),
        pytest.param("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml",
                     "OTEL_EXPORTER_OTLP_PROTOCOL='http/xml' is not an OTLP protocol: use grpc, "
                     "http/protobuf, http/json", id="protocol"),
        pytest.param("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift",
                     "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='thrift' is not an OTLP protocol",
                     id="traces-protocol"),
    ],
)  # fmt: skip
def test_unknown_values_in_the_environment_are_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=re.escape(message)):
        configure_tracing(set_global=False)


def test_a_protocol_that_contradicts_the_exporter_is_refused() -> None:
    with pytest.raises(ValueError, match="exporter 'otlp-grpc' and protocol 'http/json' disagree"):
        configure_tracing("otlp-grpc", protocol="http/json", set_global=False)
    with pytest.raises(ValueError, match="unknown protocol 'http'"):
        configure_tracing("otlp", protocol="http", set_global=False)  # type: ignore[arg-type]


# ------------------------------------------------------------------ OTLP protocols


def test_the_traces_protocol_variable_picks_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    with GrpcReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")  # the signal's wins
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://{receiver.endpoint}")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "grpc-env")
        tracing = configure_tracing(set_global=False)
        assert tracing.kind == "otlp-grpc"
        result = export(tracing)
    assert len(receiver.spans) == 1 + len(result.results)
    assert {s["resource"]["service.name"] for s in receiver.spans} == {"grpc-env"}
    [batch] = [s for s in receiver.spans if s["name"] == "invoke_workflow toolweave"]
    assert batch["status"] == 2


def test_explicit_endpoint_and_protocol_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with HttpReceiver() as receiver, GrpcReceiver() as decoy:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://{decoy.endpoint}")
        tracing = configure_tracing(
            "otlp", receiver.endpoint, protocol="http/protobuf", set_global=False
        )
        export(tracing, CALLS)
    assert len(receiver.spans) == 4
    assert decoy.spans == []


def all_keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from all_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from all_keys(item)


ODD_ID = 'id-ü-😀-\u2028-"quoted"'


@pytest.mark.parametrize("configured_by", ["environment", "arguments"])
def test_http_json_is_otlp_json_on_the_wire(
    monkeypatch: pytest.MonkeyPatch, configured_by: str
) -> None:
    calls = [*FAILING, ToolCall(ODD_ID, "fetch", {"url": "${c}"})]
    with JsonReceiver() as receiver:
        if configured_by == "environment":
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint + "/")
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=ignored")
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-team=traces,x-key=k%201")
            tracing = configure_tracing(set_global=False)
        else:
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")  # the argument wins
            tracing = configure_tracing(
                "otlp", receiver.endpoint, protocol="http/json",
                headers={"X-Team": "traces", "x-key": "k 1"}, set_global=False,
            )  # fmt: skip
        assert tracing.kind == "otlp-json"
        result = export(tracing, calls)
    assert set(receiver.paths) == {"/v1/traces"}
    headers = receiver.headers[0]
    assert headers["content-type"] == "application/json"
    assert (headers["x-team"], headers["x-key"]) == ("traces", "k 1")

    # The encoding, read from the raw JSON.
    [body] = receiver.bodies
    keys = set(all_keys(body))
    assert {"resourceSpans", "scopeSpans", "traceId", "spanId", "parentSpanId",
            "startTimeUnixNano", "endTimeUnixNano", "intValue", "stringValue"} <= keys  # fmt: skip
    assert not [k for k in keys if "_" in k], "lowerCamelCase field names only"
    raw_spans = [s for rs in body["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    for s in raw_spans:
        assert re.fullmatch(r"[0-9a-f]{32}", s["traceId"])
        assert re.fullmatch(r"[0-9a-f]{16}", s["spanId"])
        assert s["kind"] == 1  # SPAN_KIND_INTERNAL, as an integer
        assert isinstance(s["startTimeUnixNano"], str)
        assert s["startTimeUnixNano"].isdigit()
        for link in s.get("links", []):
            assert re.fullmatch(r"[0-9a-f]{16}", link["spanId"])
    [raw_batch] = [s for s in raw_spans if s["name"] == "invoke_workflow toolweave"]
    assert raw_batch["status"] == {"code": 2, "message": "1 of 5 calls failed"}
    total = {a["key"]: a["value"] for a in raw_batch["attributes"]}[A.TW_TOTAL_TOOLS]
    assert total == {"intValue": "5"}, "int64 as a string"

    # The same spans, decoded as a collector would.
    by_call = {s["attributes"].get(A.GEN_AI_TOOL_CALL_ID): s for s in receiver.spans}
    batch = by_call.pop(None)
    assert batch["resource"]["service.name"] == "toolweave"
    assert set(by_call) == {r.call_id for r in result.results}
    assert ODD_ID in by_call
    for r in result.results:
        span = by_call[r.call_id]
        assert span["parent_id"] == batch["span_id"]
        assert span["trace_id"] == batch["trace_id"]
        assert sorted(span["links"]) == sorted(by_call[d]["span_id"] for d in r.depends_on)
    assert by_call["x"]["status"] == 2


def test_http_json_uses_the_traces_endpoint_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    with JsonReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/never")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.endpoint + "/custom/in")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
        export(configure_tracing(set_global=False), CALLS)
    assert receiver.paths == ["/custom/in"]
    assert receiver.headers[0]["content-encoding"] == "gzip"
    assert len(receiver.spans) == 4


def test_http_json_retries_a_busy_receiver() -> None:
    with JsonReceiver(answers=[503]) as receiver:
        tracing = configure_tracing("otlp-json", receiver.endpoint, set_global=False)
        export(tracing, CALLS)
    assert len(receiver.paths) == 2
    assert len(receiver.spans) == 4


def test_http_json_refused_is_logged_and_the_run_unaffected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with JsonReceiver(answers=[400]) as receiver:
        tracing = configure_tracing("otlp-json", receiver.endpoint, set_global=False)
        with caplog.at_level(logging.WARNING, logger="toolweave"):
            result = export(tracing, CALLS)
    assert result.ok
    assert len(receiver.paths) == 1, "a 400 is not retried"
    assert receiver.spans == []
    assert f"OTLP/JSON export to {receiver.endpoint}/v1/traces failed: HTTP 400" in caplog.text


def test_http_json_to_a_receiver_that_is_gone_gives_up_within_the_timeout(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = JsonReceiver()
    endpoint = receiver.endpoint
    receiver.server.server_close()  # the port is closed: nothing listens
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")
    tracing = configure_tracing("otlp-json", endpoint, set_global=False)
    with caplog.at_level(logging.WARNING, logger="toolweave"):
        result = export(tracing, CALLS)
    assert result.ok
    assert f"OTLP/JSON export to {endpoint}/v1/traces failed: " in caplog.text


def test_content_capture_is_still_opt_in_for_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CAPTURE_ENV, "true")
    provider, exporter = memory()
    run(provider, FAILING)
    assert SECRET in everything_on(exporter.get_finished_spans())


# ------------------------------------------------------------ review: the JSON exporter's edges


class _Scripted(BaseHTTPRequestHandler):
    """Answers every POST as the server's ``answer`` says: a redirect, or a body sent slowly."""

    answer = "redirect"
    methods: list[str]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.methods.append("POST")
        if self.answer == "redirect":
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        for _ in range(100):  # 50 s in all, a byte every half second
            try:
                self.wfile.write(b"x")
                self.wfile.flush()
            except OSError:
                return
            threading.Event().wait(0.5)

    def do_GET(self) -> None:
        self.methods.append("GET")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[_Scripted]]]:
    handler = type("Handler", (_Scripted,), {"methods": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", handler
    finally:
        server.shutdown()
        server.server_close()


def _one_span() -> list[ReadableSpan]:
    provider, exporter = memory()
    run(provider, [ToolCall(id="a", name="ok", arguments={})])
    return list(exporter.get_finished_spans())


def test_a_redirect_fails_the_json_export_rather_than_losing_the_spans(
    scripted: tuple[str, type[_Scripted]], caplog: pytest.LogCaptureFixture
) -> None:
    from toolweave.telemetry._otlp_json import OtlpJsonSpanExporter

    url, handler = scripted
    handler.answer = "redirect"
    exporter = OtlpJsonSpanExporter(url, timeout=5)
    with caplog.at_level(logging.WARNING, logger="toolweave"):
        result = exporter.export(_one_span())
    assert result.name == "FAILURE"
    assert handler.methods == ["POST"], "the redirect is not followed as a GET"
    assert "HTTP 302 redirect to /elsewhere: set the endpoint to it" in caplog.text


def test_a_receiver_that_trickles_its_answer_does_not_hold_the_export(
    scripted: tuple[str, type[_Scripted]],
) -> None:
    import time

    from toolweave.telemetry._otlp_json import OtlpJsonSpanExporter

    url, handler = scripted
    handler.answer = "trickle"
    exporter = OtlpJsonSpanExporter(url, timeout=1)
    began = time.monotonic()
    exporter.export(_one_span())
    assert time.monotonic() - began < 30, "the answer takes 50 s; the timeout is 1 s"


def test_header_values_http_cannot_carry_fail_at_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "k=%E2%9C%93")
    with pytest.raises(ValueError, match="the OTLP header 'k' has a value HTTP cannot carry"):
        configure_tracing("otlp-json", "http://127.0.0.1:9", set_global=False)


def test_a_jsonl_path_from_the_environment_keeps_its_case(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    path = tmp_path / "MyTrace.jsonl"
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", f"JSONL:{path}")
    tracing = configure_tracing(set_global=False)
    tracing.shutdown()
    assert path.exists()


def test_grpc_headers_given_in_code_add_to_the_environments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20t")
    tracing = configure_tracing(
        endpoint="http://127.0.0.1:9", headers={"X-Team": "a"}, set_global=False
    )
    try:
        processor = tracing.provider._active_span_processor._span_processors[0]  # type: ignore[attr-defined]
        headers = dict(processor.span_exporter._headers)
    finally:
        tracing.shutdown()
    assert headers == {"authorization": "Bearer t", "x-team": "a"}
