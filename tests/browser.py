"""Headless Chromium for tests: open a local HTML file, record what it asked of the network and
the console, and read the Inspector page through its DOM contract.

``find_chromium()`` says where the browser is (or None: tests skip, saying why). ``Browser``
starts it once through Playwright with flags that keep it off the network (this machine refuses
outside connections, and a page under test must make none). ``Browser.open(path)`` gives an
``OpenedPage``: the Playwright page plus a ``PageLog`` of every request, console error and
uncaught exception since the page was opened. ``InspectorPage`` reads the contract the
``toolweave inspect --html`` page and ``BatchResult.to_html()`` keep:

- ``[data-batch=ID]`` per batch, a picker ``nav[data-view=batches]`` of ``button[data-pick=ID]``;
- per batch ``[data-view=timeline]`` bars and ``[data-view=graph]`` (an svg) nodes, each
  ``[data-call-id][data-status]``, graph edges ``[data-edge="FROM->TO"]``;
- ``[data-view=summary]`` and ``[data-view=details]`` made of ``[data-field=NAME]`` elements.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from playwright.sync_api import Browser as PlaywrightBrowser
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Error,
    Locator,
    Page,
    Playwright,
    sync_playwright,
)

__all__ = [
    "CHROMIUM_ARGS",
    "CHROMIUM_ENV",
    "Browser",
    "DrawnBatch",
    "InspectorPage",
    "OpenedPage",
    "PageLog",
    "css_string",
    "find_chromium",
]

CHROMIUM_ENV = "TOOLWEAVE_CHROMIUM"
"""Names a Chromium executable to use instead of the one on this machine's PATH."""

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Chromium's own outgoing connections off: the machine refuses them and a test must not wait."""

_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
_CLICK_MS = 5_000  # a click that cannot land in 5 s never will: fail rather than hang


def find_chromium() -> str | None:
    """The Chromium to drive: ``$TOOLWEAVE_CHROMIUM``, else Debian's ``/usr/bin/chromium`` or
    the first of ``chromium``, ``chromium-browser``, ``google-chrome`` on PATH; None if none
    is there."""
    wanted = os.environ.get(CHROMIUM_ENV)
    if wanted:
        return shutil.which(wanted)
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def css_string(value: str) -> str:
    """``value`` as a double-quoted CSS string, for attribute selectors over any text (ids
    holding quotes, backslashes, newlines or markup)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\a ").replace("\r", "\\d ").replace("\f", "\\c ")
    return f'"{escaped}"'


@dataclass
class PageLog:
    """What a page did besides drawing: requests, console errors, uncaught exceptions."""

    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def problems(self, own_url: str) -> list[str]:
        """Everything that should not have happened to a self-contained page at ``own_url``:
        a request for anything but the page itself, a console error, an uncaught exception."""
        found = [f"request {url}" for url in self.requests if url != own_url]
        found += [f"console error {text}" for text in self.console_errors]
        found += [f"uncaught {text}" for text in self.page_errors]
        return found


@dataclass
class OpenedPage:
    """A page opened by ``Browser.open``; ``log`` keeps filling while it stays open."""

    page: Page
    url: str
    log: PageLog

    def assert_quiet(self) -> None:
        """Fail, listing them, if the page made any request but its own, logged a console
        error or threw."""
        problems = self.log.problems(self.url)
        assert not problems, f"{self.url} was not self-contained and quiet:\n" + "\n".join(problems)


class Browser:
    """Headless Chromium through Playwright, started once and closed on exit. Each ``open``
    gets a fresh context (Playwright's launch already uses a throw-away profile)."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self._playwright: Playwright | None = None
        self._browser: PlaywrightBrowser | None = None
        self._contexts: list[BrowserContext] = []

    def __enter__(self) -> Browser:
        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=self.executable, args=list(CHROMIUM_ARGS), headless=True
            )
        except BaseException:
            self._playwright.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            for context in self._contexts:
                context.close()
            if self._browser is not None:
                self._browser.close()
        finally:
            if self._playwright is not None:
                self._playwright.stop()

    def open(
        self,
        path: Path,
        *,
        init_script: str | None = None,
        viewport: tuple[int, int] = (1400, 900),
    ) -> OpenedPage:
        """Open the local file ``path`` and wait for its ``load`` event. ``init_script`` runs in
        the page before any of its own scripts (to time or observe it)."""
        if self._browser is None:
            raise RuntimeError("use 'with Browser(executable) as browser:' before open()")
        context = self._browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]}, service_workers="block"
        )
        self._contexts.append(context)
        page = context.new_page()
        log = PageLog()
        page.on("request", lambda request: log.requests.append(request.url))
        page.on("console", lambda message: _console(log, message))
        page.on("pageerror", lambda error: log.page_errors.append(f"{error.name}: {error}"))
        if init_script is not None:
            page.add_init_script(init_script)
        url = path.resolve().as_uri()
        page.goto(url, wait_until="load")
        return OpenedPage(page=page, url=url, log=log)


