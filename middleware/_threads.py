"""Worker threads for blocking tools and rules: as many as are busy, never a queue.

A blocking call that timed out cannot be interrupted: its thread runs on, unobserved. With a
fixed-size pool such abandoned threads would make later calls wait for a worker, and that wait
would count toward their timeouts. ``WorkerThreads`` starts a thread whenever none is idle, so a
call never waits behind another; idle threads end after ``idle_timeout`` seconds. Threads are
daemons, so a process exits when its own work is done even while an abandoned call sleeps.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

__all__ = ["Escaped", "WorkerThreads", "shared_threads"]

T = TypeVar("T")
_IDLE_TIMEOUT = 30.0
_names = itertools.count()


class Escaped(BaseException):
    """Carries an exception asyncio mishandles out of a worker thread or a task:
    ``StopIteration`` cannot be put in an asyncio future (the caller would wait forever), and
    ``SystemExit`` or ``KeyboardInterrupt`` raised in a task is re-raised out of the event loop.
    The original is ``exc``. Not an ``Exception``, as those are not: ``except Exception`` (and
    a ``retry`` on ``Exception``) lets it pass, and the engine unwraps it."""

    exc: BaseException

    def __init__(self, exc: BaseException) -> None:
        if isinstance(exc, Escaped):  # carried twice (a thread inside a task): once is enough
            exc = exc.exc
        super().__init__(type(exc).__name__)
        self.exc = exc


class WorkerThreads(Executor):
    """An executor that never queues work behind busy threads (see the module docstring)."""

    def __init__(self, name: str = "toolweave", idle_timeout: float = _IDLE_TIMEOUT) -> None:
        self._name = name
        self._idle_timeout = idle_timeout
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._idle = threading.Semaphore(0)  # one permit per idle thread
        self._lock = threading.Lock()
        self._threads = 0
        self._closed = False

    @property
    def threads(self) -> int:
        """Threads alive now, busy or idle."""
        return self._threads

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` on an idle thread, or on a new one if none is idle."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("these worker threads were shut down")
            if not self._idle.acquire(blocking=False):
                self._threads += 1
                threading.Thread(
                    target=self._worker, name=f"{self._name}-{next(_names)}", daemon=True
                ).start()
            self._work.put((future, lambda: fn(*args, **kwargs)))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Let idle threads end now and busy ones when their call returns; no new work.
        Never waits for a busy thread (it may never return); ``wait`` is accepted for the
        ``Executor`` interface."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in range(self._threads):
                self._work.put(None)

    def _worker(self) -> None:
        while True:
            try:
                item = self._work.get(timeout=self._idle_timeout)
            except queue.Empty:
                # Idle too long: leave, unless a submitter just counted on this thread.
                if self._idle.acquire(blocking=False):
                    with self._lock:
                        self._threads -= 1
                    return
                continue
            if item is None:
                with self._lock:
                    self._threads -= 1
                return
            future, call = item
            if future.set_running_or_notify_cancel():
                try:
                    result = call()
                except (StopIteration, StopAsyncIteration) as exc:
                    future.set_exception(Escaped(exc))
                except Exception as exc:
                    future.set_exception(exc)
                except BaseException as exc:
                    future.set_exception(Escaped(exc))
                else:
                    future.set_result(result)
                del future, call, item
            self._idle.release()


_shared: WorkerThreads | None = None
_shared_lock = threading.Lock()


def shared_threads() -> WorkerThreads:
    """The process-wide worker threads, for blocking work outside an orchestrator (rules)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = WorkerThreads("toolweave-rules")
        return _shared
