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
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["ExporterName", "Tracing", "configure_tracing", "jsonl_exporter"]

logger = logging.getLogger("toolweave")

ExporterName = Literal["otlp", "otlp-grpc", "otlp-json", "console", "memory", "jsonl", "none"]
"""What ``configure_tracing`` sets up: OTLP (``otlp`` follows the protocol variables;
``otlp-grpc`` and ``otlp-json`` name one), spans printed, kept in memory, appended to a file
as JSON lines, or nothing."""

OtlpProtocol = Literal["grpc", "http/protobuf", "http/json"]

_PROTOCOLS = {"grpc": "otlp-grpc", "http/protobuf": "otlp", "http/json": "otlp-json"}
"""Each ``OTEL_EXPORTER_OTLP_PROTOCOL`` value, and the exporter it means."""
_KINDS = ("otlp", "otlp-grpc", "otlp-json", "console", "memory", "jsonl", "none")
_FALLBACK_SERVICE = "toolweave"


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
    """What ``configure_tracing`` set up: the SDK provider and its exporter (``kind``
    ``none``: a provider that samples nothing, and an exporter never called)."""

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
    exporter: ExporterName | str | None = None,
    endpoint: str | None = None,
    service_name: str | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    headers: Mapping[str, str] | None = None,
    protocol: OtlpProtocol | None = None,
    set_global: bool = True,
) -> Tracing:
    """Set up the OpenTelemetry SDK with a batch span processor and one exporter.

    ``exporter`` (default: ``OTEL_TRACES_EXPORTER``, else ``otlp``):

    - ``otlp``: OTLP over the protocol ``protocol`` names, else
      ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``, else ``OTEL_EXPORTER_OTLP_PROTOCOL``, else
      ``http/protobuf``. ``grpc`` (``endpoint`` like ``http://localhost:4317``),
      ``http/protobuf`` or ``http/json`` (``endpoint`` like ``http://localhost:4318``;
      ``/v1/traces`` is added when it has no path). ``otlp-grpc`` and ``otlp-json`` name
      the protocol outright.
    - ``console``: spans printed to standard output.
    - ``memory``: spans kept in memory (``Tracing.spans()``), for tests.
    - ``jsonl`` (or ``"jsonl:PATH"``): one JSON span per line appended to ``path``.
    - ``none``: no spans at all; the global provider is left alone.

    Without ``endpoint`` and ``headers``, the standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
    (used as it is) or ``OTEL_EXPORTER_OTLP_ENDPOINT`` (``/v1/traces`` added for HTTP), and
    ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` or ``OTEL_EXPORTER_OTLP_HEADERS`` apply; given
    headers are added to those of the environment.

    The service name is ``service_name`` if given, else the one ``OTEL_SERVICE_NAME`` or
    ``OTEL_RESOURCE_ATTRIBUTES`` (``service.name=...``) sets, else ``toolweave``; the other
    attributes of ``OTEL_RESOURCE_ATTRIBUTES`` are kept. Arguments always win over the
    environment. ``ValueError`` names the argument or variable whose value is not known.

    With ``set_global`` the provider becomes the global one, which every ``Orchestrator``
    without a ``tracer_provider`` uses.
    """
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
    except ImportError as exc:
        raise _sdk_error("configure_tracing") from exc

    kind, spec_path = _exporter_kind(exporter, protocol)
    resource = _resource(service_name)
    if kind == "none":
        # Nothing to export: spans that never record cost the engine next to nothing.
        return Tracing(
            provider=TracerProvider(resource=resource, sampler=ALWAYS_OFF),
            exporter=InMemorySpanExporter(),
            kind="none",
        )
    span_exporter: SpanExporter
    if kind == "otlp":
        span_exporter = _otlp_http(endpoint, headers)
    elif kind == "otlp-grpc":
        span_exporter = _otlp_grpc(endpoint, headers)
    elif kind == "otlp-json":
        span_exporter = _otlp_json(endpoint, headers)
    elif kind == "console":
        span_exporter = ConsoleSpanExporter()
    elif kind == "memory":
        span_exporter = InMemorySpanExporter()
    else:
        span_exporter = jsonl_exporter(path or spec_path or "toolweave-trace.jsonl")

    provider = TracerProvider(resource=resource)
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


