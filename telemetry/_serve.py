"""A local OTLP/HTTP receiver that shows the batches it receives in the Inspector page.

``toolweave inspect --serve`` runs it: point ``OTEL_EXPORTER_OTLP_ENDPOINT`` at it, open its
page, and watch batches arrive. It takes ``POST /v1/traces`` in both OTLP/HTTP encodings
(``application/x-protobuf``, which needs the ``otlp`` extra, and ``application/json``), gzip
or not, and keeps the last ``max_spans`` spans in memory:

- ``GET /``: the Inspector page of everything received, reloading itself (keeping the batch
  and call picked, in ``location.hash``) when ``/version`` changes;
- ``GET /version``: ``{"version", "spans", "rejected"}``, the version going up with each
  export that brought spans;
- ``GET /spans.jsonl``: the spans kept, as ``--trace jsonl:PATH`` writes them (for
  ``toolweave inspect FILE`` later).

Everything a request holds is untrusted: a span that cannot be read is counted (answered as
``partialSuccess.rejectedSpans``) and left out; a body that cannot be read gets a 4xx answer
naming what is wrong; nothing a client sends stops the server.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import json
import logging
import socket
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from . import attributes as A
from .inspect import TraceSpan, format_html, orphaned_calls, parse_trace

__all__ = ["DEFAULT_PORT", "MAX_BODY", "MAX_SPANS", "InspectorServer", "serve"]

logger = logging.getLogger("toolweave")

DEFAULT_PORT = 4318
"""OTLP/HTTP's port, so the SDKs' default endpoint reaches the receiver unchanged."""
MAX_BODY = 32 * 1024 * 1024
"""Bytes of one request body, after gzip is undone; larger ones are answered 413."""
MAX_SPANS = 100_000
"""Spans kept; the oldest are dropped past this."""

_TRACES = "/v1/traces"
_PROTOBUF, _JSON = "application/x-protobuf", "application/json"
_EXTRA = "pip install 'toolweave[otlp]'"
_PROBLEMS = 5  # reasons kept for spans that could not be read
PAGE_BATCHES = 200
"""Batches drawn on the live page, the newest: the page is drawn again whenever spans arrive,
so it must not grow with the whole history (``/spans.jsonl`` has everything kept)."""
_IDLE_S = 30.0  # a connection that sends nothing for this long is closed
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
)


class _Refused(Exception):
    """A request answered with an error status and a one-line reason."""

    def __init__(self, status: HTTPStatus, message: str, *, allow: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.allow = allow


class _Store:
    """The spans received, by (trace id, span id) so a retried export does not show twice."""

    def __init__(self, max_spans: int) -> None:
        self.max_spans = max_spans
        self.lock = threading.Lock()
        self.spans: OrderedDict[tuple[str, str], TraceSpan] = OrderedDict()
        self.version = 0
        self.rejected = 0
        self.dropped = 0
        self.problems: list[str] = []
        self._page: tuple[int, str] | None = None

    def add(self, spans: list[TraceSpan], rejected: int, problems: list[str]) -> None:
        with self.lock:
            for span in spans:
                key = (span.trace_id, span.span_id)
                self.spans.pop(key, None)
                self.spans[key] = span
            while len(self.spans) > self.max_spans:
                self.spans.popitem(last=False)
                self.dropped += 1
            self.rejected += rejected
            room = _PROBLEMS - len(self.problems)
            self.problems.extend(problems[: max(room, 0)])
            if spans or rejected:
                self.version += 1

    def snapshot(self) -> tuple[int, list[TraceSpan], list[str]]:
        with self.lock:
            notes = []
            if self.rejected:
                first = f" (first: {self.problems[0]})" if self.problems else ""
                notes.append(
                    f"{self.rejected} span(s) received could not be read and are left out{first}"
                )
            if self.dropped:
                notes.append(
                    f"{self.dropped} older span(s) were dropped: the receiver keeps the last "
                    f"{self.max_spans:,}"
                )
            return self.version, list(self.spans.values()), notes

    def page(self, title: str) -> str:
        version, spans, notes = self.snapshot()
        cached = self._page
        if cached is not None and cached[0] == version:
            return cached[1]
        spans, shown_notes = _newest(spans)
        notes = [*notes, *shown_notes]
        html = _live(format_html(spans, title=title, notes=notes), version, len(spans))
        if self._page is None or self._page[0] <= version:
            self._page = (version, html)
        return html

    def status(self) -> dict[str, int]:
        with self.lock:
            return {"version": self.version, "spans": len(self.spans), "rejected": self.rejected}


class InspectorServer:
    """The receiver, on ``host``:``port`` (``port=0``: any free port, see ``url``).

    Use it as a context manager (served from a background thread, stopped on exit) or call
    ``serve_forever()`` to serve from this thread. ``OSError`` when the address cannot be
    bound (a port in use)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        max_spans: int = MAX_SPANS,
        max_body: int = MAX_BODY,
    ) -> None:
        if max_spans < 1 or max_body < 1:
            raise ValueError(
                f"max_spans={max_spans} and max_body={max_body}: both must be at least 1"
            )
        self.max_body = max_body
        self._store = _Store(max_spans)
        self._thread: threading.Thread | None = None
        self._http = _HttpServer((host, port), _Handler, self)
        bound = self._http.server_address
        self.host = host
        self.port: int = int(bound[1])
        """The port listened on (the one chosen when ``port=0`` was asked)."""
        self._allowed_hosts = _allowed_hosts(host, self.port)

    @property
    def url(self) -> str:
        """``http://HOST:PORT``: the page's address and ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1" if host != "::" else "::1"
        return f"http://{_bracketed(host)}:{self.port}"

    @property
    def version(self) -> int:
        """Goes up by one with each export that brought spans (or spans it could not read)."""
        return self._store.status()["version"]

    @property
    def rejected(self) -> int:
        """Spans received that could not be read, in all."""
        return self._store.status()["rejected"]

    def spans(self) -> list[TraceSpan]:
        """The spans kept, oldest first."""
        return self._store.snapshot()[1]

    def serve_forever(self) -> None:
        """Serve until ``shutdown()`` (from another thread) or ``KeyboardInterrupt``."""
        self._http.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        """Stop serving and close the listening socket."""
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join()
            self._thread = None
        self._http.server_close()

    def __enter__(self) -> InspectorServer:
        self._thread = threading.Thread(
            target=self.serve_forever, name="toolweave-inspect-serve", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    # --- what the handler asks of the server ------------------------------------------------

    def _host_allowed(self, header: str | None) -> bool:
        # A web page that rebinds its own name to 127.0.0.1 would otherwise read the spans.
        return self._allowed_hosts is None or (header or "").lower() in self._allowed_hosts

    def _receive(self, body: bytes, content_type: str) -> tuple[str, bytes]:
        """Read one export request; the answer's content type and body."""
        read = _json_document if content_type == _JSON else _protobuf_document
        document = read(body)
        try:
            encoded = json.dumps({"resourceSpans": document.get("resourceSpans", [])})
            trace = parse_trace(encoded.encode("utf-8"), "the request")
        except (ValueError, RecursionError) as exc:
            raise _Refused(HTTPStatus.BAD_REQUEST, _first_line(str(exc))) from None
        self._store.add(trace.spans, trace.unreadable, trace.problems)
        if trace.unreadable:
            logger.info("toolweave: %d span(s) received could not be read", trace.unreadable)
        return content_type, _answer(content_type, trace.unreadable, trace.problems)

    def _page(self) -> str:
        return self._store.page(f"live at {self.url}")

    def _status(self) -> dict[str, int]:
        return self._store.status()

    def _jsonl(self) -> bytes:
        return "".join(_jsonl_line(s) + "\n" for s in self.spans()).encode("utf-8")


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    ready: Callable[[InspectorServer], None] | None = None,
) -> None:
    """Receive OTLP/HTTP on ``host``:``port`` and serve the Inspector page there, until
    interrupted (Ctrl-C returns normally). ``ready`` is called with the server once it
    listens (to print its ``url``). ``OSError`` when the address cannot be bound."""
    server = InspectorServer(host, port)
    try:
        if ready is not None:
            ready(server)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: InspectorServer,
    ) -> None:
        self.owner = owner
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is ordinary; anything else is logged, not printed.
        logger.debug("toolweave: inspect --serve: request from %s failed", client_address,
                     exc_info=True)  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    timeout = _IDLE_S
    protocol_version = "HTTP/1.1"
    server_version = "toolweave-inspect"
    _consumed = False

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("toolweave: inspect --serve: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def _dispatch(self, method: str) -> None:
        owner = self.server.owner
        self._consumed = False
        try:
            if not owner._host_allowed(self.headers.get("Host")):
                raise _Refused(
                    HTTPStatus.MISDIRECTED_REQUEST,
                    "this receiver answers only requests addressed to its own host name",
                )
            path = urlsplit(self.path).path
            if path == _TRACES:
                if method != "POST":
                    self._drain()
                    raise _Refused(HTTPStatus.METHOD_NOT_ALLOWED, f"{_TRACES} takes POST",
                                   allow="POST")  # fmt: skip
                content_type, body = owner._receive(*self._body())
            elif path in _PAGES:
                if method not in ("GET", "HEAD"):
                    self._drain()
                    raise _Refused(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes GET",
                                   allow="GET, HEAD")  # fmt: skip
                self._drain()
                content_type, body = _PAGES[path](owner)
            else:
                self._drain()
                raise _Refused(
                    HTTPStatus.NOT_FOUND,
                    f"no {path[:100]!r} here: send spans to POST {_TRACES}, or open /",
                )
        except _Refused as refused:
            if not self._consumed:
                self._drain()
            self._refuse(refused)
            return
        except Exception:  # a bug here must not end the server: answer 500 and log it
            logger.exception("toolweave: inspect --serve could not answer %s %s", method,
                             self.path[:200])  # fmt: skip
            self._refuse(_Refused(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error, logged"))
            return
        self._send(HTTPStatus.OK, content_type, body, head=method == "HEAD")

    def _body(self) -> tuple[bytes, str]:
        """The request's body, gzip undone, and its media type; ``_Refused`` when either
        cannot be taken."""
        media = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        length = self._length()
        if length > self.server.owner.max_body:
            self.close_connection = True  # the body stays unread
            raise _Refused(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"a body of {length} bytes is over this receiver's {self.server.owner.max_body}:"
                " export fewer spans per request (a smaller max_export_batch_size)",
            )
        body = self.rfile.read(length)
        self._consumed = True
        if len(body) < length:
            self.close_connection = True
            raise _Refused(HTTPStatus.BAD_REQUEST, "the body ended before its Content-Length")
        if media not in (_PROTOBUF, _JSON):
            raise _Refused(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"Content-Type {media[:80]!r} is not OTLP: send {_PROTOBUF} or {_JSON}",
            )
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding == "gzip":
            body = _gunzip(body, self.server.owner.max_body)
        elif encoding != "identity":
            raise _Refused(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"Content-Encoding {encoding[:40]!r} is not supported: send gzip or none",
            )
        return body, media

    def _length(self) -> int:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            raise _Refused(
                HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length, not chunked"
            )
        raw = self.headers.get("Content-Length")
        if raw is None:
            return 0
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise _Refused(HTTPStatus.BAD_REQUEST, f"Content-Length {raw[:40]!r} is not a size")
        return length

    def _drain(self) -> None:
        """Read a small body sent where none is expected, so the connection stays usable."""
        self._consumed = True
        raw = self.headers.get("Content-Length")
        try:
            length = int(raw) if raw is not None else 0
        except ValueError:
            length = -1
        if length < 0 or length > 65536 or "Transfer-Encoding" in self.headers:
            self.close_connection = True
        elif length:
            self.rfile.read(length)

    def _refuse(self, refused: _Refused) -> None:
        message = f"{refused.status.value} {refused.status.phrase}: {refused}\n"
        extra = {"Allow": refused.allow} if refused.allow else {}
        self._send(refused.status, "text/plain; charset=utf-8", message.encode(), extra=extra)

    def _send(
        self,
        status: HTTPStatus,
        content_type: str,
        body: bytes,
        *,
        head: bool = False,
        extra: dict[str, str] | None = None,
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            if content_type.startswith("text/html"):
                self.send_header("Content-Security-Policy", _CSP)
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if not head:
                self.wfile.write(body)
        except OSError:  # the client left
            self.close_connection = True


_PAGES: dict[str, Callable[[InspectorServer], tuple[str, bytes]]] = {
    "/": lambda s: ("text/html; charset=utf-8", s._page().encode("utf-8")),
    "/index.html": lambda s: ("text/html; charset=utf-8", s._page().encode("utf-8")),
    "/version": lambda s: (_JSON, json.dumps(s._status()).encode()),
    "/spans.jsonl": lambda s: ("application/x-ndjson; charset=utf-8", s._jsonl()),
}


# --- request bodies ---------------------------------------------------------------------------


def _gunzip(body: bytes, limit: int) -> bytes:
    # Bounded: a few kilobytes of gzip can expand to gigabytes.
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _Refused(HTTPStatus.BAD_REQUEST, f"the body is not gzip ({exc})") from None
    if len(out) > limit:
        raise _Refused(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the body unzips to over this receiver's {limit} bytes: export fewer spans "
            "per request",
        )
    if not inflater.eof:
        raise _Refused(HTTPStatus.BAD_REQUEST, "the gzip body is cut short")
    return out


def _json_document(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body.decode("utf-8-sig")) if body.strip() else {}
    except UnicodeDecodeError as exc:
        raise _Refused(
            HTTPStatus.BAD_REQUEST, f"the body is not UTF-8 (byte at offset {exc.start})"
        ) from None
    except json.JSONDecodeError as exc:
        raise _Refused(
            HTTPStatus.BAD_REQUEST,
            f"the body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
        ) from None
    except (ValueError, RecursionError):  # an int too long to read, nesting too deep
        raise _Refused(
            HTTPStatus.BAD_REQUEST, "the body is JSON this receiver cannot read"
        ) from None
    if not isinstance(document, dict):
        raise _Refused(
            HTTPStatus.BAD_REQUEST,
            'the body is JSON but not an object: send an OTLP document {"resourceSpans": [...]}',
        )
    return document


def _protobuf_document(body: bytes) -> dict[str, Any]:
    """An ``ExportTraceServiceRequest`` as the OTLP/JSON document the reader takes: ids in
    hex, enums as numbers."""
    try:
        from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
        from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
    except ImportError:
        raise _Refused(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"reading {_PROTOBUF} needs opentelemetry-proto: {_EXTRA}, or export "
            f"{_JSON} (OTEL_EXPORTER_OTLP_PROTOCOL=http/json)",
        ) from None
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise _Refused(
            HTTPStatus.BAD_REQUEST,
            f"the body is not an OTLP ExportTraceServiceRequest ({_first_line(str(exc))})",
        ) from None
    document: dict[str, Any] = MessageToDict(request, use_integers_for_enums=True)
    for resource in document.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                _hex_ids(span)
    return document


def _hex_ids(span: dict[str, Any]) -> None:
    for key in _ID_FIELDS:
        value = span.get(key)
        if isinstance(value, str):
            with contextlib.suppress(binascii.Error, ValueError):  # else the reader names it
                span[key] = base64.b64decode(value, validate=True).hex()


def _answer(content_type: str, rejected: int, problems: list[str]) -> bytes:
    """An ``ExportTraceServiceResponse`` in the request's encoding."""
    message = problems[0] if problems else ""
    if content_type == _JSON:
        if not rejected:
            return b"{}"
        partial = {"rejectedSpans": str(rejected), "errorMessage": message}
        return json.dumps({"partialSuccess": partial}).encode("utf-8")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    data: bytes = response.SerializeToString()
    return data


def _first_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --- hosts ------------------------------------------------------------------------------------


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """The ``Host`` headers a loopback receiver answers (None: any, when bound elsewhere)."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host.lower() in _LOOPBACK_NAMES
    if not loopback:
        return None
    names = {"127.0.0.1", "localhost", "[::1]", _bracketed(host.lower())}
    return frozenset({*names, *(f"{n}:{port}" for n in names)})


# --- the page and the download ----------------------------------------------------------------


def _live(html: str, version: int, spans: int) -> str:
    """The Inspector page with the live part: a status line and the script that reloads on a
    new version, keeping the picked batch and call in ``location.hash``."""
    status = (
        f'<p id="tw-live" class="note" data-version="{version}">live: {spans} span(s) '
        "received; this page follows new batches as they arrive</p>"
    )
    script = f"<script>{_LIVE_JS.replace('VERSION', str(version))}</script>"
    head, found, tail = html.rpartition("</body>")
    if not found:
        return html + status + script
    return head + status + script + found + tail


_LIVE_JS = """
(function(){
"use strict";
var seen=VERSION,auto=false;
function parse(){
  var out={};
  location.hash.replace(/^#/,"").split("&").forEach(function(part){
    var k=part.indexOf("=");
    if(k>0){try{out[part.slice(0,k)]=decodeURIComponent(part.slice(k+1));}catch(e){}}
  });
  return out;
}
function save(batch,call){
  var h="#batch="+encodeURIComponent(batch)+(call===null?"":"&call="+call);
  history.replaceState(null,"",h);
}
function button(id){
  var all=document.querySelectorAll("nav[data-view=batches] button[data-pick]");
  for(var k=0;k<all.length;k++){if(all[k].getAttribute("data-pick")===id){return all[k];}}
  return all.length&&id===null?all[all.length-1]:null;
}
function click(el){el.dispatchEvent(new MouseEvent("click",{bubbles:true}));}
var want=parse(),picked=button(want.batch===undefined?null:want.batch);
if(picked){
  auto=true;click(picked);auto=false;
  var section=null,all=document.querySelectorAll("section[data-batch]");
  for(var k=0;k<all.length;k++){
    if(all[k].getAttribute("data-batch")===picked.getAttribute("data-pick")){section=all[k];}
  }
  if(section&&want.call!==undefined&&/^[0-9]+$/.test(want.call)){
    var hit=section.querySelector('[data-call-id][data-i="'+want.call+'"]');
    if(hit){auto=true;click(hit);auto=false;}
  }
}
document.addEventListener("click",function(ev){
  if(auto){return;}
  var t=ev.target;if(!(t instanceof Element)){return;}
  var b=t.closest("nav[data-view=batches] button[data-pick]");
  if(b){save(b.getAttribute("data-pick"),null);return;}
  var c=t.closest("[data-call-id][data-i]"),s=t.closest("section[data-batch]");
  if(c&&s){save(s.getAttribute("data-batch"),c.getAttribute("data-i"));}
});
var live=document.getElementById("tw-live");
function poll(){
  fetch("/version",{cache:"no-store"}).then(function(r){return r.json();}).then(function(d){
    if(d.version!==seen){location.reload();return;}
    setTimeout(poll,1000);
  },function(){
    if(live){live.textContent="the receiver is not answering: this page shows what it had";}
    setTimeout(poll,1000);
  });
}
setTimeout(poll,1000);
})();
"""


def _jsonl_line(span: TraceSpan) -> str:
    """One span as ``--trace jsonl:PATH`` writes it."""
    record = {
        "name": span.name,
        "context": {"trace_id": span.trace_id, "span_id": span.span_id},
        "parent_id": span.parent_id,
        "start_time": _iso(span.start),
        "end_time": _iso(span.end),
        "attributes": span.attributes,
        "status": {"status_code": span.status, "description": span.status_message or None},
        "events": [{"name": e.name, "attributes": e.attributes} for e in span.events],
    }
    return json.dumps(record, separators=(",", ":"), default=str)


def _iso(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return datetime.fromtimestamp(0, tz=UTC).isoformat()


def _newest(spans: list[TraceSpan]) -> tuple[list[TraceSpan], list[str]]:
    """The spans of the newest ``PAGE_BATCHES`` batches (their own spans and their children),
    and notes on what the page leaves out."""
    notes = []
    waiting = orphaned_calls(spans)
    batches = sorted(
        (s for s in spans if s.attributes.get(A.GEN_AI_OPERATION_NAME) == A.OP_INVOKE_WORKFLOW),
        key=lambda s: s.start if isinstance(s.start, int | float) else 0.0,
    )
    if len(batches) > PAGE_BATCHES:
        kept = {(b.trace_id, b.span_id) for b in batches[-PAGE_BATCHES:]}
        spans = [
            s for s in spans if (s.trace_id, s.span_id) in kept or (s.trace_id, s.parent_id) in kept
        ]
        notes.append(
            f"showing the newest {PAGE_BATCHES} of {len(batches)} batches; /spans.jsonl has them "
            "all, for toolweave inspect"
        )
    if waiting:
        notes.append(
            f"{waiting} call span(s) arrived before their batch span (the batch is still "
            "running): they show when it ends"
        )
    return spans, notes
