"""Result caches: where the outputs of idempotent tools are kept for ``cache_ttl`` seconds.

    Cache                 what the engine uses: ``get``, ``set``, ``aclose``, ``close``
    ├── MemoryCache       this process only: an LRU dict behind a lock; keeps values as they are
    ├── SQLiteCache       one file that several processes share (WAL); values stored as JSON
    └── RedisCache        a Redis server that processes and machines share; values stored as JSON

    CacheError            a backend cannot be used (Redis down, file unwritable); the engine
                          counts the call as a miss

Keys are any text. SQLite and Redis store a SHA-256 of the key, never the key itself, and no
message or log line names a key or a value: keys derive from tool arguments.
Entries expire by each cache's ``clock``, so a fake clock makes expiry testable without sleeping.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import hashlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeGuard, TypeVar
from urllib.parse import SplitResult, urlsplit

from toolweave.telemetry._values import safe_str, safe_type_name

from ._errors import ToolweaveError, UsageError
from ._log import log_event

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["Cache", "CacheError", "CacheHit", "MemoryCache", "RedisCache", "SQLiteCache"]

T = TypeVar("T")

_PURGE_INTERVAL = 60.0
"""SQLite: seconds (by the cache's clock) between deletions of expired rows..."""
_PURGE_EVERY_SETS = 1000
"""...or this many stores, whichever comes first."""
_REDIS_EXPIRY_MARGIN_MS = 1000
"""Redis forgets an entry this long after it expires, so ``get`` (by ``clock``) decides."""
_REDIS_MAX_EXPIRY_MS = 10**15
"""The longest server-side expiry sent (about 31,000 years): Redis refuses larger ones."""
_REDIS_CLIENT_NAME = "toolweave-cache"


class CacheError(ToolweaveError):
    """A cache backend could not be used: the Redis server is down or does not answer, the
    SQLite file cannot be opened or written, or the cache was closed. Raised by ``get`` and
    ``set``; the engine logs it and runs the call as if the cache had missed.

    The message names the backend and its address (a URL without credentials, or a path),
    never the key or the value."""

    def __init__(self, detail: str, *, backend: str, address: str) -> None:
        self.backend = backend
        """``"memory"``, ``"SQLite"`` or ``"Redis"``."""
        self.address = address
        """Where the cache is: a file path, or a Redis URL with any credentials masked."""
        self.detail = detail
        super().__init__(f"{backend} cache at {address}: {detail}")


@dataclass(frozen=True, slots=True)
class CacheHit:
    """What ``Cache.get`` found: the stored value and when it was stored and expires."""

    value: Any
    """The tool's output as stored (for JSON backends, a fresh copy decoded from JSON)."""
    stored_at: float
    """When it was stored, in seconds by the storing cache's clock."""
    expires_at: float
    """When it stops being served: ``stored_at + ttl``."""


class Cache(abc.ABC):
    """Base of result caches: where an idempotent tool's outputs are kept for ``cache_ttl``
    seconds. Every method may be called from any event loop; ``get`` and ``set`` raise
    ``CacheError`` when the backend cannot be used. Use it as a (sync or async) context
    manager, or call ``aclose()``/``close()`` when done."""

    clock: Callable[[], float]
    """Seconds, for ``stored_at``/``expires_at``; ``time.time`` unless a test passes its own."""

    @abc.abstractmethod
    async def get(self, key: str) -> CacheHit | None:
        """The entry stored under ``key``, or ``None`` if there is none or it has expired."""

    @abc.abstractmethod
    async def set(self, key: str, value: Any, ttl: float) -> bool:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any entry there.
        Returns ``False`` when the value cannot be stored (for JSON backends: not JSON, or
        not the same after a JSON round trip) and logs why at DEBUG. Raises ``UsageError``
        when ``ttl`` is not a positive finite number."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release connections and threads. Calling it again does nothing; after it, ``get``
        and ``set`` raise ``CacheError``."""

    @abc.abstractmethod
    def close(self) -> None:
        """``aclose()`` for code without an event loop. Calling it again does nothing."""

    async def __aenter__(self) -> Self:
        """The cache itself; ``aclose()`` runs on leaving the block."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Calls ``aclose()``."""
        await self.aclose()

    def __enter__(self) -> Self:
        """The cache itself; ``close()`` runs on leaving the block."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Calls ``close()``."""
        self.close()


class MemoryCache(Cache):
    """Entries in this process: at most ``max_entries``, and the least recently used one goes
    when a new one needs room. Values are kept as they are (no copy, any object), so a caller
    that mutates a value it got mutates the cached one. Thread-safe: orchestrators on
    different threads and event loops may share one."""

    def __init__(self, max_entries: int = 1024, *, clock: Callable[[], float] = time.time) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise UsageError(
                f"MemoryCache(max_entries={safe_str(max_entries, 60)}): max_entries must be an "
                "int >= 1, e.g. MemoryCache(max_entries=1024)"
            )
        self.clock = _checked_clock(clock, "MemoryCache")
        self.max_entries = max_entries
        """How many entries it keeps at most."""
        self._entries: OrderedDict[str, CacheHit] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self._closed = False

    async def get(self, key: str) -> CacheHit | None:
        """The entry under ``key`` (the very object stored), or ``None``; a hit makes it the
        most recently used."""
        _check_key(key)
        now = self.clock()
        with self._lock:
            self._check_open()
            hit = self._entries.get(key)
            if hit is None:
                return None
            if now >= hit.expires_at:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return hit

    async def set(self, key: str, value: Any, ttl: float) -> bool:
        """Keep ``value`` itself under ``key`` for ``ttl`` seconds; always ``True``."""
        _check_key(key)
        ttl = _checked_ttl(ttl, "MemoryCache")
        now = self.clock()
        hit = CacheHit(value, now, now + ttl)
        with self._lock:
            self._check_open()
            self._entries[key] = hit
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return True

    async def aclose(self) -> None:
        """Drop every entry; later ``get``/``set`` raise ``CacheError``."""
        self.close()

    def close(self) -> None:
        """Drop every entry; later ``get``/``set`` raise ``CacheError``."""
        with self._lock:
            self._closed = True
            self._entries.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise CacheError(
                "the cache was closed; create a new MemoryCache",
                backend="memory",
                address="this process",
            )


class SQLiteCache(Cache):
    """Entries in one SQLite file that several processes may use at once (WAL journal).
    Values are stored as JSON text; a value JSON cannot encode, or one that would come back
    different (a tuple, a dict with non-string keys), is not stored.

    Database work runs in one worker thread per cache, which opens the connection, so the event
    loop never waits on the disk or on another process's lock (up to ``busy_timeout`` seconds).
    Expired rows are deleted now and then while storing."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 5.0,
    ) -> None:
        try:
            text = os.fspath(path)
        except TypeError:
            text = None
        if not isinstance(text, str) or not text:
            raise UsageError(
                f"SQLiteCache(path={safe_str(path, 80)}): path must be a file path (str or "
                "pathlib.Path), e.g. SQLiteCache('toolweave-cache.db')"
            )
        if os.path.isdir(text):
            suggestion = os.path.join(text, "toolweave-cache.db")
            raise UsageError(
                f"SQLiteCache(path={text!r}): path is a directory; give a file in it, "
                f"e.g. SQLiteCache({suggestion!r})"
            )
        if not _is_number(busy_timeout) or not 0 <= busy_timeout < math.inf:
            raise UsageError(
                f"SQLiteCache(busy_timeout={safe_str(busy_timeout, 60)}): busy_timeout must be "
                "a finite number of seconds >= 0, e.g. busy_timeout=5.0"
            )
        self.clock = _checked_clock(clock, "SQLiteCache")
        self.path = text
        """The database file."""
        self._busy_timeout = float(busy_timeout)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="toolweave-sqlite"
        )
        self._lock = threading.Lock()
        self._closed = False
        self._used = False
        # Touched only in the worker thread:
        self._conn: sqlite3.Connection | None = None
        self._last_purge = -math.inf
        self._sets_since_purge = 0

    async def get(self, key: str) -> CacheHit | None:
        """The entry under ``key`` decoded from JSON, or ``None`` (also for a row this cache
        cannot read)."""
        digest = _digest(key)
        return await self._run(self._get, digest, self.clock())

    async def set(self, key: str, value: Any, ttl: float) -> bool:
        """Store ``value`` as JSON under ``key`` for ``ttl`` seconds; ``False`` (and a DEBUG
        log) when it is not JSON data."""
        digest = _digest(key)
        ttl = _checked_ttl(ttl, "SQLiteCache")
        return await self._run(self._set, digest, value, self.clock(), ttl)

    async def aclose(self) -> None:
        """Close the connection and end the worker thread."""
        if not self._mark_closed():
            return
        if self._used:
            try:
                await asyncio.wrap_future(self._executor.submit(self._disconnect))
            except sqlite3.Error as exc:
                _log_close_failure("SQLite", exc)
        self._executor.shutdown(wait=True)  # the thread has nothing left to do: brief

    def close(self) -> None:
        """Close the connection and end the worker thread."""
        if not self._mark_closed():
            return
        if self._used:
            try:
                self._executor.submit(self._disconnect).result()
            except sqlite3.Error as exc:
                _log_close_failure("SQLite", exc)
        self._executor.shutdown(wait=True)

    def _mark_closed(self) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            return True

    def _error(self, detail: str) -> CacheError:
        return CacheError(detail, backend="SQLite", address=self.path)

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if self._closed:
                raise self._error("the cache was closed; create a new SQLiteCache")
            try:
                future = self._executor.submit(work, *args)
            except RuntimeError as exc:  # the interpreter is shutting down
                raise self._error(f"cannot be used now ({safe_str(exc)})") from exc
            self._used = True
        try:
            return await asyncio.wrap_future(future)
        except sqlite3.Error as exc:
            raise self._error(
                f"cannot be used ({safe_type_name(exc)}: {safe_str(exc)}); check that the file "
                "is an SQLite database in a folder that exists and is writable"
            ) from exc

    # In the worker thread from here on.

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS toolweave_cache (key TEXT PRIMARY KEY, "
                    "value BLOB NOT NULL, stored_at REAL NOT NULL, expires_at REAL NOT NULL) "
                    "WITHOUT ROWID"
                )
                conn.execute(
                    "CREATE INDEX IF NOT EXISTS toolweave_cache_expires_at "
                    "ON toolweave_cache (expires_at)"
                )
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _reset_on_error(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return work(self._connection())
        except sqlite3.Error:
            self._disconnect()  # reconnect next time: the file may have been replaced
            raise

    def _get(self, digest: str, now: float) -> CacheHit | None:
        row = self._reset_on_error(
            lambda conn: conn.execute(
                "SELECT value, stored_at, expires_at FROM toolweave_cache WHERE key = ?",
                (digest,),
            ).fetchone()
        )
        if row is None:
            return None
        data, stored_at, expires_at = row
        if not (isinstance(data, bytes) and _is_number(stored_at) and _is_number(expires_at)):
            _log_unreadable("SQLite", "a row of the wrong types")
            return None
        if now >= expires_at:
            return None
        found, value = _decode(data, "SQLite")
        return CacheHit(value, float(stored_at), float(expires_at)) if found else None

    def _set(self, digest: str, value: Any, now: float, ttl: float) -> bool:
        data = _encode(value, "SQLite")
        if data is None:
            return False

        def store(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO toolweave_cache (key, value, stored_at, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (digest, data, now, now + ttl),
            )
            self._sets_since_purge += 1
            if (
                now - self._last_purge >= _PURGE_INTERVAL
                or self._sets_since_purge >= _PURGE_EVERY_SETS
            ):
                conn.execute("DELETE FROM toolweave_cache WHERE expires_at <= ?", (now,))
                self._last_purge = now
                self._sets_since_purge = 0

        self._reset_on_error(store)
        return True

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


@dataclass(eq=False)
class _LoopClient:
    """The Redis client of one event loop, and the async generator that closes it when the
    loop shuts down its async generators (``asyncio.run`` and ``run_sync`` do)."""

    client: Redis
    closer: AsyncGenerator[None, None]


class RedisCache(Cache):
    """Entries on a Redis server, under ``prefix`` followed by the SHA-256 of the key. Values
    are stored as JSON ``{"v": value, "s": stored_at, "e": expires_at}``, with a server-side
    expiry a little after ``expires_at`` so Redis drops them; ``get`` decides by ``clock``.

    Needs the ``redis`` package: ``pip install 'toolweave[redis]'``. A redis.asyncio client
    works only on the event loop it was first used on, so the cache keeps one client per loop;
    a loop's client is closed when that loop shuts down (at the end of ``asyncio.run`` or
    ``Orchestrator.run_sync``) or by ``aclose()``/``close()``."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "toolweave:cache:",
        clock: Callable[[], float] = time.time,
        socket_timeout: float = 2.0,
    ) -> None:
        try:
            import redis.asyncio  # noqa: F401
        except ImportError as exc:
            raise UsageError(
                "RedisCache needs the redis package: pip install 'toolweave[redis]'"
            ) from exc
        from redis.asyncio.connection import parse_url

        self.address = _checked_redis_url(url)
        """The server's URL with any credentials and query masked: safe to show."""
        try:
            parse_url(url)
        except ValueError as exc:
            raise UsageError(
                f"RedisCache(url={self.address!r}): {safe_str(exc)}; "
                "write it like redis://127.0.0.1:6379/0"
            ) from exc
        if not isinstance(prefix, str):
            raise UsageError(
                f"RedisCache(prefix={safe_str(prefix, 60)}): prefix must be a str, "
                "e.g. prefix='toolweave:cache:'"
            )
        if not _is_number(socket_timeout) or not 0 < socket_timeout < math.inf:
            raise UsageError(
                f"RedisCache(socket_timeout={safe_str(socket_timeout, 60)}): socket_timeout "
                "must be a positive finite number of seconds, e.g. socket_timeout=2.0"
            )
        self.clock = _checked_clock(clock, "RedisCache")
        self.prefix = prefix
        """What every key this cache writes begins with."""
        self._prefix = prefix.encode("utf-8", "surrogatepass")
        self._url = url
        self._socket_timeout = float(socket_timeout)
        self._clients: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
        self._lock = threading.Lock()
        self._closed = False

    async def get(self, key: str) -> CacheHit | None:
        """The entry under ``key`` decoded from JSON, or ``None`` (also for an entry this
        cache cannot read, such as one another program wrote under the prefix)."""
        from redis.exceptions import RedisError

        name = self._name(key)
        client = await self._client()
        try:
            data = await client.get(name)
        except (RedisError, OSError) as exc:
            raise self._unreachable(exc) from exc
        if data is None:
            return None
        found, entry = _decode(data, "Redis") if isinstance(data, bytes) else (False, None)
        if not (
            found
            and isinstance(entry, dict)
            and entry.keys() == {"v", "s", "e"}
            and _is_number(entry["s"])
            and _is_number(entry["e"])
        ):
            _log_unreadable("Redis", "an entry of the wrong shape")
            return None
        if self.clock() >= entry["e"]:
            return None
        return CacheHit(entry["v"], float(entry["s"]), float(entry["e"]))

    async def set(self, key: str, value: Any, ttl: float) -> bool:
        """Store ``value`` as JSON under ``key`` for ``ttl`` seconds; ``False`` (and a DEBUG
        log) when it is not JSON data."""
        from redis.exceptions import RedisError

        name = self._name(key)
        ttl = _checked_ttl(ttl, "RedisCache")
        data = _encode(value, "Redis")
        if data is None:
            return False
        now = self.clock()
        times = json.dumps({"s": now, "e": now + ttl}, separators=(",", ":"))
        payload = b'{"v":' + data + b"," + times[1:].encode()
        expiry = min(math.ceil(ttl * 1000) + _REDIS_EXPIRY_MARGIN_MS, _REDIS_MAX_EXPIRY_MS)
        client = await self._client()
        try:
            await client.set(name, payload, px=expiry)
        except (RedisError, OSError) as exc:
            raise self._unreachable(exc) from exc
        return True

    async def aclose(self) -> None:
        """Close the clients of this loop and of loops running in other threads. A client
        whose loop is idle is closed when that loop shuts down."""
        entries = self._mark_closed()
        if entries is None:
            return
        current = asyncio.get_running_loop()
        for loop, entry in entries:
            if loop is current:
                await _shut(entry)
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(_shut(entry), loop)
                try:
                    await asyncio.wait_for(
                        asyncio.wrap_future(future), timeout=self._socket_timeout * 2
                    )
                except (TimeoutError, RuntimeError) as exc:
                    _log_close_failure("Redis", exc)

    def close(self) -> None:
        """``aclose()`` without awaiting: inside a running loop, that loop's client is closed
        as soon as the caller yields to the loop."""
        entries = self._mark_closed()
        if entries is None:
            return
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, entry in entries:
            if loop is current:
                task = loop.create_task(_shut(entry))
                _closing.add(task)
                task.add_done_callback(_closing.discard)
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(_shut(entry), loop)
                try:
                    future.result(timeout=self._socket_timeout * 2)
                except (TimeoutError, RuntimeError) as exc:
                    _log_close_failure("Redis", exc)

    def _mark_closed(self) -> list[tuple[asyncio.AbstractEventLoop, _LoopClient]] | None:
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            return list(self._clients.items())

    def _name(self, key: str) -> bytes:
        return self._prefix + _digest(key).encode()

    def _unreachable(self, exc: BaseException) -> CacheError:
        return CacheError(
            f"the server did not answer ({safe_type_name(exc)}: {safe_str(exc)}); "
            "check that it is running and reachable",
            backend="Redis",
            address=self.address,
        )

    async def _client(self) -> Redis:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise CacheError(
                    "the cache was closed; create a new RedisCache",
                    backend="Redis",
                    address=self.address,
                )
            entry = self._clients.get(loop)
            if entry is not None:
                return entry.client
            for old in [old for old in self._clients if old.is_closed()]:
                del self._clients[old]  # closed without shutting down its async generators
            client = Redis.from_url(
                self._url,
                socket_timeout=self._socket_timeout,
                socket_connect_timeout=self._socket_timeout,
                retry=Retry(NoBackoff(), 1),  # once, for a pooled connection the server dropped
                client_name=_REDIS_CLIENT_NAME,
            )
            entry = _LoopClient(client, self._closer(loop, client))
            self._clients[loop] = entry
        # The first step registers the generator with the loop (its firstiter hook), so the
        # loop's shutdown_asyncgens() runs its finally block; the step never suspends.
        await anext(entry.closer)
        return client

    async def _closer(
        self, loop: asyncio.AbstractEventLoop, client: Redis
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                entry = self._clients.get(loop)
                if entry is not None and entry.client is client:
                    del self._clients[loop]
            await _close_client(client)


_closing: set[asyncio.Task[None]] = set()
"""Tasks started by ``RedisCache.close()`` inside a running loop, kept until they finish."""


async def _shut(entry: _LoopClient) -> None:
    await entry.closer.aclose()  # runs the closer's finally block, on the client's loop


async def _close_client(client: Redis) -> None:
    from redis.exceptions import RedisError

    try:
        await client.aclose()
    except (RedisError, OSError) as exc:
        _log_close_failure("Redis", exc)


def _checked_redis_url(url: object) -> str:
    """``url`` with credentials masked and the query dropped, after checking its scheme."""
    if not isinstance(url, str):
        raise UsageError(
            f"RedisCache(url={safe_str(url, 60)}): url must be a str, "
            "e.g. 'redis://127.0.0.1:6379/0'"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("redis", "rediss", "unix"):
        shown = f"{parts.scheme}://..." if parts is not None and parts.scheme else "..."
        raise UsageError(
            f"RedisCache(url={shown!r}): url must start with redis://, rediss:// or unix://, "
            "e.g. 'redis://127.0.0.1:6379/0' or 'unix:///run/redis/redis.sock'"
        )
    db = parts.path.strip("/")
    if parts.scheme != "unix" and db and not (db.isascii() and db.isdigit()):
        # redis-py would quietly use database 0 for such a path
        raise UsageError(
            f"RedisCache(url={_masked(parts)!r}): the path must be a database number, "
            "e.g. 'redis://127.0.0.1:6379/0'"
        )
    return _masked(parts)


def _masked(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    user = "***@" if parts.username or parts.password else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def _checked_clock(clock: object, owner: str) -> Callable[[], float]:
    if not callable(clock):
        raise UsageError(
            f"{owner}(clock={safe_str(clock, 60)}): clock must be a function returning seconds, "
            "e.g. clock=time.time"
        )
    return clock


def _checked_ttl(ttl: object, owner: str) -> float:
    if not _is_number(ttl) or not 0 < ttl < math.inf:
        raise UsageError(
            f"{owner}.set(ttl={safe_str(ttl, 60)}): ttl must be a positive finite number of "
            "seconds, e.g. ttl=300"
        )
    return float(ttl)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise UsageError(f"cache keys must be str, not {safe_type_name(key)}")


def _digest(key: str) -> str:
    """A fixed-size name for any text: surrogatepass makes lone surrogates encodable, and
    UTF-8 stays one-to-one, so distinct keys keep distinct digests."""
    _check_key(key)
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _encode(value: Any, backend: str) -> bytes | None:
    """``value`` as compact JSON in UTF-8 (lone surrogates kept), or ``None`` when it is not
    JSON data or would not come back equal."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        same = json.loads(text) == value
    except (TypeError, ValueError, RecursionError) as exc:
        _log_not_stored(backend, f"{safe_type_name(exc)}: {safe_str(exc, 200)}")
        return None
    if not same:
        _log_not_stored(
            backend, "it would not come back equal from JSON (a tuple, or dict keys not str?)"
        )
        return None
    return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes, backend: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(data.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        _log_unreadable(backend, "an entry that is not JSON")
        return False, None


def _log_not_stored(backend: str, reason: str) -> None:
    log_event(logging.DEBUG, "cache.not_stored", backend=backend, reason=reason)


def _log_unreadable(backend: str, what: str) -> None:
    log_event(logging.DEBUG, "cache.unreadable", backend=backend, found=what)


def _log_close_failure(backend: str, exc: BaseException) -> None:
    log_event(
        logging.DEBUG,
        "cache.close_failed",
        backend=backend,
        error=f"{safe_type_name(exc)}: {safe_str(exc, 200)}",
    )