def _console(log: PageLog, message: ConsoleMessage) -> None:
    if message.type in ("error", "assert"):
        log.console_errors.append(message.text)


@dataclass(frozen=True)
class DrawnBatch:
    """One batch as the page drew it, read from its data attributes."""

    batch_id: str
    hidden: bool
    bars: dict[str, str]
    """Timeline bars: call id -> data-status."""
    nodes: dict[str, str]
    """Graph nodes: call id -> data-status."""
    edges: frozenset[str]
    """Graph edges' ``data-edge`` values, ``FROM->TO``."""
    summary: dict[str, str]
    """The summary's fields: name -> text."""
    duplicates: tuple[str, ...]
    """Call ids or edges drawn more than once in one view."""
    invisible: tuple[str, ...]
    """Bars, nodes or edges with no size on screen (only checked when the batch is shown)."""
    outside_svg: tuple[str, ...]
    """Graph nodes or edges that are not inside an ``<svg>``."""


# One pass over the DOM in the page: reading 1,000 nodes one locator at a time takes minutes.
_READ_BATCHES = """
() => {
  const size = (el) => { const r = el.getBoundingClientRect(); return r.width + r.height; };
  const out = [];
  for (const batch of document.querySelectorAll('[data-batch]')) {
    const id = batch.getAttribute('data-batch');
    const shown = !batch.closest('[hidden]');
    const dup = [], invisible = [], outside = [];
    const read = (view, what) => {
      const map = {};
      const root = batch.querySelector(`[data-view="${view}"]`);
      if (!root) return map;
      for (const el of root.querySelectorAll('[data-call-id]')) {
        const cid = el.getAttribute('data-call-id');
        if (cid in map) dup.push(`${what} ${cid}`);
        map[cid] = el.getAttribute('data-status');
        if (shown && size(el) === 0) invisible.push(`${what} ${cid}`);
        if (view === 'graph' && !el.closest('svg')) outside.push(`${what} ${cid}`);
      }
      return map;
    };
    const bars = read('timeline', 'bar');
    const nodes = read('graph', 'node');
    const edges = [];
    const graph = batch.querySelector('[data-view="graph"]');
    if (graph) {
      for (const el of graph.querySelectorAll('[data-edge]')) {
        const e = el.getAttribute('data-edge');
        if (edges.includes(e)) dup.push(`edge ${e}`);
        edges.push(e);
        if (shown && size(el) === 0) invisible.push(`edge ${e}`);
        if (!el.closest('svg')) outside.push(`edge ${e}`);
      }
    }
    const summary = {};
    const sv = batch.querySelector('[data-view="summary"]');
    if (sv) for (const f of sv.querySelectorAll('[data-field]'))
      summary[f.getAttribute('data-field')] = f.textContent.trim();
    out.push({id, hidden: !shown, bars, nodes, edges, summary, dup, invisible, outside});
  }
  return out;
}
"""

_READ_FIELDS = """
(root) => {
  const fields = {};
  for (const f of root.querySelectorAll('[data-field]'))
    fields[f.getAttribute('data-field')] = f.textContent.trim();
  return fields;
}
"""


# Where to click an edge: {box: true} for a handle with a box of its own; else the middle of
# its line on screen (the edge, or its first line, path or polyline), if a click there lands
# on the edge.
_EDGE_MIDDLE = """
(edge) => {
  const shapes = 'path, line, polyline';
  const shape = edge.matches(shapes) ? edge : edge.querySelector(shapes);
  const box = edge.getBoundingClientRect();
  if (!shape || (box.width > 4 && box.height > 4)) return {box: true};  // a handle: click it
  const length = shape.getTotalLength();
  const middle = shape.getPointAtLength(length / 2);
  const m = shape.getScreenCTM();
  const x = m.a * middle.x + m.c * middle.y + m.e, y = m.b * middle.x + m.d * middle.y + m.f;
  const hit = document.elementFromPoint(x, y);
  if (!hit || hit.closest('[data-edge]') !== edge) {
    const what = hit ? hit.outerHTML.slice(0, 160) : 'nothing (off screen)';
    return {error: `a click at its middle (${x.toFixed(0)}, ${y.toFixed(0)}) lands on ${what}`};
  }
  return {x, y};
}
"""


