"""The Inspector's HTML page in a real headless Chromium: ``toolweave inspect TRACE --html OUT``
and ``BatchResult.to_html()``, read through the page's DOM contract (``tests/browser.py``).

What is expected (calls, edges, statuses, durations) is computed from the trace file or the
``BatchResult`` the page was made from, never written out by hand.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser import CHROMIUM_ENV, Browser, DrawnBatch, InspectorPage, find_chromium

from toolweave import BatchResult, Orchestrator, ToolCall, tool
from toolweave.telemetry import attributes as A
from toolweave.telemetry import configure_tracing
from toolweave.telemetry.inspect import TraceSpan, load_spans

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason=f"{CHROMIUM_ENV}={os.environ[CHROMIUM_ENV]!r} is not an executable"
    if os.environ.get(CHROMIUM_ENV)
    else "no Chromium on this machine: apt-get install chromium (.ci/run does), or set "
    f"{CHROMIUM_ENV} to a Chromium executable",
)

RENDER_BOUND_S = 2.0
"""The issue's bound: a 1,000-call page is drawn, load to last node, within 2 s."""
SIZE_BOUND = 2 * 1024 * 1024
"""The issue's bound on the 1,000-call page's file: under 2 MB."""
PROMPT = "Click a call or an edge"
PWNED_ID = "</script><img src=x onerror=window.__pwned=1>"
QUOTED_ID = 'q" onmouseover="window.__pwned=3" x=\''
HOSTILE_OUTPUT = "<b>bold</b> & <i>x</i>"


# --- what the page should show, from its source ---------------------------------------------


@dataclass(frozen=True)
class Call:
    call_id: str
    tool: str
    status: str
    depends_on: tuple[str, ...]
    duration_ms: float
    attempts: int
    error_type: str
    """The short class of the failure ('' when ok)."""
    message: str
    """The error message or skip reason the source holds ('' when it holds none)."""
    output: str | None
    """The captured output as JSON or text, or None when the source holds none."""


@dataclass(frozen=True)
class Batch:
    strategy: str
    makespan_ms: float
    calls: dict[str, Call]
    captured: bool
    """Whether the source holds arguments and outputs (content capture)."""
    paths: dict[str, frozenset[str]]
    """``FROM->TO`` -> the reference paths that carried data along the edge."""
    names: frozenset[str]
    """The ids the source gives the batch (span id, engine batch id)."""

    @property
    def edges(self) -> frozenset[str]:
        return frozenset(f"{d}->{c.call_id}" for c in self.calls.values() for d in c.depends_on)

    def dependents(self, call_id: str) -> set[str]:
        return {c.call_id for c in self.calls.values() if call_id in c.depends_on}

    @property
    def signature(self) -> tuple[str, frozenset[tuple[str, str]], frozenset[str]]:
        """What tells batches apart on the page without knowing how it names them."""
        statuses = frozenset((c.call_id, c.status) for c in self.calls.values())
        return self.strategy, statuses, self.edges

    def serial_ms(self) -> float:
        return sum(c.duration_ms for c in self.calls.values())

    def critical_path_ms(self) -> float:
        """The longest chain of waits, by the durations of the calls on it."""
        memo: dict[str, float] = {}

        def longest(call_id: str) -> float:
            if call_id not in memo:
                call = self.calls[call_id]
                memo[call_id] = call.duration_ms + max(
                    (longest(d) for d in call.depends_on if d in self.calls), default=0.0
                )
            return memo[call_id]

        for call_id in _topological(self.calls):
            longest(call_id)
        return max(memo.values(), default=0.0)


def _topological(calls: dict[str, Call]) -> list[str]:
    # Filled leaves first, so that the recursion above stays shallow on 1,000-call chains.
    order: list[str] = []
    seen: set[str] = set()
    for start in calls:
        stack = [(start, False)]
        while stack:
            call_id, done = stack.pop()
            if done:
                order.append(call_id)
                continue
            if call_id in seen or call_id not in calls:
                continue
            seen.add(call_id)
            stack.append((call_id, True))
            stack.extend((d, False) for d in calls[call_id].depends_on)
    return order


