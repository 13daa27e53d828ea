"""Result caches against real backends: a SQLite file shared by processes, a real redis-server.

Expiry is checked on a fake clock, never by sleeping.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_server import RedisServer, redis_server, redis_url  # noqa: F401

from toolweave import (
    Cache,
    CacheError,
    CacheHit,
    MemoryCache,
    RedisCache,
    SQLiteCache,
    UsageError,
)

SECRET_KEY = "tool=lookup args={'ssn': '078-05-1120'}"
"""A key that must never show in an error message or a log line."""

HOSTILE_KEYS = [
    pytest.param("", id="empty"),
    pytest.param("a", id="a"),
    pytest.param("a\x00", id="nul-at-end"),
    pytest.param("a\x00b", id="nul-inside"),
    pytest.param("\ud800", id="lone-high-surrogate"),
    pytest.param("\udc00", id="lone-low-surrogate"),
    pytest.param("\ud83d\ude00", id="surrogate-pair-as-two-code-points"),
    pytest.param("\U0001f600", id="emoji"),
    pytest.param("\u00e9", id="e-acute-nfc"),
    pytest.param("e\u0301", id="e-acute-nfd"),
    pytest.param("x" * 10_000, id="10kB"),
    pytest.param("x" * 10_000 + "y", id="10kB-plus-one"),
    pytest.param("\n\r\t\\\"'", id="controls-and-quotes"),
]


class FakeClock:
    """Seconds that move only when a test says so."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _connections(url: str) -> int:
    """How many connections toolweave caches hold open on the server at ``url``."""
    with redis.Redis.from_url(url) as admin:
        return sum(1 for c in admin.client_list() if c.get("name") == "toolweave-cache")


def _wait_for_no_connections(url: str) -> None:
    deadline = time.monotonic() + 20.0  # the server notices a closed socket on its next poll
    while _connections(url) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _connections(url) == 0


def _toolweave_keys(url: str, prefix: str) -> list[bytes]:
    with redis.Redis.from_url(url) as admin:
        return list(admin.scan_iter(match=prefix + "*"))


MakeCache = Callable[..., Cache]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeCache]:
    """Builds caches of one backend (a fresh file, or a fresh prefix on the session's server)
    and closes them after the test."""
    made: list[Cache] = []

    def make(clock: Callable[[], float] = time.time) -> Cache:
        cache: Cache
        if request.param == "memory":
            cache = MemoryCache(clock=clock)
        elif request.param == "sqlite":
            cache = SQLiteCache(tmp_path / "cache.db", clock=clock)
        else:
            url = request.getfixturevalue("redis_url")
            cache = RedisCache(url, prefix=f"test:{uuid.uuid4().hex}:", clock=clock)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


# Narrows make_cache to the backends that store JSON.
make_cache_json = pytest.mark.parametrize("make_cache", ["sqlite", "redis"], indirect=True)


# --- every backend --------------------------------------------------------------------------


def test_a_miss_then_a_hit_then_an_overwrite(make_cache: MakeCache) -> None:
    clock = FakeClock(1_000.0)
    cache = make_cache(clock)

    async def main() -> tuple[Any, ...]:
        miss = await cache.get("weather:paris")
        stored = await cache.set("weather:paris", {"temp": 21.5, "sky": ["sun"]}, 60)
        hit = await cache.get("weather:paris")
        clock.now = 1_005.0
        await cache.set("weather:paris", {"temp": 3}, 30)
        again = await cache.get("weather:paris")
        return miss, stored, hit, again

    miss, stored, hit, again = asyncio.run(main())
    assert miss is None
    assert stored is True
    assert hit == CacheHit({"temp": 21.5, "sky": ["sun"]}, 1_000.0, 1_060.0)
    assert again == CacheHit({"temp": 3}, 1_005.0, 1_035.0)


