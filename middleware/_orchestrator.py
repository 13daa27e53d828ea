"""The public entry point: ``Orchestrator`` plans and runs batches of tool calls."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from concurrent.futures import Executor
from types import TracebackType
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.trace import Span, use_span

from toolweave.telemetry import TraceContent

from ._decisions import DecideOn, Decider, DecisionGate, as_decider
from ._errors import UsageError
from ._executor import BatchRun
from ._log import log_event
from ._models import BatchResult, DecisionContext, ExecutionPlan, ToolCall
from ._planner import Prepared, coerce_batch, plan_batch
from ._stream import BatchStream
from ._threads import WorkerThreads
from ._tools import Tool, tool_table
from ._tracing import BatchTrace, end_span, mark_failed, start_batch_span

_VERSION = "0.1.0"

__all__ = ["Orchestrator"]

_STRATEGIES = ("auto", "serial")
_GLOBAL_TRACER = trace.get_tracer("toolweave", _VERSION)
_CLOSING_GRACE = 0.5  # seconds run_sync gives tasks left behind before it closes its loop


class Orchestrator:
    """Plans a model's batch of tool calls as a dependency graph and runs it.

    ``tools`` are ``Tool``s (from ``@tool``) or plain functions, as a list or a name -> tool
    mapping. ``max_concurrency`` bounds how many calls of one batch run at once (None: no
    bound). ``strategy="auto"`` runs each call as soon as its dependencies succeeded;
    ``"serial"`` runs calls one by one in batch order, for tools with side effects.

    Blocking (sync) tools run in the orchestrator's worker threads, one per running call: a
    call never waits for a thread, even behind calls whose threads were abandoned on timeout.
    ``async with Orchestrator(...) as o:`` (or ``aclose()``/``close()``) releases them when you
    are done; idle threads also end by themselves, and they never keep a process alive.
    """

    def __init__(
        self,
        tools: Iterable[Tool | Any] | Mapping[str, Tool | Any],
        *,
        max_concurrency: int | None = None,
        strategy: Literal["auto", "serial"] = "auto",
        decider: Decider | Callable[[DecisionContext], Any] | None = None,
        decide_on: DecideOn = "steps",
        decider_timeout: float | None = 60.0,
        decision_output_chars: int = 1000,
        tracer_provider: trace.TracerProvider | None = None,
        workflow_name: str = "toolweave",
        trace_content: TraceContent | bool | None = None,
    ) -> None:
        if strategy not in _STRATEGIES:
            raise UsageError(f"strategy must be 'auto' or 'serial', got {strategy!r}")
        if max_concurrency is not None and (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            raise UsageError(
                f"max_concurrency must be None or an int >= 1, got {max_concurrency!r}"
            )
        if decider_timeout is not None and (
            isinstance(decider_timeout, bool)
            or not isinstance(decider_timeout, int | float)
            or not decider_timeout > 0
        ):
            raise UsageError(
                f"decider_timeout must be None or a positive number of seconds, got "
                f"{decider_timeout!r}"
            )
        if decide_on not in ("steps", "failure") and not callable(decide_on):
            raise UsageError(
                f"decide_on must be 'steps', 'failure' or a predicate, got {decide_on!r}"
            )
        self.decider: Decider | None = as_decider(decider) if decider is not None else None
        """Asked between steps (see ``decide_on``); None to never ask."""
        self.decide_on: DecideOn = decide_on
        self.decider_timeout = decider_timeout
        """Seconds one decision may take before the fallback applies (None: no bound)."""
        self.decision_output_chars = decision_output_chars
        """How much of each finished call's output a decider sees."""
        self.tools: dict[str, Tool] = tool_table(tools)
        """Name -> tool."""
        self.max_concurrency = max_concurrency
        self.strategy: Literal["auto", "serial"] = strategy
        self.tracer_provider = tracer_provider
        """Where spans go; None for the global provider (no SDK configured: next to no cost)."""
        self.workflow_name = workflow_name
        """Names the batch span ``invoke_workflow {workflow_name}``; your agent's name, say."""
        self.trace_content: TraceContent = (
            trace_content
            if isinstance(trace_content, TraceContent)
            else TraceContent(enabled=trace_content)
        )
        """Whether tool arguments and outputs go on spans (off unless opted in)."""
        self._own_tracer: trace.Tracer | None = None
        self._threads: WorkerThreads | None = None
        self._closed = False

    async def __aenter__(self) -> Orchestrator:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the worker threads; ``run()`` raises ``UsageError`` afterwards. Threads
        still running an abandoned blocking call end when it returns; nothing waits for them."""
        self.close()

    def close(self) -> None:
        """``aclose()`` for synchronous code."""
        self._closed = True
        if self._threads is not None:
            self._threads.shutdown(wait=False)
            self._threads = None

    def plan(self, calls: Iterable[ToolCall | Mapping[str, Any]]) -> ExecutionPlan:
        """Plan ``calls`` without running anything. Raises ``InvalidBatchError`` for a batch
        that is not a list of calls or repeats an id; every other problem is in the plan."""
        return plan_batch(coerce_batch(calls), self.tools, self.strategy)[0]

    async def run(
        self, calls: Iterable[ToolCall | Mapping[str, Any]], *, goal: str | None = None
    ) -> BatchResult:
        """Run ``calls`` and return one result per call, in the order given. ``goal`` (the
        user's request) is shown to the decider.

        Raises only ``InvalidBatchError`` (before anything runs) and, when the caller cancels
        it, ``CancelledError`` after every running call was cancelled. A tool's exception,
        timeout or bad arguments become that call's result.
        """
        self._check_open()
        span = start_batch_span(self._tracer(), self.workflow_name)
        try:
            with use_span(span, end_on_exit=False, record_exception=False):
                return await self._run(span, calls, goal)
        except BaseException as exc:
            mark_failed(span, exc, self.trace_content)
            raise
        finally:
            end_span(span)

    async def _run(
        self, span: Span, calls: Iterable[ToolCall | Mapping[str, Any]], goal: str | None
    ) -> BatchResult:
        batch = coerce_batch(calls)
        started_at = time.time()
        plan, prepared = plan_batch(batch, self.tools, self.strategy)
        trace = (
            BatchTrace(self._tracer(), span, self.trace_content) if span.is_recording() else None
        )
        run = self._batch_run(prepared, trace, goal)
        try:
            await run.execute()
        except BaseException as exc:
            log_event(
                logging.WARNING,
                "orchestration.execution_failed",
                reason=type(exc).__name__,
                calls=len(batch),
            )
            raise
        return self._result(plan, run, started_at, trace)

    def stream(self, *, goal: str | None = None) -> BatchStream:
        """A batch whose calls arrive one by one, as a streamed model response writes them:
        ``async with orchestrator.stream() as batch: batch.add(call)``, then
        ``batch.result``. Each call starts as soon as it is added and its dependencies allow."""
        self._check_open()
        return BatchStream(self, goal)

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("this Orchestrator was closed; create a new one to run more batches")

    def _batch_run(
        self, prepared: list[Prepared], trace: BatchTrace | None, goal: str | None
    ) -> BatchRun:
        """The run state for one batch, with this orchestrator's options."""
        return BatchRun(
            prepared,
            max_concurrency=self.max_concurrency,
            serial=self.strategy == "serial",  # forced; a detected chain follows its edges
            executor=self._pool,
            gate=DecisionGate(self.decider, timeout=self.decider_timeout) if self.decider else None,
            trace=trace,
            decide_on=self.decide_on,
            goal=goal,
            output_chars=self.decision_output_chars,
        )

    def _result(
        self, plan: ExecutionPlan, run: BatchRun, started_at: float, trace: BatchTrace | None
    ) -> BatchResult:
        results = [r for r in run.results if r is not None]
        if len(results) != len(run.results):  # every call must settle; anything else is a bug
            raise RuntimeError("toolweave: a call of the batch ended without a result")
        result = BatchResult(
            plan=plan,
            results=results,
            elapsed=run.now(),
            started_at=started_at,
            decisions=run.decisions,
            stopped=run.stopped,
        )
        if trace is not None:
            trace.planned(plan)
            trace.finished(result)
        _log_outcome(result)
        return result

    def _tracer(self) -> trace.Tracer:
        if self.tracer_provider is None:
            return _GLOBAL_TRACER  # a proxy: follows an SDK configured later
        if self._own_tracer is None:
            self._own_tracer = self.tracer_provider.get_tracer("toolweave", _VERSION)
        return self._own_tracer

    def run_sync(
        self, calls: Iterable[ToolCall | Mapping[str, Any]], *, goal: str | None = None
    ) -> BatchResult:
        """``run()`` for code without an event loop. Inside a running loop, await ``run()``.

        A blocking tool may call ``run_sync`` (on this orchestrator or another): it runs in a
        worker thread, which has no event loop, and gets threads of its own."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return _run_to_end(self.run(calls, goal=goal))
        raise UsageError(
            "run_sync() was called inside a running event loop; use 'await orchestrator.run(...)'"
        )

    def _pool(self) -> Executor:
        # Our own threads: the loop's default pool has only cpu_count + 4 of them, a fixed
        # number that abandoned calls would use up, and asyncio.run() waits for it at exit.
        if self._threads is None:
            self._threads = WorkerThreads("toolweave")
        return self._threads


def _run_to_end(work: Coroutine[Any, Any, BatchResult]) -> BatchResult:
    """``asyncio.run(work)``, except that at the end it gives tasks left behind (a tool or a
    decider that ignored cancellation) a moment and then closes the loop without them:
    ``asyncio.run`` would wait for them for ever."""
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(work)
    finally:
        try:
            rest = asyncio.all_tasks(loop)
            for task in rest:
                task.cancel()
            if rest:
                loop.run_until_complete(asyncio.wait(rest, timeout=_CLOSING_GRACE))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _log_outcome(result: BatchResult) -> None:
    ok = result.ok
    level = logging.INFO if ok else logging.WARNING
    if not logging.getLogger("toolweave").isEnabledFor(level):
        return
    counts = {s: len(result.by_status(s)) for s in ("ok", "error", "skipped")}
    log_event(
        level,
        "orchestration.execution_completed" if ok else "orchestration.execution_failed",
        strategy=result.plan.strategy,
        elapsed=f"{result.elapsed:.4f}",
        **counts,
    )
