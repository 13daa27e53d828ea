"""Durable call ledgers: what each call of a batch did, kept across crashes and processes.

A durable runner that re-runs a crashed batch must not send the email twice. A ledger records
every call of a batch under its ``(batch_id, call_id)``: a ``started`` row, committed before the
tool runs, and the call's result when it ends. Claiming a call takes the call's lock first and
only then reads its row, so two processes running one batch never both run one call.

The lock belongs to a live process and to nothing else: a PostgreSQL session advisory lock on
one of the process's connections, or a POSIX record lock on one byte of ``<path>.locks`` for
SQLite. The kernel or the server drops it the moment its process dies, so a ``started`` row
whose lock is free was left by a runner that is gone (``interrupted``), and a slow runner is
never taken for a dead one: there are no heartbeats and no leases. Neither kind of lock keeps
out the process that holds it, so a process-wide registry of held calls makes a second claimer
in the same process wait too.

Every database operation of a ledger runs on one worker thread of its own (a daemon: it never
keeps a process alive), which also makes the connections; the event loop never blocks on it.

A ledger does not survive ``fork()``: make a new one in the child.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import functools
import hashlib
import json
import logging
import math
import os
import queue
import re
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

from ._errors import ToolweaveError, UsageError
from ._log import log_event

if sys.platform != "win32":
    import fcntl

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "CallLedger",
    "Claim",
    "LedgerError",
    "LedgerRecord",
    "PostgresLedger",
    "SQLiteLedger",
]

T = TypeVar("T")
_MAX_BACKOFF = 0.5
_MAX_ATTEMPTS = 2**62
_DETAIL_CHARS = 300


class LedgerError(ToolweaveError):
    """The ledger's database failed: it cannot be opened or reached, a write failed, a stored
    row is damaged, or a record's output cannot be stored as JSON. The message names the
    backend and where it is (a path, or host, port and database); never a password, an id or
    an output. The backend's own exception is ``__cause__``."""


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """How a call ended, as a ledger stores it."""

    status: Literal["ok", "error", "skipped"]
    """The call's ``CallResult.status``."""
    output: Any
    """JSON data (the engine passes ``to_jsonable(output)``), stored as JSON text: a string
    holding surrogate code points reads back as ``json.loads(json.dumps(output))`` does."""
    error: str | None
    """The error text shown to the model, for ``error`` and ``skipped``."""
    error_type: str | None
    """The ``ErrorType`` of a call that did not succeed."""
    attempts: int
    """How many times the tool was called."""


@dataclass(frozen=True, slots=True)
class Claim:
    """What ``CallLedger.claim()`` found, and whether this process now holds the call.

    ``state`` is one of:

    - ``new``: nobody ran this call before; a ``started`` row is committed and this process
      holds the call's lock. Call ``finish()`` when it ends, or ``release()`` if it never ran.
    - ``finished``: the call ended before and ``record`` is its result; no lock is held.
    - ``interrupted``: a ``started`` row exists but the process that wrote it is gone; this
      process now holds the lock and must ``finish()`` the call (after re-running it, or with
      a record saying its outcome is uncertain) or ``release()`` it.
    - ``conflict``: the call was recorded with other arguments (``recorded_hash``); no lock
      is held.
    """

    state: Literal["new", "finished", "interrupted", "conflict"]
    """See the class docstring."""
    batch_id: str
    """The batch the call belongs to."""
    call_id: str
    """The call's id in its batch."""
    args_hash: str
    """The hash of the arguments this claim was made with."""
    record: LedgerRecord | None = None
    """The stored result, for ``finished``."""
    recorded_hash: str | None = None
    """The hash the call was recorded with, for ``conflict``."""
    runs: int = 0
    """How many claims proceeded to run this call before this one (0 for ``new``)."""


# -- ids ---------------------------------------------------------------------------------------

_ESCAPE = re.compile(r"[\\\x00-\x1f\x7f\ud800-\udfff]")
_UNESCAPE = re.compile(r"\\(\\|u[0-9a-f]{4})")


def _escape(text: str) -> str:
    """``text`` with backslashes, control characters and lone surrogates as ``\\uXXXX``:
    storable as UTF-8 text anywhere (PostgreSQL text holds no NUL), and reversible."""
    return _ESCAPE.sub(lambda m: "\\\\" if m[0] == "\\" else f"\\u{ord(m[0]):04x}", text)


def _unescape(text: str) -> str:
    return _UNESCAPE.sub(lambda m: "\\" if m[1] == "\\" else chr(int(m[1][1:], 16)), text)