def test_an_entry_expires_by_the_caches_clock(make_cache: MakeCache) -> None:
    clock = FakeClock(1_000.0)
    cache = make_cache(clock)

    async def at(now: float) -> CacheHit | None:
        clock.now = now
        return await cache.get("k")

    asyncio.run(cache.set("k", "v", 10))
    assert asyncio.run(at(1_009.999)) == CacheHit("v", 1_000.0, 1_010.0)
    assert asyncio.run(at(1_010.0)) is None


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_keys_stay_distinct(make_cache: MakeCache, key: str) -> None:
    cache = make_cache()
    keys = [p.values[0] for p in HOSTILE_KEYS]
    others = [k for k in keys if k != key]

    async def main() -> tuple[CacheHit | None, list[CacheHit | None]]:
        await cache.set(key, {"key": keys.index(key)}, 60)
        return await cache.get(key), [await cache.get(k) for k in others]

    hit, misses = asyncio.run(main())
    assert hit is not None
    assert hit.value == {"key": keys.index(key)}
    assert misses == [None] * len(others)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("\ud800 lone surrogate", id="lone-surrogate"),
        pytest.param("nul \x00 and \u2028 and \U0001f600", id="odd-text"),
        pytest.param({"": None, "a\x00": [True, False, 0, -0.0, 1e308, 2**63]}, id="odd-json"),
        pytest.param("x" * 1_000_000, id="1MB-string"),
        pytest.param(12345678901234567890123456789, id="big-int"),
    ],
)
def test_json_values_come_back_equal(make_cache: MakeCache, value: Any) -> None:
    cache = make_cache()

    async def main() -> CacheHit | None:
        assert await cache.set("k", value, 60) is True
        return await cache.get("k")

    hit = asyncio.run(main())
    assert hit is not None
    assert hit.value == value
    assert type(hit.value) is type(value)


@pytest.mark.parametrize(
    ("ttl", "shown"),
    [
        pytest.param(0, "ttl=0", id="zero"),
        pytest.param(-5, "ttl=-5", id="negative"),
        pytest.param(math.nan, "ttl=nan", id="nan"),
        pytest.param(math.inf, "ttl=inf", id="inf"),
        pytest.param(True, "ttl=True", id="bool"),
        pytest.param("60", "ttl=60", id="text"),
    ],
)
def test_set_refuses_a_ttl_that_is_not_a_positive_finite_number(
    make_cache: MakeCache, ttl: Any, shown: str
) -> None:
    cache = make_cache()
    with pytest.raises(UsageError, match="ttl must be a positive finite number") as caught:
        asyncio.run(cache.set("k", 1, ttl))
    assert f"{type(cache).__name__}.set({shown})" in str(caught.value)


def test_closing_twice_is_fine_and_a_closed_cache_says_so(make_cache: MakeCache) -> None:
    cache = make_cache()
    asyncio.run(cache.set("k", 1, 60))
    asyncio.run(cache.aclose())
    asyncio.run(cache.aclose())
    cache.close()
    cache.close()
    with pytest.raises(CacheError, match="the cache was closed; create a new"):
        asyncio.run(cache.get("k"))
    with pytest.raises(CacheError, match="the cache was closed"):
        asyncio.run(cache.set("k", 1, 60))


def test_a_cache_closes_as_a_context_manager(make_cache: MakeCache) -> None:
    cache = make_cache()

    async def main() -> None:
        async with cache as same:
            assert same is cache
            await cache.set("k", 1, 60)

    asyncio.run(main())
    with pytest.raises(CacheError, match="closed"):
        asyncio.run(cache.get("k"))
    with make_cache() as other:
        asyncio.run(other.set("k", 1, 60))
    with pytest.raises(CacheError, match="closed"):
        asyncio.run(other.get("k"))


def test_keys_must_be_text(make_cache: MakeCache) -> None:
    cache = make_cache()
    with pytest.raises(UsageError, match="cache keys must be str, not bytes"):
        asyncio.run(cache.get(b"k"))  # type: ignore[arg-type]


# --- values JSON cannot carry -----------------------------------------------------------------


class Opaque:
    pass


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


