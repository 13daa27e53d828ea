"""The call pipeline: one call, from the moment it starts, through its middleware chain to
its tool, to one ``Outcome`` for the run loop. Nothing a tool or middleware raises leaves it,
except the run's own cancellation and ``KeyboardInterrupt`` (as ``Abort``)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

from toolweave.telemetry._values import safe_str, safe_type_name

from ._effects import Effects
from ._errors import CallError, SkipCall, ToolExecutionError
from ._hooks import (
    CallContext,
    CallNext,
    CallRequest,
    CallState,
    Middleware,
    compose,
    current_call,
    tool_in_thread,
)
from ._observe import Observers
from ._outcome import Outcome
from ._planner import Prepared
from ._tasks import RunScope, escaping, run_to_end, uncancel_current_task
from ._threads import Escaped, shared_threads
from ._tools import Tool
from .policies import standard

__all__ = ["Outcome", "Pipeline", "run_tool"]

_MAX_REASON = 2000  # characters of a SkipCall reason the model is shown


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
        effects: Effects | None = None,
    ) -> None:
        self._report = report
        self._effects = effects
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
            layers = [*self._middleware, *tool.middleware, *_own_policies(tool)]
            # Without middleware the tool's own awaitable is awaited in the call's task; with
            # some, a middleware may await it in a task of its own: carry SystemExit out.
            self._chains[tool] = chain = compose(layers, _run_tool_escaping) if layers else run_tool
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
        effects = self._effects
        if effects is None or not effects.wanted(request):
            outcome = await self._through_chain(p, request, state, started, order)
        else:
            outcome = await effects.run(
                p.index,
                request,
                lambda: self._through_chain(p, request, state, started, order),
                started,
                order,
                fresh=bool(p.ordered_after),  # after a conflicting call: no cached answer
            )
        self._report(outcome)

    async def _through_chain(
        self, p: Prepared, request: CallRequest, state: CallState, started: float, order: int
    ) -> Outcome:
        """Run the call's middleware chain and tool once; how it ended."""
        error: CallError
        try:
            output = await self.chain(request.tool)(request)
        except SkipCall as exc:
            reason = safe_str(exc.reason, _MAX_REASON) if exc.reason is not None else ""
            return Outcome(
                p.index, "skipped", state.arguments, started, order, state.attempts,
                reason=reason or "skipped by middleware",
            )  # fmt: skip
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
            if not inspect.isawaitable(output):
                return Outcome(
                    p.index, "ok", state.arguments, started, order, state.attempts, output
                )
            error = _unawaited(p, output, state.attempts)
        return Outcome(
            p.index, "error", state.arguments, started, order, state.attempts, error=error
        )


def _unawaited(p: Prepared, output: Any, attempts: int) -> CallError:
    """A middleware returned ``call_next(request)`` without awaiting it."""
    if inspect.iscoroutine(output):
        output.close()  # never awaited: say so here, not in a RuntimeWarning
    elif isinstance(output, asyncio.Future):
        output.cancel()
    problem = TypeError(
        f"a middleware returned {safe_type_name(output)} without awaiting it; "
        "write 'return await call_next(request)'"
    )
    return _tool_error(p, problem, attempts)


_POLICIES: weakref.WeakKeyDictionary[Tool, list[Middleware]] = weakref.WeakKeyDictionary()


def _own_policies(tool: Tool) -> list[Middleware]:
    """``retry`` and ``timeout`` from the tool's own settings: the same for every batch (a
    tool is frozen, and policies keep no state between calls), so built once per tool."""
    policies = _POLICIES.get(tool)
    if policies is None:
        policies = _POLICIES[tool] = standard(
            timeout=tool.timeout, retries=tool.retries, wait=tool.retry_wait, on=tool.retry_on
        )
    return policies


def _tool_error(p: Prepared, exc: BaseException, attempts: int) -> CallError:
    error = ToolExecutionError(exc, attempts, call_id=p.call.id, tool_name=p.call.name)
    error.__cause__ = exc
    return error


def run_tool(request: CallRequest) -> Awaitable[Any]:
    """The innermost ``call_next``: call ``request.tool`` with ``request.arguments``. A
    blocking tool runs in a worker thread (one per running call, so none waits for another).
    A plain function returning the tool's awaitable: no coroutine of its own to step through."""
    state = current_call.get()
    tool = request.tool
    arguments = request.arguments
    if type(arguments) is not dict:
        arguments = dict(arguments)
    if state is not None:
        state.attempts += 1
        state.arguments = arguments
    args, kwargs = tool.bind(arguments)
    context = tool._context
    if context is not None:
        kwargs = {
            **kwargs,
            context: CallContext(
                call_id=request.call.id,
                batch_id=request.batch_id,
                idempotency_key=request.idempotency_key,
                attempt=request.attempt,
            ),
        }
    if tool.is_async and not tool_in_thread.get():
        awaitable: Awaitable[Any] = tool.fn(*args, **kwargs)
        return awaitable
    threads = state.executor() if state is not None else shared_threads()
    # A thread cannot be interrupted: on timeout or cancellation it runs on, unobserved.
    if tool.is_async:  # inside in_thread(): on an event loop of the thread's own
        work = functools.partial(contextvars.copy_context().run, _run_async, tool.fn, args, kwargs)
    else:
        work = functools.partial(contextvars.copy_context().run, tool.fn, *args, **kwargs)
    return asyncio.wrap_future(threads.submit(work))


def _run_tool_escaping(request: CallRequest) -> Awaitable[Any]:
    return escaping(run_tool(request))


def _run_async(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return run_to_end(fn(*args, **kwargs))
