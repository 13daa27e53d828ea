"""``toolweave inspect --serve``'s receiver (``toolweave.telemetry._serve``): real batches
exported to it over OTLP/HTTP (protobuf, JSON, gzip) by the SDK's and toolweave's exporters,
its page read through the Inspector's DOM contract, hostile requests answered without it
ever stopping, and the live page followed in a real Chromium when there is one.

What the page should show is taken from the spans the run produced (an in-memory exporter
next to the OTLP one), never written out by hand.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import http.client
import io
import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from toolweave import Orchestrator, ToolCall, tool
from toolweave.telemetry import Tracing, configure_tracing
from toolweave.telemetry import attributes as A
from toolweave.telemetry._serve import MAX_BODY, InspectorServer
from toolweave.telemetry.inspect import parse_trace


@tool
async def search(q: str) -> dict[str, Any]:
    """Search."""
    return {"hits": [{"url": "https://x/" + q}]}


@tool
async def fetch(url: str) -> str:
    """Fetch."""
    if "boom" in url:
        raise RuntimeError("unreachable host")
    return "page " + url


CALLS = [
    ToolCall("a", "search", {"q": "cats"}),
    ToolCall("b", "search", {"q": "dogs"}),
    ToolCall("c", "fetch", {"url": "${a.hits[0].url}"}, ["b"]),
]
OTHER_CALLS = [
    ToolCall("x1", "search", {"q": "boom"}),
    ToolCall("x2", "fetch", {"url": "${x1.hits[0].url}"}),
]


# --- helpers ----------------------------------------------------------------------------------


class Page(HTMLParser):
    """Each batch section of the page and the call ids drawn in its timeline and graph."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.batches: dict[str, dict[str, set[tuple[str, str]]]] = {}
        self.notes: list[str] = []
        self._stack: list[tuple[str, dict[str, str]]] = []
        self._note = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "data-batch" in a:
            self.batches[a["data-batch"]] = {"timeline": set(), "graph": set()}
        if "data-call-id" in a:
            batch = next((x["data-batch"] for _, x in reversed(self._stack) if "data-batch" in x))
            view = next(x["data-view"] for _, x in reversed(self._stack) if "data-view" in x)
            self.batches[batch][view].add((a["data-call-id"], a["data-status"]))
        self._note = tag == "p" and "note" in a.get("class", "")
        if tag not in ("meta", "path", "rect"):
            self._stack.append((tag, a))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if self._stack and self._stack[-1][0] == tag:
            self._stack.pop()

    def handle_endtag(self, tag: str) -> None:
        self._note = False
        while self._stack and self._stack.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        if self._note:
            self.notes.append(data)


def call(
    server: InspectorServer,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection: (status, headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        reply = connection.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        connection.close()


def page(server: InspectorServer) -> Page:
    status, headers, body = call(server, "GET", "/")
    assert status == 200, body
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    return Page(body.decode("utf-8"))


def version(server: InspectorServer) -> int:
    status, _, body = call(server, "GET", "/version")
    assert status == 200
    answer: int = json.loads(body)["version"]
    return answer


def run(provider: TracerProvider, calls: list[ToolCall]) -> None:
    """Run ``calls`` on a thread of its own (Playwright's API holds this thread's loop)."""
    orchestrator = Orchestrator([search, fetch], tracer_provider=provider)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, orchestrator.run(calls)).result()


def traced_run(tracing: Tracing, calls: list[ToolCall]) -> list[ReadableSpan]:
    """Run ``calls`` traced by ``tracing`` (shut down after, so every span is exported) and
    return the spans the run made, as a second, in-memory exporter saw them."""
    seen = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(seen))
    run(tracing.provider, calls)
    tracing.shutdown()
    return list(seen.get_finished_spans())


def recorded(calls: list[ToolCall]) -> list[ReadableSpan]:
    """The spans of a run of ``calls``, not exported anywhere."""
    provider = TracerProvider()
    seen = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(seen))
    run(provider, calls)
    return list(seen.get_finished_spans())