NOT_JSON = [
    pytest.param(Opaque(), "not JSON serializable", id="object"),
    pytest.param(math.nan, "Out of range float", id="nan"),
    pytest.param({"x": [1, -math.inf]}, "Out of range float", id="inf-inside"),
    pytest.param({1: "a"}, "would not come back equal", id="int-dict-key"),
    pytest.param((1, 2), "would not come back equal", id="tuple"),
    pytest.param({"s": {1, 2}}, "not JSON serializable", id="set-inside"),
    pytest.param(10**5000, "ValueError", id="int-past-the-str-limit"),
    pytest.param(_nested(100_000), "RecursionError", id="nested-100k-deep"),
]


@make_cache_json
@pytest.mark.parametrize(("value", "reason"), NOT_JSON)
def test_a_value_json_cannot_carry_is_not_stored(
    make_cache: MakeCache, value: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_cache()

    async def main() -> tuple[bool, CacheHit | None]:
        stored = await cache.set(SECRET_KEY, value, 60)
        return stored, await cache.get(SECRET_KEY)

    with caplog.at_level(logging.DEBUG, logger="toolweave"):
        stored, hit = asyncio.run(main())
    assert stored is False
    assert hit is None
    [record] = [r for r in caplog.records if "cache.not_stored" in r.getMessage()]
    assert reason in record.getMessage()
    assert "078-05-1120" not in caplog.text


def test_memory_keeps_the_object_itself() -> None:
    cache = MemoryCache()
    value = Opaque()
    nan = {"x": math.nan}

    async def main() -> tuple[CacheHit | None, CacheHit | None]:
        assert await cache.set("object", value, 60) is True
        assert await cache.set("nan", nan, 60) is True
        return await cache.get("object"), await cache.get("nan")

    got, got_nan = asyncio.run(main())
    assert got is not None
    assert got.value is value
    assert got_nan is not None
    assert got_nan.value is nan


# --- MemoryCache ------------------------------------------------------------------------------


def test_memory_evicts_the_least_recently_used_entry() -> None:
    cache = MemoryCache(max_entries=2)

    async def main() -> list[bool]:
        await cache.set("a", 1, 60)
        await cache.set("b", 2, 60)
        await cache.get("a")  # now b is the least recently used
        await cache.set("c", 3, 60)
        return [await cache.get(k) is not None for k in ("a", "b", "c")]

    assert asyncio.run(main()) == [True, False, True]


def test_memory_overwriting_does_not_evict() -> None:
    cache = MemoryCache(max_entries=2)

    async def main() -> list[Any]:
        await cache.set("a", 1, 60)
        await cache.set("b", 2, 60)
        await cache.set("a", 10, 60)
        hits = [await cache.get(k) for k in ("a", "b")]
        return [h.value if h else None for h in hits]

    assert asyncio.run(main()) == [10, 2]


@pytest.mark.parametrize("max_entries", [10_000, 50])
def test_memory_is_shared_by_threads_with_their_own_loops(max_entries: int) -> None:
    cache = MemoryCache(max_entries=max_entries)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        async def main() -> None:
            for i in range(300):
                await cache.set(f"{n}-{i}", i, 60)
                await cache.get(f"{n}-{(i * 7) % 300}")

        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    hits = [asyncio.run(cache.get(f"{n}-{i}")) for n in range(4) for i in range(300)]
    kept = [hit.value for hit in hits if hit is not None]
    assert len(kept) == min(max_entries, 1200)
    if max_entries > 1200:
        assert kept == [i for _ in range(4) for i in range(300)]


# --- SQLiteCache ------------------------------------------------------------------------------

_SQLITE_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from toolweave import SQLiteCache

    path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cache = SQLiteCache(path, clock=lambda: 1000.0)

    async def main():
        for i in range(n):
            assert await cache.set(f"{tag}-{i}", {"tag": tag, "i": i}, 60)

    asyncio.run(main())
    # not closed on purpose: its worker thread must not keep the process alive
    """
)


def test_sqlite_is_shared_by_processes_writing_at_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    cache = SQLiteCache(path, clock=FakeClock(1_001.0))
    asyncio.run(cache.set("parent-first", "hello", 60))  # the parent holds a connection open
    children = [
        subprocess.Popen([sys.executable, "-c", _SQLITE_WRITER, str(path), tag, "200"])
        for tag in ("one", "two")
    ]

    async def write_too() -> None:
        for i in range(200):
            await cache.set(f"parent-{i}", {"tag": "parent", "i": i}, 60)

    asyncio.run(write_too())
    assert [c.wait(timeout=120) for c in children] == [0, 0]

    async def read_all() -> dict[str, CacheHit | None]:
        keys = [f"{tag}-{i}" for tag in ("one", "two", "parent") for i in range(200)]
        return {k: await cache.get(k) for k in keys}

    found = asyncio.run(read_all())
    assert found["one-7"] == CacheHit({"tag": "one", "i": 7}, 1_000.0, 1_060.0)
    assert all(
        hit is not None and hit.value["i"] == int(k.rsplit("-")[1]) for k, hit in found.items()
    )
    cache.close()


def test_sqlite_deletes_expired_rows_now_and_then(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    clock = FakeClock(0.0)
    cache = SQLiteCache(path, clock=clock)

    async def fill() -> None:
        for i in range(20):
            await cache.set(f"old-{i}", i, 1)

    asyncio.run(fill())
    clock.now = 1_000.0
    asyncio.run(cache.set("new", 1, 60))
    cache.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM toolweave_cache").fetchone() == (1,)


def test_sqlite_leaves_no_thread_behind(tmp_path: Path) -> None:
    def workers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("toolweave-sqlite")]

    before = workers()
    cache = SQLiteCache(tmp_path / "cache.db")
    asyncio.run(cache.set("k", 1, 60))
    assert len(workers()) == len(before) + 1
    cache.close()
    assert workers() == before

    other = SQLiteCache(tmp_path / "cache.db")
    asyncio.run(other.get("k"))
    asyncio.run(other.aclose())
    assert workers() == before


def test_sqlite_that_cannot_open_its_file_raises_a_cache_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    path = tmp_path / "a-file" / "cache.db"
    cache = SQLiteCache(path)
    with pytest.raises(CacheError) as caught:
        asyncio.run(cache.set(SECRET_KEY, "value", 60))
    message = str(caught.value)
    assert message.startswith(f"SQLite cache at {path}: cannot be used (OperationalError: ")
    assert "in a folder that exists and is writable" in message
    assert "078-05-1120" not in message
    with pytest.raises(CacheError, match="unable to open database file"):
        asyncio.run(cache.get(SECRET_KEY))
    cache.close()


def test_sqlite_on_a_file_that_is_not_a_database_raises_a_cache_error(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    path.write_bytes(b"\x00garbage\xff" * 1000)
    cache = SQLiteCache(path)
    with pytest.raises(CacheError, match="file is not a database") as caught:
        asyncio.run(cache.get(SECRET_KEY))
    assert caught.value.backend == "SQLite"
    assert caught.value.address == str(path)
    assert "078-05-1120" not in str(caught.value)
    cache.close()


def test_sqlite_recovers_when_the_file_becomes_usable(tmp_path: Path) -> None:
    blocker = tmp_path / "folder"
    blocker.write_text("a file where the folder should be")
    cache = SQLiteCache(blocker / "cache.db")
    with pytest.raises(CacheError):
        asyncio.run(cache.get("k"))
    blocker.unlink()
    blocker.mkdir()
    assert asyncio.run(cache.set("k", 1, 60)) is True
    cache.close()


def test_sqlite_reads_a_tampered_row_as_a_miss(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    cache = SQLiteCache(path)
    asyncio.run(cache.set("k", {"a": 1}, 60))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE toolweave_cache SET value = ?", (b"{not json",))
    assert asyncio.run(cache.get("k")) is None
    with sqlite3.connect(path) as db:
        db.execute("UPDATE toolweave_cache SET value = 'text, not bytes'")
    assert asyncio.run(cache.get("k")) is None
    cache.close()


# --- RedisCache -------------------------------------------------------------------------------


def _prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


def test_redis_is_shared_by_processes(redis_url: str) -> None:  # noqa: F811
    prefix = _prefix()
    script = textwrap.dedent(
        """
        import asyncio, sys
        from toolweave._cache import RedisCache

        cache = RedisCache(sys.argv[1], prefix=sys.argv[2], clock=lambda: 1000.0)
        assert asyncio.run(cache.set("from the child", {"pid": "child", "n": [1, 2]}, 60))
        """
    )
    subprocess.run([sys.executable, "-c", script, redis_url, prefix], check=True, timeout=120)
    cache = RedisCache(redis_url, prefix=prefix, clock=FakeClock(1_030.0))
    hit = asyncio.run(cache.get("from the child"))
    assert hit == CacheHit({"pid": "child", "n": [1, 2]}, 1_000.0, 1_060.0)
    cache.close()


def test_redis_works_from_two_event_loops_and_closes_each_loops_client(
    redis_url: str,  # noqa: F811
) -> None:
    cache = RedisCache(redis_url, prefix=_prefix())
    assert asyncio.run(cache.set("k", [1, "two"], 60)) is True
    _wait_for_no_connections(redis_url)  # the first loop's client closed as the loop ended
    hit = asyncio.run(cache.get("k"))
    assert hit is not None
    assert hit.value == [1, "two"]
    _wait_for_no_connections(redis_url)
    cache.close()


def test_redis_aclose_closes_the_client_before_the_loop_ends(redis_url: str) -> None:  # noqa: F811
    cache = RedisCache(redis_url, prefix=_prefix())

    async def main() -> None:
        await cache.set("k", 1, 60)
        await cache.aclose()
        await asyncio.to_thread(_wait_for_no_connections, redis_url)

    asyncio.run(main())


def test_redis_sync_close_inside_a_loop_closes_the_client(redis_url: str) -> None:  # noqa: F811
    cache = RedisCache(redis_url, prefix=_prefix())

    async def main() -> None:
        await cache.set("k", 1, 60)
        assert _connections(redis_url) == 1
        cache.close()
        await asyncio.to_thread(_wait_for_no_connections, redis_url)

    asyncio.run(main())


def test_redis_close_reaches_a_loop_running_in_another_thread(redis_url: str) -> None:  # noqa: F811
    cache = RedisCache(redis_url, prefix=_prefix())
    used, done = threading.Event(), threading.Event()

    async def worker() -> None:
        await cache.set("k", 1, 60)
        used.set()
        await asyncio.to_thread(done.wait)

    thread = threading.Thread(target=asyncio.run, args=(worker(),))
    thread.start()
    try:
        assert used.wait(60)
        assert _connections(redis_url) == 1
        cache.close()  # from this thread, while the worker's loop runs
        _wait_for_no_connections(redis_url)
    finally:
        done.set()
        thread.join(60)


def test_redis_stores_json_with_a_server_side_expiry_under_a_hashed_name(
    redis_url: str,  # noqa: F811
) -> None:
    prefix = _prefix()
    cache = RedisCache(redis_url, prefix=prefix, clock=FakeClock(1_000.0))
    asyncio.run(cache.set(SECRET_KEY, {"answer": 42}, 30))
    cache.close()
    [name] = _toolweave_keys(redis_url, prefix)
    assert len(name) == len(prefix) + 64  # the key's SHA-256, in hex
    assert b"078-05-1120" not in name
    with redis.Redis.from_url(redis_url) as admin:
        assert json.loads(admin.get(name)) == {"v": {"answer": 42}, "s": 1_000.0, "e": 1_030.0}
        assert 30_000 < admin.pttl(name) <= 31_000


def test_redis_caches_with_different_prefixes_do_not_share(redis_url: str) -> None:  # noqa: F811
    a = RedisCache(redis_url, prefix=_prefix())
    b = RedisCache(redis_url, prefix=_prefix())
    asyncio.run(a.set("k", "from a", 60))
    assert asyncio.run(b.get("k")) is None
    a.close()
    b.close()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\xff\xfe not json", id="not-utf8-json"),
        pytest.param(b'"just a string"', id="not-an-object"),
        pytest.param(b'{"v": 1, "s": "x", "e": 1e99}', id="stored-at-text"),
        pytest.param(b'{"v": 1, "s": 1, "e": true}', id="expires-at-bool"),
        pytest.param(b'{"v": 1, "s": 1, "e": 1e99, "extra": 0}', id="extra-field"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-100k-deep"),
    ],
)
def test_redis_reads_a_foreign_entry_under_its_prefix_as_a_miss(
    redis_url: str,  # noqa: F811
    raw: bytes,
) -> None:
    prefix = _prefix()
    cache = RedisCache(redis_url, prefix=prefix)
    asyncio.run(cache.set("k", 1, 60))
    with redis.Redis.from_url(redis_url) as admin:
        for name in admin.scan_iter(match=prefix + "*"):
            admin.set(name, raw)
    assert asyncio.run(cache.get("k")) is None
    with redis.Redis.from_url(redis_url) as admin:  # a list where a string should be
        for name in admin.scan_iter(match=prefix + "*"):
            admin.delete(name)
            admin.rpush(name, b"x")
    with pytest.raises(CacheError, match="WRONGTYPE"):
        asyncio.run(cache.get("k"))
    cache.close()


def test_redis_over_a_unix_socket(redis_server: RedisServer) -> None:  # noqa: F811
    cache = RedisCache(redis_server.unix_url, prefix=_prefix())
    assert cache.address == f"unix://{redis_server.directory / 'redis.sock'}"
    assert asyncio.run(cache.set("k", "via unix", 60)) is True
    hit = asyncio.run(cache.get("k"))
    assert hit is not None
    assert hit.value == "via unix"
    cache.close()


def test_redis_that_goes_down_raises_a_cache_error_naming_the_address(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as server:
        cache = RedisCache(server.url, prefix=_prefix())

        async def use() -> CacheHit | None:
            await cache.set(SECRET_KEY, "value", 60)
            return await cache.get(SECRET_KEY)

        assert asyncio.run(use()) is not None

        async def after_stop() -> tuple[CacheError, CacheError]:
            await cache.set("warm", 1, 60)  # a pooled connection the server is about to drop
            server.stop()
            with pytest.raises(CacheError) as on_get:
                await cache.get(SECRET_KEY)
            with pytest.raises(CacheError) as on_set:
                await cache.set(SECRET_KEY, "value", 60)
            return on_get.value, on_set.value

        on_get, on_set = asyncio.run(after_stop())
    for error in (on_get, on_set):
        message = str(error)
        assert message.startswith(f"Redis cache at {server.url}: the server did not answer (")
        assert "check that it is running and reachable" in message
        assert "078-05-1120" not in message
        assert error.address == server.url
    cache.close()


def test_redis_down_hides_credentials_in_the_url() -> None:
    cache = RedisCache("redis://admin:hunter2@127.0.0.1:1/0?password=hunter3", prefix=_prefix())
    assert cache.address == "redis://***@127.0.0.1:1/0"
    with pytest.raises(CacheError, match="the server did not answer") as caught:
        asyncio.run(cache.get("k"))
    assert str(caught.value).startswith("Redis cache at redis://***@127.0.0.1:1/0: ")
    assert "hunter" not in str(caught.value)
    cache.close()


def test_redis_that_never_answers_times_out_into_a_cache_error() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])  # and never answer
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        port = listener.getsockname()[1]
        cache = RedisCache(f"redis://127.0.0.1:{port}/0", socket_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(CacheError, match="Timeout"):
            asyncio.run(cache.get(SECRET_KEY))
        assert time.monotonic() - started < 60  # bounded by socket_timeout, not for ever
        cache.close()
    finally:
        stop.set()
        thread.join()
        for s in accepted:
            s.close()
        listener.close()


def test_redis_cache_without_the_redis_package_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(UsageError, match=r"pip install 'toolweave\[redis\]'"):
        RedisCache()


# --- constructor arguments --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(
            lambda p: MemoryCache(0),
            r"max_entries=0\): max_entries must be an int >= 1",
            id="max-0",
        ),
        pytest.param(lambda p: MemoryCache(True), r"max_entries=True\)", id="max-bool"),
        pytest.param(lambda p: MemoryCache(2.5), r"max_entries=2.5\)", id="max-float"),
        pytest.param(lambda p: MemoryCache(clock=5), r"clock must be a function", id="clock"),
        pytest.param(
            lambda p: SQLiteCache(p),
            r"path is a directory; give a file in it, "
            r"e\.g\. SQLiteCache\('.*toolweave-cache\.db'\)",
            id="dir",
        ),
        pytest.param(lambda p: SQLiteCache(42), r"path must be a file path", id="path-int"),
        pytest.param(lambda p: SQLiteCache(""), r"path must be a file path", id="path-empty"),
        pytest.param(
            lambda p: SQLiteCache(p / "c.db", busy_timeout=-1),
            r"busy_timeout must be a finite number of seconds >= 0",
            id="busy-negative",
        ),
        pytest.param(
            lambda p: SQLiteCache(p / "c.db", busy_timeout=math.inf),
            r"busy_timeout=inf",
            id="busy-inf",
        ),
        pytest.param(
            lambda p: RedisCache("http://127.0.0.1:6379"),
            r"url='http://\.\.\.'\): url must start with redis://, rediss:// or unix://",
            id="scheme",
        ),
        pytest.param(
            lambda p: RedisCache("127.0.0.1:6379"), r"url must start with redis://", id="no-scheme"
        ),
        pytest.param(
            lambda p: RedisCache("redis://u:pw@host:port/0"),
            r"url must start with redis://",
            id="bad-port",
        ),
        pytest.param(lambda p: RedisCache(b"redis://x"), r"url must be a str", id="url-bytes"),
        pytest.param(
            lambda p: RedisCache("redis://:pw@h:1/notanumber"),
            r"url='redis://\*\*\*@h:1/notanumber'\)",
            id="bad-db",
        ),
        pytest.param(lambda p: RedisCache(prefix=3), r"prefix must be a str", id="prefix"),
        pytest.param(
            lambda p: RedisCache(socket_timeout=0),
            r"socket_timeout must be a positive finite number",
            id="timeout-0",
        ),
        pytest.param(
            lambda p: RedisCache(socket_timeout=math.nan), r"socket_timeout=nan", id="timeout-nan"
        ),
    ],
)
def test_bad_constructor_arguments_name_the_argument_and_the_fix(
    tmp_path: Path, build: Callable[[Path], Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        build(tmp_path)


def test_a_bad_redis_url_does_not_show_its_password() -> None:
    with pytest.raises(UsageError) as caught:
        RedisCache("redis://user:hunter2@h:1/notanumber")
    assert "hunter2" not in str(caught.value)


# --- properties -------------------------------------------------------------------------------

# st.text() never draws lone surrogates, which tool outputs can hold: mix some in by hand.
_texts = st.lists(
    st.characters() | st.sampled_from(["\ud800", "\udfff", "\ud83d", "\ude00", "\x00"]),
    max_size=12,
).map("".join)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _texts,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_texts, inner, max_size=5),
    max_leaves=20,
)


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis"])
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(value=json_values)
def test_any_json_value_comes_back_equal(
    backend: str, value: Any, request: pytest.FixtureRequest
) -> None:
    cache = _property_caches(backend, request)

    async def roundtrip() -> CacheHit | None:
        key = uuid.uuid4().hex
        assert await cache.set(key, value, 60) is True
        return await cache.get(key)

    hit = asyncio.run(roundtrip())
    assert hit is not None
    assert hit.value == value


_PROPERTY_CACHES: dict[str, Cache] = {}


def _property_caches(backend: str, request: pytest.FixtureRequest) -> Cache:
    """One cache per backend for all examples (hypothesis runs the test body many times)."""
    if backend not in _PROPERTY_CACHES:
        if backend == "memory":
            cache: Cache = MemoryCache()
        elif backend == "sqlite":
            folder = tempfile.TemporaryDirectory()
            request.addfinalizer(folder.cleanup)
            cache = SQLiteCache(Path(folder.name) / "cache.db")
        else:
            cache = RedisCache(request.getfixturevalue("redis_url"), prefix=_prefix())
        _PROPERTY_CACHES[backend] = cache
        request.addfinalizer(lambda: _PROPERTY_CACHES.pop(backend).close())
    return _PROPERTY_CACHES[backend]
