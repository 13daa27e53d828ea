"""Setting up the OpenTelemetry SDK for toolweave's spans: exporters and processors."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["ExporterName", "Tracing", "configure_tracing", "jsonl_exporter"]

logger = logging.getLogger("toolweave")

ExporterName = Literal["otlp", "otlp-grpc", "console", "memory", "jsonl"]


def _sdk_error(what: str) -> ImportError:
    return ImportError(
        f"{what} needs the OpenTelemetry SDK and exporters: pip install 'toolweave[otlp]'"
    )


def jsonl_exporter(path: str | os.PathLike[str]) -> SpanExporter:
    """A span exporter that appends one JSON object per span to ``path``. ``OSError`` now,
    not at the first export, when ``path`` cannot be written (a folder that does not exist)."""
    try:
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    except ImportError as exc:
        raise _sdk_error("the jsonl exporter") from exc
    with open(path, "a", encoding="utf-8"):
        pass

    class _JsonLines(SpanExporter):
        def __init__(self) -> None:
            self.path = os.fspath(path)
            self._lock = threading.Lock()

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            lines = [json.dumps(json.loads(s.to_json()), separators=(",", ":")) for s in spans]
            try:
                with self._lock, open(self.path, "a", encoding="utf-8") as out:
                    out.write("".join(line + "\n" for line in lines))
            except OSError as exc:  # a full disk, say: one line in the log, not a traceback
                logging.getLogger("toolweave").warning(
                    "toolweave: cannot write spans to %s: %s", self.path, exc.strerror or exc
                )
                return SpanExportResult.FAILURE
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            return None

    return _JsonLines()


@dataclass
class Tracing:
    """What ``configure_tracing`` set up: the SDK provider and its exporter."""

    provider: TracerProvider
    exporter: SpanExporter
    kind: ExporterName

    def flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every finished span now."""
        return bool(self.provider.force_flush(timeout_millis))

    def spans(self) -> list[ReadableSpan]:
        """Finished spans so far (``memory`` exporter only), after a flush."""
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        if not isinstance(self.exporter, InMemorySpanExporter):
            raise TypeError("spans() needs configure_tracing('memory')")
        self.flush()
        return list(self.exporter.get_finished_spans())

    def shutdown(self) -> None:
        """Flush and stop exporting."""
        self.provider.shutdown()


def configure_tracing(
    exporter: ExporterName | str = "otlp",
    endpoint: str | None = None,
    service_name: str = "toolweave",
    *,
    path: str | os.PathLike[str] | None = None,
    headers: Mapping[str, str] | None = None,
    set_global: bool = True,
) -> Tracing:
    """Set up the OpenTelemetry SDK with a batch span processor and one exporter.

    - ``otlp``: OTLP over HTTP (``endpoint`` like ``http://localhost:4318``; ``/v1/traces`` is
      added when no path is given). Without ``endpoint`` the standard
      ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` and
      ``OTEL_EXPORTER_OTLP_HEADERS`` apply; ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc`` picks gRPC.
    - ``otlp-grpc``: OTLP over gRPC (``endpoint`` like ``localhost:4317``).
    - ``console``: spans printed to standard output.
    - ``memory``: spans kept in memory (``Tracing.spans()``), for tests.
    - ``jsonl`` (or ``"jsonl:PATH"``): one JSON span per line appended to ``path``.

    ``OTEL_SERVICE_NAME`` wins over ``service_name``. With ``set_global`` the provider becomes
    the global one, which every ``Orchestrator`` without a ``tracer_provider`` uses.
    """
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError as exc:
        raise _sdk_error("configure_tracing") from exc

    kind, _, spec_path = str(exporter).partition(":")
    if kind == "otlp" and os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip() == "grpc":
        kind = "otlp-grpc"
    span_exporter: SpanExporter
    if kind == "otlp":
        span_exporter = _otlp_http(endpoint, headers)
    elif kind == "otlp-grpc":
        span_exporter = _otlp_grpc(endpoint, headers)
    elif kind == "console":
        span_exporter = ConsoleSpanExporter()
    elif kind == "memory":
        span_exporter = InMemorySpanExporter()
    elif kind == "jsonl":
        span_exporter = jsonl_exporter(path or spec_path or "toolweave-trace.jsonl")
    else:
        raise ValueError(
            f"unknown exporter {exporter!r}: use otlp, otlp-grpc, console, memory or jsonl:PATH"
        )

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    if set_global:
        current = trace.get_tracer_provider()
        if isinstance(current, trace.ProxyTracerProvider):
            trace.set_tracer_provider(provider)
        else:
            logger.warning(
                "toolweave: a global tracer provider is already set; pass "
                "Orchestrator(tracer_provider=tracing.provider) to use this one"
            )
    return Tracing(provider=provider, exporter=span_exporter, kind=cast(ExporterName, kind))


def _otlp_http(endpoint: str | None, headers: Mapping[str, str] | None) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise _sdk_error("the otlp exporter") from exc
    if endpoint is not None and urlsplit(endpoint).path in ("", "/"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=endpoint, headers=dict(headers) if headers else None)


def _otlp_grpc(endpoint: str | None, headers: Mapping[str, str] | None) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ImportError(
            "the otlp-grpc exporter needs: pip install opentelemetry-exporter-otlp-proto-grpc"
        ) from exc
    insecure = endpoint is not None and not endpoint.startswith("https://")
    return OTLPSpanExporter(
        endpoint=endpoint, headers=dict(headers) if headers else None, insecure=insecure or None
    )
