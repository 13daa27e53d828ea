"""Built-in middleware: ``timeout``, ``retry``, ``limit`` and ``in_thread``.

Each is a middleware like any other (``async def mw(request, call_next)``), so they combine
with yours in one list, outermost first. ``@tool(timeout=5, retries=2)`` is shorthand for
``[retry(3), timeout(5)]`` after the tool's own middleware (``standard(...)`` builds that
list), and an orchestrator's ``middleware`` wraps every tool's. The whole chain of a call,
outermost first:

1. the orchestrator's ``middleware``;
2. the tool's ``middleware``;
3. ``retry`` then ``timeout``, from the tool's ``retries`` and ``timeout``;
4. the tool: ``async def`` tools are awaited, blocking ones run in a worker thread.

A middleware outside ``retry`` sees a call once; one placed after it sees every attempt.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base, wait_fixed

from ._errors import SkipCall, ToolTimeoutError, UsageError
from ._hooks import CallNext, CallRequest, Middleware, tool_in_thread
from ._tasks import escaping, give_up_on
from ._threads import Escaped
from ._tools import default_retry_wait

__all__ = ["in_thread", "limit", "retry", "standard", "timeout"]


def timeout(seconds: float) -> Middleware:
    """Bound what runs inside it (each attempt, when placed after ``retry``) to ``seconds``.

    Past it, the inner chain is cancelled and the call fails with ``ToolTimeoutError``, which
    ``retry`` retries by default. The inner chain runs in a task of its own, so the bound holds
    even for a tool that ignores cancellation (it is left running, and logged); a blocking tool
    cannot be interrupted, and its thread runs on unobserved.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise UsageError(f"timeout() takes a positive number of seconds, got {seconds!r}")
    limit_s = float(seconds)

    async def timeout_mw(request: CallRequest, call_next: CallNext) -> Any:
        task = asyncio.ensure_future(escaping(call_next(request)))
        try:
            done, _ = await asyncio.wait({task}, timeout=limit_s)
        except asyncio.CancelledError:  # the run is being cancelled: so is what runs inside
            task.cancel()
            await give_up_on(task)
            raise
        if not done:
            task.cancel()
            await give_up_on(task)
            raise ToolTimeoutError(
                limit_s, request.attempt, call_id=request.call.id, tool_name=request.call.name
            )
        return task.result()

    timeout_mw.__qualname__ = f"timeout({seconds!r})"
    return timeout_mw


_timeout = timeout  # standard() takes a parameter of the same name


def retry(
    attempts: int,
    *,
    wait: wait_base | float | None = None,
    on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
) -> Middleware:
    """Make up to ``attempts`` attempts in all (tenacity inside), while the inner chain raises
    one of ``on``; the last exception is the call's error. Each attempt passes
    ``request.override(attempt=n)``. ``wait`` is a tenacity wait or seconds; by default
    exponential backoff with jitter (0.1 s, 0.2 s, 0.4 s ... capped at 2 s, plus 0-0.1 s).
    ``SkipCall`` and cancellation are never retried."""
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise UsageError(f"retry() takes a number of attempts >= 1, got {attempts!r}")
    kinds = on if isinstance(on, tuple) else (on,)
    if not kinds or not all(isinstance(k, type) and issubclass(k, BaseException) for k in kinds):
        raise UsageError(f"retry(on=...) takes exception types, got {on!r}")
    if wait is None:
        wait_policy = default_retry_wait()
    elif isinstance(wait, wait_base):
        wait_policy = wait
    elif isinstance(wait, int | float) and not isinstance(wait, bool) and wait >= 0:
        wait_policy = wait_fixed(wait)
    else:
        raise UsageError(f"retry(wait=...) takes a tenacity wait or seconds >= 0, got {wait!r}")
    retried = retry_if_exception(functools.partial(_retryable, kinds))

    async def retry_mw(request: CallRequest, call_next: CallNext) -> Any:
        n = 0

        async def attempt() -> Any:
            nonlocal n
            n += 1
            return await call_next(request if n == 1 else request.override(attempt=n))

        return await AsyncRetrying(
            stop=stop_after_attempt(attempts), wait=wait_policy, retry=retried, reraise=True
        )(attempt)

    retry_mw.__qualname__ = f"retry({attempts})"
    return retry_mw


