"""Streamed batches: calls that arrive one by one, each started as soon as it is complete
and its dependencies allow, while the model is still writing the rest."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as context_api
from opentelemetry import trace

from ._errors import InvalidBatchError, UsageError
from ._models import BatchResult, ToolCall
from ._planner import Prepared, coerce_batch, plan_batch, prepare_call
from ._tracing import BatchTrace, end_span, mark_failed, start_batch_span

if TYPE_CHECKING:
    from ._orchestrator import Orchestrator

__all__ = ["BatchStream"]


class BatchStream:
    """A batch whose calls arrive while it runs; use ``Orchestrator.stream()``.

    ``add(call)`` starts the call as soon as its dependencies allow. A call that refers to a
    call not added yet waits until the stream closes, and is then planned with the whole batch
    (cycles included). After ``async with`` ends, ``result`` is the batch's ``BatchResult``,
    exactly as ``run()`` would return it.
    """

    def __init__(self, orchestrator: Orchestrator, goal: str | None) -> None:
        self._orchestrator = orchestrator
        self._goal = goal
        self._calls: list[ToolCall] = []
        self._index: dict[str, int] = {}
        self._parked: list[int] = []
        self._closed = asyncio.Event()
        self._result: BatchResult | None = None

    @property
    def result(self) -> BatchResult:
        """The batch's result, once the stream has closed."""
        if self._result is None:
            raise UsageError("the stream is still open: read result after 'async with' ends")
        return self._result

    @property
    def calls(self) -> list[ToolCall]:
        """The calls added so far, in order."""
        return list(self._calls)

    async def __aenter__(self) -> BatchStream:
        if hasattr(self, "_run"):
            raise UsageError(
                "this stream was entered already: each orchestrator.stream() is entered once"
            )
        o = self._orchestrator
        self._span = start_batch_span(o._tracer(), o.workflow_name)
        self._token = context_api.attach(trace.set_span_in_context(self._span))
        self._trace = (
            BatchTrace(o._tracer(), self._span, o.trace_content)
            if self._span.is_recording()
            else None
        )
        try:
            self._started_at = time.time()
            self._run = o._batch_run([], self._trace, self._goal)
            self._task = asyncio.create_task(self._run.execute(self._closed))
            opened = asyncio.create_task(self._run.opened.wait())
            try:
                await asyncio.wait({self._task, opened}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                opened.cancel()
            if self._task.done():  # the run ended before it opened: surface why
                self._task.result()
        except BaseException as exc:
            # Cancelled (or failed) while entering: __aexit__ will not run, so undo it all here.
            task = getattr(self, "_task", None)
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            mark_failed(self._span, exc, self._orchestrator.trace_content)
            context_api.detach(self._token)
            end_span(self._span)
            raise
        return self

    def add(self, call: ToolCall | Mapping[str, Any]) -> None:
        """Add a complete call; it starts as soon as its dependencies allow."""
        if not hasattr(self, "_run"):
            raise UsageError(
                "add() before the stream was entered: use 'async with orchestrator.stream() "
                "as batch: batch.add(call)'"
            )
        if self._closed.is_set():
            raise InvalidBatchError("the stream is closed: no more calls can be added")
        [checked] = coerce_batch([call])
        if checked.id in self._index:
            raise InvalidBatchError(
                f"calls {self._index[checked.id] + 1} and {len(self._calls) + 1} share the id "
                f"'{checked.id}'; every call in a batch needs its own id",
                position=len(self._calls),
            )
        i = len(self._calls)
        self._calls.append(checked)
        self._index[checked.id] = i
        o = self._orchestrator
        p: Prepared = prepare_call(i, checked, o.tools, self._index, o.strategy == "serial")
        if p.error is not None and p.error.error_type == "invalid_reference":
            self._parked.append(i)  # it may name a call still to come: decide at the close
            self._run.add(p, parked=True)
            return
        p.level = 1 + max((self._run.prepared[d].level or 0 for d in p.deps), default=-1)
        self._run.add(p)

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if exc is None:
                plan, whole = plan_batch(
                    self._calls, self._orchestrator.tools, self._orchestrator.strategy
                )
                self._run.settle(whole, self._parked)
                self._closed.set()
                await self._task
                self._result = self._orchestrator._result(
                    plan, self._run, self._started_at, self._trace
                )
            else:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
                mark_failed(self._span, exc, self._orchestrator.trace_content)
        finally:
            context_api.detach(self._token)
            end_span(self._span)