def _exporter_kind(exporter: str | None, protocol: str | None) -> tuple[str, str]:
    """The exporter to make and the path written after ``jsonl:``, from the arguments, else
    the environment."""
    if exporter is None:
        source = "OTEL_TRACES_EXPORTER"
        exporter = os.environ.get(source, "").strip() or "otlp"
        if "," in exporter:
            raise ValueError(
                f"{source}={exporter!r}: configure_tracing sets up one exporter; "
                "name one of otlp, console or none"
            )
    else:
        source = "exporter"
    kind, _, spec_path = str(exporter).partition(":")
    kind = kind.strip().lower()  # the name, not the path after jsonl:
    if kind not in _KINDS:
        raise ValueError(
            f"unknown exporter {exporter!r}"
            + (f" in {source}" if source != "exporter" else "")
            + ": use otlp, otlp-grpc, otlp-json, console, memory, jsonl:PATH or none"
        )
    if protocol is not None:
        chosen = _PROTOCOLS.get(protocol)
        if chosen is None:
            raise ValueError(f"unknown protocol {protocol!r}: use {_protocols()}")
        if kind.startswith("otlp") and kind != "otlp" and kind != chosen:
            raise ValueError(
                f"exporter {kind!r} and protocol {protocol!r} disagree: pass exporter='otlp' "
                "with the protocol, or leave the protocol out"
            )
        if kind == "otlp":
            kind = chosen
    elif kind == "otlp":
        kind = _protocol_from_env()
    return kind, spec_path


def _protocol_from_env() -> str:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = os.environ.get(name, "").strip()
        if value:
            kind = _PROTOCOLS.get(value.lower())
            if kind is None:
                raise ValueError(f"{name}={value!r} is not an OTLP protocol: use {_protocols()}")
            return kind
    return "otlp"


def _protocols() -> str:
    return ", ".join(_PROTOCOLS)


def _resource(service_name: str | None) -> Resource:
    """The SDK's resource (``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SERVICE_NAME`` and its
    detectors), with ``service_name`` over it, or ``toolweave`` where nothing named one."""
    from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource

    if service_name is None and not OTELResourceDetector().detect().attributes.get(SERVICE_NAME):
        service_name = _FALLBACK_SERVICE
    return Resource.create({} if service_name is None else {SERVICE_NAME: service_name})


def _otlp_http(endpoint: str | None, headers: Mapping[str, str] | None) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise _sdk_error("the otlp exporter") from exc
    return OTLPSpanExporter(
        endpoint=_traces_url(endpoint), headers=dict(headers) if headers else None
    )


def _traces_url(endpoint: str | None) -> str | None:
    """A base URL given as ``endpoint`` gets OTLP/HTTP's ``/v1/traces``, like the variable
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` does."""
    if endpoint is not None and urlsplit(endpoint).path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def _otlp_json(endpoint: str | None, headers: Mapping[str, str] | None) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: F401
        from opentelemetry.util.re import parse_env_headers

        from ._otlp_json import OtlpJsonSpanExporter, ssl_context_from_env
    except ImportError as exc:
        raise _sdk_error("the otlp http/json exporter") from exc
    env = os.environ.get
    url = (
        _traces_url(endpoint)
        or env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or (
            (env("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318").rstrip("/")
            + "/v1/traces"
        )
    )
    from_env = env("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env("OTEL_EXPORTER_OTLP_HEADERS")
    sent = dict(parse_env_headers(from_env or "", liberal=True))
    sent.update(headers or {})
    compression = (
        env("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION") or env("OTEL_EXPORTER_OTLP_COMPRESSION") or ""
    )
    exporter: SpanExporter = OtlpJsonSpanExporter(
        url,
        headers=sent,
        timeout=_timeout(),
        gzip_body=compression.strip().lower() == "gzip",
        context=ssl_context_from_env(),
    )
    return exporter


def _timeout() -> float:
    """Seconds per export, from the timeout variables as the Python SDK reads them."""
    for name in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        raw = os.environ.get(name, "").strip()
        if raw:
            try:
                seconds = float(raw)
            except ValueError:
                logger.warning("toolweave: %s=%r is not a number of seconds", name, raw)
                break
            if seconds > 0:
                return seconds
    return 10.0


def _otlp_grpc(endpoint: str | None, headers: Mapping[str, str] | None) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ImportError(
            "the otlp-grpc exporter needs: pip install opentelemetry-exporter-otlp-proto-grpc"
        ) from exc
    from opentelemetry.util.re import parse_env_headers

    insecure = endpoint is not None and not endpoint.startswith("https://")
    merged = None
    if headers:  # the SDK reads the variables' headers only when none are given: merge them
        env = os.environ.get
        from_env = env("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env("OTEL_EXPORTER_OTLP_HEADERS")
        merged = dict(parse_env_headers(from_env or "", liberal=True))
        merged.update(headers)
    return OTLPSpanExporter(
        endpoint=endpoint,
        # gRPC metadata keys are lower case
        headers={k.lower(): v for k, v in merged.items()} if merged else None,
        insecure=insecure or None,
    )
