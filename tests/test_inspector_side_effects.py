"""The Inspector shows side effects: calls replayed from the call ledger, cached, merged into an
identical call, uncertain, refused by the ledger, and orderings by resource. Real batches run
with a real ``SQLiteLedger`` and ``MemoryCache``; their spans go through an in-memory exporter
and the JSON-lines reader, and their ``BatchResult.to_html()`` through the record reader. The
page is read through its data attributes (``html.parser``), and once in Chromium.

What is expected is taken from the ``BatchResult`` each page was made from."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from toolweave import BatchResult, CallResult, MemoryCache, Orchestrator, SQLiteLedger, ToolCall
from toolweave import tool as make_tool
from toolweave._reuse import same_call
from toolweave.telemetry.inspect import TraceSpan, format_batches, format_html, parse_trace

UNCERTAIN = "uncertain: may or may not have taken effect"
HOSTILE = "</script><img src=x onerror=alert(1)>"
PAUSE = 0.05  # seconds each of the write and the read takes


# --- the page, read through its data attributes -----------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    batch: str | None
    view: str | None
    text: str = ""


class Page(HTMLParser):
    """Every element with a data attribute, with the batch and the view it sits in and the text
    inside it; every tag seen; the page's JSON data."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.json_text = ""
        self._open: list[tuple[str, Element | None, dict[str, str]]] = []
        self._json = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        batch = next(
            (x["data-batch"] for _, _, x in reversed(self._open) if "data-batch" in x), None
        )
        view = next((x["data-view"] for _, _, x in reversed(self._open) if "data-view" in x), None)
        element = None
        if any(k.startswith("data-") for k in a):
            element = Element(tag, a, a.get("data-batch", batch), a.get("data-view", view))
            self.elements.append(element)
        self._json = tag == "script" and a.get("type") == "application/json"
        if tag not in ("meta", "br", "img", "input", "link", "path", "rect"):
            self._open.append((tag, element, a))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if self._open and self._open[-1][0] == tag:
            self._open.pop()

    def handle_endtag(self, tag: str) -> None:
        self._json = False
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._json:
            self.json_text += data
        for _, element, _ in self._open:
            if element is not None:
                element.text += data

    # - reading -

    def batches(self) -> list[str]:
        return [e.attrs["data-batch"] for e in self.elements if "data-batch" in e.attrs]

    def of_call(self, batch: str, view: str, call_id: str) -> Element:
        (found,) = [
            e
            for e in self.elements
            if e.batch == batch and e.view == view and e.attrs.get("data-call-id") == call_id
        ]
        return found

    def badges(self, batch: str, view: str, call_id: str) -> dict[str, str]:
        """The badges drawn with a call: kind -> text. On the timeline they sit in the bar's
        row; in the graph inside its node."""
        drawn = self.of_call(batch, view, call_id)
        inside = self.elements[self.elements.index(drawn) + 1 :]
        out: dict[str, str] = {}
        for e in inside:
            if "data-call-id" in e.attrs or "data-i" in e.attrs:
                break  # the next call's bar, row or node
            if "data-badge" in e.attrs:
                out[e.attrs["data-badge"]] = e.text.strip()
        return out

    def edges(self, batch: str) -> dict[str, str]:
        """``FROM->TO`` -> ``data-edge-kind``."""
        return {
            e.attrs["data-edge"]: e.attrs["data-edge-kind"]
            for e in self.elements
            if e.batch == batch and "data-edge" in e.attrs
        }

    def summary(self, batch: str) -> dict[str, str]:
        return {
            e.attrs["data-field"]: e.text.strip()
            for e in self.elements
            if e.batch == batch and e.view == "summary" and e.tag == "dd"
        }

    def data(self, batch: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(self.json_text)
        return data[self.batches().index(batch)]


# --- running real batches ---------------------------------------------------------------------


@make_tool(writes=lambda a: a["path"])
async def write(path: str) -> str:
    """Write a file."""
    await asyncio.sleep(PAUSE)
    return "written"


@make_tool(reads=lambda a: a["path"])
async def read(path: str) -> str:
    """Read a file."""
    await asyncio.sleep(PAUSE)
    return "content"


@make_tool(idempotent=True)
async def lookup(id: Any) -> dict[str, Any]:
    """Look a record up."""
    await asyncio.sleep(0.01)
    return {"id": id}


@make_tool(idempotent=True, cache_ttl=60)
async def price(sku: str) -> dict[str, Any]:
    """A price, cached for a minute."""
    return {"sku": sku, "eur": 9.5}


@make_tool
async def send_email(to: str) -> dict[str, str]:
    """Send an email: not idempotent."""
    return {"sent_to": to}


TOOLS = [write, read, lookup, price, send_email]
BATCH = [
    ToolCall("w", "write", {"path": "notes.txt"}),
    ToolCall("r", "read", {"path": "notes.txt"}),  # after w: one file
    ToolCall("a", "lookup", {"id": 1}),
    ToolCall("a2", "lookup", {"id": 1}),  # merged into a
    ToolCall("u", "lookup", {"id": "${a.id}"}),  # data edge a->u, then merged into a
    ToolCall("p", "price", {"sku": "x"}),
    ToolCall("mail", "send_email", {"to": "ann"}),  # left started by a "crashed" run
]


@dataclass
class Runs:
    first: BatchResult
    """The batch, with ``mail`` uncertain and ``a2`` merged."""
    again: BatchResult
    """The same batch id again: replayed."""
    cached: BatchResult
    """``price`` again in another batch: from the cache."""
    conflict: BatchResult
    """The first batch id with other arguments for ``mail``."""
    spans: list[TraceSpan]

    @property
    def results(self) -> list[BatchResult]:
        return [self.first, self.again, self.cached, self.conflict]


def jsonl(spans: list[ReadableSpan]) -> bytes:
    return "".join(json.dumps(json.loads(s.to_json())) + "\n" for s in spans).encode()


async def _run(where: pathlib.Path) -> Runs:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with SQLiteLedger(where / "calls.db") as ledger:
        # What a process killed inside send_email leaves behind: a row "started", no result.
        claim = await ledger.claim("orders-1", "mail", same_call("send_email", {"to": "ann"}))
        await ledger.abandon(claim)
        o = Orchestrator(TOOLS, tracer_provider=provider, ledger=ledger, cache=MemoryCache())
        first = await o.run(BATCH, batch_id="orders-1")
        again = await o.run(BATCH, batch_id="orders-1")
        cached = await o.run([ToolCall("p", "price", {"sku": "x"})], batch_id="orders-2")
        conflict = await o.run([ToolCall("mail", "send_email", {"to": "bob"})], batch_id="orders-1")
    provider.shutdown()
    spans = parse_trace(jsonl(list(exporter.get_finished_spans())), "t").spans
    return Runs(first, again, cached, conflict, spans)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    where = tmp_path_factory.mktemp("ledger")
    # A thread of its own: the browser test's Playwright keeps an event loop in this one.
    with ThreadPoolExecutor(1) as worker:
        runs = worker.submit(asyncio.run, _run(where)).result()
    # The scenario is what the tests below rely on: check it did happen.
    first, again = runs.first, runs.again
    assert first.get("mail").error_type == "uncertain"
    assert first.get("a2").deduplicated_from == "a"
    assert first.get("u").deduplicated_from == "a"
    assert first.plan.orderings == {"r": ["w"]}
    assert again.get("w").replayed
    assert again.get("mail").replayed
    assert runs.cached.get("p").cached
    assert runs.conflict.get("mail").error_type == "ledger_conflict"
    return runs


def origin(r: CallResult) -> str | None:
    if r.replayed:
        return "replayed"
    if r.cached:
        return "cached"
    return "deduplicated" if r.deduplicated_from is not None else None


def expected_badges(r: CallResult) -> dict[str, str]:
    out = {}
    kind = origin(r)
    if kind == "deduplicated":
        out[kind] = f"= {r.deduplicated_from}"
    elif kind is not None:
        out[kind] = kind
    if r.error_type in ("uncertain", "ledger_conflict", "ledger_error"):
        out[r.error_type] = r.error_type
    return out


def assert_shows(page: Page, batch: str, result: BatchResult) -> None:
    """Every call's marks on its bar and node, its details data, the edges by kind and the
    summary's counts, as ``result`` holds them."""
    data = {c["id"]: c for c in page.data(batch)["calls"]}
    for r in result.results:
        for view in ("timeline", "graph"):
            drawn = page.of_call(batch, view, r.call_id)
            assert drawn.attrs["data-status"] == r.status
            assert drawn.attrs.get("data-origin") == origin(r), (view, r.call_id)
            assert drawn.attrs.get("data-error-type") == r.error_type, (view, r.call_id)
            assert page.badges(batch, view, r.call_id) == expected_badges(r), (view, r.call_id)
        shown = data[r.call_id]
        assert shown.get("replayed", False) == r.replayed
        assert shown.get("cached", False) == r.cached
        assert shown.get("mergedFrom") == r.deduplicated_from
        assert shown.get("outcome") == (UNCERTAIN if r.error_type == "uncertain" else None)
        after = result.plan.orderings.get(r.call_id)
        assert shown.get("orderedAfter") == after
    # Edges: data for references, resource for orderings; nothing else.
    wanted = {f"{d}->{r.call_id}": "data" for r in result.results for d in r.depends_on}
    wanted |= {f"{b}->{a}": "resource" for a, bs in result.plan.orderings.items() for b in bs}
    assert page.edges(batch) == wanted
    fields = page.summary(batch)
    counts = {
        "calls-replayed": sum(r.replayed for r in result.results),
        "calls-cached": sum(r.cached for r in result.results),
        "calls-merged": sum(r.deduplicated_from is not None for r in result.results),
        "calls-uncertain": sum(r.error_type == "uncertain" for r in result.results),
        "resource-orderings": sum(map(len, result.plan.orderings.values())),
    }
    for name, n in counts.items():
        assert fields.get(name) == (str(n) if n else None), (name, fields)


def test_the_page_from_spans_marks_every_side_effect(runs: Runs) -> None:
    page = Page(format_html(runs.spans))
    # Batches named by their batch id; a repeated id gets a mark so picker entries stay apart.
    assert page.batches() == ["orders-1", "orders-1'", "orders-2", "orders-1''"]
    for batch, result in zip(page.batches(), runs.results, strict=True):
        assert_shows(page, batch, result)


def test_the_page_of_a_batch_result_marks_every_side_effect(runs: Runs) -> None:
    for result in runs.results:
        page = Page(result.to_html())
        (batch,) = page.batches()
        assert batch == result.batch_id
        assert_shows(page, batch, result)


def test_the_uncertain_call_is_worded_so_and_ledger_errors_name_their_type(runs: Runs) -> None:
    for html, batch in ((format_html(runs.spans), "orders-1"), (runs.first.to_html(), "orders-1")):
        page = Page(html)
        bar = page.of_call(batch, "timeline", "mail")
        assert bar.attrs["title"].startswith(f"mail [send_email] {UNCERTAIN}")
        node = page.of_call(batch, "graph", "mail")
        assert UNCERTAIN in node.text  # its <title>
        mail = next(c for c in page.data(batch)["calls"] if c["id"] == "mail")
        assert mail["errorType"] == "uncertain"
        assert mail["error"].startswith("uncertain")
    page = Page(runs.conflict.to_html())
    bar = page.of_call("orders-1", "timeline", "mail")
    assert "error (ledger_conflict)" in bar.attrs["title"]
    (mail,) = page.data("orders-1")["calls"]
    assert mail["errorType"] == "ledger_conflict"
    assert "give each batch its own batch_id" in mail["error"]


def test_a_call_waits_for_what_it_is_ordered_after(runs: Runs) -> None:
    w, r = runs.first.get("w"), runs.first.get("r")
    assert w.ended_at is not None
    assert r.started_at is not None
    assert r.started_at >= w.ended_at  # the engine did order them
    for html in (runs.first.to_html(), format_html(runs.spans)):
        page = Page(html)
        shown = {c["id"]: c for c in page.data("orders-1")["calls"]}
        assert shown["r"]["orderedAfter"] == ["w"]
        assert shown["w"]["orderedBefore"] == ["r"]
        assert shown["r"]["deps"] == []  # no dependency: only the resource
        # It waited for w: the wait is drawn, and w then r is the critical path.
        assert shown["r"]["waited"] == shown["w"]["end"]
        critical = int(page.summary("orders-1")["critical-path-ms"])
        assert critical >= shown["w"]["duration"] + shown["r"]["duration"] - 2
        assert critical >= 2 * PAUSE * 1000 - 2
        bar = page.of_call("orders-1", "timeline", "r")
        assert "ran after w (resource)" in bar.attrs["title"]
        assert "waited" in bar.attrs["title"]


def test_the_terminal_shows_the_same_facts(runs: Runs) -> None:
    out = format_batches(runs.spans)
    blocks = out.split("invoke_workflow ")[1:]
    assert len(blocks) == 4
    first, again, cached, conflict = blocks

    def line(block: str, call_id: str) -> str:
        (found,) = [x for x in block.splitlines() if x.split()[1:2] == [call_id]]
        return found

    assert line(first, "r").endswith("after w (resource)")
    assert line(first, "a2").endswith("= a")
    assert line(first, "u").endswith("waited for a  = a")
    assert " error  group 0 " in line(first, "mail")
    assert line(first, "mail").endswith(f" ms  ({UNCERTAIN})")
    for call_id in ("w", "r", "a", "p", "mail"):
        assert "  replayed" in line(again, call_id), call_id
    assert line(again, "mail").endswith(f"replayed  ({UNCERTAIN})")
    assert line(cached, "p").endswith("  cached")
    assert line(conflict, "mail").endswith("(ledger_conflict)")
    # The timeline's bars and the summary say it too.
    assert f"error, {UNCERTAIN}" in next(x for x in first.splitlines() if x.startswith("mail |"))
    assert "  2 merged, 1 uncertain" in first
    assert "  1 resource ordering\n" in first + "\n"
    assert "  5 replayed, 2 merged, 1 uncertain" in again
    assert "  1 cached" in cached
    bar = next(x for x in conflict.splitlines() if x.startswith("mail |"))
    assert bar.endswith(" ms error, ledger_conflict")


def test_a_ledger_that_cannot_be_used_shows_ledger_error(tmp_path: pathlib.Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    (tmp_path / "gone").mkdir()

    async def main() -> BatchResult:
        async with SQLiteLedger(tmp_path / "gone" / "calls.db") as ledger:
            (tmp_path / "gone").rmdir()  # the database cannot be opened when the batch runs
            o = Orchestrator(TOOLS, tracer_provider=provider, ledger=ledger)
            return await o.run([ToolCall("m", "send_email", {"to": "ann"})], batch_id="b")

    result = asyncio.run(main())
    provider.shutdown()
    assert result.get("m").error_type == "ledger_error"
    spans = parse_trace(jsonl(list(exporter.get_finished_spans()))).spans
    for page in (Page(result.to_html()), Page(format_html(spans))):
        assert page.badges("b", "graph", "m") == {"ledger_error": "ledger_error"}
        assert page.of_call("b", "timeline", "m").attrs["data-error-type"] == "ledger_error"
    assert "(ledger_error)" in format_batches(spans)


def test_hostile_ids_in_merges_and_orderings_stay_text(tmp_path: pathlib.Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    calls = [
        ToolCall(HOSTILE, "lookup", {"id": 1}),
        ToolCall('q"\r\n&amp;', "lookup", {"id": 1}),
        ToolCall(HOSTILE + "w", "write", {"path": "f"}),
        ToolCall("r\u202e", "read", {"path": "f"}),
    ]
    result = Orchestrator(TOOLS, tracer_provider=provider).run_sync(calls)
    provider.shutdown()
    assert result.ok, result.results
    spans = parse_trace(jsonl(list(exporter.get_finished_spans()))).spans
    for html in (result.to_html(), format_html(spans)):
        page = Page(html)
        assert not any(k.startswith("on") for _, a in page.tags for k in a)
        assert "img" not in {t for t, _ in page.tags}
        (batch,) = page.batches()
        badge = page.badges(batch, "graph", 'q"\r\n&amp;')
        assert badge == {"deduplicated": f"= {HOSTILE}"[:15] + "\u2026"}
        assert page.edges(batch) == {f"{HOSTILE}w->r\u202e": "resource"}
        shown = {c["id"]: c for c in page.data(batch)["calls"]}
        assert shown['q"\r\n&amp;']["mergedFrom"] == HOSTILE
    text = format_batches(spans)
    assert f"= {HOSTILE}" in text
    assert f"after {HOSTILE}w (resource)" in text


def test_odd_marks_in_a_record_are_shown_as_text_or_not_at_all() -> None:
    from toolweave.telemetry._html import page as draw
    from toolweave.telemetry._view import from_record

    def call(call_id: str, **extra: Any) -> dict[str, Any]:
        return {"call_id": call_id, "name": "t", "status": "ok", "started_at": 0.0,
                "ended_at": 0.01, **extra}  # fmt: skip

    record = {
        "calls": [
            call("a", replayed="yes", cached=1, deduplicated_from=["x", HOSTILE]),
            call("b", status="error", error_type=HOSTILE, replayed=True),
            call("c"),
        ],
        "plan": {
            "execution_groups": [
                {"tools": [{"tool_id": "a", "ordered_after": ["c"]}]},
                {"tools": [{"tool_id": "b", "ordered_after": ["b", "nobody", 7]}]},
                {"tools": [{"tool_id": "c", "ordered_after": ["a"]}]},  # a cycle of orderings
            ]
        },
    }
    view = from_record(record, batch_id="odd", name="odd")
    a, b, _ = view.calls
    assert (a.replayed, a.cached, a.origin) == (False, False, "deduplicated")
    assert a.deduplicated_from == json.dumps(["x", HOSTILE])  # a list shown as text
    assert b.badges == [("replayed", "replayed")]  # an unknown error type gets no badge
    assert view.resource_edges == [("c", "a"), ("a", "c")]  # no self edge, no unknown id
    assert view.critical_path_ms >= 10  # the cycle is cut, not followed forever
    page = Page(draw([view], title="odd"))
    assert not any(k.startswith("on") for _, x in page.tags for k in x)
    assert page.of_call("odd", "graph", "b").attrs["data-error-type"] == HOSTILE
    assert page.edges("odd") == {"c->a": "resource", "a->c": "resource"}


@pytest.mark.parametrize(
    ("attribute", "value", "kind"),
    [
        pytest.param("toolweave.replayed", "yes", "a string, not a boolean", id="replayed-text"),
        pytest.param("toolweave.cached", 1, "a number, not a boolean", id="cached-number"),
        pytest.param(
            "toolweave.deduplicated_from",
            ["a"],
            "a list of other values, not a string",
            id="merged-list",
        ),
        pytest.param(
            "toolweave.ordered_after",
            "w",
            "a string, not a list of strings",
            id="ordered-after-text",
        ),
    ],
)
def test_a_mark_of_the_wrong_type_names_the_attribute_and_the_line(
    runs: Runs, attribute: str, value: Any, kind: str
) -> None:
    lines = []
    for span in runs.spans[:3]:
        lines.append(
            {
                "name": span.name,
                "context": {"trace_id": span.trace_id, "span_id": span.span_id},
                "parent_id": span.parent_id,
                "start_time": "2024-01-01T00:00:00Z",
                "end_time": "2024-01-01T00:00:01Z",
                "attributes": dict(span.attributes),
            }
        )
    lines[2]["attributes"][attribute] = value
    data = "".join(json.dumps(x) + "\n" for x in lines).encode()
    with pytest.raises(ValueError, match=r"line 3 of odd\.jsonl is not a span") as caught:
        parse_trace(data, "odd.jsonl")
    assert f"attribute '{attribute}' is {kind}" in str(caught.value)


# --- in Chromium ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from browser import CHROMIUM_ENV, Browser, find_chromium

    executable = find_chromium()
    if executable is None:
        pytest.skip(
            f"{CHROMIUM_ENV}={os.environ[CHROMIUM_ENV]!r} is not an executable"
            if os.environ.get(CHROMIUM_ENV)
            else "no Chromium on this machine: apt-get install chromium (.ci/run does), or set "
            f"{CHROMIUM_ENV} to a Chromium executable"
        )
    with Browser(executable) as started:
        yield started


_BADGE_BOXES = """
(batch) => Array.from(document.querySelectorAll(`[data-batch="${batch}"] [data-badge]`)).map(
  (el) => { const r = el.getBoundingClientRect();
            return [el.closest('[data-view]').getAttribute('data-view'),
                    el.getAttribute('data-badge'), el.textContent.trim(), r.width, r.height]; })
"""


def test_badges_render_and_a_replayed_bar_says_so_when_clicked(
    chromium: Any, runs: Runs, tmp_path: pathlib.Path
) -> None:
    from browser import InspectorPage

    path = tmp_path / "trace.html"
    path.write_text(format_html(runs.spans), encoding="utf-8")
    page = InspectorPage(chromium.open(path))
    page.pick("orders-1'")
    assert page.shown_batch_ids() == ["orders-1'"]
    boxes = page.page.evaluate(_BADGE_BOXES, "orders-1'")
    assert all(w > 0 and h > 0 for *_, w, h in boxes), f"badges with no size: {boxes}"
    wanted = [(k, t) for r in runs.again.results for k, t in expected_badges(r).items()]
    assert {k for k, _ in wanted} == {"replayed", "deduplicated", "uncertain"}
    for view in ("timeline", "graph"):
        drawn = [(kind, text) for v, kind, text, *_ in boxes if v == view]
        assert sorted(drawn) == sorted(wanted), view
    fields = page.click(page.bar("orders-1'", "w"))
    assert fields["call-id"] == "w"
    assert fields["status"] == "ok"
    assert fields["replayed"].startswith("replayed")
    assert "replayed" in page.details_text("orders-1'")
    fields = page.click(page.node("orders-1'", "mail"))
    assert fields["outcome"] == UNCERTAIN
    fields = page.click(page.node("orders-1'", "a2"))
    assert fields["deduplicated-from"] == "a"
    fields = page.click_edge("orders-1'", "w", "r")
    assert (fields["edge"], fields["edge-kind"]) == ("w->r", "resource")
    assert fields["ordered-after"] == "w"
    page.pick("orders-2")
    boxes = page.page.evaluate(_BADGE_BOXES, "orders-2")
    assert sorted((v, k) for v, k, _, w, h in boxes if w and h) == [
        ("graph", "cached"),
        ("timeline", "cached"),
    ]
    page.screenshot(tmp_path / "side-effects.png")
    page.opened.assert_quiet()
