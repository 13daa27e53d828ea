"""OTLP receivers that run inside the test process, on 127.0.0.1, built on opentelemetry-proto.

They decode each export request into plain dicts so tests can check what went over the wire.
"""

from __future__ import annotations

import gzip
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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


class HttpReceiver:
    """OTLP/HTTP (protobuf) at ``http://127.0.0.1:PORT/v1/traces``."""

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
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.paths.append(self.path)
                receiver.headers.append(dict(self.headers))
                receiver.spans += decode(request)
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HttpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


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
