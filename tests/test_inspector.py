"""The Inspector without a browser: ``toolweave inspect TRACE [--html OUT]`` on JSON-lines and
OTLP JSON traces, standard input, hostile values, size at 1,000 calls, ``BatchResult.to_html``.
The page's data attributes (the DOM contract the browser tests use) are read with
``html.parser``."""

from __future__ import annotations

import asyncio
import base64
import json
import pathlib
import subprocess
import sys
from collections.abc import Sequence
from html.parser import HTMLParser
from typing import Any

import pytest
from google.protobuf.json_format import MessageToJson
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from toolweave import BatchResult, Orchestrator, ToolCall, tool
from toolweave.telemetry.inspect import format_batches, format_html, parse_trace

HOSTILE = "</script><img src=x onerror=alert(1)>"


def cli(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "toolweave.cli", *argv],
        capture_output=True,
        input=stdin,
        timeout=180,
    )


class Page(HTMLParser):
    """Elements with data attributes, each with the batch section and view it sits in, and
    every tag and attribute seen (to check nothing hostile became markup)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.found: list[tuple[str | None, str | None, str, dict[str, str]]] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self.title = ""
        self._in: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        batch = next((x["data-batch"] for _, x in reversed(self.stack) if "data-batch" in x), None)
        view = next((x["data-view"] for _, x in reversed(self.stack) if "data-view" in x), None)
        if any(k.startswith("data-") for k in a):
            self.found.append((batch, a.get("data-view", view), tag, a))
        if tag == "script" or (tag == "title" and self.stack and self.stack[-1][0] == "head"):
            self._in = tag
            if tag == "script":
                self.scripts.append((a, ""))
        if tag not in ("meta", "br", "img", "input", "link", "path", "rect"):
            self.stack.append((tag, a))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if self.stack and self.stack[-1][0] == tag:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        self._in = None
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)
        elif self._in == "title":
            self.title += data

    def batches(self) -> list[str]:
        return [a["data-batch"] for _, _, _, a in self.found if "data-batch" in a]

    def picks(self) -> list[str]:
        return [a["data-pick"] for _, v, _, a in self.found if "data-pick" in a and v == "batches"]

    def calls(self, batch: str, view: str) -> dict[str, str]:
        out = {}
        for b, v, _, a in self.found:
            if b == batch and v == view and "data-call-id" in a:
                assert a["data-call-id"] not in out, f"two {view} elements for one call"
                out[a["data-call-id"]] = a["data-status"]
        return out

    def edges(self, batch: str) -> set[str]:
        return {a["data-edge"] for b, v, _, a in self.found if b == batch and "data-edge" in a}

    def field(self, batch: str, name: str) -> list[dict[str, str]]:
        return [a for b, _, _, a in self.found if b == batch and a.get("data-field") == name]

    def data(self) -> Any:
        (text,) = [t for a, t in self.scripts if a.get("type") == "application/json"]
        return json.loads(text)


def expected_batches(trace: pathlib.Path) -> dict[str, tuple[dict[str, str], set[str]]]:
    """Straight from the JSON lines: batch id -> ({call id: status}, {"FROM->TO"})."""
    spans = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    out: dict[str, tuple[dict[str, str], set[str]]] = {}
    for batch in spans:
        if batch["attributes"].get("gen_ai.operation.name") != "invoke_workflow":
            continue
        calls, edges = {}, set()
        for s in spans:
            a = s["attributes"]
            if s["parent_id"] == batch["context"]["span_id"] and "gen_ai.tool.call.id" in a:
                calls[a["gen_ai.tool.call.id"]] = a["toolweave.status"]
                edges |= {f"{d}->{a['gen_ai.tool.call.id']}" for d in a["toolweave.depends_on"]}
        out[batch["attributes"]["toolweave.batch.id"]] = (calls, edges)
    return out


@pytest.fixture(scope="module")
def demo_trace(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("demo") / "demo.jsonl"
    run = cli("demo", "--trace", f"jsonl:{path}")
    assert run.returncode == 0, run.stderr.decode()
    return path


def test_the_page_for_the_demo_has_every_batch_call_and_edge(
    demo_trace: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "demo.html"
    run = cli("inspect", str(demo_trace), "--html", str(out))
    assert run.returncode == 0, run.stderr.decode()
    html = out.read_text(encoding="utf-8")
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for outside in ("https://", "<link", "src=", "url(http", "@import"):
        assert outside not in html
    page = Page(html)
    assert page.title == "toolweave inspect: demo.jsonl"
    expected = expected_batches(demo_trace)
    assert len(expected) == 6  # three batches, each also run one by one
    assert sorted(page.batches()) == sorted(expected) == sorted(page.picks())
    for batch, (calls, edges) in expected.items():
        assert page.calls(batch, "timeline") == calls
        assert page.calls(batch, "graph") == calls
        assert page.edges(batch) == edges
    dag = next(b for b, (calls, _) in expected.items() if "p2" in calls and len(calls) == 6)
    assert page.edges(dag) == {"s1->p1", "s2->p2", "p1->sum", "p2->sum"}
    data = page.data()[page.batches().index(dag)]
    assert sorted(data["edges"]) == [
        ["p1", "sum", "$.text"],
        ["p2", "sum", "$.text"],
        ["s1", "p1", "$.hits[0].url"],
        ["s2", "p2", "$.hits[0].url"],  # written {"$ref": 2, "path": "$.hits[0].url"}
    ]
    assert [a["data-field"] for a in page.field(dag, "strategy")] == ["strategy"]
    summ = {f: page.field(dag, f) for f in ("calls", "makespan-ms", "critical-path-ms")}
    assert all(len(v) == 1 for v in summ.values())
    # content capture is off in the demo: no arguments nor outputs anywhere
    assert all("arguments" not in c and "output" not in c for b in page.data() for c in b["calls"])


def summary(html: str, batch: str) -> dict[str, str]:
    """The text of every ``data-field`` of a batch's summary."""

    class Fields(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.depth = 0
            self.current: str | None = None
            self.inside = False
            self.fields: dict[str, str] = {}

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if a.get("data-batch") is not None:
                self.inside = a["data-batch"] == batch
            if self.inside and a.get("data-field") and tag == "dd":
                self.current = a["data-field"]
                self.fields[self.current] = ""

        def handle_endtag(self, tag: str) -> None:
            if tag == "dd":
                self.current = None

        def handle_data(self, data: str) -> None:
            if self.current:
                self.fields[self.current] += data

    parser = Fields()
    parser.feed(html)
    return parser.fields


def test_the_summary_shows_makespan_critical_path_and_one_by_one_time(
    demo_trace: pathlib.Path,
) -> None:
    html = format_html(parse_trace(demo_trace.read_bytes()).spans)
    page = Page(html)
    batch = next(b for b in page.batches() if len(page.calls(b, "graph")) == 6)
    fields = summary(html, batch)
    assert fields["strategy"] == "dag"
    assert (fields["calls"], fields["calls-ok"], fields["calls-error"]) == ("6", "6", "0")
    makespan, critical, serial = (
        int(fields[f]) for f in ("makespan-ms", "critical-path-ms", "serial-ms")
    )
    # s1 (300 ms) -> p1 (250 ms) -> sum (150 ms) is the longest chain; the six calls sum to 1.35 s
    assert 700 <= critical <= makespan < serial
    assert serial >= 1350


def otlp_and_jsonl(spans: Sequence[ReadableSpan], pretty: bool) -> tuple[bytes, bytes]:
    jsonl = "".join(
        json.dumps(json.loads(s.to_json()), separators=(",", ":")) + "\n" for s in spans
    )
    document = MessageToJson(encode_spans(spans), indent=2 if pretty else None)
    if not pretty:
        document = document.replace("\n", "") + "\n"
    return jsonl.encode(), document.encode()


@tool
async def search(query: str) -> dict[str, Any]:
    """Search."""
    await asyncio.sleep(0.01)
    return {"hits": [{"url": f"https://example.org/{query}"}]}


@tool
async def fetch(url: str) -> str:
    """Fetch."""
    await asyncio.sleep(0.01)
    return f"text of {url}"


@tool
async def broken() -> None:
    """Fail."""
    raise RuntimeError("down")


def traced_run(calls: list[ToolCall], *, content: bool = False) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    orchestrator = Orchestrator(
        [search, fetch, broken], tracer_provider=provider, trace_content=content
    )
    asyncio.run(orchestrator.run(calls))
    provider.shutdown()
    return list(exporter.get_finished_spans())


CALLS = [
    ToolCall("a", "search", {"query": "x"}),
    ToolCall("b", "fetch", {"url": "${a.hits[0].url}"}),
    ToolCall("x", "broken"),
    ToolCall("y", "fetch", {"url": "${x}"}),
]


@pytest.mark.parametrize("pretty", [False, True], ids=["one-document-per-line", "pretty"])
def test_the_otlp_json_form_of_the_same_spans_gives_the_same_page(pretty: bool) -> None:
    jsonl, otlp = otlp_and_jsonl(traced_run(CALLS), pretty)
    from_jsonl = parse_trace(jsonl, "t")
    from_otlp = parse_trace(otlp, "t")
    assert from_otlp.unreadable == 0
    assert len(from_otlp.spans) == len(from_jsonl.spans) == 5
    assert format_html(from_otlp.spans) == format_html(from_jsonl.spans)
    assert format_batches(from_otlp.spans) == format_batches(from_jsonl.spans)
    assert format_batches(from_jsonl.spans) == format_batches(from_jsonl.spans)  # no doubles
    page = Page(format_html(from_otlp.spans))
    (batch,) = page.batches()
    assert page.calls(batch, "graph") == {"a": "ok", "b": "ok", "x": "error", "y": "skipped"}
    assert page.edges(batch) == {"a->b", "x->y"}
    assert ["a", "b", "$.hits[0].url"] in page.data()[0]["edges"]


def test_otlp_ids_in_hex_as_the_otlp_json_encoding_writes_them_read_the_same() -> None:
    jsonl, otlp = otlp_and_jsonl(traced_run(CALLS), pretty=False)
    document = json.loads(otlp)
    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:  # protobuf's JSON printer wrote base64
                span[key] = base64.b64decode(span[key]).hex().upper()
    hex_form = parse_trace(json.dumps(document).encode())
    assert format_html(hex_form.spans) == format_html(parse_trace(jsonl).spans)


def test_reference_paths_of_ids_holding_dots_and_brackets() -> None:
    calls = [
        ToolCall("a", "search", {"query": "plain"}),
        ToolCall("a.b[0]", "search", {"query": "dotted"}),
        ToolCall("c", "fetch", {"url": {"$ref": "a.b[0]", "path": "$.hits[0].url"}}),
        ToolCall("d", "fetch", {"url": "${a.hits[0].url}"}),
        ToolCall("e", "fetch", {"url": {"$ref": 2, "path": "$.hits[0].url"}}),
    ]
    result = Orchestrator([search, fetch]).run_sync(calls)
    assert result.ok, result.results
    (data,) = Page(result.to_html()).data()
    assert sorted(data["edges"]) == [
        ["a", "d", "$.hits[0].url"],
        ["a.b[0]", "c", "$.hits[0].url"],
        ["a.b[0]", "e", "$.hits[0].url"],
    ]


def test_unreadable_otlp_spans_are_counted_and_reported(tmp_path: pathlib.Path) -> None:
    _, otlp = otlp_and_jsonl(traced_run(CALLS[:2]), pretty=False)
    document = json.loads(otlp)
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    del spans[0]["spanId"]
    spans[1]["startTimeUnixNano"] = "yesterday"
    path = tmp_path / "otlp.json"
    path.write_text(json.dumps(document) + "\n")
    run = cli("inspect", str(path))
    assert run.returncode == 0, run.stderr.decode()
    err = run.stderr.decode()
    assert f"2 span(s) of {path} could not be read and are left out" in err
    assert "it has no 'spanId' string" in err
    out = tmp_path / "o.html"
    assert cli("inspect", str(path), "--html", str(out)).returncode == 0
    assert "2 span(s) of" in out.read_text()


@pytest.mark.parametrize(
    ("change", "unreadable"),
    [
        pytest.param({"events": 7}, 0, id="events-number"),
        pytest.param({"attributes": {"key": 1}}, 0, id="attributes-object"),
        pytest.param({"status": "ERROR"}, 0, id="status-string"),
        pytest.param({"spanId": "not an id!"}, 1, id="span-id-neither-hex-nor-base64"),
        pytest.param({"endTimeUnixNano": "9" * 40}, 1, id="time-too-long"),
        pytest.param({"name": ["x"]}, 1, id="name-list"),
    ],
)
def test_odd_otlp_spans_are_read_or_counted_never_a_crash(
    change: dict[str, Any], unreadable: int
) -> None:
    _, otlp = otlp_and_jsonl(traced_run(CALLS[:2]), pretty=False)
    document = json.loads(otlp)
    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        span.update(change)
    trace = parse_trace(json.dumps(document).encode(), "odd.json")
    assert trace.unreadable == unreadable * 3
    assert len(trace.spans) == 3 - trace.unreadable
    html = format_html(trace.spans, notes=trace.notes)
    assert ("could not be read" in html) == bool(unreadable)
    format_batches(trace.spans)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            b'{"resourceSpans": 5}',
            "an OTLP document, but 'resourceSpans' is a number, not a list",
            id="resource-spans-number",
        ),
        pytest.param(b"{nope", "not JSON", id="not-json"),
        pytest.param(b"\xff\xfe", "byte 0xff at column 1 is not UTF-8", id="not-utf8"),
    ],
)
def test_bad_input_is_one_line_on_stdin_too(content: bytes, expected: str) -> None:
    run = cli("inspect", "-", stdin=content)
    assert run.returncode == 2
    err = run.stderr.decode()
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert f"line 1 of standard input is not a span: {expected}" in err


