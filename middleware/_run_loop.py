"""The run loop: one coroutine owns the batch's ``Scheduler`` and ``Ledger``.

It starts what is ready, then waits for reports (a call ended, a decider answered, a streamed
call arrived, the stream closed) and records each, in a loop. Calls and deciders run in tasks
of their own and only report; nothing else writes the batch's state. Calls run inside one
``asyncio.TaskGroup``, so no call outlives the run and cancelling the run cancels every one.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from ._binding import Binder
from ._decision_points import Asking, Decided, DecisionPoints, Overdue, Trigger
from ._decisions import DecideOn, DecisionGate
from ._errors import CallError
from ._hooks import Middleware
from ._ledger import Ledger
from ._models import CallResult, DecisionRecord
from ._observe import Observers
from ._pipeline import Outcome, Pipeline
from ._planner import Prepared
from ._scheduler import Scheduler
from ._tasks import Abort, RunScope

__all__ = ["BatchRun", "Closed", "RunOptions"]


@dataclass(kw_only=True, slots=True)
class RunOptions:
    """How an orchestrator runs its batches (a snapshot of its settings)."""

    serial: bool
    max_concurrency: int | None
    executor: Callable[[], Executor]
    middleware: Sequence[Middleware]
    gate: Callable[[], DecisionGate] | None
    decide_on: DecideOn
    output_chars: int


@dataclass(slots=True)
class Closed:
    """The stream closed: ``whole`` is every call planned against the whole batch."""

    whole: list[Prepared]
    parked: list[int]


class _Inbox:
    """Reports for the loop, taken all at once."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def take_now(self) -> list[Any]:
        """What was reported so far, without waiting."""
        items, self._items = self._items, []
        return items

    async def take(self) -> list[Any]:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        items, self._items = self._items, []
        return items