def batches_from_trace(path: Path) -> list[Batch]:
    """One ``Batch`` per workflow span of a JSON-lines trace, in start order."""
    spans = load_spans(path)
    # TraceSpan leaves out the status's description: read it, and the plan, from the file.
    descriptions, plans = {}, {}
    for line in path.read_text(encoding="utf-8").splitlines():
        raw = json.loads(line)
        descriptions[raw["context"]["span_id"]] = raw["status"].get("description") or ""
        for event in raw["events"]:
            if event["name"] == A.PLAN_EVENT:
                plans[raw["context"]["span_id"]] = json.loads(event["attributes"][A.TW_PLAN_JSON])
    children: dict[str, list[TraceSpan]] = {}
    for s in spans:
        if s.parent_id is not None:
            children.setdefault(s.parent_id, []).append(s)
    found = []
    for batch in sorted(spans, key=lambda s: s.start):
        if batch.attributes.get(A.GEN_AI_OPERATION_NAME) != A.OP_INVOKE_WORKFLOW:
            continue
        calls = {}
        for s in children.get(batch.span_id, []):
            a = s.attributes
            if A.GEN_AI_TOOL_CALL_ID not in a:
                continue
            calls[a[A.GEN_AI_TOOL_CALL_ID]] = Call(
                call_id=a[A.GEN_AI_TOOL_CALL_ID],
                tool=a[A.GEN_AI_TOOL_NAME],
                status=a[A.TW_STATUS],
                depends_on=tuple(a.get(A.TW_DEPENDS_ON, ())),
                duration_ms=s.duration_ms,
                attempts=a.get(A.TW_ATTEMPTS, 0),
                error_type=a.get(A.TW_ERROR_TYPE, ""),
                message=a.get(A.TW_SKIP_REASON, "") or descriptions[s.span_id],
                output=a.get(A.GEN_AI_TOOL_CALL_RESULT),
            )
        captured = any(c.output is not None for c in calls.values())
        paths = reference_paths(plans[batch.span_id])
        names = {batch.span_id} | {
            v for k, v in batch.attributes.items() if k.startswith("toolweave.batch")
        }
        found.append(
            Batch(
                batch.attributes[A.TW_STRATEGY],
                batch.duration_ms,
                calls,
                captured,
                paths,
                frozenset(map(str, names)),
            )
        )
    return found


def batch_from_result(result: BatchResult, *, include_content: bool) -> Batch:
    calls = {
        r.call_id: Call(
            call_id=r.call_id,
            tool=r.name,
            status=r.status,
            depends_on=tuple(r.depends_on),
            duration_ms=(r.duration or 0.0) * 1000,
            attempts=r.attempts,
            error_type=r.error_type or "",
            message=r.error or "",
            output=None if r.output is None else json.dumps(r.output),
        )
        for r in result.results
    }
    paths = reference_paths(result.plan.to_dict())
    names = frozenset({result.batch_id} if result.batch_id else ())
    return Batch(result.plan.strategy, result.elapsed * 1000, calls, include_content, paths, names)


def reference_paths(plan: dict[str, Any]) -> dict[str, frozenset[str]]:
    """``FROM->TO`` -> JSONPaths, from each call's ``output_mapping`` in a plan's JSON, where
    references read ``${TARGET REST}``: TARGET is the longest call id the text starts with (ids
    may hold dots) or a 1-based position, and the path is ``$`` followed by REST."""
    ids: list[str] = plan["tool_ids"]
    found: dict[str, set[str]] = {}
    for group in plan["execution_groups"]:
        for entry in group["tools"]:
            for text in entry["output_mapping"].values():
                for inner in re.findall(r"\$\{(.*?)\}", text):
                    source, rest = _target(inner, ids)
                    found.setdefault(f"{source}->{entry['tool_id']}", set()).add(f"${rest}")
    return {edge: frozenset(paths) for edge, paths in found.items()}