class InspectorPage:
    """The Inspector page's contract over an ``OpenedPage``: batches, picker, views, details."""

    def __init__(self, opened: OpenedPage) -> None:
        self.opened = opened
        self.page = opened.page

    def batches(self) -> list[DrawnBatch]:
        """Every ``[data-batch]`` element, in page order, as drawn now."""
        raw = self.page.evaluate(_READ_BATCHES)
        return [
            DrawnBatch(
                batch_id=b["id"],
                hidden=b["hidden"],
                bars=b["bars"],
                nodes=b["nodes"],
                edges=frozenset(b["edges"]),
                summary=b["summary"],
                duplicates=tuple(b["dup"]),
                invisible=tuple(b["invisible"]),
                outside_svg=tuple(b["outside"]),
            )
            for b in raw
        ]

    def shown_batch_ids(self) -> list[str]:
        """The batches not hidden (by their own or an ancestor's ``hidden`` attribute)."""
        return [b.batch_id for b in self.batches() if not b.hidden]

    def picker_ids(self) -> list[str]:
        """The ``data-pick`` of every picker button, in order."""
        buttons = self.page.locator('nav[data-view="batches"] button[data-pick]')
        return [buttons.nth(i).get_attribute("data-pick") or "" for i in range(buttons.count())]

    def pick(self, batch_id: str) -> None:
        """Click the picker's button for ``batch_id``."""
        selector = f'nav[data-view="batches"] button[data-pick={css_string(batch_id)}]'
        self.page.locator(selector).click(timeout=_CLICK_MS)

    def batch(self, batch_id: str) -> Locator:
        """The ``[data-batch]`` element of ``batch_id``."""
        return self.page.locator(f"[data-batch={css_string(batch_id)}]")

    def bar(self, batch_id: str, call_id: str) -> Locator:
        """The timeline bar of ``call_id``."""
        return self.batch(batch_id).locator(
            f'[data-view="timeline"] [data-call-id={css_string(call_id)}]'
        )

    def node(self, batch_id: str, call_id: str) -> Locator:
        """The graph node of ``call_id``."""
        return self.batch(batch_id).locator(
            f'[data-view="graph"] [data-call-id={css_string(call_id)}]'
        )

    def edge(self, batch_id: str, source: str, target: str) -> Locator:
        """The graph edge ``source->target`` (``target`` waited for ``source``)."""
        value = css_string(f"{source}->{target}")
        return self.batch(batch_id).locator(f'[data-view="graph"] [data-edge={value}]')

    def details_text(self, batch_id: str) -> str:
        """The whole text of the batch's details view."""
        return self.batch(batch_id).locator('[data-view="details"]').inner_text().strip()

    def details(self, batch_id: str) -> dict[str, str]:
        """The details view's fields: name -> text (stripped)."""
        root = self.batch(batch_id).locator('[data-view="details"]')
        fields: dict[str, str] = root.evaluate(_READ_FIELDS)
        return fields

    def click(self, target: Locator) -> dict[str, str]:
        """Click ``target`` as a user would (it must be visible and on top where clicked) and
        return the details its batch then shows."""
        try:
            target.click(timeout=_CLICK_MS)
        except Error as exc:
            raise AssertionError(f"could not click {target}: {exc.message}") from None
        root = target.locator("xpath=ancestor::*[@data-batch][1]")
        batch_id = root.get_attribute("data-batch") or ""
        return self.details(batch_id)

    def click_edge(self, batch_id: str, source: str, target: str) -> dict[str, str]:
        """Click the edge ``source->target`` as a user would and return the details then
        shown: a handle (an element with a box) in its middle, a bare line at the middle of
        its length (Playwright's own click refuses a straight horizontal or vertical line,
        whose box has no height or width). Fails if something else is on top there."""
        edge = self.edge(batch_id, source, target)
        if edge.count() != 1:
            raise AssertionError(f"{edge.count()} elements for edge {source}->{target}")
        edge.scroll_into_view_if_needed(timeout=_CLICK_MS)
        spot = edge.evaluate(_EDGE_MIDDLE)
        if "box" in spot:
            return self.click(edge)
        if "error" in spot:
            raise AssertionError(f"edge {source}->{target}: {spot['error']}")
        self.page.mouse.click(spot["x"], spot["y"])
        return self.details(batch_id)

    def screenshot(self, path: Path) -> Path:
        """A full-page PNG at ``path``."""
        self.page.screenshot(path=str(path), full_page=True)
        return path