class BatchRun:
    """One batch while it runs: ``execute()`` once, then read ``ledger``. With ``open=True``
    (a streamed batch) calls arrive through ``add()`` until ``close()``."""

    def __init__(
        self,
        options: RunOptions,
        prepared: list[Prepared],
        *,
        open: bool = False,
        goal: str | None = None,
        metadata: Mapping[str, Any],
        batch_id: str,
        observers: Observers,
    ) -> None:
        self.opened = asyncio.Event() if open else None
        """For a streamed batch: set once the run takes calls through ``add()``."""
        self.prepared = prepared
        self.stopped: str | None = None
        """The decider's reason, when it stopped the batch."""
        self._t0 = time.perf_counter()
        self._scheduler = Scheduler([p.deps for p in prepared], serial=options.serial)
        self.ledger = Ledger(prepared, self.now)
        self._binder = Binder(prepared, self.ledger.outputs)
        self._observers = observers
        self._scope = RunScope()
        self._inbox = _Inbox()
        self._pipeline = Pipeline(
            middleware=options.middleware,
            batch_id=batch_id,
            metadata=metadata,
            executor=options.executor,
            observers=observers,
            scope=self._scope,
            now=self.now,
            report=self._inbox.put,
        )
        self._points = (
            None
            if options.gate is None
            else DecisionPoints(
                options.gate(),
                decide_on=options.decide_on,
                goal=goal,
                output_chars=options.output_chars,
                prepared=prepared,
                scheduler=self._scheduler,
                ledger=self.ledger,
                observers=observers,
                scope=self._scope,
                report=self._inbox.put,
                now=self.now,
            )
        )
        self._limit = options.max_concurrency
        self._startable: deque[tuple[int, dict[str, Any]]] = deque()  # bound, waiting a slot
        self._running = 0
        self._started = 0
        self._open = open
        self._group: asyncio.TaskGroup | None = None

    @property
    def decisions(self) -> list[DecisionRecord]:
        """Every decision of the batch, in the order applied."""
        return [] if self._points is None else self._points.records

    def now(self) -> float:
        """Seconds since the batch started."""
        return time.perf_counter() - self._t0

    @property
    def results(self) -> list[CallResult | None]:
        """Each call's result so far (None while it has none)."""
        return self.ledger.results

    def add(self, p: Prepared, *, parked: bool = False) -> None:
        """A streamed call, planned against the calls before it. A ``parked`` call (it names a
        call not seen yet) waits for ``close()``. What is known at once is recorded at once (a
        call behind a failed one is skipped as it arrives); the loop starts the rest."""
        self._added(p, parked)
        self._inbox.put(None)  # wake the loop

    def close(self, whole: list[Prepared], parked: list[int]) -> None:
        """No more calls: what waits is planned against the whole batch (``whole``)."""
        self._inbox.put(Closed(whole, parked))

    async def execute(self) -> None:
        """Run every call to a final result."""
        self._t0 = time.perf_counter()
        self._scope.enter()
        try:
            if not self._open and len(self.prepared) == 1:
                await self._one()  # the commonest batch: no task group needed
                return
            async with asyncio.TaskGroup() as group:
                self._group = group
                if self.opened is not None:
                    self.opened.set()
                await self._loop()
        except (Abort, BaseExceptionGroup):
            if self._scope.fatal is not None:
                raise self._scope.fatal from None
            raise
        finally:
            if self._points is not None:
                await self._points.end()

    async def _loop(self) -> None:
        """The one writer: start what is ready, then record what was reported."""
        doomed = [p for p in self.prepared if p.error is not None]
        if doomed:
            self._fail_unstarted(doomed)
        while True:
            self._start_ready()
            if not self._open and self._scheduler.finished and not self._deciding():
                return
            for report in await self._inbox.take():
                self._receive(report)

    async def _one(self) -> None:
        p = self.prepared[0]
        if p.error is not None:
            self._fail_unstarted([p])
            return
        self._scheduler.take_ready()
        try:
            arguments = self._binder.bind(p)
        except CallError as exc:
            self._fail(p, exc)
            return
        # The call still gets its own task, so a tool that cancels itself is told apart from
        # the caller cancelling run().
        self._running = 1
        await asyncio.create_task(self._pipeline.run(p, arguments, 0))
        if self._scope.cancelled():  # cancelled, though the call swallowed it and ended
            raise asyncio.CancelledError
        for report in self._inbox.take_now():
            self._receive(report)

    def _deciding(self) -> bool:
        return self._points is not None and bool(self._points.open)

    def _receive(self, report: Any) -> None:
        kind = type(report)
        if kind is Outcome:
            self._ended(report)
        elif kind is Decided:
            if report.asking.settled:
                assert self._points is not None
                self._points.too_late()
            else:
                self._apply(report.asking, report.record)
        elif kind is Overdue:
            d = report.asking
            if not d.settled:
                assert self._points is not None
                self._apply(d, self._points.expired(d))
        elif report is None:  # a streamed call was added: start what became ready
            pass
        elif kind is Closed:
            self._closed(report.whole, report.parked)
        elif kind is Abort:
            raise report
        else:  # pragma: no cover - every report kind is handled above
            raise AssertionError(f"unknown report {report!r}")

    # ------------------------------------------------------------------ starting

    def _start_ready(self) -> None:
        """Bind what became ready and start it; calls that wait on others go through the
        decider first. A loop: a call whose arguments fail frees the next (serial batches)."""
        while ready := self._scheduler.take_ready():
            gated = []
            for i in ready:
                p = self.prepared[i]
                if p.deps and self._points is not None:
                    gated.append(i)
                    continue
                try:
                    arguments = self._binder.bind(p)
                except CallError as exc:
                    self._fail(p, exc)
                    continue
                if self._limit is None:
                    self._start(i, arguments)
                else:
                    self._startable.append((i, arguments))
            if gated:
                self._ask_before(gated)
        limit = self._limit
        while self._startable and (limit is None or self._running < limit):
            self._start(*self._startable.popleft())

    def _start(self, i: int, arguments: dict[str, Any]) -> None:
        self._running += 1
        self._started += 1
        assert self._group is not None  # only a one-call batch runs without one
        self._group.create_task(self._pipeline.run(self.prepared[i], arguments, self._started - 1))

    def _ended(self, o: Outcome) -> None:
        self._running -= 1
        p = self.prepared[o.index]
        if o.status == "ok":
            self._scheduler.succeeded(o.index)
            result = self.ledger.succeeded(p, o)
            self._observers.call_ended(p, result)
        elif o.status == "error":
            assert o.error is not None
            self._fail(p, o.error, o)
        else:
            skipped = self._scheduler.failed(o.index)
            result = self.ledger.skipped(p, o.reason, "skipped_by_middleware", o)
            self._observers.call_ended(p, result)
            self._skipped_behind(skipped, ask=False)  # a deliberate skip is no failure

    # ------------------------------------------------------------------ failures

    def _fail(self, p: Prepared, error: CallError, o: Outcome | None = None) -> None:
        skipped = self._scheduler.failed(p.index)
        self._observers.call_ended(p, self.ledger.failed(p, error, o))
        self._skipped_behind(skipped)

    def _fail_unstarted(self, doomed: list[Prepared]) -> None:
        """Calls whose errors are known before they run. All are marked failed before any
        dependent is skipped, so none is reported as skipped because of another."""
        skipped = self._scheduler.failed(*(p.index for p in doomed))
        for p in doomed:
            assert p.error is not None
            self._observers.call_ended(p, self.ledger.failed(p, p.error))
        self._skipped_behind(skipped)

    def _skipped_behind(self, skipped: list[int], *, ask: bool = True) -> None:
        """Record calls skipped because a call they need did not succeed; then (``ask``), if
        a decider wants to hear of failures, ask it."""
        for i in skipped:
            cause = self.ledger.results[self._scheduler.cause[i]]
            assert cause is not None
            happened = "failed. Fix that call first." if cause.status == "error" else "was skipped."
            reason = (
                f"skipped: it depends on call '{cause.call_id}' ({cause.name}), which {happened}"
            )
            q = self.prepared[i]
            self._observers.call_ended(q, self.ledger.skipped(q, reason, "dependency_failed"))
        if ask and skipped and self._points is not None and self.stopped is None:
            context = self._points.context(skipped, {}, "failure")
            if self._points.wanted(context):
                self._points.ask(context, {})

    def _record_stopped(self, indexes: list[int]) -> None:
        reason = f"stopped by decider: {self.stopped}"
        for i in indexes:
            p = self.prepared[i]
            self._observers.call_ended(p, self.ledger.skipped(p, reason, "stopped_by_decider"))

    # ------------------------------------------------------------------ decisions

    def _ask_before(self, gated: list[int]) -> None:
        """Bind the gated calls' arguments, then hold them while the decider decides."""
        assert self._points is not None
        resolved: dict[int, dict[str, Any]] = {}
        for i in gated:
            p = self.prepared[i]
            try:
                resolved[i] = self._binder.bind(p)
            except CallError as exc:  # nothing to decide about a call that cannot run
                self._fail(p, exc)
        if not resolved:
            return
        trigger: Trigger = "step"
        context = self._points.context(list(resolved), resolved, trigger)
        if not self._points.wanted(context):
            self._startable.extend(resolved.items())
            return
        self._scheduler.hold(resolved)
        self._points.ask(context, resolved)

    def _apply(self, d: Asking, record: DecisionRecord) -> None:
        """Keep a decision's outcome, and act on it."""
        assert self._points is not None
        self._points.settle(d, record)
        decision = record.decision
        action = decision.effective
        if action == "stop":
            self._stop(decision.reason)
            return
        held = d.held
        if action == "skip" and held:
            index_of = {self.prepared[i].call.id: i for i in held}
            chosen = [index_of[c] for c in decision.skip if c in index_of]
            reason = f"skipped by decider: {decision.reason or 'no reason given'}"
            for i in self._scheduler.skip(chosen):
                p = self.prepared[i]
                self._observers.call_ended(p, self.ledger.skipped(p, reason, "skipped_by_decider"))
        for i in self._scheduler.resume(held):
            self._startable.append((i, held[i]))

    def _stop(self, reason: str) -> None:
        assert self._points is not None
        if self.stopped is None:
            self.stopped = reason or "no reason given"
            # Decisions still in flight are not needed any more: settle them now (their
            # deciders are cancelled; a task cancelled before it started never runs at all).
            for d in list(self._points.open):
                self._points.settle(d, self._points.not_needed(d, self.stopped))
        self._record_stopped(self._scheduler.stop())

    # ------------------------------------------------------------------ streamed calls

    def _added(self, p: Prepared, parked: bool) -> None:
        assert p.index == len(self.prepared)
        self.prepared.append(p)
        self.ledger.grow()
        i = self._scheduler.add(p.deps, parked=parked)
        if self.stopped is not None:  # a decider stopped the batch: nothing new starts
            self._record_stopped(self._scheduler.skip([i]))
        elif parked:
            pass
        elif self._scheduler.state[i] == "skipped":  # behind a call that already failed
            self._skipped_behind([i], ask=False)
        elif p.error is not None:
            self._fail_unstarted([p])

    def _closed(self, whole: list[Prepared], parked: list[int]) -> None:
        """Plan what waits against the whole batch. Calls the whole-batch plan finds errors
        for (a cycle a forward reference closed) fail together; parked calls get their
        dependencies."""
        self._open = False
        results = self.ledger.results
        waiting = [i for i, state in enumerate(self._scheduler.state) if state == "waiting"]
        doomed = [i for i in waiting if whole[i].error is not None]
        for i in (*waiting, *parked):
            if results[i] is None:
                self.prepared[i] = whole[i]
        if doomed:
            self._fail_unstarted([whole[i] for i in doomed])
        for i in parked:
            if i not in doomed and results[i] is None:  # not skipped by a stop meanwhile
                self._skipped_behind(self._scheduler.unpark(i, whole[i].deps), ask=False)