def _target(inner: str, ids: list[str]) -> tuple[str, str]:
    named = [i for i in ids if inner.startswith(i) and inner[len(i) : len(i) + 1] in ("", ".", "[")]
    if named:
        source = max(named, key=len)
        return source, inner[len(source) :]
    position = re.match(r"(\d+)(.*)", inner)
    assert position, f"reference {inner!r} names no call of {ids[:5]}..."
    return ids[int(position[1]) - 1], position[2]


# --- making pages -------------------------------------------------------------------------


def toolweave(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toolweave.cli", *argv], capture_output=True, text=True, timeout=180
    )


def page_from_trace(trace: Path, out: Path) -> Path:
    proc = toolweave("inspect", str(trace), "--html", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.is_file(), f"inspect --html wrote no file: {proc.stdout}{proc.stderr}"
    return out


def page_from_result(result: BatchResult, out: Path, *, include_content: bool) -> Path:
    html = result.to_html(include_content=include_content)
    assert isinstance(html, str)
    out.write_text(html, encoding="utf-8")
    return out


def run_traced(
    tools: list[Any], calls: list[ToolCall], trace: Path
) -> tuple[BatchResult, list[Batch]]:
    """Run ``calls`` with spans (content included) written to ``trace``."""
    tracing = configure_tracing("jsonl", path=trace, set_global=False)
    try:
        orchestrator = Orchestrator(tools, tracer_provider=tracing.provider, trace_content=True)
        # A thread of its own: Playwright's sync API keeps an event loop running in this one.
        with ThreadPoolExecutor(1) as worker:
            result = worker.submit(asyncio.run, orchestrator.run(calls)).result()
        orchestrator.close()
        assert tracing.flush()
    finally:
        tracing.shutdown()
    return result, batches_from_trace(trace)


@tool
async def step(x: int) -> int:
    """One link of a chain."""
    return x + 1


@tool
async def boom(x: int) -> int:
    """Fails, so that what waited for it is skipped."""
    raise ValueError(f"boom after {x}")


@tool
async def join(a: int, b: int, c: int) -> int:
    """Waits for three chains."""
    return a + b + c


CHAINS = 37
FAILING = "c376"  # chain 5, eleventh link: the rest of chain 5 is skipped


def thousand_calls() -> list[ToolCall]:
    """A root fanned out to 37 chains of 27 links (998 calls), one link failing, and a call
    joining three chain ends: 1,000 calls."""
    calls = [ToolCall("root", "step", {"x": 0})]
    last: dict[int, str] = {}
    for i in range(1, 999):
        chain, link = (i - 1) % CHAINS, (i - 1) // CHAINS
        before = "root" if link == 0 else f"c{i - CHAINS}"
        call_id = f"c{i}"
        name = "boom" if call_id == FAILING else "step"
        calls.append(ToolCall(call_id, name, {"x": f"${{{before}}}"}))
        last[chain] = call_id
    calls.append(ToolCall("join", "join", {"a": f"${{{last[0]}}}", "b": f"${{{last[1]}}}",
                                          "c": f"${{{last[2]}}}"}))  # fmt: skip
    assert len(calls) == 1000
    return calls


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None
    with Browser(CHROMIUM) as started:
        yield started


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Batch]]:
    where = tmp_path_factory.mktemp("demo")
    trace = where / "demo.jsonl"
    proc = toolweave("demo", "--trace", f"jsonl:{trace}")
    assert proc.returncode == 0, proc.stderr
    expected = batches_from_trace(trace)
    assert len(expected) >= 3
    return page_from_trace(trace, where / "demo.html"), expected


@pytest.fixture(scope="module")
def thousand(tmp_path_factory: pytest.TempPathFactory) -> tuple[BatchResult, Path]:
    where = tmp_path_factory.mktemp("thousand")
    trace = where / "thousand.jsonl"
    result, _ = run_traced([step, boom, join], thousand_calls(), trace)
    assert {r.status for r in result.results} == {"ok", "error", "skipped"}
    return result, trace