def _retryable(kinds: tuple[type[BaseException], ...], exc: BaseException) -> bool:
    """Whether ``retry`` makes another attempt after ``exc``: one of ``kinds``, but never a
    skip, a cancellation or an interrupt, whatever ``on`` says."""
    if isinstance(exc, SkipCall | asyncio.CancelledError | KeyboardInterrupt):
        return False
    if isinstance(exc, Escaped) and isinstance(exc.exc, KeyboardInterrupt):
        return False
    return isinstance(exc, kinds)


def limit(n: int, key: Hashable | Callable[[CallRequest], Hashable] | None = None) -> Middleware:
    """Let at most ``n`` calls through at once; the others wait, in order of arrival.

    Without ``key`` the limit is per batch. With a ``key`` it holds across batches, threads
    and event loops that use this same policy object: a value (``"github"``) is one pool, a
    plain function of the request (``lambda r: r.metadata["user"]``) gives each of its values
    one.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"limit() takes a number of calls >= 1, got {n!r}")
    if key is not None and not callable(key):
        try:
            hash(key)
        except TypeError:
            raise UsageError(
                f"limit(key=...) takes a hashable value or a function, got {type(key).__name__}"
            ) from None
    if inspect.iscoroutinefunction(key):
        raise UsageError("limit(key=...) takes a plain function of the request, not async def")
    pools: dict[Hashable, _Slots] = {}
    guard = threading.Lock()

    def name_of(request: CallRequest) -> Hashable:
        if key is None:
            return ("batch", request.batch_id)
        return key(request) if callable(key) else key

    async def limit_mw(request: CallRequest, call_next: CallNext) -> Any:
        name = name_of(request)
        with guard:
            pool = pools.get(name)
            if pool is None:
                pools[name] = pool = _Slots(n)
            pool.users += 1
        try:
            await pool.acquire()
            try:
                return await call_next(request)
            finally:
                pool.release()
        finally:
            with guard:
                pool.users -= 1
                if pool.users == 0:  # nobody holds or waits: forget it, so pools never pile up
                    pools.pop(name, None)

    limit_mw.__qualname__ = f"limit({n})"
    return limit_mw


class _Slots:
    """A semaphore that holds across threads and event loops: a waiter is woken on its own
    loop, in order of arrival."""

    def __init__(self, n: int) -> None:
        self._free = n
        self._lock = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self.users = 0

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            with self._lock:
                if (loop, waiter) in self._waiters:  # not granted: just leave the line
                    self._waiters.remove((loop, waiter))
                    raise
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted just before the cancellation landed: pass it on
            raise  # else the grant is on its way: _grant sees it cancelled and passes it on

    def release(self) -> None:
        with self._lock:
            while self._waiters:
                loop, waiter = self._waiters.popleft()
                try:
                    loop.call_soon_threadsafe(self._grant, waiter)
                except RuntimeError:  # that loop is closed: its waiter is gone
                    continue
                return
            self._free += 1

    def _grant(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done():  # cancelled before the slot reached it
            self.release()
        else:
            waiter.set_result(None)


def in_thread() -> Middleware:
    """Run the tool in a worker thread, an ``async def`` tool on an event loop of the
    thread's own: for async tools that block. Blocking (plain) tools always run in a worker
    thread. The rest of the chain stays on your event loop, wherever ``in_thread`` is placed,
    so ``timeout`` still applies; like any blocking work, a tool in a thread cannot be
    interrupted: on timeout or cancellation its thread runs on, unobserved."""

    async def in_thread_mw(request: CallRequest, call_next: CallNext) -> Any:
        token = tool_in_thread.set(True)
        try:
            return await call_next(request)
        finally:
            tool_in_thread.reset(token)

    in_thread_mw.__qualname__ = "in_thread()"
    return in_thread_mw


def standard(
    *,
    timeout: float | None = None,
    retries: int = 0,
    wait: wait_base | float | None = None,
    on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
) -> list[Middleware]:
    """The policies ``@tool(timeout=..., retries=..., retry_wait=..., retry_on=...)`` stands
    for: ``retry(retries + 1)`` (which also retries timeouts) around ``timeout(...)``; empty
    when neither is set. Use it to place your own middleware around or inside them."""
    chain: list[Middleware] = []
    if retries:
        kinds = on if isinstance(on, tuple) else (on,)
        chain.append(retry(retries + 1, wait=wait, on=(*kinds, ToolTimeoutError)))
    if timeout is not None:
        chain.append(_timeout(timeout))
    return chain
