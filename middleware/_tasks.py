"""Tasks that may misbehave: tools and deciders that ignore cancellation, cancel themselves,
or raise what asyncio would carry out of the event loop; and telling those apart from the run
itself being cancelled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from toolweave.telemetry._values import safe_type_name

from ._log import log_event
from ._threads import Escaped

__all__ = [
    "Abort",
    "RunScope",
    "escaping",
    "give_up_on",
    "leave_behind",
    "run_to_end",
    "uncancel_current_task",
]

T = TypeVar("T")
_TOOL_GRACE = 0.1  # seconds a cancelled task gets to end before it is left behind
_CLOSING_GRACE = 0.5  # seconds run_to_end gives tasks left behind before it closes its loop
_LEFT_BEHIND: set[asyncio.Task[Any]] = set()  # tasks that ignored cancellation


class Abort(Exception):
    """Raised in a call's task to make the run's task group cancel every other call, when a
    ``KeyboardInterrupt`` must leave ``run()``; the run raises that interrupt instead."""


class RunScope:
    """One run's view of cancellation: whether the run itself is being cancelled (as opposed
    to a tool or decider cancelling its own task), and the ``KeyboardInterrupt`` to re-raise."""

    __slots__ = ("_base", "fatal", "host")

    def __init__(self) -> None:
        self.host: asyncio.Task[Any] | None = None
        self._base = 0
        self.fatal: BaseException | None = None
        """A ``KeyboardInterrupt`` raised inside a call or decision; the run re-raises it."""

    def enter(self) -> None:
        """Call from the task that runs the batch, before anything starts."""
        self.host = asyncio.current_task()
        self._base = self.host.cancelling() if self.host is not None else 0

    def cancelled(self) -> bool:
        """Whether the run itself is being cancelled (or interrupted)."""
        if self.fatal is not None:
            return True
        host = self.host
        return host is not None and host.cancelling() > self._base

    def interrupted(self, exc: BaseException) -> Abort:
        """Remember a ``KeyboardInterrupt``; raise the returned ``Abort`` to end the run."""
        if self.fatal is None:
            self.fatal = exc
        return Abort()


async def escaping(work: Awaitable[T]) -> T:
    """Await ``work`` in a task of its own. asyncio re-raises ``SystemExit`` and
    ``KeyboardInterrupt`` out of the event loop when a task raises them: carry them out as an
    ordinary exception (``Escaped``) instead."""
    try:
        return await work
    except (Exception, asyncio.CancelledError, Escaped):
        raise
    except BaseException as exc:
        raise Escaped(exc) from None


async def give_up_on(task: asyncio.Task[Any]) -> None:
    """Give a cancelled task one moment to end; if it ignores cancellation, leave it behind."""
    if not task.done():
        await asyncio.wait({task}, timeout=_TOOL_GRACE)
    if task.done():
        if not task.cancelled():
            task.exception()  # read, so it is never reported as unretrieved
        return
    leave_behind(task, "orchestration.tool_left_running")


def leave_behind(task: asyncio.Task[Any], event: str) -> None:
    """Keep a task that ignored cancellation alive until it ends (never awaited), and log it."""
    log_event(logging.WARNING, event)
    _LEFT_BEHIND.add(task)
    task.add_done_callback(_ended_behind)


def _ended_behind(task: asyncio.Task[Any]) -> None:
    """A task left behind ended: forget it, and read its outcome, so asyncio does not report
    an exception nobody retrieved (its call's result was settled long ago)."""
    _LEFT_BEHIND.discard(task)
    if not task.cancelled():
        exc = task.exception()
        if exc is not None:
            log_event(logging.DEBUG, "orchestration.left_behind_failed", error=safe_type_name(exc))


def uncancel_current_task() -> None:
    """After a task cancelled itself and the CancelledError was handled, clear its pending
    cancellation count so later awaits in it are not taken for cancellation."""
    task = asyncio.current_task()
    while task is not None and task.cancelling():
        task.uncancel()


def run_to_end(work: Coroutine[Any, Any, T]) -> T:
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