def _digest(*parts: str) -> bytes:
    # escaped text holds no NUL, so NUL separates parts unambiguously; not json.dumps, which
    # writes a surrogate pair given as two code points the same as the character they encode
    return hashlib.sha256("\0".join(map(_escape, parts)).encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class _Key:
    batch_id: str
    call_id: str
    key: str  # the row's primary key: a hash of both ids
    batch_key: str  # a hash of batch_id, to list a batch
    lock: int  # 62 bits from the same hash, the lock's name

    @classmethod
    def of(cls, batch_id: str, call_id: str) -> _Key:
        digest = _digest(batch_id, call_id)
        return cls(
            batch_id,
            call_id,
            digest.hex(),
            _digest(batch_id).hex(),
            int.from_bytes(digest[:8], "big") >> 2,
        )


@dataclass(frozen=True, slots=True)
class _Row:
    args_hash: str
    state: str
    runs: int
    record: LedgerRecord | None


@dataclass(slots=True)
class _Hold:
    key: _Key
    claim: Claim
    lost: bool = False  # the lock went with a lost connection


_STATUSES = ("ok", "error", "skipped")


def _check_record(record: LedgerRecord) -> None:
    if not isinstance(record, LedgerRecord):
        raise UsageError(f"finish() takes a LedgerRecord, got {type(record).__name__}")
    if record.status not in _STATUSES:
        raise UsageError(f"LedgerRecord.status must be one of {_STATUSES}, got {record.status!r}")
    for field in ("error", "error_type"):
        if not isinstance(getattr(record, field), str | None):
            raise UsageError(f"LedgerRecord.{field} must be a str or None")
    attempts = record.attempts
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 0 <= attempts < 2**62:
        raise UsageError("LedgerRecord.attempts must be an int from 0")


def _opt(text: str | None) -> str | None:
    return None if text is None else _escape(text)


def _decode(
    status: Any, output: Any, error: Any, error_type: Any, attempts: Any
) -> LedgerRecord | None:
    if status is None:
        return None
    if status not in _STATUSES or not isinstance(output, str) or not isinstance(attempts, int):
        raise ValueError("a stored record is damaged")
    return LedgerRecord(
        status=status,
        output=json.loads(output),
        error=None if error is None else _unescape(error),
        error_type=None if error_type is None else _unescape(error_type),
        attempts=attempts,
    )


def _check_poll(poll: float) -> float:
    if isinstance(poll, bool) or not isinstance(poll, int | float) or not 0 < poll < math.inf:
        raise UsageError(f"poll must be a positive number of seconds, got {poll!r}")
    return float(poll)


# -- process-wide state ------------------------------------------------------------------------


class _Sidecar:
    """The one descriptor this process has on a ``.locks`` file. Closing any descriptor of a
    file drops every POSIX lock the process holds on it, so it is shared and only closed when
    no ledger uses it and no lock is held."""

    def __init__(self, fd: int, ident: tuple[int, int]) -> None:
        self.fd = fd
        self.ident = ident
        self.users = 0
        self.held: dict[int, int] = {}  # offset -> how many held calls use it (hash collisions)

    def lock(self, offset: int) -> bool:
        if offset in self.held:
            self.held[offset] += 1
            return True
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise
        self.held[offset] = 1
        return True

    def unlock(self, offset: int) -> None:
        left = self.held.get(offset, 0) - 1
        if left > 0:
            self.held[offset] = left
            return
        self.held.pop(offset, None)
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, offset)


class _Registry:
    """Calls held by this process, and its ``.locks`` descriptors. Guarded by one lock, as
    ledgers on several threads (and event loops) share it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.claimed: set[tuple[Hashable, str]] = set()
        self.sidecars: dict[tuple[int, int], _Sidecar] = {}

    def hold(self, ident: Hashable, key: str) -> bool:
        with self.lock:
            if (ident, key) in self.claimed:
                return False
            self.claimed.add((ident, key))
            return True

    def drop(self, ident: Hashable, key: str) -> None:
        with self.lock:
            self.claimed.discard((ident, key))

    def open_sidecar(self, path: str) -> _Sidecar:
        with self.lock:
            # look it up by stat() before opening: a second descriptor, once closed, would
            # drop this process's locks on the file
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(path)
                known = self.sidecars.get((st.st_dev, st.st_ino))
                if known is not None:
                    known.users += 1
                    return known
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            st = os.fstat(fd)
            sidecar = _Sidecar(fd, (st.st_dev, st.st_ino))
            sidecar.users = 1
            self.sidecars[sidecar.ident] = sidecar
            return sidecar

    def close_sidecar(self, sidecar: _Sidecar) -> None:
        with self.lock:
            sidecar.users -= 1
            if sidecar.users <= 0 and not sidecar.held:
                self.sidecars.pop(sidecar.ident, None)
                os.close(sidecar.fd)


_registry = _Registry()


def _forget_after_fork() -> None:
    # the child holds none of the parent's locks; its descriptors are the parent's
    global _registry
    _registry = _Registry()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


# -- the worker thread ---------------------------------------------------------------------------

_Job = tuple["Future[Any]", Callable[[], Any]]


class _Worker:
    """One daemon thread that runs a ledger's database work in order (like
    ``ThreadPoolExecutor(max_workers=1)``, but it never keeps the process alive at exit)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self._stopped = False

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._stopped:
                raise UsageError("this ledger was closed; make a new one")
            if self.thread is None:
                self.thread = threading.Thread(
                    target=_work, args=(self._queue,), name=self._name, daemon=True
                )
                self.thread.start()
            self._queue.put((future, fn))
        return future

    def stop(self) -> threading.Thread | None:
        with self._lock:
            if not self._stopped:
                self._stopped = True
                self._queue.put(None)
            return self.thread

    def drain(self) -> None:
        """Stop, and let the work already handed over finish (a ledger never closed, at the
        end of the process: its last records still land). Bounded, and never from the
        worker itself."""
        thread = self.stop()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)