def expected(spans: list[ReadableSpan]) -> dict[str, set[tuple[str, str]]]:
    """Batch id as the page names it (its span id) -> {(call id, status)}."""
    out: dict[str, set[tuple[str, str]]] = {}
    for batch in spans:
        attributes = batch.attributes or {}
        if attributes.get(A.GEN_AI_OPERATION_NAME) != A.OP_INVOKE_WORKFLOW:
            continue
        assert batch.context is not None
        calls = set()
        for span in spans:
            a = span.attributes or {}
            parent = span.parent.span_id if span.parent is not None else None
            if parent == batch.context.span_id and A.GEN_AI_TOOL_CALL_ID in a:
                calls.add((str(a[A.GEN_AI_TOOL_CALL_ID]), str(a[A.TW_STATUS])))
        out[str(attributes[A.TW_BATCH_ID])] = calls
    return out


def check_page(server: InspectorServer, spans: list[ReadableSpan]) -> Page:
    shown = page(server)
    for batch_id, calls in expected(spans).items():
        assert batch_id in shown.batches, f"batch {batch_id} not on the page: {shown.batches}"
        assert shown.batches[batch_id]["timeline"] == calls
        assert shown.batches[batch_id]["graph"] == calls
    return shown


def otlp_json_document(spans: list[ReadableSpan]) -> dict[str, Any]:
    """The OTLP/JSON document for ``spans``: the SDK's protobuf request, ids in hex."""
    document: dict[str, Any] = MessageToDict(encode_spans(spans))
    for resource in document["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return document


PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def server() -> Iterator[InspectorServer]:
    with InspectorServer(port=0) as receiver:
        yield receiver


# --- real exports -------------------------------------------------------------------------


def test_a_protobuf_export_from_configure_tracing_shows_each_batch_and_call(
    server: InspectorServer,
) -> None:
    before = version(server)
    spans = traced_run(configure_tracing("otlp", server.url, "serve-test", set_global=False),
                       CALLS)  # fmt: skip
    assert version(server) > before
    shown = check_page(server, spans)
    assert len(shown.batches) == 1
    assert {c for c, _ in next(iter(shown.batches.values()))["graph"]} == {"a", "b", "c"}
    assert server.rejected == 0


def test_the_sdk_exporter_with_a_simple_processor_reaches_it_span_by_span(
    server: InspectorServer,
) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(f"{server.url}/v1/traces")))
    seen = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(seen))
    run(provider, OTHER_CALLS)
    provider.shutdown()
    spans = list(seen.get_finished_spans())
    assert version(server) == len(spans)  # one export per span, each a new version
    check_page(server, spans)
    (calls,) = expected(spans).values()
    assert calls == {("x1", "ok"), ("x2", "error")}  # the failed call is shown as failed


