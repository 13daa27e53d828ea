"""Streamed batches: calls that arrive one by one, each started as soon as it is complete
and its dependencies allow, while the model is still writing the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry import context as context_api
from opentelemetry import trace

from ._errors import InvalidBatchError, UsageError
from ._models import BatchResult, ToolCall
from ._planner import Prepared, coerce_batch, plan_batch, prepare_call
from ._tools import Tool

if TYPE_CHECKING:
    from ._batch import Batch
    from ._run_loop import BatchRun

__all__ = ["BatchStream"]


class BatchStream:
    """A batch whose calls arrive while it runs; use ``Orchestrator.stream()``.

    ``add(call)`` starts the call as soon as its dependencies allow. A call that refers to a
    call not added yet waits until the stream closes, and is then planned with the whole batch
    (cycles included). After ``async with`` ends, ``result`` is the batch's ``BatchResult``,
    exactly as ``run()`` would return it.
    """

    def __init__(
        self,
        open_batch: Callable[[], Batch],
        tools: Mapping[str, Tool],
        strategy: Literal["auto", "serial"],
    ) -> None:
        self._open_batch = open_batch
        self._tools = tools
        self._strategy = strategy
        self._calls: list[ToolCall] = []
        self._prepared: list[Prepared] = []
        self._index: dict[str, int] = {}
        self._parked: list[int] = []
        self._closed = False
        self._run: BatchRun | None = None
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
        if hasattr(self, "_batch"):
            raise UsageError(
                "this stream was entered already: each orchestrator.stream() is entered once"
            )
        self._batch = batch = self._open_batch()
        self._token = (
            None
            if batch.span is trace.INVALID_SPAN  # no SDK: the caller's context stays current
            else context_api.attach(trace.set_span_in_context(batch.span))
        )
        task: asyncio.Task[None] | None = None
        try:
            run = batch.start([], open=True)
            task = self._task = asyncio.create_task(run.execute())
            assert run.opened is not None
            opened = asyncio.create_task(run.opened.wait())
            try:
                await asyncio.wait({task, opened}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                opened.cancel()
            if task.done():  # the run ended before it opened: surface why
                task.result()
            self._run = run
        except BaseException as exc:
            # Cancelled (or failed) while entering: __aexit__ will not run, so undo it all here.
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            batch.failed(exc)
            if self._token is not None:
                context_api.detach(self._token)
            batch.end()
            raise
        return self

    def add(self, call: ToolCall | Mapping[str, Any]) -> None:
        """Add a complete call; it starts as soon as its dependencies allow."""
        run = self._run
        if run is None:
            raise UsageError(
                "add() before the stream was entered: use 'async with orchestrator.stream() "
                "as batch: batch.add(call)'"
            )
        if self._closed:
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
        p = prepare_call(i, checked, self._tools, self._index, self._strategy == "serial")
        self._prepared.append(p)
        if p.error is not None and p.error.error_type == "invalid_reference":
            self._parked.append(i)  # it may name a call still to come: decide at the close
            run.add(p, parked=True)
            return
        p.level = 1 + max((self._prepared[d].level or 0 for d in p.deps), default=-1)
        run.add(p)

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        batch = self._batch
        try:
            if exc is None:
                self._closed = True
                plan, whole = plan_batch(self._calls, self._tools, self._strategy)
                assert self._run is not None
                self._run.close(whole, self._parked)
                await self._task
                self._result = batch.result(plan)
            else:
                self._closed = True
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
                batch.failed(exc)
        except BaseException as failure:
            if exc is None:
                batch.failed(failure)
            raise
        finally:
            if self._token is not None:
                context_api.detach(self._token)
            batch.end()
