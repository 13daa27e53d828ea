"""The decision protocol inside a run: each decision point's context, its decider running
in a task of its own with a watchdog, and its answer handed to the run loop.

The decider runs outside the run's task group, so one that ignores cancellation cannot keep
the batch open: past ``decider_timeout`` the watchdog tells the loop, which applies the
fallback at once and leaves the decider behind (logged).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from ._book import ResultBook
from ._decisions import DecideOn, DecisionGate, should_ask
from ._log import log_event
from ._models import Decision, DecisionContext, DecisionRecord, FinishedCall, ToolCall
from ._observe import Observers
from ._planner import Prepared
from ._scheduler import Scheduler
from ._tasks import RunScope, leave_behind, uncancel_current_task

__all__ = ["Asking", "Decided", "DecisionPoints", "Overdue", "Trigger"]

_DECIDER_GRACE = 1.0  # seconds a cancelled decider gets to end before it is left behind

Trigger = Literal["step", "failure"]


@dataclass(eq=False, slots=True)
class Asking:
    """One decision in flight."""

    context: DecisionContext
    held: dict[int, dict[str, Any]]
    """Calls held for this decision -> their bound arguments."""
    at: float
    start: float = field(default_factory=time.perf_counter)
    settled: bool = False
    task: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class Decided:
    """A decider answered (or failed, and the record holds the fallback)."""

    asking: Asking
    record: DecisionRecord


@dataclass(slots=True)
class Overdue:
    """A decider ran past ``decider_timeout``."""

    asking: Asking


class DecisionPoints:
    """Asks one batch's decider; answers go to ``report`` for the run loop to apply."""

    def __init__(
        self,
        gate: DecisionGate,
        *,
        decide_on: DecideOn,
        goal: str | None,
        output_chars: int,
        prepared: list[Prepared],
        scheduler: Scheduler,
        book: ResultBook,
        observers: Observers,
        scope: RunScope,
        report: Callable[[Any], None],
        now: Callable[[], float],
    ) -> None:
        self.gate = gate
        self.records: list[DecisionRecord] = []
        """Every decision applied, in order."""
        self._decide_on = decide_on
        self._goal = goal
        self._output_chars = output_chars
        self._prepared = prepared
        self._scheduler = scheduler
        self._book = book
        self._observers = observers
        self._scope = scope
        self._report = report
        self._now = now
        self.open: set[Asking] = set()
        """Decisions asked and not settled yet."""
        self._lingering: set[asyncio.Task[None]] = set()

    def context(
        self, indexes: list[int], resolved: dict[int, dict[str, Any]], trigger: Trigger
    ) -> DecisionContext:
        """What the decider sees about the calls ``indexes`` (bound arguments in ``resolved``)."""
        waiting = []
        for i in indexes:
            call = self._prepared[i].call
            arguments = resolved.get(i)
            waiting.append(
                call
                if arguments is None
                else ToolCall(call.id, call.name, arguments, call.depends_on)
            )
        # Views, not lists: building every finished call's preview and every pending call at
        # each decision made a long chain quadratic. A view costs nothing until it is read.
        return DecisionContext.model_construct(
            finished=FinishedView(self._book, len(self._book.finished), self._output_chars),
            waiting=waiting,
            pending=PendingView(self._scheduler, self._prepared, indexes),
            goal=self._goal,
            trigger=trigger,
        )

    def wanted(self, context: DecisionContext) -> bool:
        """Whether ``decide_on`` asks the decider at this point."""
        try:
            return should_ask(self._decide_on, context)
        except Exception:  # a decide_on predicate that fails: let the decider decide
            logging.getLogger("toolweave").warning(
                "toolweave: the decide_on predicate failed; asking the decider", exc_info=True
            )
            return True

    def ask(self, context: DecisionContext, held: dict[int, dict[str, Any]]) -> None:
        """Start asking; the answer reaches the loop as ``Decided`` (or ``Overdue``)."""
        d = Asking(context, held, self._now())
        self.open.add(d)
        d.task = asyncio.create_task(self._decide(d))
        if self.gate.timeout is not None:
            d.timer = asyncio.get_running_loop().call_later(
                self.gate.timeout, self._report, Overdue(d)
            )

    async def _decide(self, d: Asking) -> None:
        self._observers.decision_started(d, d.context)  # in this task: the decider's spans nest
        try:
            record = await self.gate.ask(d.context, d.at)
        except KeyboardInterrupt as exc:
            self._report(self._scope.interrupted(exc))  # the loop raises it
            return
        except asyncio.CancelledError:
            if self._scope.cancelled() or d.settled:
                raise  # the run is ending, or the answer is not wanted any more
            uncancel_current_task()
            record = self.gate.cancelled(d.context, d.at, d.start)
        self._report(Decided(d, record))

    def expired(self, d: Asking) -> DecisionRecord:
        """The fallback record for a decision past its timeout; its decider is cancelled."""
        assert d.task is not None
        d.task.cancel()
        return self.gate.expired(d.context, d.at, d.start)

    def not_needed(self, d: Asking, reason: str) -> DecisionRecord:
        """The record of a decision a stop made pointless; its decider is cancelled."""
        if d.task is not None and d.task is not asyncio.current_task():
            d.task.cancel()
        return DecisionRecord(
            call_ids=d.context.waiting_ids,
            decision=Decision(action="stop", reason=reason),
            fallback=True,
            error="not needed: another decision stopped the batch",
            error_type="cancelled",
            elapsed=time.perf_counter() - d.start,
            started_at=d.at,
            trigger=d.context.trigger,
        )

    def settle(self, d: Asking, record: DecisionRecord) -> None:
        """Keep ``record`` as the outcome of ``d`` (once); the loop applies it."""
        d.settled = True
        if d.timer is not None:
            d.timer.cancel()
        self.open.discard(d)
        self.records.append(record)
        self._observers.decision_ended(d, record)
        if d.task is not None and not d.task.done():
            self._lingering.add(d.task)  # cancelled above, or about to end by itself
            d.task.add_done_callback(self._lingering.discard)

    def too_late(self) -> None:
        """An answer arrived after its fallback was applied."""
        log_event(logging.WARNING, "orchestration.decision_too_late")

    async def end(self) -> None:
        """At the end of the run: cancel what still decides (only when the run is cancelled or
        interrupted) and give it a moment to end. A decider that ignores cancellation is left
        behind, logged, never awaited; one already past its timeout is not waited for again."""
        for d in self.open:
            if d.timer is not None:
                d.timer.cancel()
        in_flight = {d.task for d in self.open if d.task is not None and not d.task.done()}
        for t in in_flight | self._lingering:
            t.cancel()
        stuck = set(self._lingering)
        if in_flight:
            _, still = await asyncio.wait(in_flight, timeout=_DECIDER_GRACE)
            stuck |= still
        for t in stuck:
            if not t.done():
                leave_behind(t, "orchestration.decider_left_running")