def test_an_otlp_json_export_from_configure_tracing_shows_each_batch(
    server: InspectorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    spans = traced_run(configure_tracing("otlp-json", server.url, set_global=False), CALLS)
    check_page(server, spans)
    first = set(expected(spans))
    more = traced_run(configure_tracing("otlp", server.url, set_global=False), OTHER_CALLS)
    shown = check_page(server, more)
    assert set(shown.batches) == first | set(expected(more))


def test_a_json_document_gets_an_empty_json_response(server: InspectorServer) -> None:
    spans = recorded(CALLS)
    status, headers, body = call(
        server, "POST", "/v1/traces", json.dumps(otlp_json_document(spans)).encode(), JSON
    )
    assert (status, headers["Content-Type"], json.loads(body)) == (200, "application/json", {})
    check_page(server, spans)


def test_a_protobuf_request_gets_an_empty_protobuf_response(server: InspectorServer) -> None:
    spans = recorded(CALLS)
    body = gzip.compress(encode_spans(spans).SerializeToString())
    status, headers, answer = call(
        server, "POST", "/v1/traces", body, {**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert (status, headers["Content-Type"]) == (200, "application/x-protobuf")
    assert not ExportTraceServiceResponse.FromString(answer).HasField("partial_success")
    check_page(server, spans)


def test_the_same_spans_sent_twice_are_kept_once(server: InspectorServer) -> None:
    spans = recorded(CALLS)
    body = encode_spans(spans).SerializeToString()
    for _ in range(2):  # an exporter retrying after a timeout
        assert call(server, "POST", "/v1/traces", body, PROTOBUF)[0] == 200
    assert len(server.spans()) == len(spans)


# --- spans that cannot be read ----------------------------------------------------------------


def test_json_spans_missing_fields_are_rejected_and_the_others_kept(
    server: InspectorServer,
) -> None:
    spans = recorded(CALLS)
    document = otlp_json_document(spans)
    kept = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    kept.append({"traceId": kept[0]["traceId"], "name": "no span id"})
    kept.append({"spanId": "00f067aa0ba902b7", "traceId": "x"})  # no name, bad trace id
    kept.append("not a span")
    status, _, body = call(server, "POST", "/v1/traces", json.dumps(document).encode(), JSON)
    assert status == 200
    partial = json.loads(body)["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 3
    assert "spanId" in partial["errorMessage"]
    shown = check_page(server, spans)
    assert any("3 span(s) received could not be read" in note for note in shown.notes)
    assert server.rejected == 3


def test_protobuf_spans_missing_fields_are_rejected_and_the_others_kept(
    server: InspectorServer,
) -> None:
    spans = recorded(CALLS)
    request = encode_spans(spans)
    scope = request.resource_spans[0].scope_spans[0]
    broken = scope.spans.add()
    broken.CopyFrom(scope.spans[0])
    broken.span_id = b""  # a span without an id cannot be placed
    status, _, body = call(server, "POST", "/v1/traces", request.SerializeToString(), PROTOBUF)
    assert status == 200
    answer = ExportTraceServiceResponse.FromString(body)
    assert answer.partial_success.rejected_spans == 1
    assert "spanId" in answer.partial_success.error_message
    check_page(server, spans)


def test_protobuf_without_the_otlp_extra_is_refused_naming_it(
    server: InspectorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
                        None)  # fmt: skip
    spans = recorded(CALLS)
    status, _, body = call(
        server, "POST", "/v1/traces", encode_spans(spans).SerializeToString(), PROTOBUF
    )
    assert status == 415
    assert b"pip install 'toolweave[otlp]'" in body
    document = json.dumps(otlp_json_document(spans)).encode()
    assert call(server, "POST", "/v1/traces", document, JSON)[0] == 200
    check_page(server, spans)


# --- hostile requests ---------------------------------------------------------------------


def _bomb() -> bytes:
    return gzip.compress(b"{" + b" " * (MAX_BODY + 10) + b"}")


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "message"),
    [
        pytest.param("POST", "/v1/traces", b"\xff\x00garbage" * 50, PROTOBUF, 400,
                     "not an OTLP ExportTraceServiceRequest", id="garbage-protobuf"),
        pytest.param("POST", "/v1/traces", b"{not json", JSON, 400, "not JSON",
                     id="garbage-json"),
        pytest.param("POST", "/v1/traces", b"\xff\xfe{}", JSON, 400, "not UTF-8",
                     id="json-not-utf8"),
        pytest.param("POST", "/v1/traces", b"[1, 2]", JSON, 400, "not an object",
                     id="json-list"),
        pytest.param("POST", "/v1/traces", b"[" * 100_000, JSON, 400, "cannot read",
                     id="json-nested-too-deep"),
        pytest.param("POST", "/v1/traces", b'{"resourceSpans": 5}', JSON, 400,
                     "'resourceSpans' is a number, not a list", id="resource-spans-not-a-list"),
        pytest.param("POST", "/v1/traces", b"{}", {"Content-Type": "text/plain"}, 415,
                     "send application/x-protobuf or application/json", id="wrong-type"),
        pytest.param("POST", "/v1/traces", b"{}", {**JSON, "Content-Encoding": "br"}, 415,
                     "send gzip or none", id="wrong-encoding"),
        pytest.param("POST", "/v1/traces", b"\x1f\x8bnot gzip", {**JSON,
                     "Content-Encoding": "gzip"}, 400, "not gzip", id="broken-gzip"),
        pytest.param("POST", "/v1/traces", _bomb(), {**JSON, "Content-Encoding": "gzip"}, 413,
                     "unzips to over", id="gzip-bomb"),
        pytest.param("GET", "/v1/traces", b"", {}, 405, "takes POST", id="get-traces"),
        pytest.param("POST", "/", b"{}", JSON, 405, "takes GET", id="post-page"),
        pytest.param("DELETE", "/version", b"", {}, 405, "takes GET", id="delete"),
        pytest.param("POST", "/v1/metrics", b"{}", JSON, 404, "send spans to POST /v1/traces",
                     id="metrics-path"),
        pytest.param("GET", "/../../etc/passwd", b"", {}, 404, "no '/../../etc/passwd' here",
                     id="traversal"),
    ],
)  # fmt: skip
def test_bad_requests_are_answered_and_the_server_keeps_serving(
    server: InspectorServer,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    got, answer_headers, answer = call(server, method, path, body, headers)
    assert got == status, answer
    assert message in answer.decode("utf-8"), answer
    if status == 405:
        assert answer_headers["Allow"] in ("POST", "GET, HEAD")
    assert version(server) == 0
    spans = recorded(CALLS)
    assert call(server, "POST", "/v1/traces", encode_spans(spans).SerializeToString(),
                PROTOBUF)[0] == 200  # fmt: skip
    check_page(server, spans)


def test_a_body_over_the_bound_is_refused_before_it_is_read(server: InspectorServer) -> None:
    # Announce 32 MiB + 1 and send nothing: the answer must come without waiting for it.
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:
        raw.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode()
        )
        answer = raw.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert f"over this receiver's {MAX_BODY}".encode() in answer
    assert version(server) == 0
    assert call(server, "GET", "/")[0] == 200


def test_a_smaller_body_bound_is_kept() -> None:
    with InspectorServer(port=0, max_body=1024) as small:
        body = encode_spans(recorded(CALLS)).SerializeToString()
        assert len(body) > 1024
        status, _, answer = call(small, "POST", "/v1/traces", body, PROTOBUF)
        assert status == 413
        assert b"export fewer spans per request" in answer


def test_a_client_that_stalls_does_not_hold_up_others(server: InspectorServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as stalled:
        stalled.sendall(b"POST /v1/traces HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        spans = recorded(CALLS)
        document = json.dumps(otlp_json_document(spans)).encode()
        assert call(server, "POST", "/v1/traces", document, JSON)[0] == 200
        check_page(server, spans)


def test_requests_for_another_host_name_are_refused(server: InspectorServer) -> None:
    # DNS rebinding: a web page whose name now points at 127.0.0.1 must not read the spans.
    recorded_spans = recorded(CALLS)
    call(server, "POST", "/v1/traces", encode_spans(recorded_spans).SerializeToString(), PROTOBUF)
    status, _, body = call(server, "GET", "/spans.jsonl", headers={"Host": "evil.example:4318"})
    assert status == 421
    assert b"execute_tool" not in body
    assert call(server, "GET", "/", headers={"Host": f"localhost:{server.port}"})[0] == 200


def test_only_the_last_spans_are_kept_and_the_page_says_so() -> None:
    spans = recorded(CALLS)
    with InspectorServer(port=0, max_spans=len(spans)) as small:
        call(small, "POST", "/v1/traces", encode_spans(spans).SerializeToString(), PROTOBUF)
        newer = recorded(OTHER_CALLS)
        call(small, "POST", "/v1/traces", encode_spans(newer).SerializeToString(), PROTOBUF)
        assert len(small.spans()) == len(spans)
        shown = check_page(small, newer)
        assert any(f"{len(newer)} older span(s) were dropped" in n for n in shown.notes)


# --- the download and the process -------------------------------------------------------------


def test_the_download_reads_back_as_a_trace_file(server: InspectorServer) -> None:
    spans = traced_run(configure_tracing("otlp", server.url, set_global=False), CALLS)
    status, headers, body = call(server, "GET", "/spans.jsonl")
    assert status == 200
    assert headers["Content-Type"].startswith("application/x-ndjson")
    trace = parse_trace(body, "spans.jsonl")
    assert sorted((s.name, s.span_id) for s in trace.spans) == sorted(
        (s.name, f"0x{s.context.span_id:016x}") for s in spans if s.context is not None
    )
    by_call = {s.attributes.get(A.GEN_AI_TOOL_CALL_ID): s for s in trace.spans}
    assert by_call["c"].attributes[A.TW_DEPENDS_ON] == ["a", "b"]


def test_serve_runs_until_ctrl_c_and_exits_cleanly() -> None:
    code = (
        "from toolweave.telemetry._serve import serve\n"
        "serve(port=0, ready=lambda s: print(s.url, flush=True))\n"
        "print('stopped', flush=True)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else ""
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", "/version")
        assert json.loads(connection.getresponse().read())["version"] == 0
        connection.close()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out.strip() == "stopped"
    assert "Traceback" not in err


def test_a_port_in_use_is_an_os_error(server: InspectorServer) -> None:
    with pytest.raises(OSError, match="in use"):
        InspectorServer(port=server.port)


# --- the live page in a browser ---------------------------------------------------------------


def test_the_page_follows_new_batches_and_keeps_the_one_picked(server: InspectorServer) -> None:
    browser_module = pytest.importorskip("browser")
    executable = browser_module.find_chromium()
    if executable is None:
        pytest.skip("no Chromium on this machine: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    first = traced_run(configure_tracing("otlp", server.url, set_global=False), CALLS)
    (first_id,) = expected(first)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=list(browser_module.CHROMIUM_ARGS)
        )
        try:
            tab = browser.new_page()
            errors: list[str] = []
            tab.on("pageerror", lambda error: errors.append(str(error)))
            tab.on(
                "request",
                lambda r: None if r.url.startswith(server.url) else errors.append(r.url),
            )
            tab.goto(f"{server.url}/", wait_until="load")
            tab.locator(f'[data-batch="{first_id}"] [data-view=graph] [data-call-id="c"]').click()
            assert "call=" in tab.evaluate("location.hash")

            second = traced_run(configure_tracing("otlp", server.url, set_global=False),
                                OTHER_CALLS)  # fmt: skip
            (second_id,) = expected(second)
            # The page reloads itself within a few polls; generous bound on a loaded machine.
            tab.locator(f'button[data-pick="{second_id}"]').wait_for(timeout=30_000)
            shown = tab.locator("section[data-batch]:not([hidden])")
            assert shown.get_attribute("data-batch") == first_id
            details = shown.locator('[data-view=details] [data-field="call-id"]')
            assert details.text_content() == "c"
            assert not errors, errors
        finally:
            browser.close()


def test_without_a_pick_the_page_shows_the_newest_batch(server: InspectorServer) -> None:
    browser_module = pytest.importorskip("browser")
    executable = browser_module.find_chromium()
    if executable is None:
        pytest.skip("no Chromium on this machine: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    traced_run(configure_tracing("otlp", server.url, set_global=False), CALLS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=list(browser_module.CHROMIUM_ARGS)
        )
        try:
            tab = browser.new_page()
            tab.goto(f"{server.url}/", wait_until="load")
            second = traced_run(configure_tracing("otlp", server.url, set_global=False),
                                OTHER_CALLS)  # fmt: skip
            (second_id,) = expected(second)
            shown = tab.locator(f'section[data-batch="{second_id}"]:not([hidden])')
            shown.wait_for(timeout=30_000)
            live = tab.locator("#tw-live").text_content() or ""
            assert f"live: {len(server.spans())} span(s) received" in live
        finally:
            browser.close()


# --- the command line -------------------------------------------------------------------------

CLI = [sys.executable, "-m", "toolweave.cli"]


def _cli_serves() -> bool:
    from toolweave import cli

    with contextlib.redirect_stderr(io.StringIO()):
        try:
            cli._parser().parse_args(["inspect", "--serve"])
        except SystemExit:
            return False
    return True


needs_cli = pytest.mark.skipif(
    not _cli_serves(), reason="toolweave inspect has no --serve yet (middleware/cli.py)"
)


@needs_cli
def test_the_command_prints_where_to_look_serves_and_stops_on_ctrl_c() -> None:
    process = subprocess.Popen(
        [*CLI, "inspect", "--serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.split("OTEL_EXPORTER_OTLP_ENDPOINT=")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        assert f"open {url}/" in line
        tracing = configure_tracing("otlp", url, set_global=False)
        spans = traced_run(tracing, CALLS)
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", "/")
        shown = Page(connection.getresponse().read().decode("utf-8"))
        connection.close()
        for batch_id, calls in expected(spans).items():
            assert shown.batches[batch_id]["graph"] == calls
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (process.returncode, out, err) == (0, "", "")


@needs_cli
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["inspect"], "inspect needs a TRACE file", id="nothing-to-show"),
        pytest.param(["inspect", "--serve", "t.jsonl"], "leave out TRACE and --html",
                     id="serve-and-a-file"),
        pytest.param(["inspect", "t.jsonl", "--port", "9"], "--port and --host go with --serve",
                     id="port-without-serve"),
        pytest.param(["inspect", "--serve", "--port", "70000"], "pass a port from 1 to 65535",
                     id="port-out-of-range"),
    ],
)  # fmt: skip
def test_the_command_refuses_what_it_cannot_do(argv: list[str], message: str) -> None:
    result = subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@needs_cli
def test_the_command_names_a_port_in_use(server: InspectorServer) -> None:
    result = subprocess.run(
        [*CLI, "inspect", "--serve", "--port", str(server.port)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1 port {server.port}" in result.stderr
    assert "pass another --port" in result.stderr