def open_inspector(browser: Browser, path: Path, **options: Any) -> InspectorPage:
    return InspectorPage(browser.open(path, **options))


def match_batches(drawn: list[DrawnBatch], expected: list[Batch]) -> dict[str, Batch]:
    """Pair each drawn batch with the source batch it shows: by id where the page uses one the
    source knows (a span id, an engine batch id), else by strategy, calls with their statuses
    and edges, then makespan. Fail if the page left one out, made one up, or drew one with
    other calls, statuses or edges than its source."""

    def signature(b: DrawnBatch) -> tuple[str, frozenset[tuple[str, str]], frozenset[str]]:
        return b.summary.get("strategy", ""), frozenset(b.nodes.items()), b.edges

    def order(sig: Any, makespan: float) -> tuple[str, list[str], list[str], float]:
        strategy, statuses, edges = sig
        return strategy, sorted(map(str, statuses)), sorted(edges), makespan

    assert len(drawn) == len(expected), f"{len(drawn)} batches drawn, {len(expected)} in source"
    pairs: dict[str, int] = {}
    left = list(range(len(expected)))
    for b in drawn:
        known = [i for i in left if b.batch_id in expected[i].names]
        if len(known) == 1:
            pairs[b.batch_id] = known[0]
            left.remove(known[0])
    rest = [b for b in drawn if b.batch_id not in pairs]
    rest.sort(key=lambda b: order(signature(b), _number(b.summary.get("makespan-ms", "0"))))
    left.sort(key=lambda i: order(expected[i].signature, expected[i].makespan_ms))
    pairs.update((b.batch_id, i) for b, i in zip(rest, left, strict=True))
    for b in drawn:
        want = expected[pairs[b.batch_id]].signature
        assert signature(b) == want, (
            f"batch {b.batch_id} is not its source's: drawn {signature(b)}, source {want}"
        )
    return {batch_id: expected[i] for batch_id, i in pairs.items()}


def assert_drawn(batch: DrawnBatch, expected: Batch) -> None:
    """Every call as a bar and a node with its status, every dependency as an edge, the
    summary's numbers those of the source."""
    statuses = {c.call_id: c.status for c in expected.calls.values()}
    assert batch.bars == statuses, f"timeline of {batch.batch_id}"
    assert batch.nodes == statuses, f"graph of {batch.batch_id}"
    assert batch.edges == expected.edges, f"edges of {batch.batch_id}"
    assert batch.duplicates == (), f"drawn twice in {batch.batch_id}: {batch.duplicates[:10]}"
    assert batch.outside_svg == (), f"graph not in an svg: {batch.outside_svg[:10]}"
    summary = batch.summary
    assert summary.get("strategy") == expected.strategy
    assert summary.get("calls") == str(len(expected.calls))
    for name, value in (
        ("makespan-ms", expected.makespan_ms),
        ("critical-path-ms", expected.critical_path_ms()),
        ("serial-ms", expected.serial_ms()),
    ):
        assert name in summary, f"summary of {batch.batch_id} has no {name}: {summary}"
        assert math.isclose(_number(summary[name]), value, rel_tol=0.01, abs_tol=2), (
            f"{name} of {batch.batch_id}: page {summary[name]!r}, source {value:.1f}"
        )


def _number(text: str) -> float:
    cleaned = text.replace(",", "").replace("ms", "").strip()
    try:
        return float(cleaned)
    except ValueError:
        raise AssertionError(f"{text!r} is not a number of milliseconds") from None


