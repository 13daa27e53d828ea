"""The run loop: one coroutine owns the batch's ``Scheduler`` and ``ResultBook``.

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
from ._book import ResultBook
from ._cache import Cache
from ._decision_points import Asking, Decided, DecisionPoints, Overdue, Trigger
from ._decisions import DecideOn, DecisionGate
from ._durable import CallLedger
from ._effects import Effects
from ._errors import CallError, RecordedError
from ._hooks import Middleware
from ._models import CallResult, DecisionRecord
from ._observe import Observers
from ._outcome import Outcome
from ._pipeline import Pipeline
from ._planner import Prepared
from ._resources import UNKNOWN, ResourceGate, call_keys
from ._reuse import same_call
from ._scheduler import FINAL, Scheduler
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
    cache: Cache | None = None
    ledger: CallLedger | None = None
    resources: bool = False
    """Whether any tool declares ``reads``/``writes``."""


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
    """One batch while it runs: ``execute()`` once, then read ``book``. With ``open=True``
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
        named: bool = False,
    ) -> None:
        self.opened = asyncio.Event() if open else None
        """For a streamed batch: set once the run takes calls through ``add()``."""
        self.prepared = prepared
        self.stopped: str | None = None
        """The decider's reason, when it stopped the batch."""
        self._t0 = time.perf_counter()
        self._scheduler = Scheduler([p.deps for p in prepared], serial=options.serial)
        self.book = ResultBook(prepared, self.now)
        self._binder = Binder(prepared, self.book.outputs)
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
            effects=(
                None
                if options.cache is None and (options.ledger is None or not named)
                else Effects(
                    cache=options.cache,
                    ledger=options.ledger if named else None,  # only a named batch resumes
                    batch_id=batch_id,
                )
            ),
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
                book=self.book,
                observers=observers,
                scope=self._scope,
                report=self._inbox.put,
                now=self.now,
            )
        )
        self._gate = (
            ResourceGate(prepared, self._final)
            if options.resources and not options.serial
            else None
        )
        # Bound calls waiting for a resource, each under the call it waits for: when that one
        # ends (or its keys become known), only its waiters are looked at again.
        self._blocked: dict[int, dict[str, Any]] = {}
        self._waiters: dict[int, list[int]] = {}
        self._woken: list[int] = []  # calls whose waiters to look at: keys became known
        self._seen_ended = 0  # how much of the scheduler's `ended` was looked at
        self._runs: dict[str, int] = {}  # an idempotent call's signature -> the call that runs
        self._followers: dict[int, list[int]] = {}  # that call -> identical calls waiting on it
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
        return self.book.results

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
            arguments = self._bind(p)
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
                    arguments = self._bind(p)
                except CallError as exc:
                    self._fail(p, exc)
                    continue
                if self._gate is not None or p.tool.idempotent:  # type: ignore[union-attr]
                    self._admit(i, arguments)
                else:
                    self._go(i, arguments)
            if gated:
                self._ask_before(gated)
        if self._blocked:
            self._unblock()
        limit = self._limit
        while self._startable and (limit is None or self._running < limit):
            self._start(*self._startable.popleft())

    def _final(self, i: int) -> bool:
        return self._scheduler.state[i] in FINAL

    def _bind(self, p: Prepared) -> dict[str, Any]:
        """Bind ``p``; its resource keys are known from here on."""
        arguments = self._binder.bind(p)
        gate = self._gate
        if gate is None:
            return arguments
        if gate.keys[p.index] is UNKNOWN:
            assert p.tool is not None
            gate.known(p.index, call_keys(p.tool, arguments, p.call.id))
            if p.index in self._waiters:
                self._woken.append(p.index)
        return arguments

    def _admit(self, i: int, arguments: dict[str, Any]) -> None:
        """A bound call that may run: it follows an identical call already on its way, waits
        for the resources it shares with earlier calls, or waits for a slot, or starts."""
        p = self.prepared[i]
        tool = p.tool
        gate = self._gate
        if tool is not None and tool.idempotent:
            signature = same_call(tool.name, arguments)
            first = self._runs.get(signature)
            # With resources, a call only follows one ranked before it with no conflicting
            # call between them: a write between two reads makes them different reads, and
            # following a later call could wait on a call that waits on this one.
            if (
                first is not None
                and (gate is None or gate.mergeable(first, i))
                and self._follow(i, first)
            ):
                return
            self._runs[signature] = i  # the nearest one that runs, for those that follow
        blocker = None if gate is None else gate.blocker(i)
        if blocker is None:
            self._go(i, arguments)
        else:
            self._hold(i, arguments, blocker)

    def _go(self, i: int, arguments: dict[str, Any]) -> None:
        """Start call ``i`` now, or queue it for a slot (``max_concurrency``)."""
        if self._limit is None:
            self._start(i, arguments)
        else:
            self._startable.append((i, arguments))

    def _hold(self, i: int, arguments: dict[str, Any], blocker: int) -> None:
        """Call ``i`` waits for ``blocker`` to end (or its keys to become known)."""
        self._blocked[i] = arguments
        self._waiters.setdefault(blocker, []).append(i)

    def _unblock(self) -> None:
        """Look again at the calls held back by calls that ended (or whose keys became
        known) since the last look, in rank order; start those now free."""
        gate = self._gate
        assert gate is not None
        ended = self._scheduler.ended
        events = [*ended[self._seen_ended :], *self._woken]
        self._seen_ended = len(ended)
        self._woken = []
        waiters = self._waiters
        woken = [i for b in events if b in waiters for i in waiters.pop(b)]
        if not woken:
            return
        woken.sort(key=gate.rank)
        previous = None
        for i in woken:
            arguments = self._blocked.pop(i)
            if self._final(i):
                continue
            # The call looked at just before is ranked lower and has not ended: if the two
            # conflict, this one waits for it (a chain of writers wakes one call per end).
            if previous is not None and gate.conflicting(previous, i):
                blocker: int | None = previous
            else:
                blocker = gate.blocker(i)
            previous = i
            if blocker is None:
                self._go(i, arguments)
            else:
                self._hold(i, arguments, blocker)

    def _wake_all(self) -> None:
        """Ranks changed (a stream closed): every held call is looked at again."""
        for b in list(self._waiters):
            self._woken.append(b)

    def _follow(self, i: int, first: int) -> bool:
        """Call ``i`` is identical to ``first``: take its result, now or when it ends. False
        when ``first`` ended in a way ``i`` should not share (skipped by a decider, say)."""
        result = self.book.results[first]
        if result is None:
            self._followers.setdefault(first, []).append(i)
            return True
        if result.status == "skipped" and result.error_type != "skipped_by_middleware":
            return False
        self._copy(i, first, result.status, result.output, result.exception, result.error)
        return True

    def _copy(
        self, i: int, first: int, status: str, output: Any, error: Any, reason: str | None
    ) -> None:
        p = self.prepared[i]
        source = self.prepared[first].call.id
        if error is not None:  # worded for this call, the original's error as its cause
            cause = error
            error = RecordedError(
                f"call '{p.call.id}' ({p.call.name}): {cause.detail}",
                cause.error_type,
                call_id=p.call.id,
                tool_name=p.call.name,
            )
            error.__cause__ = cause
        if status == "ok":
            self._scheduler.succeeded(i)
            o = Outcome(i, "ok", None, None, None, 0, output, deduplicated_from=source)
            self._observers.call_ended(p, self.book.succeeded(p, o))
        elif status == "error":
            o = Outcome(i, "error", None, None, None, 0, error=error, deduplicated_from=source)
            self._fail(p, error, o)
        else:
            o = Outcome(i, "skipped", None, None, None, 0, reason=reason or "",
                        deduplicated_from=source)  # fmt: skip
            skipped = self._scheduler.failed(i)
            result = self.book.skipped(p, reason or "", "skipped_by_middleware", o)
            self._observers.call_ended(p, result)
            self._skipped_behind(skipped, ask=False)

    def _start(self, i: int, arguments: dict[str, Any]) -> None:
        gate = self._gate
        if gate is not None:
            p = self.prepared[i]
            after = gate.after(i)
            if after:
                p.ordered_after = [j for j in after if j not in p.deps]
        self._running += 1
        self._started += 1
        assert self._group is not None  # only a one-call batch runs without one
        self._group.create_task(self._pipeline.run(self.prepared[i], arguments, self._started - 1))

    def _ended(self, o: Outcome) -> None:
        self._running -= 1
        p = self.prepared[o.index]
        followers = self._followers.pop(o.index, None) if self._followers else None
        if o.status == "ok":
            self._scheduler.succeeded(o.index)
            result = self.book.succeeded(p, o)
            self._observers.call_ended(p, result)
        elif o.status == "error":
            assert o.error is not None
            self._fail(p, o.error, o)
        else:
            skipped = self._scheduler.failed(o.index)
            result = self.book.skipped(p, o.reason, "skipped_by_middleware", o)
            self._observers.call_ended(p, result)
            self._skipped_behind(skipped, ask=False)  # a deliberate skip is no failure
        for i in followers or ():
            if not self._final(i):  # a stop may have skipped it meanwhile
                self._copy(i, o.index, o.status, o.output, o.error, o.reason)

    # ------------------------------------------------------------------ failures

    def _fail(self, p: Prepared, error: CallError, o: Outcome | None = None) -> None:
        skipped = self._scheduler.failed(p.index)
        self._observers.call_ended(p, self.book.failed(p, error, o))
        self._skipped_behind(skipped)

    def _fail_unstarted(self, doomed: list[Prepared]) -> None:
        """Calls whose errors are known before they run. All are marked failed before any
        dependent is skipped, so none is reported as skipped because of another."""
        skipped = self._scheduler.failed(*(p.index for p in doomed))
        for p in doomed:
            assert p.error is not None
            self._observers.call_ended(p, self.book.failed(p, p.error))
        self._skipped_behind(skipped)

    def _skipped_behind(self, skipped: list[int], *, ask: bool = True) -> None:
        """Record calls skipped because a call they need did not succeed; then (``ask``), if
        a decider wants to hear of failures, ask it."""
        for i in skipped:
            cause = self.book.results[self._scheduler.cause[i]]
            assert cause is not None
            if cause.error_type == "uncertain":
                happened = "may or may not have taken effect. Check that first."
            elif cause.status == "error":
                happened = "failed. Fix that call first."
            else:
                happened = "was skipped."
            reason = (
                f"skipped: it depends on call '{cause.call_id}' ({cause.name}), which {happened}"
            )
            q = self.prepared[i]
            self._observers.call_ended(q, self.book.skipped(q, reason, "dependency_failed"))
        if ask and skipped and self._points is not None and self.stopped is None:
            context = self._points.context(skipped, {}, "failure")
            if self._points.wanted(context):
                self._points.ask(context, {})

    def _record_stopped(self, indexes: list[int]) -> None:
        reason = f"stopped by decider: {self.stopped}"
        for i in indexes:
            p = self.prepared[i]
            self._observers.call_ended(p, self.book.skipped(p, reason, "stopped_by_decider"))

    # ------------------------------------------------------------------ decisions

    def _ask_before(self, gated: list[int]) -> None:
        """Bind the gated calls' arguments, then hold them while the decider decides."""
        assert self._points is not None
        resolved: dict[int, dict[str, Any]] = {}
        for i in gated:
            p = self.prepared[i]
            try:
                resolved[i] = self._bind(p)
            except CallError as exc:  # nothing to decide about a call that cannot run
                self._fail(p, exc)
        if not resolved:
            return
        trigger: Trigger = "step"
        context = self._points.context(list(resolved), resolved, trigger)
        if not self._points.wanted(context):
            for i, arguments in resolved.items():
                self._admit(i, arguments)
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
                self._observers.call_ended(p, self.book.skipped(p, reason, "skipped_by_decider"))
        for i in self._scheduler.resume(held):
            self._admit(i, held[i])

    def _stop(self, reason: str) -> None:
        assert self._points is not None
        if self.stopped is None:
            self.stopped = reason or "no reason given"
            # Decisions still in flight are not needed any more: settle them now (their
            # deciders are cancelled; a task cancelled before it started never runs at all).
            for d in list(self._points.open):
                self._points.settle(d, self._points.not_needed(d, self.stopped))
        # Calls bound but not started (waiting for a resource or a slot) are stopped too.
        waiting = [i for i in (*self._blocked, *(i for i, _ in self._startable))]
        waiting = [i for i in waiting if not self._final(i)]
        waiting += [f for i in waiting for f in self._followers.pop(i, ())]
        self._blocked, self._waiters, self._startable = {}, {}, deque()
        self._scheduler.hold(waiting)
        self._record_stopped(self._scheduler.stop())

    # ------------------------------------------------------------------ streamed calls

    def _added(self, p: Prepared, parked: bool) -> None:
        assert p.index == len(self.prepared)
        self.prepared.append(p)
        self.book.grow()
        i = self._scheduler.add(p.deps, parked=parked)
        if self._gate is not None:
            self._gate.add(p, parked=parked)
        if self.stopped is not None:  # a decider stopped the batch: nothing new starts
            if self._scheduler.state[i] == "skipped":  # behind a call the stop skipped
                self._record_stopped([i])
            else:
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
        results = self.book.results
        waiting = [i for i, state in enumerate(self._scheduler.state) if state == "waiting"]
        doomed = [i for i in waiting if whole[i].error is not None]
        for i in (*waiting, *parked):
            if results[i] is None:
                self.prepared[i] = whole[i]
        if self._gate is not None:
            self._gate.close(self.prepared)
            self._wake_all()
        if doomed:
            self._fail_unstarted([whole[i] for i in doomed])
        for i in parked:
            if i not in doomed and results[i] is None:  # not skipped by a stop meanwhile
                self._skipped_behind(self._scheduler.unpark(i, whole[i].deps), ask=False)