class FinishedView(Sequence[FinishedCall]):
    """The calls finished when a decision was asked for, in the order they finished; each is
    built when first read, once per batch."""

    def __init__(self, book: ResultBook, length: int, output_chars: int) -> None:
        self._book = book
        self._length = length
        self._chars = output_chars

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> FinishedCall: ...
    @overload
    def __getitem__(self, index: slice) -> list[FinishedCall]: ...
    def __getitem__(self, index: int | slice) -> FinishedCall | list[FinishedCall]:
        if isinstance(index, slice):
            return [
                self._book.finished_call(k, self._chars)
                for k in range(*index.indices(self._length))
            ]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError("finished call index out of range")
        return self._book.finished_call(index, self._chars)

    def __repr__(self) -> str:
        return f"FinishedView({len(self)} calls)"


class PendingView(Sequence[ToolCall]):
    """The calls that waited behind a decision's calls when it was asked for; the search runs
    when the view is first read, against the scheduler's record of that moment."""

    def __init__(self, scheduler: Scheduler, prepared: list[Prepared], indexes: list[int]) -> None:
        self._scheduler = scheduler
        self._prepared = prepared
        self._indexes = indexes
        self._as_of = scheduler.snapshot()
        self._calls: list[ToolCall] | None = None

    def _list(self) -> list[ToolCall]:
        if self._calls is None:
            behind = self._scheduler.waiting_descendants(self._indexes, self._as_of)
            self._calls = [self._prepared[i].call for i in behind]
        return self._calls

    def __len__(self) -> int:
        return len(self._list())

    @overload
    def __getitem__(self, index: int) -> ToolCall: ...
    @overload
    def __getitem__(self, index: slice) -> list[ToolCall]: ...
    def __getitem__(self, index: int | slice) -> ToolCall | list[ToolCall]:
        return self._list()[index]

    def __repr__(self) -> str:
        return f"PendingView({len(self)} calls)"