def assert_details(fields: dict[str, str], batch: Batch, call_id: str) -> None:
    """The details view shows ``call_id`` as the source holds it."""
    call = batch.calls[call_id]
    assert fields.get("call-id") == call_id, fields
    assert fields.get("tool") == call.tool, fields
    assert fields.get("status") == call.status, fields
    assert math.isclose(_number(fields["duration-ms"]), call.duration_ms, abs_tol=1), fields
    assert fields.get("attempts") == str(call.attempts), fields
    assert _ids(fields.get("depends-on")) == set(call.depends_on), fields
    assert _ids(fields.get("dependents")) == batch.dependents(call_id), fields
    assert "error" in fields, fields
    if call.status == "ok":
        assert fields["error"] in ("", "-", "—", "none"), fields
    else:
        assert call.message[:200] in fields["error"], fields
    if call.status == "error":
        assert call.error_type in fields["error"], fields
    if not batch.captured:
        assert "output" not in fields, f"output shown though not captured: {fields}"
        assert "arguments" not in fields, f"arguments shown though not captured: {fields}"
    elif call.status == "ok":
        assert "arguments" in fields, f"captured arguments not shown: {fields}"
        assert "output" in fields, f"captured output not shown: {fields}"
        if call.output is not None:
            assert _value(fields["output"]) == _value(call.output), fields


def assert_edge_details(
    fields: dict[str, str], batch: Batch, source: str, target: str, *, path: bool = True
) -> None:
    """The details of the edge ``source->target``: the edge, the reference paths that carried
    data along it (unless ``path`` is false), and the call that waited."""
    edge = f"{source}->{target}"
    assert fields.get("edge") == edge, fields
    assert "path" in fields, f"edge {edge}: no path field: {fields}"
    if path:
        shown = {p.strip() for p in fields["path"].split(", ") if p.strip()}
        wanted = batch.paths.get(edge, frozenset())
        assert shown == wanted, f"edge {edge}: path {fields['path']!r}, source {sorted(wanted)}"
    assert_details(fields, batch, target)


