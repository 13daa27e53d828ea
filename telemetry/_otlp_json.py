"""OTLP/HTTP with the JSON encoding (``http/json``), which the Python OTLP exporter lacks.

The request is the protobuf ``ExportTraceServiceRequest`` the SDK's own encoder builds,
written as OTLP/JSON: field names in lowerCamelCase, enums as integers, 64-bit integers as
strings (protobuf's JSON mapping does these three), and trace and span ids as hex strings
rather than base64 (the one place OTLP/JSON departs from protobuf's mapping).
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["OtlpJsonSpanExporter", "otlp_json"]

logger = logging.getLogger("toolweave")

_RETRYABLE = frozenset({429, 502, 503, 504})
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def otlp_json(spans: Sequence[ReadableSpan]) -> bytes:
    """``spans`` as the body of an OTLP/JSON export request."""
    from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    request = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for resource_spans in request.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                _hex_ids(span)
                for link in span.get("links", ()):
                    _hex_ids(link)
    return json.dumps(request, separators=(",", ":")).encode("ascii")


def _hex_ids(item: dict[str, Any]) -> None:
    for key in _ID_FIELDS:
        value = item.get(key)
        if value:
            item[key] = base64.b64decode(value).hex()


class OtlpJsonSpanExporter(SpanExporter):
    """Sends spans as OTLP/JSON to ``endpoint`` (the full URL, ``/v1/traces`` included).

    Retries 429, 502, 503, 504 and connection failures with exponential back-off within
    ``timeout`` seconds per export; any other answer fails the export at once (logged).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        gzip_body: bool = False,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}
        for name, value in self.headers.items():
            if any(c in value for c in "\r\n") or not value.isascii():
                raise ValueError(
                    f"the OTLP header {name!r} has a value HTTP cannot carry (a line break, or "
                    "a character that is not ASCII); percent-encode it in "
                    "OTEL_EXPORTER_OTLP_HEADERS and send only ASCII"
                )
        self.headers["content-type"] = "application/json"
        if gzip_body:
            self.headers["content-encoding"] = "gzip"
        self.timeout = timeout
        self._gzip = gzip_body
        self._context = context
        self._closed = threading.Event()
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Encode and send one batch of spans."""
        if self._closed.is_set():
            return SpanExportResult.FAILURE
        try:
            body = otlp_json(spans)
        except Exception:  # a span the encoder refuses fails its batch, not the process
            logger.warning("toolweave: cannot encode spans as OTLP/JSON", exc_info=True)
            return SpanExportResult.FAILURE
        if self._gzip:
            body = gzip.compress(body)
        return self._send(body)

    def _send(self, body: bytes) -> SpanExportResult:
        deadline = time.monotonic() + self.timeout
        backoff = 0.5
        while True:
            left = deadline - time.monotonic()
            problem = self._post(body, max(left, 0.01))
            if problem is None:
                return SpanExportResult.SUCCESS
            retry, why = problem
            left = deadline - time.monotonic()
            if not retry or backoff > left or self._closed.wait(backoff):
                logger.warning("toolweave: OTLP/JSON export to %s failed: %s", self.endpoint, why)
                return SpanExportResult.FAILURE
            backoff *= 2

    def _post(self, body: bytes, timeout: float) -> tuple[bool, str] | None:
        """None when the receiver took the spans, else (worth retrying, why not)."""
        request = urllib.request.Request(
            self.endpoint, data=body, headers=self.headers, method="POST"
        )
        deadline = time.monotonic() + timeout
        try:
            with self._opener.open(request, timeout=timeout) as reply:
                # The socket timeout bounds each read, not the answer: a receiver that trickles
                # its body must not hold the export past the deadline.
                while reply.read1(65_536):  # read1: what one socket read brings
                    if time.monotonic() > deadline:
                        return True, f"the answer took longer than {timeout:.3g} s"
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:  # a redirect would turn the POST into a bodiless GET
                where = exc.headers.get("Location", "?") if exc.headers else "?"
                return False, f"HTTP {exc.code} redirect to {where}: set the endpoint to it"
            return exc.code in _RETRYABLE, f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return True, str(reason)
        return None

    def shutdown(self) -> None:
        """Stop exporting; an export waiting to retry gives up."""
        self._closed.set()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here."""
        return True


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects fail the export (urllib would follow them as a GET without the spans)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def ssl_context_from_env() -> ssl.SSLContext | None:
    """A TLS context from the standard certificate variables, when any is set."""
    ca = _env("CERTIFICATE")
    cert, key = _env("CLIENT_CERTIFICATE"), _env("CLIENT_KEY")
    if not (ca or cert):
        return None
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(cert, key)
    return context


def _env(name: str) -> str | None:
    """``OTEL_EXPORTER_OTLP_TRACES_{name}``, else ``OTEL_EXPORTER_OTLP_{name}``."""
    return (
        os.environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}")
        or os.environ.get(f"OTEL_EXPORTER_OTLP_{name}")
        or None
    )