def test_a_truncated_otlp_document_is_named_as_such(tmp_path: pathlib.Path) -> None:
    _, otlp = otlp_and_jsonl(traced_run(CALLS[:1]), pretty=True)
    path = tmp_path / "cut.json"
    path.write_bytes(otlp[: len(otlp) // 2])
    run = cli("inspect", str(path))
    assert run.returncode == 2
    err = run.stderr.decode()
    assert f"{path} looks like one OTLP JSON document but is not JSON (" in err
    assert err.count("\n") == 1


def test_standard_input_works(demo_trace: pathlib.Path, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "stdin.html"
    run = cli("inspect", "-", "--html", str(out), stdin=demo_trace.read_bytes())
    assert run.returncode == 0, run.stderr.decode()
    page = Page(out.read_text())
    assert page.title == "toolweave inspect: standard input"
    assert sorted(page.batches()) == sorted(expected_batches(demo_trace))
    to_stdout = cli("inspect", "-", "--html", "-", stdin=demo_trace.read_bytes())
    assert to_stdout.returncode == 0
    assert to_stdout.stdout.decode() == out.read_text()
    text = cli("inspect", "-", stdin=demo_trace.read_bytes())
    assert text.returncode == 0
    assert b"summary: dag, 6 calls" in text.stdout


def test_html_to_a_folder_that_does_not_exist_is_one_line(demo_trace: pathlib.Path) -> None:
    run = cli("inspect", str(demo_trace), "--html", "/nonexistent-dir/x.html")
    assert run.returncode == 2
    assert "--html /nonexistent-dir/x.html: cannot write there" in run.stderr.decode()


def test_hostile_ids_and_outputs_stay_text() -> None:
    @tool(name="evil")
    async def evil(value: str) -> str:
        """Echo markup."""
        return value + "\u2028</script><!--<script>"

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    orchestrator = Orchestrator([evil], tracer_provider=provider, trace_content=True)
    calls = [
        ToolCall(HOSTILE, "evil", {"value": HOSTILE}),
        ToolCall('q"\r\n&amp;', "evil", {"value": "${1}"}),
    ]
    result = asyncio.run(orchestrator.run(calls))
    assert result.ok, result.results
    provider.shutdown()
    jsonl, _ = otlp_and_jsonl(list(exporter.get_finished_spans()), pretty=False)
    pages = [
        format_html(parse_trace(jsonl).spans, title=HOSTILE),
        result.to_html(include_content=True),
    ]
    for html in pages:
        page = Page(html)
        assert {t for t, _ in page.tags} <= {
            "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3",
            "small", "p", "nav", "button", "main", "section", "div", "dl", "dt", "dd", "aside",
            "span", "b", "i", "svg", "defs", "marker", "path", "text", "g", "rect", "script",
        }  # fmt: skip
        assert not any(k.startswith("on") for _, a in page.tags for k in a)
        assert len(page.scripts) == 2  # the data and the code, nothing injected
        (batch,) = page.batches()
        assert set(page.calls(batch, "timeline")) == {HOSTILE, 'q"\r\n&amp;'}
        assert page.edges(batch) == {f'{HOSTILE}->q"\r\n&amp;'}
        (data,) = page.data()
        outputs = [c["output"] for c in data["calls"]]
        assert any("\u2028</script><!--<script>" in o for o in outputs)
        raw_json = next(t for a, t in page.scripts if a.get("type") == "application/json")
        assert "<" not in raw_json
        assert "\u2028" not in raw_json
    assert Page(pages[0]).title == f"toolweave inspect: {HOSTILE}"


def test_a_batch_of_1000_calls_stays_under_2_mb() -> None:
    @tool
    async def step(n: int, prev: Any = None) -> dict[str, Any]:
        """One step."""
        return {"n": n, "items": [{"id": n}]}

    calls = [ToolCall("c0", "step", {"n": 0})]
    calls += [
        ToolCall(f"c{i}", "step", {"n": i, "prev": f"${{c{(i - 1) // 3}.items[0].id}}"})
        for i in range(1, 1000)
    ]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    result = Orchestrator([step], tracer_provider=provider).run_sync(calls)
    assert result.ok
    provider.shutdown()
    _, otlp = otlp_and_jsonl(list(exporter.get_finished_spans()), pretty=False)
    for html in (format_html(parse_trace(otlp).spans), result.to_html()):
        assert len(html.encode("utf-8")) < 2_000_000
        page = Page(html)
        (batch,) = page.batches()
        assert len(page.calls(batch, "timeline")) == len(page.calls(batch, "graph")) == 1000
        assert len(page.edges(batch)) == 999


def run_batch() -> BatchResult:
    return Orchestrator([search, fetch, broken]).run_sync(CALLS)


def test_to_html_shows_content_only_when_asked() -> None:
    result = run_batch()
    plain = Page(result.to_html())
    (batch,) = plain.batches()
    assert batch == result.batch_id
    assert plain.calls(batch, "graph") == {"a": "ok", "b": "ok", "x": "error", "y": "skipped"}
    assert plain.edges(batch) == {"a->b", "x->y"}
    (data,) = plain.data()
    assert all("arguments" not in c and "output" not in c for c in data["calls"])
    assert ["a", "b", "$.hits[0].url"] in data["edges"]
    by_id = {c["id"]: c for c in data["calls"]}
    assert by_id["x"]["error"].startswith("tool_error")
    assert by_id["b"]["deps"] == ["a"]
    assert by_id["a"]["dependents"] == ["b"]
    full = Page(result.to_html(include_content=True)).data()[0]
    by_id = {c["id"]: c for c in full["calls"]}
    assert json.loads(by_id["b"]["arguments"]) == {"url": "https://example.org/x"}
    assert json.loads(by_id["b"]["output"]) == "text of https://example.org/x"


def test_terminal_inspect_shows_the_timeline_and_the_summary(demo_trace: pathlib.Path) -> None:
    run = cli("inspect", str(demo_trace))
    assert run.returncode == 0, run.stderr.decode()
    out = run.stdout.decode()
    blocks = out.split("invoke_workflow ")[1:]
    assert len(blocks) == 6
    dag = next(b for b in blocks if b.startswith("toolweave  dag"))
    bars = [line for line in dag.splitlines() if line.startswith(("s1 ", "p1 ", "sum "))]
    assert len(bars) == 3
    assert all("#" in line and line.endswith(" ms") for line in bars)
    # p1 starts after s1 ends: its bar begins further right
    assert bars[1].index("#") > bars[0].index("#")
    assert "summary: dag, 6 calls (6 ok, 0 error, 0 skipped) in 3 groups" in dag
    assert "critical path" in dag
    assert "one by one" in dag


# ------------------------------------------------------------------ traces that repeat themselves


def _copies(trace: pathlib.Path, n: int) -> bytes:
    """``n`` copies of a trace whose spans keep their span ids, each in a trace of its own
    (as two runs replayed from one seed, or one file exported twice under new trace ids)."""
    out = []
    for k in range(n):
        for line in trace.read_text().splitlines():
            span = json.loads(line)
            span["context"]["trace_id"] = f"0x{k:032x}"
            batch_id = span["attributes"].get("toolweave.batch.id")
            if batch_id is not None:
                span["attributes"]["toolweave.batch.id"] = f"{batch_id}-copy{k}"
            out.append(json.dumps(span))
    return ("\n".join(out) + "\n").encode()


def test_span_ids_repeated_across_traces_keep_each_batch_to_its_own_calls(
    demo_trace: pathlib.Path,
) -> None:
    one = expected_batches(demo_trace)
    run = cli("inspect", "-", "--html", "-", stdin=_copies(demo_trace, 5))
    assert run.returncode == 0, run.stderr.decode()
    page = Page(run.stdout.decode())
    assert len(page.batches()) == 5 * len(one)
    for batch_id, (calls, edges) in one.items():
        for k in range(5):
            assert page.calls(f"{batch_id}-copy{k}", "timeline") == calls
            assert page.edges(f"{batch_id}-copy{k}") == edges
    single = cli("inspect", "-", "--html", "-", stdin=_copies(demo_trace, 1))
    assert len(run.stdout) < 6 * len(single.stdout), "the page grows with the trace, no faster"


def test_the_same_spans_twice_are_one_batch_each(demo_trace: pathlib.Path) -> None:
    twice = demo_trace.read_bytes() * 2
    run = cli("inspect", "-", "--html", "-", stdin=twice)
    assert sorted(Page(run.stdout.decode()).batches()) == sorted(expected_batches(demo_trace))
    text = cli("inspect", "-", stdin=twice).stdout.decode()
    assert text.count("summary:") == len(expected_batches(demo_trace))


def test_call_spans_without_their_batch_span_are_counted(demo_trace: pathlib.Path) -> None:
    lines = [
        line
        for line in demo_trace.read_text().splitlines()
        if json.loads(line)["attributes"].get("gen_ai.operation.name") != "invoke_workflow"
    ]
    run = cli("inspect", "-", stdin=("\n".join(lines) + "\n").encode())
    assert run.returncode == 0
    assert b"call span(s) of standard input have no batch span in it" in run.stderr
    assert b"Traceback" not in run.stderr


def test_a_reader_that_leaves_early_is_not_an_error(
    demo_trace: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    big = tmp_path / "big.jsonl"
    big.write_bytes(_copies(demo_trace, 60))  # more text than a pipe holds
    command = [sys.executable, "-m", "toolweave.cli", "inspect", str(big)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err
    assert proc.returncode == 0


def test_a_decision_is_listed_and_marked_on_the_timeline_in_the_same_words() -> None:
    from toolweave import Decision, Orchestrator, tool

    @tool
    async def step(x: int) -> dict[str, int]:
        """Step."""
        return {"v": x}

    def rule(ctx: Any) -> Decision:
        return Decision(action="skip", skip=[c.id for c in ctx.waiting], reason="not needed")

    result = Orchestrator([step], decider=rule).run_sync(
        [
            ToolCall(id="p", name="step", arguments={"x": 1}),
            ToolCall(id="q", name="step", arguments={"x": "${p.v}"}),
        ]
    )
    html = result.to_html()
    said = "decide [q] (step): skip \u2014 not needed"
    assert f"<li>{said}</li>" in html, "the summary lists it"
    assert f'title="{said}"' in html, "the timeline marks it"
