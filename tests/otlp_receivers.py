"""OTLP receivers that run inside the test process, on 127.0.0.1, built on opentelemetry-proto.

They decode each export request into plain dicts so tests can check what went over the wire.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import threading
from collections.abc import Iterable, Sequence
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from google.protobuf import json_format  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(x) for x in v.array_value.values)
    return getattr(v, kind) if kind else None


def decode(request: trace_service_pb2.ExportTraceServiceRequest) -> list[dict[str, Any]]:
    """Every span of an export request as ``{name, span_id, parent_id, attributes, links,
    events, resource}``."""
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope in resource_spans.scope_spans:
            for s in scope.spans:
                spans.append(
                    {
                        "name": s.name,
                        "span_id": s.span_id.hex(),
                        "parent_id": s.parent_span_id.hex() or None,
                        "trace_id": s.trace_id.hex(),
                        "attributes": {kv.key: _value(kv.value) for kv in s.attributes},
                        "links": [link.span_id.hex() for link in s.links],
                        "events": [e.name for e in s.events],
                        "status": s.status.code,
                        "resource": resource,
                    }
                )
    return spans


class _HttpReceiver:
    """An OTLP/HTTP receiver at ``http://127.0.0.1:PORT``: it reads each request (gzip undone)
    and records its path and headers; ``_answer`` decodes the body and says what to reply."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.paths.append(self.path)
                receiver.headers.append(receiver._headers_of(self.headers.items()))
                status, content_type, reply = receiver._answer(body)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _headers_of(self, items: Iterable[tuple[str, str]]) -> dict[str, str]:
        return dict(items)

    def _answer(self, body: bytes) -> tuple[int, str, bytes]:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class HttpReceiver(_HttpReceiver):
    """OTLP/HTTP (protobuf) at ``http://127.0.0.1:PORT/v1/traces``."""

    def _answer(self, body: bytes) -> tuple[int, str, bytes]:
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.spans += decode(request)
        reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return 200, "application/x-protobuf", reply


class JsonReceiver(_HttpReceiver):
    """OTLP/HTTP with JSON bodies on 127.0.0.1: keeps each raw body as JSON, and decodes it
    the way a collector does (hex ids back to bytes, then protobuf's JSON parser). ``answers``:
    HTTP statuses to give the first requests (then 200). Header names are kept lower case."""

    def __init__(self, answers: Sequence[int] = ()) -> None:
        super().__init__()
        self.bodies: list[dict[str, Any]] = []
        self.answers = list(answers)

    def _headers_of(self, items: Iterable[tuple[str, str]]) -> dict[str, str]:
        return {k.lower(): v for k, v in items}

    def _answer(self, body: bytes) -> tuple[int, str, bytes]:
        status = self.answers.pop(0) if self.answers else 200
        if status == 200:
            raw = json.loads(body)
            self.bodies.append(raw)
            self.spans += decode(parse_otlp_json(raw))
        return status, "application/json", b"{}"


def parse_otlp_json(raw: dict[str, Any]) -> trace_service_pb2.ExportTraceServiceRequest:
    """An OTLP/JSON body as the protobuf request, strictly: ids from hex, unknown fields
    refused."""
    body = copy.deepcopy(raw)
    for resource_spans in body.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for item in [span, *span.get("links", [])]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in item:
                            item[key] = base64.b64encode(bytes.fromhex(item[key])).decode()
    request = trace_service_pb2.ExportTraceServiceRequest()
    json_format.ParseDict(body, request)
    return request


class GrpcReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """OTLP/gRPC at ``127.0.0.1:PORT``."""

    def __init__(self) -> None:
        import grpc

        self.spans: list[dict[str, Any]] = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"127.0.0.1:{port}"

    def Export(self, request: Any, context: Any) -> Any:
        self.spans += decode(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def __enter__(self) -> GrpcReceiver:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=None)