def _value(text: str) -> Any:
    """Captured content as a value: JSON when it reads as JSON, else the text (a string
    output is recorded as it is)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _ids(text: str | None) -> set[str]:
    assert text is not None, "no such field"
    return {part.strip() for part in text.split(",") if part.strip() not in ("", "-", "—")}


# --- the demo's batches, through the command line ---------------------------------------------


def test_demo_page_draws_every_batch_call_and_edge(
    browser: Browser, demo: tuple[Path, list[Batch]]
) -> None:
    path, expected = demo
    page = open_inspector(browser, path)
    drawn = page.batches()
    matched = match_batches(drawn, expected)
    assert page.picker_ids() == [b.batch_id for b in drawn]
    assert len(page.shown_batch_ids()) == 1, "one batch shown at a time"
    for batch in drawn:
        assert_drawn(batch, matched[batch.batch_id])
        assert page.details_text(batch.batch_id).startswith(PROMPT)
    page.opened.assert_quiet()


def test_demo_picker_shows_one_batch_at_a_time_and_draws_it(
    browser: Browser, demo: tuple[Path, list[Batch]], tmp_path: Path
) -> None:
    path, _ = demo
    page = open_inspector(browser, path)
    ids = page.picker_ids()
    for n, batch_id in enumerate([*reversed(ids), ids[0]]):
        page.pick(batch_id)
        assert page.shown_batch_ids() == [batch_id]
        shown = next(b for b in page.batches() if b.batch_id == batch_id)
        assert shown.invisible == (), f"drawn with no size: {shown.invisible}"
        page.screenshot(tmp_path / f"demo-{n}.png")
    page.opened.assert_quiet()


def test_demo_clicking_a_call_shows_its_details(
    browser: Browser, demo: tuple[Path, list[Batch]]
) -> None:
    path, expected = demo
    page = open_inspector(browser, path)
    matched = match_batches(page.batches(), expected)
    for batch_id, batch in matched.items():
        page.pick(batch_id)
        for call_id in batch.calls:
            assert_details(page.click(page.node(batch_id, call_id)), batch, call_id)
        first, last = next(iter(batch.calls)), list(batch.calls)[-1]
        assert_details(page.click(page.bar(batch_id, first)), batch, first)
        assert_details(page.click(page.bar(batch_id, last)), batch, last)
    page.opened.assert_quiet()


def test_demo_clicking_an_edge_shows_who_waited_for_whom(
    browser: Browser, demo: tuple[Path, list[Batch]]
) -> None:
    path, expected = demo
    page = open_inspector(browser, path)
    matched = match_batches(page.batches(), expected)
    clicked = 0
    for batch_id, batch in matched.items():
        page.pick(batch_id)
        for call in batch.calls.values():
            for source in call.depends_on:
                fields = page.click_edge(batch_id, source, call.call_id)
                assert_edge_details(fields, batch, source, call.call_id)
                clicked += 1
    assert clicked >= 3, "the demo has edges to click"
    page.opened.assert_quiet()


# --- 1,000 calls ------------------------------------------------------------------------------

# Resolves with the in-page time (ms since navigation began) at the first animation frame in
# which the page holds every graph node, or rejects after the timeout.
_TIME_NODES = """
window.__allNodesAt = new Promise((resolve, reject) => {
  const wanted = %d;
  const check = () => {
    if (document.querySelectorAll('[data-view="graph"] [data-call-id]').length >= wanted)
      resolve(performance.now());
    else if (performance.now() > 60000) reject(new Error('nodes never all drawn'));
    else requestAnimationFrame(check);
  };
  check();
});
"""


@pytest.mark.parametrize("source", ["to_html", "inspect --html"])
def test_thousand_call_page_draws_everything_within_the_issues_bound(
    browser: Browser, thousand: tuple[BatchResult, Path], source: str, tmp_path: Path
) -> None:
    result, trace = thousand
    if source == "to_html":
        path = page_from_result(result, tmp_path / "thousand.html", include_content=False)
        expected = batch_from_result(result, include_content=False)
    else:
        path = page_from_trace(trace, tmp_path / "thousand.html")
        (expected,) = batches_from_trace(trace)
    assert path.stat().st_size < SIZE_BOUND, f"{path.stat().st_size} bytes"

    opened = browser.open(path, init_script=_TIME_NODES % len(expected.calls))
    drawn_ms = opened.page.evaluate("window.__allNodesAt")
    # The issue's own bound, measured once (load to all nodes present), not a speed claim.
    assert drawn_ms < RENDER_BOUND_S * 1000, f"1,000 nodes drawn after {drawn_ms:.0f} ms"
    page = InspectorPage(opened)
    (drawn,) = page.batches()
    assert not drawn.hidden
    assert_drawn(drawn, expected)
    assert drawn.invisible == (), f"drawn with no size: {drawn.invisible[:10]}"
    page.screenshot(tmp_path / "thousand.png")

    failing = expected.calls[FAILING]
    assert failing.status == "error"
    assert_details(page.click(page.node(drawn.batch_id, FAILING)), expected, FAILING)
    skipped = next(c for c in expected.calls.values() if c.status == "skipped")
    assert_details(page.click(page.bar(drawn.batch_id, skipped.call_id)), expected, skipped.call_id)
    joined = expected.calls["join"]
    fields = page.click_edge(drawn.batch_id, joined.depends_on[0], "join")
    assert_edge_details(fields, expected, joined.depends_on[0], "join")
    opened.assert_quiet()


# --- hostile content ----------------------------------------------------------------------------


@tool
async def echo(text: str) -> str:
    """Returns markup."""
    return text


@tool
async def shout(text: str) -> str:
    """Fails with markup in its message."""
    raise ValueError("<script>window.__pwned=2</script>")


def hostile_calls() -> list[ToolCall]:
    return [
        ToolCall(PWNED_ID, "echo", {"text": HOSTILE_OUTPUT}),
        ToolCall(QUOTED_ID, "echo", {"text": {"$ref": PWNED_ID}}),
        ToolCall("loud", "shout", {"text": "<img src=y onerror=window.__pwned=4>"}),
    ]


@pytest.mark.parametrize("source", ["to_html", "inspect --html"])
def test_hostile_ids_and_outputs_show_as_text_and_run_nothing(
    browser: Browser, source: str, tmp_path: Path
) -> None:
    result, from_trace = run_traced([echo, shout], hostile_calls(), tmp_path / "hostile.jsonl")
    if source == "to_html":
        path = page_from_result(result, tmp_path / "hostile.html", include_content=True)
        expected = batch_from_result(result, include_content=True)
    else:
        path = page_from_trace(tmp_path / "hostile.jsonl", tmp_path / "hostile.html")
        (expected,) = from_trace
    page = open_inspector(browser, path)
    (drawn,) = page.batches()
    assert_drawn(drawn, expected)
    assert drawn.edges == {f"{PWNED_ID}->{QUOTED_ID}"}

    fields = page.click(page.node(drawn.batch_id, PWNED_ID))
    assert_details(fields, expected, PWNED_ID)
    assert HOSTILE_OUTPUT in fields["output"], "markup shown as text"
    details = page.batch(drawn.batch_id).locator('[data-view="details"]')
    assert details.locator("b, i, img, script").count() == 0, "output became markup"
    fields = page.click_edge(drawn.batch_id, PWNED_ID, QUOTED_ID)
    # Its path (an id with dots in it) is test_an_edge_from_an_id_with_dots_shows_its_path's.
    assert_edge_details(fields, expected, PWNED_ID, QUOTED_ID, path=False)
    page.click(page.bar(drawn.batch_id, QUOTED_ID))
    fields = page.click(page.node(drawn.batch_id, "loud"))
    assert fields["status"] == "error"
    for locator in (page.node(drawn.batch_id, QUOTED_ID), page.bar(drawn.batch_id, QUOTED_ID)):
        locator.hover()

    assert page.page.evaluate("typeof window.__pwned") == "undefined"
    assert page.page.locator("img").count() == 0, "an <img> from the data entered the page"
    page.opened.assert_quiet()


@tool
async def record(text: str) -> dict[str, Any]:
    """Returns a record."""
    return {"text": text, "n": len(text)}


@tool
async def pair(a: str, b: str) -> str:
    """Joins two texts."""
    return a + b


@pytest.mark.parametrize("source", ["to_html", "inspect --html"])
def test_an_edge_from_an_id_with_dots_shows_its_path(
    browser: Browser, source: str, tmp_path: Path
) -> None:
    # String references end their target at the first '.' or '[', so ids like these are
    # referred to in the object form; the plan still writes them as ${id} or ${id.path}.
    calls = [
        ToolCall("lookup.v2[0]", "record", {"text": "x"}),
        ToolCall("fetch.v2", "echo", {"text": {"$ref": "lookup.v2[0]", "path": "$.text"}}),
        ToolCall("last", "pair", {"a": {"$ref": "lookup.v2[0]", "path": "$.text"},
                                  "b": {"$ref": "fetch.v2"}}),
    ]  # fmt: skip
    result, (from_trace,) = run_traced([record, echo, pair], calls, tmp_path / "dots.jsonl")
    if source == "to_html":
        path = page_from_result(result, tmp_path / "dots.html", include_content=True)
        expected = batch_from_result(result, include_content=True)
    else:
        path = page_from_trace(tmp_path / "dots.jsonl", tmp_path / "dots.html")
        expected = from_trace
    assert result.ok, result.results
    assert expected.paths == {
        "lookup.v2[0]->fetch.v2": {"$.text"},
        "lookup.v2[0]->last": {"$.text"},
        "fetch.v2->last": {"$"},
    }, "the source's reference paths, as this test reads them"
    page = open_inspector(browser, path)
    (drawn,) = page.batches()
    assert_drawn(drawn, expected)
    for edge in sorted(expected.edges):
        source_id, target_id = edge.split("->")
        assert_edge_details(page.click_edge(drawn.batch_id, source_id, target_id), expected,
                            source_id, target_id)  # fmt: skip
    page.opened.assert_quiet()
