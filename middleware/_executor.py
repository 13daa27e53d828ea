"""Running a planned batch: each call starts the moment its dependencies have succeeded.

``BatchRun`` drives the pure ``Scheduler``: when a call ends it reports the outcome and starts
whatever became ready, inside one ``asyncio.TaskGroup`` so no task outlives the run and
cancelling the run cancels every call.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from opentelemetry.trace import Span, use_span
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from toolweave.telemetry._values import safe_str, to_jsonable

from ._decisions import DecideOn, DecisionGate, should_ask
from ._errors import (
    CallError,
    ErrorType,
    InvalidArgumentsError,
    InvalidReferenceError,
    ToolExecutionError,
    ToolTimeoutError,
)
from ._log import log_event
from ._models import (
    CallResult,
    CallStatus,
    Decision,
    DecisionContext,
    DecisionRecord,
    FinishedCall,
    ToolCall,
)
from ._planner import Prepared
from ._references import (
    PathError,
    Reference,
    extract,
    plain,
    preview,
    resolve_arguments,
    searches,
    shorten,
)
from ._scheduler import Scheduler
from ._threads import Escaped
from ._tools import VALIDATION_ERRORS, Tool, describe_validation_error
from ._tracing import BatchTrace

__all__ = ["BatchRun", "FinishedView", "PendingView"]

_UNSET: Any = object()
_DECIDER_GRACE = 1.0  # seconds a cancelled decider gets to end before it is left behind
_SEARCHED = 100_000  # values of an output a searching path (.., *, filters) may visit
_TOOL_GRACE = 0.1  # seconds a cancelled async tool gets to end before it is left behind
_LEFT_BEHIND: set[asyncio.Task[Any]] = set()  # tasks that ignored cancellation


@dataclass(eq=False, slots=True)
class _Asking:
    """One decision in flight."""

    context: DecisionContext
    held: dict[int, dict[str, Any]]
    settled: asyncio.Future[None]
    """Done once the outcome was applied (an ``_Abort`` exception on KeyboardInterrupt)."""
    at: float
    start: float = field(default_factory=time.perf_counter)
    span: Span | None = None
    task: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None


async def _settled(future: asyncio.Future[None]) -> None:
    await future


async def _escaping(work: Awaitable[Any]) -> Any:
    # asyncio re-raises SystemExit and KeyboardInterrupt out of the event loop when a task
    # raises them: carry them out of the tool's own task as an ordinary exception instead.
    try:
        return await work
    except (Exception, asyncio.CancelledError):
        raise
    except BaseException as exc:
        raise Escaped(exc) from None


async def _give_up_on(task: asyncio.Task[Any]) -> None:
    """Give a cancelled task one moment to end; if it ignores cancellation, leave it behind."""
    if not task.done():
        await asyncio.wait({task}, timeout=_TOOL_GRACE)
    if task.done():
        if not task.cancelled():
            task.exception()  # read, so it is never reported as unretrieved
        return
    _leave_behind(task, "orchestration.tool_left_running")


def _leave_behind(task: asyncio.Task[Any], event: str) -> None:
    """Keep a task that ignored cancellation alive until it ends (never awaited), and log it."""
    log_event(logging.WARNING, event)
    _LEFT_BEHIND.add(task)
    task.add_done_callback(_LEFT_BEHIND.discard)


def _uncancel_current_task() -> None:
    """After a task cancelled itself and the CancelledError was handled, clear its pending
    cancellation count so later awaits in it are not taken for cancellation."""
    task = asyncio.current_task()
    while task is not None and task.cancelling():
        task.uncancel()


Trigger = Literal["step", "failure"]


class _AttemptTimeout(Exception):
    """One attempt ran past the tool's timeout (ours, not a TimeoutError the tool raised)."""


class _Abort(Exception):
    """Raised in a call's task to make the task group cancel every other call, when a
    ``KeyboardInterrupt`` must leave ``run()``; ``execute()`` raises that interrupt instead."""


