"""One model turn as one toolweave batch, when LangGraph runs each of its calls in a task of
its own.

LangGraph's prebuilt agents send every tool call of an AI message to the tool node separately
(one ``Send`` per call), so no single task ever holds the whole batch. A ``Turn`` gathers them:
the first call to arrive starts a toolweave batch over all the calls of its AI message, and
each call's own task waits for the batch to hand it its resolved arguments, then runs its tool
itself, in its own task. Running in its own task is what keeps LangGraph's semantics whole:
``interrupt()`` pauses that call's task and resumes it, its writes are its own, a finished
call's writes survive another call's interrupt.

The batch's tools are stand-ins: the innermost middleware (``_dispatch``) gives the call to
its task instead of calling a function, and the outermost (``_announce``) hands the task its
final answer as soon as the chain ends. Calls the batch never starts (a bad reference, a failed
dependency, a decider's stop) are answered when the batch ends, from its results.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.errors import GraphBubbleUp, GraphInterrupt
from langgraph.types import Command

from toolweave import BatchResult, CallContext, CallRequest, Orchestrator, SkipCall, ToolCall
from toolweave.telemetry._values import to_text

from ._calls import usable_id

__all__ = [
    "Outcome",
    "Saved",
    "Turn",
    "Turns",
    "announce",
    "asaved",
    "dispatch",
    "output_of",
    "saved",
]

logger = logging.getLogger("toolweave")

Outcome = Any
"""What ToolNode makes of one call: a ``ToolMessage``, a ``Command``, or a list of them."""

_TURN: contextvars.ContextVar[Turn] = contextvars.ContextVar("toolweave_langgraph_turn")
current_context: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar(
    "toolweave_langgraph_call_context", default=None
)
"""The toolweave call a LangGraph tool runs for, in the task or thread that runs it: a
toolweave tool declaring a ``CallContext`` parameter gets it from here."""


def _in_context(context: CallContext | None, awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
    """``awaitable`` as a task that sees ``context`` as the current call."""
    if context is None or not asyncio.iscoroutine(awaitable):
        return asyncio.ensure_future(awaitable)
    copied = contextvars.copy_context()
    copied.run(current_context.set, context)
    return asyncio.get_running_loop().create_task(awaitable, context=copied)


@contextlib.contextmanager
def _current(context: CallContext | None) -> Iterator[None]:
    token = current_context.set(context)
    try:
        yield
    finally:
        current_context.reset(token)


_INTERRUPT = "__interrupt__"
"""The channel of LangGraph's interrupt writes in a checkpoint (private in LangGraph 1.x)."""

ARRIVAL_GRACE = 1.0
"""Seconds the batch waits for a call's own task before running the call itself. Tasks of one
step normally arrive together; a thread pool smaller than the batch can hold some back while
the tasks it runs wait for them, and this breaks that deadlock."""


def output_of(outcome: Outcome, call_id: str) -> Any:
    """The value a reference to a call reads: its ``ToolMessage`` content, parsed when it is
    JSON text (LangChain sends dicts and lists to the model as JSON)."""
    message = _message_for(outcome, call_id)
    if message is None:
        return None
    content = message.content
    if isinstance(content, str):
        try:
            return json.loads(content)
        except ValueError:
            return content
    return content


def failed(outcome: Outcome, call_id: str) -> bool:
    message = _message_for(outcome, call_id)
    return message is not None and message.status == "error"


def _message_for(outcome: Any, call_id: str) -> ToolMessage | None:
    return next((m for m in _tool_messages(outcome) if m.tool_call_id == call_id), None)


