"""Live progress of ``toolweave run`` on a terminal, drawn with ``rich``.

``RunProgress`` learns what happens through the orchestrator's public hooks only: it is the
outermost middleware (a call started, returned, failed or was skipped) and it wraps the
decider (a decision was asked, answered or failed). A ``rich.live.Live`` redraws it from its
own thread; every text shown is escaped (no markup, no control characters) and cut short.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import inspect
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from toolweave.telemetry._values import safe_str, safe_type_name

from ._decisions import Decider
from ._errors import SkipCall
from ._hooks import CallNext, CallRequest
from ._log import logger
from ._models import BatchResult, Decision, DecisionContext, ToolCall
from ._render import visible

__all__ = ["RunProgress", "live_progress"]

State = Literal["waiting", "running", "done", "failed", "skipped", "cancelled"]

_STYLE: dict[State, str] = {
    "waiting": "dim",
    "running": "yellow",
    "done": "green",
    "failed": "bold red",
    "skipped": "magenta",
    "cancelled": "red",
}
_FINAL: dict[str, State] = {"ok": "done", "error": "failed", "skipped": "skipped"}
_DETAIL_STYLE: dict[State, str] = {"failed": "red", "cancelled": "red", "skipped": "dim"}
_ID_CHARS = 24
_NAME_CHARS = 32
_DETAIL_CHARS = 80
_MAX_ROWS = 30  # however tall the terminal: a live view of a 10,000-call batch shows a window
_RECENT = 64
_MAX_ASKING = 3  # decisions in flight shown, at most


def _took(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m {rest:02d}s"


@dataclass(slots=True)
class _Call:
    call_id: str
    name: str
    state: State = "waiting"
    started: float | None = None
    ended: float | None = None
    detail: str = ""


class RunProgress:
    """What a run has done so far, kept from its middleware and decider hooks, and drawn as a
    ``rich`` renderable (``__rich__``), from ``Live``'s thread; a lock guards the state.

    ``calls`` are the batch's, in order; ``errors`` (call id -> the planner's error) marks the
    calls that will never start as failed from the outset; ``rows`` bounds the calls drawn
    (at most 30): running ones first, then failures, then the latest to end, then the next to
    wait, each group in batch order.
    """

    def __init__(
        self,
        calls: Sequence[ToolCall],
        *,
        errors: Mapping[str, str] | None = None,
        rows: int = _MAX_ROWS,
    ) -> None:
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()
        self._calls = [_Call(c.id, c.name) for c in calls]
        self._index = {c.id: i for i, c in enumerate(calls)}
        self._rows = max(1, min(rows, _MAX_ROWS))
        self._counts: collections.Counter[State] = collections.Counter({"waiting": len(calls)})
        self._waiting: dict[int, None] = dict.fromkeys(range(len(calls)))  # batch order
        self._running: dict[int, None] = {}  # start order
        self._failed: collections.deque[int] = collections.deque(maxlen=_RECENT)
        self._recent: collections.deque[int] = collections.deque(maxlen=_RECENT)
        self._asking: dict[int, tuple[list[str], float]] = {}
        self._decided = ""
        self._askings = 0
        for call_id, error in (errors or {}).items():  # found by the planner: they never start
            if call_id in self._index:
                self._end(self._index[call_id], "failed", error)

    # -- hooks

    async def middleware(self, request: CallRequest, call_next: CallNext) -> Any:
        """The outermost middleware: notes the call's start and how it ended."""
        i = self._index.get(request.call.id)
        if i is not None:
            self._start(i)
        try:
            output = await call_next(request)
        except SkipCall as exc:
            if i is not None:
                self._end(i, "skipped", safe_str(exc.reason or "skipped by middleware"))
            raise
        except (asyncio.CancelledError, KeyboardInterrupt):
            if i is not None:
                self._end(i, "cancelled", "")
            raise
        except BaseException as exc:
            if i is not None:
                self._end(i, "failed", _error_text(exc))
            raise
        if i is not None:
            if inspect.isawaitable(output):  # the pipeline makes this call's error of it
                self._end(i, "failed", "a middleware returned an awaitable without awaiting it")
            else:
                self._end(i, "done", "")
        return output

    def watch(self, decider: Decider) -> Decider:
        """``decider``, telling this view when it is asked and what it answered."""
        return _WatchedDecider(decider, self)

    def finish(self, result: BatchResult) -> None:
        """Take every call's final state from ``result`` (calls that never started included)."""
        for r in result.results:
            i = self._index.get(r.call_id)
            if i is None:
                continue
            call = self._calls[i]
            if call.state in ("waiting", "running"):
                self._end(i, _FINAL[r.status], "" if r.ok else safe_str(r.error or ""))

    # -- state changes (event loop thread)

    def _start(self, i: int) -> None:
        with self._lock:
            call = self._calls[i]
            if call.state != "waiting":
                return
            self._move(call, "running")
            call.started = time.perf_counter()
            self._waiting.pop(i, None)
            self._running[i] = None

    def _end(self, i: int, state: State, detail: str) -> None:
        with self._lock:
            call = self._calls[i]
            self._move(call, state)
            call.ended = time.perf_counter()
            call.detail = detail
            self._waiting.pop(i, None)
            self._running.pop(i, None)
            self._recent.append(i)
            if state in ("failed", "cancelled"):
                self._failed.append(i)

    def _move(self, call: _Call, state: State) -> None:
        self._counts[call.state] -= 1
        self._counts[state] += 1
        call.state = state

    def _asked(self, ids: list[str]) -> int:
        with self._lock:
            self._askings += 1
            self._asking[self._askings] = (ids, time.perf_counter())
            return self._askings

    def _answered(self, key: int, text: str) -> None:
        with self._lock:
            self._asking.pop(key, None)
            self._decided = text

    # -- drawing (Live's thread)

    def __rich__(self) -> RenderableType:
        try:
            return self._draw()
        except Exception:  # a display that fails must not take the run down: say so, go on
            logger.warning("toolweave: the progress display failed", exc_info=True)
            return Text("(progress display failed; the run goes on)")

    def _draw(self) -> RenderableType:
        now = time.perf_counter()
        with self._lock:
            counts = dict(self._counts)
            chosen = self._chosen()
            rows = [(i, dataclasses.replace(self._calls[i])) for i in chosen]
            asking = list(self._asking.values())
            decided = self._decided
        header = Text(f"toolweave run  {_took(now - self._t0)}  ")
        for state in ("running", "done", "failed", "skipped", "cancelled", "waiting"):
            if counts.get(state) or state in ("running", "done"):
                header.append(f"{counts.get(state, 0)} {state}", style=_STYLE[state])
                header.append("  ")
        table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
        table.add_column("id", no_wrap=True, overflow="ellipsis")
        table.add_column("tool", no_wrap=True, overflow="ellipsis")
        table.add_column("state", no_wrap=True)
        table.add_column("time", no_wrap=True, justify="right")
        table.add_column("detail", no_wrap=True, overflow="ellipsis")
        for _, c in sorted(rows, key=lambda row: row[0]):
            if c.started is None:
                took = ""
            else:
                took = _took((c.ended if c.ended is not None else now) - c.started)
            table.add_row(
                Text(visible(c.call_id, _ID_CHARS)),
                Text(visible(c.name, _NAME_CHARS)),
                Text(c.state, style=_STYLE[c.state]),
                Text(took),
                Text(visible(c.detail, _DETAIL_CHARS), style=_DETAIL_STYLE.get(c.state, "")),
            )
        parts: list[RenderableType] = [header, table]
        hidden = len(self._calls) - len(rows)
        if hidden > 0:
            parts.append(Text(f"... and {hidden} more calls", style="dim"))
        for ids, since in asking[:_MAX_ASKING]:
            about = visible(", ".join(ids), _DETAIL_CHARS)
            parts.append(Text(f"decider: deciding about {about}  {_took(now - since)}"))
        if len(asking) > _MAX_ASKING:
            parts.append(Text(f"... and {len(asking) - _MAX_ASKING} more decisions", style="dim"))
        if decided and not asking:
            parts.append(Text(f"decider: {decided}"))
        return Group(*parts)

    def _chosen(self) -> list[int]:
        # Running calls first, then failures, then what ended last, then what waits next.
        chosen: dict[int, None] = {}
        for source in (
            self._running,
            reversed(self._failed),
            reversed(self._recent),
            self._waiting,
        ):
            for i in source:
                if len(chosen) >= self._rows:
                    return list(chosen)
                chosen[i] = None
        return list(chosen)