def _work(jobs: queue.SimpleQueue[_Job | None]) -> None:
    while (job := jobs.get()) is not None:
        future, fn = job
        if not future.set_running_or_notify_cancel():
            continue
        try:
            result = fn()
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)
        del job, future, fn


def _settle(waiter: asyncio.Future[Any], done: Future[Any]) -> None:
    if waiter.done():
        return
    exc = done.exception()
    if exc is None:
        waiter.set_result(done.result())
    else:
        waiter.set_exception(exc)


# -- the ledger ----------------------------------------------------------------------------------


class CallLedger(abc.ABC):
    """Where a durable run records its calls: ``SQLiteLedger`` or ``PostgresLedger``.

    ``claim()`` a call before running it; ``finish()`` it with its record when it ends,
    ``release()`` it if it never ran, or ``abandon()`` it if it may have run but has no
    result. Claims wait while another live claimer holds the call. Close the ledger with
    ``aclose()`` (or ``close()``) when done.
    """

    _backend: str
    _errors: tuple[type[BaseException], ...]

    def __init__(self, *, poll: float, where: str, name: str) -> None:
        self._poll = _check_poll(poll)
        self._where = where
        self._pid = os.getpid()
        self._worker = _Worker(name)
        self._holding: dict[str, _Hold] = {}  # touched on the worker thread only
        self._closed = False
        self._finalizer = weakref.finalize(self, self._worker.drain)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._where!r})"

    # - public, async -

    async def claim(self, batch_id: str, call_id: str, args_hash: str) -> Claim:
        """Take call ``call_id`` of batch ``batch_id`` before running it (see ``Claim``).

        Waits, without a time limit of its own, while another live claimer (another process,
        or another claim in this one) holds the call; cancel it to stop waiting. Raises
        ``LedgerError`` when the database fails."""
        for name, value in (("batch_id", batch_id), ("call_id", call_id), ("args_hash", args_hash)):
            if not isinstance(value, str):
                raise UsageError(f"claim() needs {name} as a str, got {type(value).__name__}")
        key = _Key.of(batch_id, call_id)
        delay = self._poll
        waited = False
        while True:
            claim = await self._run(
                functools.partial(self._attempt, key, args_hash), on_abandon=self._abandon
            )
            if claim is not None:
                return claim
            if not waited:
                waited = True
                log_event(logging.DEBUG, "ledger_wait", ledger=self._where)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, max(self._poll, _MAX_BACKOFF))

    def finish(self, claim: Claim, record: LedgerRecord) -> Awaitable[None]:
        """Record how a held call (``new`` or ``interrupted``) ended, then release its lock;
        await the result. The write is handed to the ledger's thread when this is called, so
        it happens even if the caller is cancelled before awaiting it (and ``close()``, or the
        end of the process, waits for it).

        If the record cannot be stored as JSON, raises ``LedgerError`` and the claim stays
        held (finish it with another record, or release it). If the database fails, raises
        ``LedgerError`` and the lock is released all the same: the row stays ``started``, so
        a later claim sees the call as interrupted."""
        _check_record(record)
        try:
            output = json.dumps(record.output, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError) as exc:
            raise LedgerError(
                f"{self._backend} ledger at {self._where}: the record's output cannot be stored "
                f"as JSON ({type(exc).__name__}); pass to_jsonable(output)"
            ) from exc
        return self._wait(self._submit(functools.partial(self._finish, claim, record, output)))

    def release(self, claim: Claim) -> Awaitable[None]:
        """Give up a held claim without a result, because the call was never run: the
        ``started`` row a ``new`` claim wrote is deleted, then the lock released (handed to
        the ledger's thread when called, as ``finish``)."""
        return self._wait(self._submit(functools.partial(self._release, claim)))

    def abandon(self, claim: Claim) -> Awaitable[None]:
        """Give up a held claim without a result when the call may have run (it was cancelled
        while the tool ran): the row stays ``started``, so a later claim sees the call as
        interrupted, and the lock is released (handed to the ledger's thread when called, as
        ``finish``)."""
        return self._wait(self._submit(functools.partial(self._abandon_held, claim)))

    async def records(self, batch_id: str) -> dict[str, tuple[str, LedgerRecord | None]]:
        """Every call of ``batch_id`` the ledger knows: ``call_id -> (state, record)``, state
        ``"started"`` (record None) or ``"finished"``, in the order the calls were claimed."""
        if not isinstance(batch_id, str):
            raise UsageError(f"records() needs batch_id as a str, got {type(batch_id).__name__}")
        return await self._run(functools.partial(self._records, batch_id))

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` or ``close()`` was called."""
        return self._closed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def aclose(self) -> None:
        """Close the connection and end the worker thread. Calls still held are let go (their
        rows stay ``started``, so they count as interrupted). Safe to call twice."""
        if self._closed:
            return
        await self._run(self._shutdown)
        thread = self._stop()
        # the thread ends right after the job above; there is no event to wait on
        while thread is not None and thread.is_alive():  # noqa: ASYNC110
            await asyncio.sleep(0.001)

    def close(self) -> None:
        """``aclose()`` for code without an event loop. Blocks until the work is done."""
        if self._closed:
            return
        self._worker.submit(self._shutdown).result()
        thread = self._stop()
        if thread is not None:
            thread.join()

    # - plumbing -

    def _stop(self) -> threading.Thread | None:
        self._closed = True
        self._finalizer.detach()
        return self._worker.stop()

    async def _run(
        self, fn: Callable[[], T], *, on_abandon: Callable[[Future[T]], None] | None = None
    ) -> T:
        return await self._wait(self._submit(fn), on_abandon=on_abandon)

    def _submit(self, fn: Callable[[], T]) -> Future[T]:
        """Hand ``fn`` to the worker now: it runs even if the caller is cancelled next."""
        if os.getpid() != self._pid:
            raise UsageError("a ledger cannot be used after fork(); make a new one in the child")
        return self._worker.submit(functools.partial(self._guarded, fn))

    async def _wait(
        self, done: Future[T], *, on_abandon: Callable[[Future[T]], None] | None = None
    ) -> T:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()

        def deliver(_: Future[T]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, waiter, done)

        done.add_done_callback(deliver)
        try:
            return await waiter
        except asyncio.CancelledError:
            # the job runs on regardless; undo what it took once it is done
            if on_abandon is not None:
                done.add_done_callback(on_abandon)
            raise

    def _guarded(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the worker, turning the backend's errors into ``LedgerError``."""
        try:
            return fn()
        except self._errors as exc:
            self._after_error()
            raise LedgerError(
                f"{self._backend} ledger at {self._where}: {self._detail(exc)}"
            ) from exc
        except (ValueError, UnicodeError) as exc:  # a damaged row (bad JSON, bad escapes)
            raise LedgerError(
                f"{self._backend} ledger at {self._where}: a stored row is damaged "
                f"({type(exc).__name__})"
            ) from exc

    def _abandon(self, done: Future[Claim | None]) -> None:
        """A claim was cancelled while its attempt ran: give back what the attempt took."""
        if done.cancelled() or done.exception() is not None:
            return
        claim = done.result()
        if claim is None or claim.state not in ("new", "interrupted"):
            return
        with contextlib.suppress(UsageError):  # closed meanwhile: closing let it go
            self._worker.submit(functools.partial(self._guarded, lambda: self._release(claim)))

    # - on the worker thread -

    def _attempt(self, key: _Key, args_hash: str) -> Claim | None:
        self._open()
        ident = self._ident()
        if not _registry.hold(ident, key.key):
            return None
        try:
            if not self._lock(key):
                _registry.drop(ident, key.key)
                return None
            try:
                claim = self._decide(key, args_hash)
            except BaseException:
                self._unlock_quietly(key)
                raise
        except BaseException:
            _registry.drop(ident, key.key)
            raise
        if claim.state in ("new", "interrupted"):
            self._holding[key.key] = _Hold(key, claim)
        else:
            try:
                self._unlock(key)
            finally:
                _registry.drop(ident, key.key)
        return claim

    def _decide(self, key: _Key, args_hash: str) -> Claim:
        ids = (key.batch_id, key.call_id, args_hash)
        row = self._read(key)
        if row is None:
            self._insert(key, args_hash)
            return Claim("new", *ids)
        if row.args_hash != args_hash:
            return Claim("conflict", *ids, recorded_hash=row.args_hash, runs=row.runs)
        if row.state == "finished":
            return Claim("finished", *ids, record=row.record, runs=row.runs)
        self._set_runs(key, row.runs + 1)
        log_event(logging.INFO, "ledger_interrupted_call", ledger=self._where, runs=row.runs)
        return Claim("interrupted", *ids, runs=row.runs)

    def _held(self, claim: Claim, verb: str) -> _Hold:
        if not isinstance(claim, Claim):
            raise UsageError(f"{verb}() takes a Claim, got {type(claim).__name__}")
        hold = self._holding.get(_Key.of(claim.batch_id, claim.call_id).key)
        if hold is None or hold.claim is not claim:
            raise UsageError(
                f"{verb}() needs a claim this ledger holds: one claim() returned as 'new' or "
                f"'interrupted', not yet finished or released (this one is '{claim.state}')"
            )
        return hold

    def _finish(self, claim: Claim, record: LedgerRecord, output: str) -> None:
        hold = self._held(claim, "finish")
        try:
            if hold.lost:
                raise LedgerError(
                    f"{self._backend} ledger at {self._where}: the connection was lost while "
                    "the call ran and its lock went with it, so its result was not recorded; "
                    "a later claim sees the call as interrupted"
                )
            self._open()
            self._write(hold.key, claim, record, output)
        finally:
            self._let_go(hold)

    def _release(self, claim: Claim) -> None:
        hold = self._held(claim, "release")
        try:
            if not hold.lost:
                self._open()
                if claim.state == "new":
                    self._delete(hold.key)
                else:  # it did not run after all
                    self._set_runs(hold.key, claim.runs)
        finally:
            self._let_go(hold)

    def _abandon_held(self, claim: Claim) -> None:
        self._let_go(self._held(claim, "abandon"))

    def _let_go(self, hold: _Hold) -> None:
        del self._holding[hold.key.key]
        try:
            if not hold.lost:
                self._unlock_quietly(hold.key)
        finally:
            _registry.drop(self._ident(), hold.key.key)

    def _unlock_quietly(self, key: _Key) -> None:
        """Release a lock on a path that is already raising (or must not raise)."""
        try:
            self._unlock(key)
        except self._errors as exc:
            log_event(
                logging.WARNING,
                "ledger_unlock_failed",
                ledger=self._where,
                error=self._detail(exc),
            )
            self._after_error()

    def _records(self, batch_id: str) -> dict[str, tuple[str, LedgerRecord | None]]:
        self._open()
        return {
            call_id: (state, record)
            for call_id, row_batch, state, record in self._select(_Key.of(batch_id, "").batch_key)
            if row_batch == batch_id
        }

    def _shutdown(self) -> None:
        if self._holding:
            log_event(
                logging.WARNING,
                "ledger_closed_with_held_calls",
                ledger=self._where,
                calls=len(self._holding),
            )
        for hold in list(self._holding.values()):
            hold.lost = True  # closing the connection lets them go; the rows stay
            with contextlib.suppress(Exception):
                self._let_go_on_close(hold)
            _registry.drop(self._ident(), hold.key.key)
        self._holding.clear()
        self._disconnect()

    # - what each backend provides (on the worker thread) -

    @abc.abstractmethod
    def _open(self) -> None:
        """Connect and create the table, if not done yet."""

    @abc.abstractmethod
    def _disconnect(self) -> None:
        """Close the connection and anything else open; never raises."""

    @abc.abstractmethod
    def _ident(self) -> Hashable:
        """What names this database in the process-wide registry of held calls."""

    @abc.abstractmethod
    def _lock(self, key: _Key) -> bool:
        """Take the call's lock without waiting; False if another process holds it."""

    @abc.abstractmethod
    def _unlock(self, key: _Key) -> None:
        """Release the call's lock."""

    def _let_go_on_close(self, hold: _Hold) -> None:
        """Release a held lock while closing (the connection's end may do it)."""
        self._unlock(hold.key)

    @abc.abstractmethod
    def _after_error(self) -> None:
        """Drop a broken connection; called when the backend raised."""

    @abc.abstractmethod
    def _detail(self, exc: BaseException) -> str:
        """What went wrong, from the backend's exception: no ids, no values."""

    @abc.abstractmethod
    def _read(self, key: _Key) -> _Row | None: ...

    @abc.abstractmethod
    def _insert(self, key: _Key, args_hash: str) -> None: ...

    @abc.abstractmethod
    def _set_runs(self, key: _Key, runs: int) -> None: ...

    @abc.abstractmethod
    def _write(self, key: _Key, claim: Claim, record: LedgerRecord, output: str) -> None: ...

    @abc.abstractmethod
    def _delete(self, key: _Key) -> None: ...

    @abc.abstractmethod
    def _select(self, batch_key: str) -> list[tuple[str, str, str, LedgerRecord | None]]:
        """``(call_id, batch_id, state, record)`` of the rows of one batch, in claim order."""


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:_DETAIL_CHARS]


_COLUMNS = "args_hash, state, runs, status, output, error, error_type, attempts"
_LIST = "call_id, batch_id, state, status, output, error, error_type, attempts"


def _row(values: Any) -> _Row:
    args_hash, state, runs, *record = values
    if state not in ("started", "finished") or not isinstance(runs, int):
        raise ValueError("a stored row is damaged")
    return _Row(_unescape(args_hash), state, runs, _decode(*record))


def _listed(values: Any) -> tuple[str, str, str, LedgerRecord | None]:
    call_id, batch_id, state, *record = values
    if state not in ("started", "finished"):
        raise ValueError("a stored row is damaged")
    return _unescape(call_id), _unescape(batch_id), state, _decode(*record)


def _finished_row(key: _Key, claim: Claim, record: LedgerRecord, output: str) -> tuple[Any, ...]:
    """The values of a finished call's row, in the order both backends' writes take them:
    key, batch_key, batch_id, call_id, args_hash, runs, status, output, error, error_type,
    attempts, started_at, finished_at (both now: an upsert keeps the row's own start)."""
    now = time.time()
    return (
        key.key,
        key.batch_key,
        _escape(key.batch_id),
        _escape(key.call_id),
        _escape(claim.args_hash),
        claim.runs + 1,
        record.status,
        output,
        _opt(record.error),
        _opt(record.error_type),
        record.attempts,
        now,
        now,
    )


class SQLiteLedger(CallLedger):
    """A call ledger in an SQLite file, shared by the processes of one machine.

    Locks are POSIX record locks on ``<path>.locks`` (not on network file systems whose locks
    are unreliable). The database runs in WAL mode with full sync, so a ``started`` row is on
    disk before the tool runs.
    """

    _backend = "sqlite"
    _errors = (sqlite3.Error, OSError)

    def __init__(self, path: str | os.PathLike[str], *, poll: float = 0.05) -> None:
        if sys.platform == "win32":  # pragma: no cover
            raise UsageError("SQLiteLedger needs POSIX record locks; use PostgresLedger")
        if not isinstance(path, str | os.PathLike):
            raise UsageError(f"SQLiteLedger needs a file path, got {type(path).__name__}")
        text = os.fspath(path)
        if not isinstance(text, str) or not text or text == ":memory:" or "\0" in text:
            raise UsageError(
                "SQLiteLedger needs the path of a database file that every process can open "
                "(not ':memory:', not empty, as text)"
            )
        self._path = os.path.abspath(text)
        if os.path.isdir(self._path):
            raise UsageError(
                f"SQLiteLedger({text!r}) is a directory: give the path of a database file in "
                f"it, such as {os.path.join(text, 'calls.db')!r}"
            )
        if not os.path.isdir(os.path.dirname(self._path)):
            raise UsageError(
                f"SQLiteLedger({text!r}): the folder {os.path.dirname(self._path)!r} does not "
                "exist; create it first"
            )
        super().__init__(poll=poll, where=self._path, name="toolweave-ledger-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._sidecar: _Sidecar | None = None

    def _open(self) -> None:
        if self._conn is not None:
            return
        conn = sqlite3.connect(self._path, timeout=30.0, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            with self._transaction(conn):
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS toolweave_calls ("
                    " key TEXT PRIMARY KEY, batch_key TEXT NOT NULL, batch_id TEXT NOT NULL,"
                    " call_id TEXT NOT NULL, args_hash TEXT NOT NULL, state TEXT NOT NULL,"
                    " runs INTEGER NOT NULL, status TEXT, output TEXT, error TEXT,"
                    " error_type TEXT, attempts INTEGER, started_at REAL NOT NULL,"
                    " finished_at REAL)"
                )
                conn.execute(
                    "CREATE INDEX IF NOT EXISTS toolweave_calls_batch"
                    " ON toolweave_calls (batch_key, started_at)"
                )
            self._sidecar = _registry.open_sidecar(self._path + ".locks")
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @staticmethod
    @contextlib.contextmanager
    def _transaction(conn: sqlite3.Connection) -> Any:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _write_sql(self, sql: str, params: tuple[Any, ...]) -> None:
        assert self._conn is not None
        with self._transaction(self._conn):
            self._conn.execute(sql, params)

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        if self._sidecar is not None:
            with contextlib.suppress(OSError):
                _registry.close_sidecar(self._sidecar)
            self._sidecar = None

    def _after_error(self) -> None:
        pass  # a file connection does not break; the next operation tries again

    def _ident(self) -> Hashable:
        return ("sqlite", self._sidecar.ident if self._sidecar is not None else self._path)

    def _lock(self, key: _Key) -> bool:
        assert self._sidecar is not None
        with _registry.lock:
            return self._sidecar.lock(key.lock)

    def _unlock(self, key: _Key) -> None:
        if self._sidecar is None:
            return
        with _registry.lock:
            self._sidecar.unlock(key.lock)

    def _detail(self, exc: BaseException) -> str:
        if isinstance(exc, OSError):
            return f"{exc.strerror or type(exc).__name__} ({self._path}.locks)"
        return _first_line(str(exc)) or type(exc).__name__

    def _read(self, key: _Key) -> _Row | None:
        assert self._conn is not None
        found = self._conn.execute(
            f"SELECT {_COLUMNS} FROM toolweave_calls WHERE key = ?", (key.key,)
        ).fetchone()
        return None if found is None else _row(found)

    def _insert(self, key: _Key, args_hash: str) -> None:
        self._write_sql(
            "INSERT INTO toolweave_calls (key, batch_key, batch_id, call_id, args_hash, state,"
            " runs, started_at) VALUES (?, ?, ?, ?, ?, 'started', 1, ?)",
            (
                key.key,
                key.batch_key,
                _escape(key.batch_id),
                _escape(key.call_id),
                _escape(args_hash),
                time.time(),
            ),
        )

    def _set_runs(self, key: _Key, runs: int) -> None:
        self._write_sql("UPDATE toolweave_calls SET runs = ? WHERE key = ?", (runs, key.key))

    def _write(self, key: _Key, claim: Claim, record: LedgerRecord, output: str) -> None:
        self._write_sql(
            "INSERT INTO toolweave_calls (key, batch_key, batch_id, call_id, args_hash, state,"
            " runs, status, output, error, error_type, attempts, started_at, finished_at)"
            " VALUES (?, ?, ?, ?, ?, 'finished', ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET state = 'finished', status = excluded.status,"
            " output = excluded.output, error = excluded.error,"
            " error_type = excluded.error_type, attempts = excluded.attempts,"
            " finished_at = excluded.finished_at",
            _finished_row(key, claim, record, output),
        )

    def _delete(self, key: _Key) -> None:
        self._write_sql(
            "DELETE FROM toolweave_calls WHERE key = ? AND state = 'started'", (key.key,)
        )

    def _select(self, batch_key: str) -> list[tuple[str, str, str, LedgerRecord | None]]:
        assert self._conn is not None
        found = self._conn.execute(
            f"SELECT {_LIST} FROM toolweave_calls WHERE batch_key = ? ORDER BY started_at, rowid",
            (batch_key,),
        ).fetchall()
        return [_listed(values) for values in found]


_TABLE = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]{0,56}\.)?[A-Za-z_][A-Za-z0-9_]{0,56}")


class PostgresLedger(CallLedger):
    """A call ledger in a PostgreSQL table (created if missing), shared by processes on any
    number of machines. Needs the ``postgres`` extra (psycopg 3).

    Each call's lock is a session advisory lock held on this ledger's connection while the call
    runs; the server drops it when the connection ends, as it does when the process dies. (A
    machine that vanishes without closing its connections holds them until the server's
    ``tcp_keepalives_*`` settings notice.) If the connection is lost while calls are held,
    ``finish()`` of those calls raises ``LedgerError`` and records nothing: another process may
    already have claimed them as interrupted.
    """

    _backend = "postgres"

    def __init__(self, dsn: str, *, table: str = "toolweave_calls", poll: float = 0.05) -> None:
        try:
            import psycopg
            from psycopg.conninfo import conninfo_to_dict
        except ImportError as exc:
            raise UsageError(
                "PostgresLedger needs psycopg 3: pip install 'toolweave[postgres]'"
            ) from exc
        if not isinstance(dsn, str):
            raise UsageError(f"PostgresLedger needs the DSN as a str, got {type(dsn).__name__}")
        if not isinstance(table, str):
            raise UsageError(f"table must be a str, got {type(table).__name__}")
        if not _TABLE.fullmatch(table):
            raise UsageError(
                "table must be a plain table name, optionally schema-qualified (letters, "
                f"digits and underscores, at most 57 characters each), got {table[:80]!r}"
            )
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.Error:
            # not chained: psycopg's message may quote the DSN, password and all
            raise UsageError(
                "PostgresLedger: the DSN is not a valid PostgreSQL connection string "
                "(postgresql://user@host:port/dbname or 'host=... dbname=...')"
            ) from None
        host = str(params.get("host") or params.get("hostaddr") or "localhost")
        port = str(params.get("port") or "5432")
        dbname = str(params.get("dbname") or params.get("user") or "")
        self._dsn = dsn
        self._options: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in params:
            self._options["connect_timeout"] = 10
        if "application_name" not in params:
            self._options["application_name"] = "toolweave-ledger"
        self._table = table
        self._location = (host, port, dbname, table)
        self._errors = (psycopg.Error, OSError)
        super().__init__(
            poll=poll,
            where=f"{host}:{port}/{dbname} (table {table})",
            name="toolweave-ledger-postgres",
        )
        self._conn: psycopg.Connection[Any] | None = None
        self._sql: dict[str, Any] = {}

    def _open(self) -> None:
        if self._conn is not None:
            if not self._conn.closed:
                return
            self._after_error()
        import psycopg
        from psycopg import sql

        conn = psycopg.connect(self._dsn, **self._options)
        try:
            table = sql.Identifier(*self._table.split("."))
            index = sql.Identifier(self._table.split(".")[-1] + "_batch")
            ddl_lock = int.from_bytes(_digest("toolweave-ddl", self._table)[:8], "big", signed=True)
            with conn.transaction():  # two processes creating the table at once: one waits
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (ddl_lock,))
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} ("
                        " key text PRIMARY KEY, batch_key text NOT NULL, batch_id text NOT NULL,"
                        " call_id text NOT NULL, args_hash text NOT NULL, state text NOT NULL,"
                        " runs bigint NOT NULL, status text, output text, error text,"
                        " error_type text, attempts bigint,"
                        " started_at double precision NOT NULL, finished_at double precision)"
                    ).format(table)
                )
                conn.execute(
                    sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (batch_key, started_at)").format(
                        index, table
                    )
                )
        except BaseException:
            conn.close()
            raise
        self._sql = {
            name: sql.SQL(text).format(table)
            for name, text in {
                "read": f"SELECT {_COLUMNS} FROM {{}} WHERE key = %s",
                "insert": "INSERT INTO {} (key, batch_key, batch_id, call_id, args_hash, state,"
                " runs, started_at) VALUES (%s, %s, %s, %s, %s, 'started', 1, %s)",
                "runs": "UPDATE {} SET runs = %s WHERE key = %s",
                "write": "INSERT INTO {} (key, batch_key, batch_id, call_id, args_hash, state,"
                " runs, status, output, error, error_type, attempts, started_at, finished_at)"
                " VALUES (%s, %s, %s, %s, %s, 'finished', %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (key) DO UPDATE SET state = 'finished', status = excluded.status,"
                " output = excluded.output, error = excluded.error,"
                " error_type = excluded.error_type, attempts = excluded.attempts,"
                " finished_at = excluded.finished_at",
                "delete": "DELETE FROM {} WHERE key = %s AND state = 'started'",
                "select": f"SELECT {_LIST} FROM {{}} WHERE batch_key = %s ORDER BY started_at, key",
            }.items()
        }
        self._conn = conn

    def _connection(self) -> psycopg.Connection[Any]:
        assert self._conn is not None
        return self._conn

    def _after_error(self) -> None:
        conn = self._conn
        if conn is None or not (conn.closed or conn.broken):
            return
        with contextlib.suppress(Exception):
            conn.close()
        self._conn = None
        for hold in self._holding.values():
            hold.lost = True

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _ident(self) -> Hashable:
        return ("postgres", *self._location)

    def _lock_id(self, key: _Key) -> int:
        return int.from_bytes(_digest(self._table, key.key)[:8], "big", signed=True)

    def _lock(self, key: _Key) -> bool:
        found = (
            self._connection()
            .execute("SELECT pg_try_advisory_lock(%s)", (self._lock_id(key),))
            .fetchone()
        )
        return bool(found and found[0])

    def _unlock(self, key: _Key) -> None:
        conn = self._connection()
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (self._lock_id(key),))
        except BaseException:
            # a lock that cannot be released must not outlive this: end the session
            with contextlib.suppress(Exception):
                conn.close()
            raise

    def _let_go_on_close(self, hold: _Hold) -> None:
        pass  # closing the connection releases its advisory locks

    def _detail(self, exc: BaseException) -> str:
        diag = getattr(exc, "diag", None)
        primary = getattr(diag, "message_primary", None)
        text = primary if isinstance(primary, str) and primary else str(exc)
        return _first_line(text) or type(exc).__name__

    def _read(self, key: _Key) -> _Row | None:
        found = self._connection().execute(self._sql["read"], (key.key,)).fetchone()
        return None if found is None else _row(found)

    def _insert(self, key: _Key, args_hash: str) -> None:
        self._connection().execute(
            self._sql["insert"],
            (
                key.key,
                key.batch_key,
                _escape(key.batch_id),
                _escape(key.call_id),
                _escape(args_hash),
                time.time(),
            ),
        )

    def _set_runs(self, key: _Key, runs: int) -> None:
        self._connection().execute(self._sql["runs"], (runs, key.key))

    def _write(self, key: _Key, claim: Claim, record: LedgerRecord, output: str) -> None:
        self._connection().execute(
            self._sql["write"],
            _finished_row(key, claim, record, output),
        )

    def _delete(self, key: _Key) -> None:
        self._connection().execute(self._sql["delete"], (key.key,))

    def _select(self, batch_key: str) -> list[tuple[str, str, str, LedgerRecord | None]]:
        found = self._connection().execute(self._sql["select"], (batch_key,)).fetchall()
        return [_listed(values) for values in found]