class BatchRun:
    """The state of one batch while it runs; ``execute()`` once, then read ``results``."""

    def __init__(
        self,
        prepared: list[Prepared],
        *,
        max_concurrency: int | None,
        serial: bool,
        executor: Callable[[], Executor],
        gate: DecisionGate | None = None,
        trace: BatchTrace | None = None,
        decide_on: DecideOn = "steps",
        goal: str | None = None,
        output_chars: int = 1000,
    ) -> None:
        self.opened = asyncio.Event()
        """Set once the run can take calls through ``add()``."""
        self.prepared = prepared
        self.results: list[CallResult | None] = [None] * len(prepared)
        self._outputs: list[Any] = [None] * len(prepared)
        self._scheduler = Scheduler([p.deps for p in prepared], serial=serial)
        self._slot: asyncio.Semaphore | None = (
            asyncio.Semaphore(max_concurrency) if max_concurrency else None
        )
        self._executor = executor
        self._order: dict[int, int] = {}
        self._t0 = 0.0
        self._group: asyncio.TaskGroup | None = None
        self._gate = gate
        self._trace = trace
        self._decide_on = decide_on
        self._goal = goal
        self._output_chars = output_chars
        self._deciding: set[_Asking] = set()
        self._lingering: set[asyncio.Task[None]] = set()
        self._host: asyncio.Task[Any] | None = None
        self._host_cancelling = 0
        self._fatal: BaseException | None = None
        self._finished: list[int] = []  # indexes in the order their results were recorded
        self._seen: dict[int, FinishedCall] = {}  # what deciders saw of each, built once
        self._plain: dict[tuple[int, bool], Any] = {}  # outputs as paths walk them, built once
        self.decisions: list[DecisionRecord] = []
        self.stopped: str | None = None
        """The decider's reason, when it stopped the batch."""

    def now(self) -> float:
        """Seconds since the batch started."""
        return time.perf_counter() - self._t0

    async def execute(self, open_until: asyncio.Event | None = None) -> None:
        """Run every call to a final result. With ``open_until`` (a streamed batch) the run also
        takes calls through ``add()`` until that event is set."""
        self._t0 = time.perf_counter()
        self._host = asyncio.current_task()
        self._host_cancelling = self._host.cancelling() if self._host is not None else 0
        try:
            if open_until is None and len(self.prepared) == 1 and self.prepared[0].error is None:
                # The commonest batch: one call, nothing to wait for, no task group needed. The
                # call still gets its own task, so a tool that cancels itself is told apart
                # from the caller cancelling run().
                for i in self._scheduler.take_ready():
                    await asyncio.create_task(self._run_call(self.prepared[i]))
                return
            async with asyncio.TaskGroup() as group:
                self._group = group
                doomed = [p for p in self.prepared if p.error is not None]
                if doomed:
                    self._fail_unstarted(doomed)
                self._launch()
                self.opened.set()
                if open_until is not None:
                    await open_until.wait()  # the group stays open while calls may still arrive
        except (_Abort, BaseExceptionGroup):
            if self._fatal is not None:
                raise self._fatal from None
            raise
        finally:
            if self._deciding or self._lingering:
                await self._end_decisions()

    def _cancelled(self) -> bool:
        """Whether the run itself is being cancelled (or interrupted), as opposed to a tool or
        decider cancelling its own task."""
        if self._fatal is not None:
            return True
        host = self._host
        return host is not None and host.cancelling() > self._host_cancelling

    def _interrupted(self, exc: BaseException) -> _Abort:
        """A ``KeyboardInterrupt`` inside a call or decision: remember it, and abort the group."""
        if self._fatal is None:
            self._fatal = exc
        return _Abort()

    def add(self, p: Prepared, *, parked: bool = False) -> None:
        """A call of a streamed batch, planned against the calls before it; it starts as soon
        as its dependencies allow. A ``parked`` call (it refers to a call not seen yet) waits
        for ``settle()``."""
        assert p.index == len(self.prepared)
        self.prepared.append(p)
        self.results.append(None)
        self._outputs.append(None)
        i = self._scheduler.add(p.deps, parked=parked)
        if self.stopped is not None:  # a decider stopped the batch: nothing new starts
            self._record_stopped(self._scheduler.skip([i]))
            return
        if parked:
            return
        if self._scheduler.state[i] == "skipped":  # behind a call that already failed
            self._record_skipped([i])
        elif p.error is not None:
            self._fail_unstarted([p])
        else:
            self._launch()

    def settle(self, whole: list[Prepared], parked: list[int]) -> None:
        """The stream closed: plan what waits against the whole batch. Calls the whole-batch
        plan finds errors for (a cycle a forward reference closed) fail together; parked calls
        get their dependencies."""
        waiting = [i for i, state in enumerate(self._scheduler.state) if state == "waiting"]
        doomed = [i for i in waiting if whole[i].error is not None]
        for i in (*waiting, *parked):
            if self.results[i] is None:
                self.prepared[i] = whole[i]
        if doomed:
            self._fail_unstarted([whole[i] for i in doomed])
        for i in parked:
            if i not in doomed and self.results[i] is None:  # not skipped by a stop meanwhile
                self._record_skipped(self._scheduler.unpark(i, whole[i].deps))
        self._launch()

    def _launch(self) -> None:
        """Start what became ready; calls that wait on others go through the decider first.
        A loop: a gated call whose arguments fail frees the next one (serial batches)."""
        while ready := self._scheduler.take_ready():
            direct, gated = ready, []
            if self._gate is not None:
                direct = [i for i in ready if not self.prepared[i].deps]
                gated = [i for i in ready if self.prepared[i].deps]
            for i in direct:
                self._start(i, None)
            if gated:
                self._ask_before(gated)

    def _start(self, i: int, arguments: dict[str, Any] | None) -> None:
        assert self._group is not None  # only a one-call batch runs without one
        self._group.create_task(self._run_call(self.prepared[i], arguments))

    async def _run_call(self, p: Prepared, arguments: dict[str, Any] | None = None) -> None:
        if arguments is None:
            try:
                arguments = self._arguments(p)
            except CallError as exc:
                self._fail(p, exc, None, None, 0)
                self._launch()
                return
        await self._invoke(p, arguments)
        self._launch()

    # ------------------------------------------------------------------ decisions

    def _ask_before(self, gated: list[int]) -> None:
        """Resolve the gated calls' arguments, then hold them while the decider decides."""
        resolved: dict[int, dict[str, Any]] = {}
        for i in gated:
            p = self.prepared[i]
            try:
                resolved[i] = self._arguments(p)
            except CallError as exc:  # nothing to decide about a call that cannot run
                self._fail(p, exc, None, None, 0)
        if not resolved:
            return
        context = self._context(list(resolved), resolved, "step")
        if not self._should_ask(context):
            for i, arguments in resolved.items():
                self._start(i, arguments)
            return
        self._scheduler.hold(resolved)
        self._spawn_decision(context, resolved)

    def _ask_after_failure(self, skipped: list[int]) -> None:
        if self._gate is None or not skipped or self.stopped is not None:
            return
        context = self._context(skipped, {}, "failure")
        if self._should_ask(context):
            self._spawn_decision(context, {})

    def _should_ask(self, context: DecisionContext) -> bool:
        try:
            return should_ask(self._decide_on, context)
        except Exception:  # a decide_on predicate that fails: let the decider decide
            logging.getLogger("toolweave").warning(
                "toolweave: the decide_on predicate failed; asking the decider", exc_info=True
            )
            return True

    def _spawn_decision(self, context: DecisionContext, held: dict[int, dict[str, Any]]) -> None:
        assert self._group is not None
        assert self._gate is not None
        loop = asyncio.get_running_loop()
        d = _Asking(context, held, loop.create_future(), self.now())
        # The decider runs in a task of its own, outside the group, so one that ignores
        # cancellation cannot keep the batch open; the group waits on ``settled`` instead.
        self._group.create_task(_settled(d.settled))
        d.span = self._trace.decision_started(context) if self._trace is not None else None
        d.task = asyncio.create_task(self._decide(d))
        self._deciding.add(d)
        if self._gate.timeout is not None:
            d.timer = loop.call_later(self._gate.timeout, self._overdue, d)

    async def _decide(self, d: _Asking) -> None:
        assert self._gate is not None
        try:
            if d.span is None:
                record = await self._gate.ask(d.context, d.at)
            else:  # a decider's own client spans nest under the decision's
                with use_span(
                    d.span, end_on_exit=False, record_exception=False, set_status_on_exception=False
                ):
                    record = await self._gate.ask(d.context, d.at)
        except KeyboardInterrupt as exc:
            self._interrupted(exc)
            if not d.settled.done():
                d.settled.set_exception(_Abort())  # the group aborts, execute() re-raises
            return
        except asyncio.CancelledError:
            if self._cancelled():
                raise
            _uncancel_current_task()
            if d.settled.done():  # timed out or not needed: already settled
                return
            record = self._gate.cancelled(d.context, d.at, d.start)
        if d.settled.done():  # the answer came after the timeout's fallback was applied
            log_event(logging.WARNING, "orchestration.decision_too_late")
            return
        self._settle(d, record)

    def _not_needed(self, d: _Asking) -> DecisionRecord:
        assert self.stopped is not None
        return DecisionRecord(
            call_ids=d.context.waiting_ids,
            decision=Decision(action="stop", reason=self.stopped),
            fallback=True,
            error="not needed: another decision stopped the batch",
            error_type="cancelled",
            elapsed=time.perf_counter() - d.start,
            started_at=d.at,
            trigger=d.context.trigger,
        )

    def _overdue(self, d: _Asking) -> None:
        """The decider ran past ``decider_timeout``: apply the fallback now, and cancel it."""
        if d.settled.done():
            return
        assert self._gate is not None
        assert d.task is not None
        d.task.cancel()
        self._settle(d, self._gate.expired(d.context, d.at, d.start))

    def _settle(self, d: _Asking, record: DecisionRecord) -> None:
        """Apply a decision's outcome (once), then let the group close if nothing else runs."""
        if d.timer is not None:
            d.timer.cancel()
        self._deciding.discard(d)  # first: applying a stop settles the decisions still open
        try:
            self.decisions.append(record)
            if self._trace is not None:
                self._trace.decision_ended(d.span, record)
            log_event(
                logging.DEBUG,
                "orchestration.decision_made",
                call_ids=",".join(record.call_ids),
                action=record.decision.effective,
                fallback=record.fallback,
            )
            self._apply(record, d.held)
            self._launch()
        finally:
            d.settled.set_result(None)
            if d.task is not None and not d.task.done():
                self._lingering.add(d.task)  # ended by _decide, or ignoring cancellation
                d.task.add_done_callback(self._lingering.discard)

    async def _end_decisions(self) -> None:
        """At the end of the run: cancel what still decides (only when the run is cancelled or
        interrupted) and give it a moment to end. A decider that ignores cancellation is left
        behind, logged, never awaited; one already past its timeout is not waited for again."""
        for d in self._deciding:
            if d.timer is not None:
                d.timer.cancel()
        in_flight = {d.task for d in self._deciding if d.task is not None and not d.task.done()}
        for t in in_flight | self._lingering:
            t.cancel()
        stuck = set(self._lingering)
        if in_flight:
            _, still = await asyncio.wait(in_flight, timeout=_DECIDER_GRACE)
            stuck |= still
        for t in stuck:
            if not t.done():
                _leave_behind(t, "orchestration.decider_left_running")

    def _apply(self, record: DecisionRecord, held: dict[int, dict[str, Any]]) -> None:
        decision = record.decision
        action = decision.effective
        if action == "stop":
            self._stop(decision.reason)
            return
        if action == "skip" and held:
            index_of = {self.prepared[i].call.id: i for i in held}
            chosen = [index_of[c] for c in decision.skip if c in index_of]
            reason = f"skipped by decider: {decision.reason or 'no reason given'}"
            for i in self._scheduler.skip(chosen):
                self._record(
                    self.prepared[i], "skipped", message=reason, error_type="skipped_by_decider"
                )
        for i in self._scheduler.resume(held):
            self._start(i, held[i])

    def _stop(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason or "no reason given"
            # Decisions still in flight are not needed any more: settle them now (their
            # deciders are cancelled; a task cancelled before it started never runs at all).
            for d in list(self._deciding):
                if d.settled.done():
                    continue
                if d.task is not None and d.task is not asyncio.current_task():
                    d.task.cancel()
                self._settle(d, self._not_needed(d))
        self._record_stopped(self._scheduler.stop())

    def _record_stopped(self, indexes: list[int]) -> None:
        message = f"stopped by decider: {self.stopped}"
        for i in indexes:
            self._record(
                self.prepared[i], "skipped", message=message, error_type="stopped_by_decider"
            )

    def _context(
        self, indexes: list[int], resolved: dict[int, dict[str, Any]], trigger: Trigger
    ) -> DecisionContext:
        waiting = []
        for i in indexes:
            call = self.prepared[i].call
            arguments = resolved.get(i)
            waiting.append(
                call
                if arguments is None
                else ToolCall(call.id, call.name, arguments, call.depends_on)
            )
        # Views, not lists: building every finished call's preview and every pending call at
        # each decision made a long chain quadratic. A view costs nothing until it is read.
        return DecisionContext.model_construct(
            finished=FinishedView(self, len(self._finished)),
            waiting=waiting,
            pending=PendingView(self, indexes, self._scheduler.snapshot()),
            goal=self._goal,
            trigger=trigger,
        )

    def finished_call(self, position: int) -> FinishedCall:
        """The ``position``-th call to finish, as deciders see it (built once per call)."""
        i = self._finished[position]
        seen = self._seen.get(i)
        if seen is None:
            r = self.results[i]
            assert r is not None
            self._seen[i] = seen = FinishedCall(
                call_id=r.call_id,
                name=r.name,
                status=r.status,
                output=None if r.status != "ok" else preview(r.output, self._output_chars),
                error=r.error,
            )
        return seen

    def pending_calls(self, indexes: list[int], as_of: tuple[int, int]) -> list[ToolCall]:
        """Calls that had not started at ``as_of`` and wait behind ``indexes``."""
        behind = self._scheduler.waiting_descendants(indexes, as_of)
        return [self.prepared[i].call for i in behind]

    def _arguments(self, p: Prepared) -> dict[str, Any]:
        """Resolve references against finished outputs, then validate against the schema."""
        arguments = p.arguments
        if p.has_references:
            arguments = resolve_arguments(arguments, functools.partial(self._value_of, p))
        assert p.tool is not None  # calls without a tool failed at planning
        try:
            return p.tool.validate_arguments(arguments)
        except VALIDATION_ERRORS as exc:
            raise InvalidArgumentsError(
                describe_validation_error(exc, p.tool), call_id=p.call.id, tool_name=p.call.name
            ) from None
        except Exception as exc:  # a validator of the schema's own types raised something else
            raise InvalidArgumentsError(
                f"invalid arguments: {type(exc).__name__}: {safe_str(exc, 300)}. "
                "Fix them and call again.",
                call_id=p.call.id,
                tool_name=p.call.name,
            ) from exc

    def _value_of(self, p: Prepared, ref: Reference) -> Any:
        target = p.targets.get(ref.target)
        if target is None:  # the planner rejects such calls; never a KeyError here
            raise InvalidReferenceError(
                f"reference {shorten(ref.text)!r} names no call of this batch",
                call_id=p.call.id,
                tool_name=p.call.name,
            )
        output = self._outputs[target]
        if ref.path == "$":
            return output
        searching = searches(ref.path)
        key = (target, searching)
        walked = self._plain.get(key, _UNSET)
        if walked is _UNSET:
            # A path that searches (.., *, filters) walks bounded JSON-safe data: on a cyclic
            # or heavily shared output it would otherwise never end.
            walked = to_jsonable(output, max_items=_SEARCHED) if searching else plain(output)
            self._plain[key] = walked
        try:
            return extract(walked, ref)
        except PathError as exc:
            problem = str(exc)
        except Exception as exc:  # an output that breaks the path walker: this call's error
            problem = f"the lookup failed: {type(exc).__name__}: {safe_str(exc, 200)}"
        source = self.prepared[target].call
        raise InvalidReferenceError(
            f"reference {shorten(ref.text)!r} found no value: {problem}; the output of call "
            f"'{source.id}' ({source.name}) was: {preview(output)}. "
            "Change the path to match that output.",
            call_id=p.call.id,
            tool_name=p.call.name,
        )

    async def _invoke(self, p: Prepared, arguments: dict[str, Any]) -> None:
        tool = p.tool
        assert tool is not None
        attempts = 0
        started: float | None = None

        async def attempt() -> Any:
            if self._slot is None:
                return await timed()
            async with self._slot:  # the timeout starts once a slot is ours
                return await timed()

        async def timed() -> Any:
            nonlocal attempts, started
            attempts += 1
            if started is None:
                started = self._mark_started(p)
            if self._trace is None:
                return await bounded()
            token = self._trace.enter(p.index)  # the tool's own spans nest under its call's
            try:
                return await bounded()
            finally:
                self._trace.leave(token)

        async def bounded() -> Any:
            if tool.timeout is None:
                return await self._call(tool, arguments)
            if tool.is_async:
                return await self._detached(tool, arguments, tool.timeout)
            deadline = asyncio.timeout(tool.timeout)
            try:
                async with deadline:
                    return await self._call(tool, arguments)
            except TimeoutError:
                if deadline.expired():  # ours, not a TimeoutError the tool raised
                    raise _AttemptTimeout from None
                raise

        try:
            if tool.retries == 0:
                output = await attempt()
            else:
                output = await AsyncRetrying(
                    stop=stop_after_attempt(tool.retries + 1),
                    wait=tool.retry_wait,
                    retry=retry_if_exception_type((*tool.retry_on, _AttemptTimeout)),
                    reraise=True,
                )(attempt)
        except asyncio.CancelledError as exc:
            if self._cancelled():
                raise  # the run itself is being cancelled
            # The tool cancelled its own task; TaskGroup would drop it without a trace.
            _uncancel_current_task()
            self._fail(p, self._tool_error(p, exc, attempts), arguments, started, attempts)
        except _AttemptTimeout:
            error = ToolTimeoutError(
                tool.timeout or 0.0, attempts, call_id=p.call.id, tool_name=p.call.name
            )
            self._fail(p, error, arguments, started, attempts)
        except KeyboardInterrupt as exc:
            raise self._interrupted(exc) from None
        except BaseException as exc:  # a tool's failure is a result, never an escape from run()
            if isinstance(exc, Escaped):  # raised in a worker thread (SystemExit, say)
                exc = exc.exc
                if isinstance(exc, KeyboardInterrupt):
                    raise self._interrupted(exc) from None
            self._fail(p, self._tool_error(p, exc, attempts), arguments, started, attempts)
        else:
            self._succeed(p, output, arguments, started, attempts)

    @staticmethod
    def _tool_error(p: Prepared, exc: BaseException, attempts: int) -> CallError:
        error = ToolExecutionError(exc, attempts, call_id=p.call.id, tool_name=p.call.name)
        error.__cause__ = exc
        return error

    async def _detached(self, tool: Tool, arguments: dict[str, Any], limit: float) -> Any:
        """One attempt of an async tool in a task of its own, so its timeout holds even if it
        ignores cancellation: it is then cancelled and left behind (logged), and the call is
        timed out. A tool that cancels itself ends its own task: ``CancelledError`` here."""
        task = asyncio.ensure_future(_escaping(self._call(tool, arguments)))
        try:
            done, _ = await asyncio.wait({task}, timeout=limit)
        except asyncio.CancelledError:  # the run is being cancelled: so is the tool
            task.cancel()
            await _give_up_on(task)
            raise
        if not done:
            task.cancel()
            await _give_up_on(task)
            raise _AttemptTimeout
        return task.result()

    async def _call(self, tool: Tool, arguments: dict[str, Any]) -> Any:
        args, kwargs = tool.bind(arguments)
        if tool.is_async:
            return await tool.fn(*args, **kwargs)
        # A thread cannot be interrupted: on timeout or cancellation it runs on, unobserved.
        run = functools.partial(contextvars.copy_context().run, tool.fn, *args, **kwargs)
        return await asyncio.wrap_future(self._executor().submit(run))

    def _mark_started(self, p: Prepared) -> float:
        self._order[p.index] = order = len(self._order)
        if self._trace is not None:
            self._trace.call_started(p.index, p.call.id, p.call.name, p.deps)
        log_event(
            logging.DEBUG,
            "orchestration.call_started",
            call_id=p.call.id,
            tool=p.call.name,
            execution_order=order,
        )
        return self.now()

    def _succeed(
        self,
        p: Prepared,
        output: Any,
        arguments: dict[str, Any],
        started: float | None,
        attempts: int,
    ) -> None:
        self._outputs[p.index] = output
        self._scheduler.succeeded(p.index)
        self._record(
            p, "ok", output=output, arguments=arguments, started=started, attempts=attempts
        )

    def _fail(
        self,
        p: Prepared,
        error: CallError,
        arguments: dict[str, Any] | None,
        started: float | None,
        attempts: int,
    ) -> None:
        skipped = self._scheduler.failed(p.index)
        self._record_error(p, error, arguments, started=started, attempts=attempts)
        self._record_skipped(skipped)
        self._ask_after_failure(skipped)

    def _fail_unstarted(self, doomed: list[Prepared]) -> None:
        """Calls whose errors are known before they run. All are marked failed before any
        dependent is skipped, so none is reported as skipped because of another."""
        skipped = self._scheduler.failed(*(p.index for p in doomed))
        for p in doomed:
            assert p.error is not None
            self._record_error(p, p.error)
        self._record_skipped(skipped)
        self._ask_after_failure(skipped)

    def _record_error(
        self,
        p: Prepared,
        error: CallError,
        arguments: dict[str, Any] | None = None,
        *,
        started: float | None = None,
        attempts: int = 0,
    ) -> None:
        self._record(
            p,
            "error",
            message=str(error),
            error_type=error.error_type,
            exception=error,
            arguments=arguments,
            started=started,
            attempts=attempts,
        )

    def _record_skipped(self, skipped: list[int]) -> None:
        for i in skipped:
            cause = self.prepared[self._scheduler.cause[i]].call
            reason = (
                f"skipped: it depends on call '{cause.id}' ({cause.name}), which failed. "
                "Fix that call first."
            )
            q = self.prepared[i]
            self._record(q, "skipped", message=reason, error_type="dependency_failed")

    def _record(
        self,
        p: Prepared,
        status: CallStatus,
        *,
        output: Any = None,
        message: str | None = None,
        error_type: ErrorType | None = None,
        exception: BaseException | None = None,
        arguments: dict[str, Any] | None = None,
        started: float | None = None,
        attempts: int = 0,
    ) -> None:
        self._finished.append(p.index)
        self.results[p.index] = result = CallResult(
            call_id=p.call.id,
            name=p.call.name,
            status=status,
            output=output,
            error=message,
            error_type=error_type,
            arguments=arguments,
            group_index=p.level,
            execution_order=self._order.get(p.index),
            depends_on=[self.prepared[d].call.id for d in p.deps],
            attempts=attempts,
            started_at=started,
            ended_at=self.now(),
            exception=exception,
        )
        if self._trace is not None:
            self._trace.call_ended(p.index, result, p.deps, p.level)
        log_event(
            logging.DEBUG,
            "orchestration.call_finished",
            call_id=p.call.id,
            tool=p.call.name,
            status=status,
            attempts=attempts,
        )


class FinishedView(Sequence[FinishedCall]):
    """The calls finished when a decision was asked for, in the order they finished; each is
    built when first read, once per batch."""

    def __init__(self, run: BatchRun, length: int) -> None:
        self._run = run
        self._length = length

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> FinishedCall: ...
    @overload
    def __getitem__(self, index: slice) -> list[FinishedCall]: ...
    def __getitem__(self, index: int | slice) -> FinishedCall | list[FinishedCall]:
        if isinstance(index, slice):
            return [self._run.finished_call(k) for k in range(*index.indices(self._length))]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError("finished call index out of range")
        return self._run.finished_call(index)

    def __repr__(self) -> str:
        return f"FinishedView({len(self)} calls)"


class PendingView(Sequence[ToolCall]):
    """The calls that waited behind a decision's calls when it was asked for; the search runs
    when the view is first read, against the scheduler's record of that moment."""

    def __init__(self, run: BatchRun, indexes: list[int], as_of: tuple[int, int]) -> None:
        self._run = run
        self._indexes = indexes
        self._as_of = as_of
        self._calls: list[ToolCall] | None = None

    def _list(self) -> list[ToolCall]:
        if self._calls is None:
            self._calls = self._run.pending_calls(self._indexes, self._as_of)
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