def _tool_messages(value: Any) -> Iterator[ToolMessage]:
    """The ``ToolMessage``s in an outcome or a graph write: inside ``Command`` updates,
    state updates and lists."""
    if isinstance(value, ToolMessage):
        yield value
    elif isinstance(value, Command):
        yield from _tool_messages(value.update)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _tool_messages(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _tool_messages(v)


# ------------------------------------------------------------------ what a call's task hears


class _Slot:
    """A value set once, that a thread or an event loop can wait for, set from either side.

    Lighter than a ``concurrent.futures.Future`` behind ``asyncio.wrap_future`` when both
    sides share a loop (the usual case): the waiter is woken directly, not through the
    loop's self-pipe."""

    __slots__ = ("_error", "_lock", "_state", "_value", "_waiters")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = 0  # 0 pending, 1 set, 2 failed, 3 cancelled
        self._value: Any = None
        self._error: BaseException | None = None
        self._waiters: list[Any] = []

    def done(self) -> bool:
        return self._state != 0

    def cancelled(self) -> bool:
        return self._state == 3

    def result(self) -> Any:
        if self._state == 2:
            assert self._error is not None
            raise self._error
        if self._state == 3:
            raise asyncio.CancelledError
        return self._value

    def set(self, value: Any) -> bool:
        return self._finish(1, value, None)

    def fail(self, error: BaseException) -> bool:
        return self._finish(2, None, error)

    def cancel(self) -> bool:
        return self._finish(3, None, None)

    def on_cancel(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` on the running loop if this slot is cancelled."""
        self._watch((asyncio.get_running_loop(), callback))

    def _watch(self, waiter: Any) -> None:
        with self._lock:
            if not self._state:
                self._waiters.append(waiter)
                return
        _wake(waiter, self._state)

    def _finish(self, state: int, value: Any, error: BaseException | None) -> bool:
        with self._lock:
            if self._state:
                return False
            self._state, self._value, self._error = state, value, error
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            _wake(waiter, state)
        return True

    async def wait(self) -> Any:
        if not self._state:
            woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._watch((woken.get_loop(), woken))
            await woken
        return self.result()

    def wait_blocking(self) -> Any:
        if not self._state:
            woken = threading.Event()
            self._watch(woken)
            woken.wait()
        return self.result()


def _wake(waiter: Any, state: int) -> None:
    if isinstance(waiter, threading.Event):
        waiter.set()
        return
    loop, target = waiter
    if isinstance(target, asyncio.Future):
        wake: Callable[[], object] = functools.partial(_release, target)
    elif state == 3:
        wake = target  # an on_cancel callback
    else:
        return
    if asyncio._get_running_loop() is loop:
        wake()
    else:
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
            loop.call_soon_threadsafe(wake)


def _release(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass
class _Go:
    """Run the call with these arguments and report to ``report``."""

    arguments: dict[str, Any]
    report: _Slot
    context: CallContext | None = None


@dataclass
class _Final:
    """The call's answer: the outcome of its last run, a message, an exception, or hold (a
    dependency is waiting for a human, so this call runs when the graph resumes)."""

    kind: Literal["last", "message", "raise", "hold", "delegate"]
    message: ToolMessage | None = None
    error: BaseException | None = None


@dataclass
class _Report:
    kind: Literal["ok", "error_message", "raised", "interrupted"]
    outcome: Outcome = None
    error: BaseException | None = None


class _Mailbox:
    """A queue that a thread or an event loop can wait on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Any] = []
        self._waiter = _Slot()

    def put(self, item: Any) -> None:
        with self._lock:
            self._items.append(item)
            waiter = self._waiter
        waiter.set(None)

    def _take(self) -> tuple[bool, Any, _Slot]:
        with self._lock:
            if self._items:
                return True, self._items.pop(0), self._waiter
            if self._waiter.done():
                self._waiter = _Slot()
            return False, None, self._waiter

    def get(self) -> Any:
        while True:
            ok, item, waiter = self._take()
            if ok:
                return item
            waiter.wait_blocking()

    async def aget(self) -> Any:
        while True:
            ok, item, waiter = self._take()
            if ok:
                return item
            await waiter.wait()


@dataclass(eq=False)
class _Member:
    call: dict[str, Any]
    known: Outcome = None
    """Its outcome from before (an answer in the state, a run before an interrupt)."""
    arrived: _Slot = field(default_factory=_Slot)
    """Set when the call's task arrives, to how that task runs a call and whether it is a
    thread's (for a call run on another's behalf)."""
    mailbox: _Mailbox = field(default_factory=_Mailbox)
    settled: bool = False
    finished: Outcome = None
    """Its outcome in this turn, kept in case another call interrupts the turn."""
    stolen: _Slot | None = None
    interrupted: bool = False
    given: Any = None
    """The arguments its task brought (a middleware before toolweave may have changed them)."""
    ran_with: Any = None
    """The arguments it last ran with, references resolved."""

    @property
    def id(self) -> str:
        return str(self.call["id"])


# ------------------------------------------------------------------ the turn


class Turn:
    """The calls of one AI message, run as one toolweave batch by their own tasks."""

    def __init__(
        self,
        turns: Turns,
        key: Any,
        calls: Sequence[Mapping[str, Any]],
        known: Mapping[str, Outcome],
        goal: str | None,
        orchestrator: Orchestrator,
        whole: bool = False,
        batch_id: str | None = None,
    ) -> None:
        self._turns = turns
        self.key = key
        self.whole = whole
        self.batch_id = batch_id
        """The AI message's id, which names the batch (None: the engine names it)."""
        """One task runs all its calls (a node given a whole message); no task comes late."""
        self.members: dict[str, _Member] = {}
        for c in calls:  # a repeated id: the first call is the batch's, the others run apart
            self.members.setdefault(str(c["id"]), _Member(dict(c), known.get(str(c["id"]))))
        self.seen: dict[str, Any] = {}
        """Once closed: the arguments each call that came ran with."""
        self.goal = goal
        self.orchestrator = orchestrator
        self._lock = threading.Lock()
        self._started = False
        self._starved = False
        self._runner: Any = None
        self.result: BatchResult | None = None

    # --------------------------------------------------------------- the call's own task

    async def attend(
        self, call: Mapping[str, Any], run: Callable[[dict[str, Any]], Awaitable[Outcome]]
    ) -> Outcome:
        """Run one call in the calling task, when the batch says so; return its outcome."""
        member = self.members.get(str(call["id"]))
        if member is not None and member.known is not None:
            return member.known
        if member is None or member.arrived.done():
            return await run(self._again(member, call))
        self._arrive(member, run, threaded=False, given=call.get("args"))
        try:
            return await self._attend(member, run)
        except asyncio.CancelledError:
            self._abandon()  # the step is being cancelled: so is the rest of its batch
            raise

    async def _attend(
        self, member: _Member, run: Callable[[dict[str, Any]], Awaitable[Outcome]]
    ) -> Outcome:
        last: Outcome = None
        failure: BaseException | None = None
        while True:
            item = await member.mailbox.aget()
            if isinstance(item, _Go):
                job = _in_context(item.context, run(self._with_arguments(member, item.arguments)))
                try:
                    last, failure = await self._watch(member, job, item.report)
                except asyncio.CancelledError:
                    job.cancel()
                    item.report.cancel()
                    raise
            elif isinstance(item, _Final):
                if item.kind == "delegate":
                    return await run(member.call)
                if item.kind == "last" and member.stolen is not None:
                    return await member.stolen.wait()
                return _resolve(item, last, failure)

    def attend_sync(
        self,
        call: Mapping[str, Any],
        run: Callable[[dict[str, Any]], Outcome],
        arun: Callable[[dict[str, Any]], Awaitable[Outcome]] | None = None,
    ) -> Outcome:
        """``attend()`` for a call whose task is a thread (``graph.invoke``). ``arun``, for
        an async tool, runs it on a loop of this thread's, where a timeout can cancel it."""
        member = self.members.get(str(call["id"]))
        if member is not None and member.known is not None:
            return member.known
        if member is None or member.arrived.done():
            return run(self._again(member, call))
        self._arrive(member, run, threaded=True, given=call.get("args"))
        last: Outcome = None
        failure: BaseException | None = None
        while True:
            item = member.mailbox.get()
            if isinstance(item, _Go):
                if item.report.done():  # the batch gave up on it (a timeout) before it began
                    continue
                if arun is not None:
                    with _current(item.context):
                        last, failure = asyncio.run(self._run_watched(member, arun, item))
                    continue
                try:
                    with _current(item.context):
                        last = run(self._with_arguments(member, item.arguments))
                    failure = None
                except GraphBubbleUp:
                    self._interrupted(member, item.report)
                    raise
                except Exception as exc:  # ToolNode lets it through: report, await the verdict
                    last, failure = None, exc
                    item.report.set(_Report("raised", error=exc))
                except BaseException as exc:  # SystemExit, KeyboardInterrupt: the batch hears
                    item.report.set(_Report("raised", error=exc))
                    raise
                else:
                    member.finished = last
                    item.report.set(_ok(last, member.id))
            elif isinstance(item, _Final):
                if item.kind == "delegate":
                    return run(member.call)
                if item.kind == "last" and member.stolen is not None:
                    return member.stolen.wait_blocking()
                return _resolve(item, last, failure)

    async def _run_watched(
        self,
        member: _Member,
        arun: Callable[[dict[str, Any]], Awaitable[Outcome]],
        go: _Go,
    ) -> tuple[Outcome, BaseException | None]:
        job = _in_context(go.context, arun(self._with_arguments(member, go.arguments)))
        return await self._watch(member, job, go.report)

    async def _watch(
        self, member: _Member, job: asyncio.Future[Outcome], report: _Slot
    ) -> tuple[Outcome, BaseException | None]:
        """Wait for a run, which the batch may cancel (a timeout around the call)."""
        report.on_cancel(job.cancel)
        try:
            outcome = await job
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if report.cancelled() and not (current is not None and current.cancelling()):
                return None, None  # the batch gave up on this run; its verdict follows
            raise
        except GraphBubbleUp:
            self._interrupted(member, report)
            raise
        except Exception as exc:  # ToolNode lets it through: report, await the verdict
            report.set(_Report("raised", error=exc))
            return None, exc
        except BaseException as exc:
            report.set(_Report("raised", error=exc))
            raise
        member.finished = outcome
        report.set(_ok(outcome, member.id))
        return outcome, None

    def _abandon(self) -> None:
        runner = self._runner
        if isinstance(runner, asyncio.Task) and not runner.done():
            runner.cancel()

    def _interrupted(self, member: _Member, report: _Slot) -> None:
        member.interrupted = True
        report.set(_Report("interrupted"))

    def _with_arguments(self, member: _Member, arguments: dict[str, Any]) -> dict[str, Any]:
        member.ran_with = arguments
        return {**member.call, "args": arguments}

    def _again(self, member: _Member | None, call: Mapping[str, Any]) -> dict[str, Any]:
        """A call that comes a second time (a retry middleware before toolweave, a repeated
        id) runs at once, outside the batch: with the arguments it ran with the first time
        when it brings the model's, else with its own."""
        args = call.get("args")
        if member is None:
            seen = self.seen.get(str(call["id"]))
            return {**call, "args": seen if seen is not None else args}
        if member.ran_with is not None and args == member.call.get("args"):
            args = member.ran_with
        return {**call, "args": args}

    def _arrive(
        self,
        member: _Member,
        run: Callable[[dict[str, Any]], Any],
        threaded: bool,
        given: Any = None,
    ) -> None:
        logger.debug("toolweave: LangGraph call %r arrived at turn %x", member.id, id(self))
        member.given = given
        member.arrived.set((run, threaded))
        with self._lock:
            start, self._started = not self._started, True
        if start:
            self._start(threaded)

    # --------------------------------------------------------------- the batch

    def _start(self, threaded: bool) -> None:
        context = contextvars.copy_context()
        context.run(_TURN.set, self)
        if threaded:
            thread = threading.Thread(
                target=context.run, args=(asyncio.run, self._drive()), daemon=True,
                name="toolweave-langgraph-turn",
            )  # fmt: skip
            thread.start()
            self._runner = thread
        else:
            task = asyncio.get_running_loop().create_task(self._drive(), context=context)
            task.add_done_callback(_read_outcome)
            self._runner = task

    async def _drive(self) -> None:
        try:
            calls = [
                ToolCall(id=m.id, name=str(m.call.get("name") or "(no name)"), arguments=_args(m))
                for m in self.members.values()
            ]
            self.result = await self.orchestrator.run(calls, goal=self.goal, batch_id=self.batch_id)
        except BaseException as exc:
            level = logging.DEBUG if isinstance(exc, asyncio.CancelledError) else logging.WARNING
            logger.log(level, "toolweave: a LangGraph turn's batch failed: %s", type(exc).__name__)
            self._turns.finished(self)
            for m in self.members.values():
                self._settle(m, _Final("message", message=_error(m, to_text(exc, 2000))))
            self._turns.closed(self)
            if not isinstance(exc, Exception):
                raise
        else:
            self._turns.finished(self)  # before any task hears: a resume must find the memo
            self._settle_rest(self.result)
            self._turns.closed(self)

    def _settle_rest(self, result: BatchResult) -> None:
        """Answer every call the batch did not run to the end itself."""
        held = {m.id for m in self.members.values() if m.interrupted}
        by_id = {r.call_id: r for r in result.results}
        for r in result.results:  # results follow the model's order; dependencies come first
            if r.call_id not in held and any(d in held for d in r.depends_on):
                held.add(r.call_id)
        for m in self.members.values():
            r = by_id[m.id]
            if m.id in held and not m.interrupted:
                self._settle(m, _Final("hold"))
            elif r.error_type == "unknown_tool":
                self._settle(m, _Final("delegate"))  # ToolNode's own answer, or a dynamic tool
            elif r.status != "ok":
                self._settle(m, _Final("message", message=_error(m, r.error or r.status)))
            elif r.replayed or r.cached or r.deduplicated_from is not None:
                # Another run (an earlier run of this batch, another batch, an identical call
                # of this one) gave its output: its own task never ran a tool.
                self._settle(m, _Final("message", message=_recorded(m, r.output)))
            else:
                self._settle(m, _Final("last"))

    def _settle(self, member: _Member, final: _Final) -> None:
        if member.settled or member.known is not None:
            return
        logger.debug("toolweave: LangGraph call %r answered: %s", member.id, final.kind)
        member.settled = True
        member.mailbox.put(final)

    async def announce(self, request: CallRequest, call_next: Any) -> Any:
        """Outermost middleware: a call answered before goes no further; a call's task gets
        its answer as soon as the chain has one."""
        member = self.members[request.call.id]
        if member.known is not None:
            if failed(member.known, member.id):
                raise SkipCall("it was answered with an error before")
            return output_of(member.known, member.id)
        try:
            value = await call_next(request)
        except _ErrorMessage as exc:
            self._settle(member, _Final("message", message=exc.message))
            raise
        except _Raised as exc:
            self._settle(member, _Final("raise", error=exc.error))
            raise
        self._settle(member, _Final("last"))
        return value

    async def dispatch(self, request: CallRequest, call_next: Any) -> Any:
        """Innermost middleware: the call runs in its own task, with these arguments."""
        member = self.members[request.call.id]
        context = CallContext(
            call_id=request.call.id,
            batch_id=request.batch_id,
            idempotency_key=request.idempotency_key,
            attempt=request.attempt,
        )
        if member.interrupted:
            raise SkipCall("it is waiting for a human answer")
        if member.stolen is not None:
            return self._value(member, _ok(await member.stolen.wait(), member.id))
        if not member.arrived.done():
            try:
                # Once one task has not come, the pool is short: the others are not waited for.
                async with asyncio.timeout(
                    0 if self._starved and self._turns.steal else ARRIVAL_GRACE
                ):
                    await member.arrived.wait()
            except TimeoutError:
                self._starved = True
                if not self._turns.steal:
                    raise SkipCall(
                        "it did not reach toolweave: a middleware before ToolweaveMiddleware "
                        "answered it, or its task did not start in time"
                    ) from None
                logger.debug("toolweave: LangGraph call %r did not come; runs here", member.id)
                with _current(context):
                    return await self._steal(member, dict(request.arguments))
        arguments = dict(request.arguments)
        if isinstance(member.given, dict) and member.given != member.call.get("args"):
            arguments = dict(member.given)  # changed on its way here: as it was changed
        return await self.dispatch_to_task(member, arguments, context)

    async def dispatch_to_task(
        self, member: _Member, arguments: dict[str, Any], context: CallContext | None = None
    ) -> Any:
        report = _Slot()
        member.mailbox.put(_Go(arguments, report, context))
        try:
            got = await report.wait()
        except asyncio.CancelledError:
            report.cancel()  # the call's task cancels its run
            raise
        return self._value(member, got)

    def _value(self, member: _Member, report: _Report) -> Any:
        if report.kind == "ok":
            return output_of(report.outcome, member.id)
        if report.kind == "error_message":
            raise _ErrorMessage(report.outcome)
        if report.kind == "interrupted":
            raise SkipCall("it is waiting for a human answer (interrupt)")
        assert report.error is not None
        raise _Raised(report.error)

    async def _steal(self, member: _Member, arguments: dict[str, Any]) -> Any:
        """Run a call whose task has not come, with the means of a task that has."""
        runner, threaded = next(
            (m.arrived.result() for m in self.members.values() if m.arrived.done()),
            (None, False),
        )
        if runner is None:  # nothing to run it with: its own task must come
            await member.arrived.wait()
            return await self.dispatch_to_task(member, arguments)
        stolen = _Slot()
        member.stolen = stolen
        call = self._with_arguments(member, arguments)
        try:
            if threaded:
                outcome = await asyncio.to_thread(runner, call)
            else:
                outcome = await runner(call)
        except GraphBubbleUp:
            member.stolen = None  # its dependents are answered, not held: nothing to resume
            raise SkipCall("it asked for a human answer outside its own task") from None
        except Exception as exc:
            stolen.fail(exc)
            raise _Raised(exc) from exc
        stolen.set(outcome)
        member.finished = outcome
        return self._value(member, _ok(outcome, member.id))


class _ErrorMessage(Exception):
    """ToolNode answered the call with an error message (a handled error)."""

    def __init__(self, message: Any) -> None:
        super().__init__(to_text(getattr(_first_message(message), "content", message), 2000))
        self.message = _first_message(message)


class _Raised(Exception):
    """ToolNode let the tool's exception through; the graph raises it as ToolNode would."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {to_text(error, 2000)}")
        self.error = error


def _read_outcome(task: asyncio.Task[None]) -> None:
    """Read a finished batch task's outcome, so asyncio never reports it as unretrieved (its
    calls were answered already)."""
    if not task.cancelled() and task.exception() is not None:
        logger.debug("toolweave: a LangGraph turn ended with %s", type(task.exception()).__name__)


def _first_message(outcome: Any) -> ToolMessage | None:
    if isinstance(outcome, ToolMessage):
        return outcome
    if isinstance(outcome, list) and outcome:
        return next((m for m in outcome if isinstance(m, ToolMessage)), None)
    return None


def _ok(outcome: Outcome, call_id: str) -> _Report:
    if failed(outcome, call_id):
        return _Report("error_message", outcome=outcome)
    return _Report("ok", outcome=outcome)


def _resolve(final: _Final, last: Outcome, failure: BaseException | None) -> Outcome:
    if final.kind == "hold":
        raise GraphInterrupt(())  # no interrupt of its own: it runs again when the graph resumes
    if final.kind == "raise":
        raise final.error if final.error is not None else RuntimeError("tool failed")
    if final.kind == "message":
        return final.message
    if failure is not None:
        raise failure
    return last


def _error(member: _Member, text: str) -> ToolMessage:
    return ToolMessage(
        content=f"Error: {text}",
        tool_call_id=member.id,
        name=member.call.get("name"),
        status="error",
    )


def _recorded(member: _Member, output: Any) -> ToolMessage:
    """The answer to a call whose output another run gave (the ledger replayed it, the cache
    had it, or it was merged into an identical call): that output (the content its
    ``ToolMessage`` had) as the content, as ``ToolNode`` shows a tool's output. A ``Command``
    or an artifact the call returned then is not replayed."""
    blocks = isinstance(output, list) and all(
        isinstance(b, str) or (isinstance(b, dict) and "type" in b) for b in output
    )
    if not (isinstance(output, str) or blocks):
        output = json.dumps(output, ensure_ascii=False)
    return ToolMessage(
        content=output, tool_call_id=member.id, name=member.call.get("name"), status="success"
    )


def _args(member: _Member) -> Any:
    args = member.call.get("args")
    return args if isinstance(args, dict) else {}


async def announce(request: CallRequest, call_next: Any) -> Any:
    """The batch's outermost middleware (see ``Turn.announce``)."""
    return await _TURN.get().announce(request, call_next)


async def dispatch(request: CallRequest, call_next: Any) -> Any:
    """The batch's innermost middleware (see ``Turn.dispatch``)."""
    return await _TURN.get().dispatch(request, call_next)


# ------------------------------------------------------------------ finding a call's turn


class Turns:
    """The turns in progress for one tool node or middleware, and what calls of interrupted
    turns returned, so that resuming does not run them again."""

    def __init__(
        self,
        on_result: Callable[[BatchResult], None] | None = None,
        memory: int = 256,
        *,
        steal: bool = True,
    ) -> None:
        self.steal = steal
        """Whether a call whose task does not come is run on another task's behalf (in a
        node, where nothing sits between LangGraph and toolweave); else it is skipped."""
        self._on_result = on_result
        self._lock = threading.Lock()
        self._open: dict[Any, Turn] = {}
        self._closed: OrderedDict[Any, Turn] = OrderedDict()
        self._memo: OrderedDict[Any, dict[str, Outcome]] = OrderedDict()
        self._asked: dict[Any, set[str]] = {}
        self._memory = memory

    def join(
        self,
        call: Mapping[str, Any],
        state: Any,
        config: Mapping[str, Any] | None,
        orchestrator: Orchestrator,
        messages_key: str = "messages",
        calls: Sequence[Mapping[str, Any]] | None = None,
        saved: Saved | None = None,
        message: Any = None,
    ) -> Turn:
        """The turn of ``call``: the one under way for its AI message, or a new one.

        ``calls`` are the turn's calls when the caller has them all (a node given a whole
        message, ``message``, if it has it); otherwise they are the AI message's in ``state``
        that has ``call``. ``saved`` is what the checkpointer holds from before an interrupt
        (``saved()``): answers, used for a turn gathered from ``state``, and how many
        interrupts the step raised.

        The AI message's id names the turn's batch, so with the orchestrator's ``ledger`` a
        step run again after a crash replays the calls that finished. Each resume after an
        interrupt is a batch of its own (``"{id}#resume-{k}"``, ``k`` the interrupts so far):
        the interrupted call must run again, and the calls that finished are answered from
        the checkpointer or from memory, not run.
        """
        messages = _messages(state, messages_key)
        whole = calls is not None  # one task runs them all: nothing to gather, nobody joins
        ai = None
        if calls is None:
            ai = next((m for m in reversed(messages) if _has_call(m, call.get("id"))), None)
            calls = list(ai.tool_calls) if ai is not None else [call]
        batch_id = _batch_id(ai if ai is not None else message, saved)
        ids = tuple(str(c.get("id")) for c in calls)
        key = (_step(config), ids)
        resuming = bool(((config or {}).get("configurable") or {}).get("__pregel_resuming"))
        with self._lock:
            known: dict[str, Outcome] = {}
            if not whole:
                turn = self._open.get(key)
                if turn is not None:
                    return turn
                turn = self._closed.get(key)
                late = turn.members.get(str(call.get("id"))) if turn is not None else None
                waiting = late is not None and not late.arrived.done() and late.known is None
                again = turn is not None and str(call.get("id")) in turn.seen
                if turn is not None and (waiting or again) and not resuming:
                    return turn  # came after the batch ended: its answer, or its arguments

                at = next((i for i, m in enumerate(messages) if m is ai), len(messages))
                after = messages[at + 1 :]
                known = {
                    m.tool_call_id: m
                    for m in after
                    if isinstance(m, ToolMessage) and m.tool_call_id in ids
                }  # answered in an earlier step (create_agent sends only the calls still open)
                known.update(saved.answers if saved is not None else {})
                known.pop(str(call.get("id")), None)  # but the call sent here is to run
            known.update(self._memo.get(key, {}))
            turn = Turn(self, key, calls, known, _goal(messages), orchestrator, whole, batch_id)
            logger.debug("toolweave: turn %x for %s, known %s", id(turn), key, sorted(known))
            if not whole:
                self._open[key] = turn
            return turn

    def finished(self, turn: Turn) -> None:
        if turn.result is not None and self._on_result is not None:
            self._on_result(turn.result)
        with self._lock:
            if self._open.get(turn.key) is turn:
                del self._open[turn.key]
            held = any(m.interrupted for m in turn.members.values())
            # Only a whole-message turn needs memory: the prebuilt agents' finished calls
            # are read back from the checkpointer (``saved``), in any process.
            if not (held and turn.whole):
                self._memo.pop(turn.key, None)
                self._asked.pop(turn.key, None)
                return
            # LangGraph answers a task's interrupts by the order of its interrupt() calls, so
            # a call that ever asked must run again, in its place, on every resume.
            asked = self._asked.get(turn.key, set()) | {
                m.id for m in turn.members.values() if m.interrupted
            }
            self._asked[turn.key] = asked
            self._memo[turn.key] = {
                m.id: m.known if m.known is not None else m.finished
                for m in turn.members.values()
                if (m.known is not None or m.finished is not None) and m.id not in asked
            }
            self._memo.move_to_end(turn.key)
            while len(self._memo) > self._memory:
                self._asked.pop(self._memo.popitem(last=False)[0], None)

    def closed(self, turn: Turn) -> None:
        """Keep, for a while, the answers of calls whose tasks have not come yet (a thread
        pool can start a task after its batch ended), and nothing else of the turn."""
        if turn.whole:
            return
        late = {m.id: m for m in turn.members.values() if not m.arrived.done() and m.known is None}
        seen = {m.id: m.ran_with for m in turn.members.values() if m.arrived.done()}
        for m in late.values():
            m.finished = None
        turn.members, turn.seen, turn.result = late, seen, None
        with self._lock:
            self._closed[turn.key] = turn
            self._closed.move_to_end(turn.key)
            while len(self._closed) > 64:
                self._closed.popitem(last=False)


def _resuming(config: Mapping[str, Any] | None) -> tuple[Any, dict[str, Any]] | None:
    """The checkpointer and the checkpoint to read, when the graph is resuming."""
    configurable = (config or {}).get("configurable") or {}
    checkpointer = configurable.get("__pregel_checkpointer")
    if not configurable.get("__pregel_resuming") or checkpointer is None:
        return None
    namespace = str(configurable.get("checkpoint_ns") or "").rpartition("|")[0]
    checkpoints = configurable.get("checkpoint_map") or {}
    where = {
        "configurable": {
            "thread_id": configurable.get("thread_id"),
            "checkpoint_ns": namespace,
            "checkpoint_id": checkpoints.get(namespace),
        }
    }
    return checkpointer, where


@dataclass(frozen=True)
class Saved:
    """What the checkpointer holds of the step the graph resumes (``saved()``)."""

    answers: dict[str, Outcome] = field(default_factory=dict)
    """Answers to calls that finished before the interrupt (LangGraph does not run those
    calls' tasks again, so their outputs come from here, in any process)."""
    interrupts: int = 0
    """How many interrupts the step raised so far; 0 when it is not resuming from one."""


def _read(checkpoint: Any) -> Saved:
    found: dict[str, Outcome] = {}
    interrupts = 0
    for write in getattr(checkpoint, "pending_writes", None) or ():
        interrupts += write[1] == _INTERRUPT
        for message in _tool_messages(write[2]):
            found.setdefault(message.tool_call_id, message)
    return Saved(found, interrupts)


def saved(config: Mapping[str, Any] | None) -> Saved:
    """What the checkpointer holds of the step the graph is resuming (``Saved``)."""
    found = _resuming(config)
    if found is None:
        return Saved()
    checkpointer, where = found
    return _read(checkpointer.get_tuple(where))


async def asaved(config: Mapping[str, Any] | None) -> Saved:
    """``saved()`` from async code."""
    found = _resuming(config)
    if found is None:
        return Saved()
    checkpointer, where = found
    return _read(await checkpointer.aget_tuple(where))


def _batch_id(message: Any, saved: Saved | None) -> str | None:
    """The batch id of a turn of ``message`` (see ``Turns.join``), or None when the message
    has no usable id."""
    found = usable_id(getattr(message, "id", None))
    if found is not None and saved is not None and saved.interrupts:
        found = usable_id(f"{found}#resume-{saved.interrupts}")
    return found


def _messages(state: Any, key: str) -> list[Any]:
    if isinstance(state, list):
        return state
    found = state.get(key) if isinstance(state, Mapping) else getattr(state, key, None)
    return list(found) if isinstance(found, Iterable) and not isinstance(found, str) else []


def _has_call(message: Any, call_id: Any) -> bool:
    return isinstance(message, AIMessage) and any(
        c.get("id") == call_id for c in message.tool_calls
    )


def _goal(messages: Sequence[Any]) -> str | None:
    human = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
    return to_text(human.content, 4000) if human is not None else None


def _step(config: Mapping[str, Any] | None) -> Any:
    """Which graph step a call belongs to: its thread and its checkpoints, from the root graph
    down; None outside a graph."""
    configurable = (config or {}).get("configurable") or {}
    checkpoints = configurable.get("checkpoint_map")
    if not isinstance(checkpoints, Mapping):
        return None
    return (configurable.get("thread_id"), tuple(sorted(checkpoints.items())))
