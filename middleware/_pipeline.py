"""The call pipeline: one call, from the moment it starts, through its middleware chain to
its tool, to one ``Outcome`` for the run loop. Nothing a tool or middleware raises leaves it,
except the run's own cancellation and ``KeyboardInterrupt`` (as ``Abort``)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Literal

from ._errors import CallError, SkipCall, ToolExecutionError
from ._hooks import (
    CallNext,
    CallRequest,
    CallState,
    Middleware,
    compose,
    current_call,
    in_worker_thread,
)
from ._observe import Observers
from ._planner import Prepared
from ._tasks import RunScope, uncancel_current_task
from ._threads import Escaped, shared_threads
from ._tools import Tool
from .policies import standard

__all__ = ["Outcome", "Pipeline", "run_tool"]


@dataclass(slots=True)
class Outcome:
    """How one started call ended, as its task reports it to the run loop."""

    index: int
    status: Literal["ok", "error", "skipped"]
    arguments: dict[str, Any]
    started: float
    order: int
    attempts: int
    output: Any = None
    error: CallError | None = None
    reason: str = ""


class Pipeline:
    """Runs the calls of one batch through their chains: the orchestrator's middleware, the
    tool's, the tool's own policies (``retry``, ``timeout``), then the tool."""

    def __init__(
        self,
        *,
        middleware: Sequence[Middleware],
        batch_id: str,
        metadata: Mapping[str, Any],
        executor: Callable[[], Executor],
        observers: Observers,
        scope: RunScope,
        now: Callable[[], float],
        report: Callable[[Outcome], None],
    ) -> None:
        self._report = report
        self._middleware = tuple(middleware)
        self._batch_id = batch_id
        self._metadata = metadata
        self._executor = executor
        self._observers = observers
        self._scope = scope
        self._now = now
        self._chains: dict[Tool, CallNext] = {}

    def chain(self, tool: Tool) -> CallNext:
        """The whole chain for ``tool``'s calls, built once per batch."""
        chain = self._chains.get(tool)
        if chain is None:
            layers = [
                *self._middleware,
                *tool.middleware,
                *standard(
                    timeout=tool.timeout,
                    retries=tool.retries,
                    wait=tool.retry_wait,
                    on=tool.retry_on,
                ),
            ]
            self._chains[tool] = chain = compose(layers, run_tool) if layers else run_tool
        return chain

    async def run(self, p: Prepared, arguments: dict[str, Any], order: int) -> None:
        """Run call ``p`` (the ``order``-th to start) with its bound ``arguments``, and report
        how it ended."""
        state = CallState(self._executor)
        current_call.set(state)  # this task's own context: its tool's tasks and threads see it
        started = self._now()
        self._observers.call_started(p, order)
        tool = p.tool
        assert tool is not None  # calls without a tool failed at planning
        request = CallRequest(
            call=p.call,
            tool=tool,
            arguments=arguments,
            batch_id=self._batch_id,
            metadata=self._metadata,
        )
        error: CallError
        try:
            output = await self.chain(tool)(request)
        except SkipCall as exc:
            reason = exc.reason if isinstance(exc.reason, str) and exc.reason else ""
            self._report(
                Outcome(
                    p.index, "skipped", arguments, started, order, state.attempts,
                    reason=reason or "skipped by middleware",
                )
            )  # fmt: skip
            return
        except CallError as exc:
            # Ours (a timeout policy's, a middleware's own) as it is; another call's is wrapped.
            error = exc if exc.call_id == p.call.id else _tool_error(p, exc, state.attempts)
        except asyncio.CancelledError as exc:
            if self._scope.cancelled():
                raise  # the run itself is being cancelled
            # The tool cancelled its own task; a task group would drop it without a trace.
            uncancel_current_task()
            error = _tool_error(p, exc, state.attempts)
        except KeyboardInterrupt as exc:
            raise self._scope.interrupted(exc) from None
        except BaseException as exc:  # a tool's failure is a result, never an escape from run()
            if isinstance(exc, Escaped):  # raised in a worker thread or task (SystemExit, say)
                exc = exc.exc
                if isinstance(exc, KeyboardInterrupt):
                    raise self._scope.interrupted(exc) from None
            error = _tool_error(p, exc, state.attempts)
        else:
            self._report(Outcome(p.index, "ok", arguments, started, order, state.attempts, output))
            return
        self._report(
            Outcome(p.index, "error", arguments, started, order, state.attempts, error=error)
        )


def _tool_error(p: Prepared, exc: BaseException, attempts: int) -> CallError:
    error = ToolExecutionError(exc, attempts, call_id=p.call.id, tool_name=p.call.name)
    error.__cause__ = exc
    return error


def run_tool(request: CallRequest) -> Awaitable[Any]:
    """The innermost ``call_next``: call ``request.tool`` with ``request.arguments``. A
    blocking tool runs in a worker thread (one per running call, so none waits for another).
    A plain function returning the tool's awaitable: no coroutine of its own to step through."""
    state = current_call.get()
    if state is not None:
        state.attempts += 1
    tool = request.tool
    arguments = request.arguments
    args, kwargs = tool.bind(arguments if type(arguments) is dict else dict(arguments))
    if tool.is_async:
        awaitable: Awaitable[Any] = tool.fn(*args, **kwargs)
        return awaitable
    if in_worker_thread.get():
        return _returned(tool.fn, args, kwargs)
    threads = state.executor() if state is not None else shared_threads()
    # A thread cannot be interrupted: on timeout or cancellation it runs on, unobserved.
    work = functools.partial(contextvars.copy_context().run, tool.fn, *args, **kwargs)
    return asyncio.wrap_future(threads.submit(work))


async def _returned(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return fn(*args, **kwargs)