def _error_text(exc: BaseException) -> str:
    message = safe_str(exc)
    kind = safe_type_name(exc)
    return f"{kind}: {message}" if message else kind


class _WatchedDecider:
    """A decider that tells a ``RunProgress`` when it is asked and what it answered; the
    engine reads ``fallback`` and ``breaker`` through it as from the decider itself."""

    def __init__(self, inner: Decider, progress: RunProgress) -> None:
        self._inner = inner
        self._progress = progress

    @property
    def fallback(self) -> Any:
        """The wrapped decider's ``fallback``, if it has one."""
        return getattr(self._inner, "fallback", None)

    @property
    def breaker(self) -> Any:
        """The wrapped decider's ``breaker`` (default 3)."""
        return getattr(self._inner, "breaker", 3)

    async def decide(self, context: DecisionContext) -> Decision:
        """Ask the wrapped decider; note the question and the answer."""
        key = self._progress._asked(context.waiting_ids)
        try:
            decision = await self._inner.decide(context)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                self._progress._answered(key, "no answer in time: the fallback applies")
            else:
                failure = visible(_error_text(exc), _DETAIL_CHARS)
                self._progress._answered(key, f"failed ({failure}): the fallback applies")
            raise
        self._progress._answered(key, _answer_text(decision))
        return decision


def _answer_text(decision: Any) -> str:
    action = getattr(decision, "action", None)
    if not isinstance(action, str):
        return "answered"  # the engine validates it and says what was wrong
    skip = getattr(decision, "skip", None)
    text = action
    if action == "skip" and isinstance(skip, list) and skip:
        text += " " + ", ".join(safe_str(s, 40) for s in skip)
    reason = getattr(decision, "reason", "")
    if isinstance(reason, str) and reason:
        text += f" ({reason})"
    return visible(text, _DETAIL_CHARS + 40)


@contextmanager
def live_progress(progress: RunProgress, console: Console) -> Iterator[RunProgress]:
    """Draw ``progress`` on ``console`` while the block runs; the view is cleared at the end
    (the command prints its summary next). What the tools print shows above it."""
    live = Live(
        progress,
        console=console,
        refresh_per_second=8,
        transient=True,
        redirect_stdout=True,
        redirect_stderr=True,
    )
    with live:
        yield progress
