"""Side effects: what the call ledger and the result cache cost, and what a cache hit saves.

    python bench/bench_side_effects.py            # about a minute, servers included
    python bench/bench_side_effects.py --quick    # fewer rounds (about 15 s)

Every figure is a median over alternating rounds of the same run, beside its baseline:

- Ledger overhead: a batch of 50 parallel calls (a no-op tool; a tool awaiting 1 ms) run by
  ``Orchestrator(tools)``, by ``Orchestrator(tools, ledger=SQLiteLedger(...))`` and with a
  ``PostgresLedger`` on a real server started for the run (as ``tests/postgres_server.py``
  does), each round under a new ``batch_id``; and the replay of a recorded batch (its
  ``batch_id`` again: every result read back, no tool called). Reported per call above the
  batch without a ledger, as a ratio to it, and (a replay) as a ratio to the recorded run.
- Cache hits: a one-call batch of a tool standing for a 20 ms API
  (``@tool(idempotent=True, cache_ttl=60)``) run with ``cache=False``, against the same call
  answered from a ``MemoryCache``, an ``SQLiteCache`` and a ``RedisCache`` (a real
  ``redis-server``, as ``tests/redis_server.py`` starts one); and a batch of 20 identical
  calls of that tool (merged: it runs once) against 20 of a tool that is not idempotent.

A row whose server is not installed (PostgreSQL, redis-server) is printed as skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import glob
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench_engine import table

from toolweave import (
    MemoryCache,
    Orchestrator,
    PostgresLedger,
    RedisCache,
    SQLiteCache,
    SQLiteLedger,
    ToolCall,
    tool,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import pytest  # the servers of tests/ report a failure with pytest.fail
from postgres_server import PostgresServer
from redis_server import REDIS_SERVER, RedisServer

BATCH = 50  # calls in a ledger batch
API_MS = 20  # what the cached tool's API takes
SAME = 20  # identical calls in the merge batch

Timed = Callable[[], Awaitable[float]]
"""Runs one batch and returns the seconds ``Orchestrator.run`` took."""

# ---------------------------------------------------------------- tools


@tool
async def noop(i: int) -> int:
    """Return at once: all time spent is the engine's (and the ledger's)."""
    return i


@tool
async def work(i: int) -> int:
    """Await about 1 ms: a call with a little real I/O in it."""
    await asyncio.sleep(0.001)
    return i


api_runs = 0


@tool(idempotent=True, cache_ttl=60)
async def api(city: str) -> dict[str, Any]:
    """A 20 ms API whose answers may be reused for a minute."""
    global api_runs
    api_runs += 1
    await asyncio.sleep(API_MS / 1000)
    return {"city": city, "celsius": 21.5, "wind": [3, 5, 4]}


@tool
async def api_plain(city: str) -> dict[str, Any]:
    """The same API, not declared idempotent: every call calls it."""
    global api_runs
    api_runs += 1
    await asyncio.sleep(API_MS / 1000)
    return {"city": city, "celsius": 21.5, "wind": [3, 5, 4]}


# ---------------------------------------------------------------- measuring


async def alternating(runs: dict[str, Timed], rounds: int) -> dict[str, float]:
    """Median seconds of each runner over ``rounds`` rounds, the runners taking turns within
    a round so that a busy machine slows them all alike. One untimed warm-up each."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        await fn()
    for _ in range(rounds):
        for name, fn in runs.items():
            gc.collect()
            samples[name].append(await fn())
    return {name: statistics.median(s) for name, s in samples.items()}


async def timed_run(orchestrator: Orchestrator, calls: list[ToolCall], **kwargs: Any) -> float:
    start = time.perf_counter()
    result = await orchestrator.run(calls, **kwargs)
    elapsed = time.perf_counter() - start
    assert result.ok, [r.error for r in result.results if not r.ok][:3]
    return elapsed


def fresh(orchestrator: Orchestrator, calls: list[ToolCall]) -> Timed:
    """The batch under a new batch_id each time: every call claimed and recorded anew."""

    async def run() -> float:
        return await timed_run(orchestrator, calls, batch_id=f"bench-{uuid.uuid4().hex}")

    return run


async def replay(orchestrator: Orchestrator, calls: list[ToolCall]) -> Timed:
    """The batch under one batch_id, recorded once here: every later run replays it."""
    batch_id = f"bench-replay-{uuid.uuid4().hex}"
    await timed_run(orchestrator, calls, batch_id=batch_id)

    async def run() -> float:
        start = time.perf_counter()
        result = await orchestrator.run(calls, batch_id=batch_id)
        elapsed = time.perf_counter() - start
        assert result.ok, [r.error for r in result.results if not r.ok][:3]
        assert all(r.replayed for r in result.results), "a call of the batch was not replayed"
        return elapsed

    return run


# ---------------------------------------------------------------- servers


@contextmanager
def postgres() -> Iterator[str | None]:
    """A DSN of a PostgreSQL server started for this run and always stopped after it, or
    None (and a line saying why) when PostgreSQL is not installed or will not start."""
    if not (glob.glob("/usr/lib/postgresql/*/bin/initdb") or shutil.which("initdb")):
        print("PostgreSQL is not installed (no initdb): the PostgresLedger rows are skipped")
        yield None
        return
    server: PostgresServer | None = None
    try:
        server = PostgresServer()
        server.start()
    except (Exception, pytest.fail.Exception) as exc:
        print(f"PostgreSQL did not start, the PostgresLedger rows are skipped: {exc}"[:600])
        if server is not None:
            server.cleanup()
        yield None
        return
    try:
        yield server.dsn
    finally:
        server.cleanup()


@contextmanager
def redis(directory: Path) -> Iterator[str | None]:
    """The URL of a redis-server started for this run and always stopped after it, or None."""
    if not Path(REDIS_SERVER).exists():
        print(f"redis-server is not installed ({REDIS_SERVER}): the RedisCache row is skipped")
        yield None
        return
    server = RedisServer(directory)
    try:
        server.start()
    except (Exception, pytest.fail.Exception) as exc:
        server.stop()
        print(f"redis-server did not start, the RedisCache row is skipped: {exc}"[:600])
        yield None
        return
    try:
        yield server.url
    finally:
        server.stop()


# ---------------------------------------------------------------- ledger


async def ledger_rows(directory: Path, dsn: str | None, rounds: int) -> list[list[str]]:
    ledgers: dict[str, Any] = {"SQLiteLedger": SQLiteLedger(directory / "ledger.db")}
    if dsn is not None:
        ledgers["PostgresLedger"] = PostgresLedger(dsn, table="bench_calls")
    rows: list[list[str]] = []
    try:
        for label, fn in (("no-op tool", noop), ("1 ms tool", work)):
            calls = [ToolCall(f"c{i}", fn.name, {"i": i}) for i in range(BATCH)]
            runs: dict[str, Timed] = {"none": fresh(Orchestrator([fn]), calls)}
            for name, ledger in ledgers.items():
                with_ledger = Orchestrator([fn], ledger=ledger)
                runs[name] = fresh(with_ledger, calls)
                runs[f"{name} replay"] = await replay(with_ledger, calls)
            t = await alternating(runs, rounds)
            base = t["none"]
            rows.append([f"{label}, no ledger", ms(base), per_call(base), "", "1.00", ""])
            for name in ledgers:
                new, again = t[name], t[f"{name} replay"]
                rows.append(
                    [
                        f"{label}, {name}, new batch_id",
                        ms(new),
                        per_call(new),
                        per_call(new - base, "+"),
                        f"{new / base:.2f}",
                        "",
                    ]
                )
                rows.append(
                    [
                        f"{label}, {name}, replay",
                        ms(again),
                        per_call(again),
                        per_call(again - base, "+"),
                        f"{again / base:.2f}",
                        f"{again / new:.2f}",
                    ]
                )
            if dsn is None:
                rows.append([f"{label}, PostgresLedger", "skipped", "", "", "", ""])
    finally:
        for ledger in ledgers.values():
            await ledger.aclose()
    return rows


def per_call(seconds: float, sign: str = "") -> str:
    """Milliseconds per call of a ledger batch."""
    return f"{seconds / BATCH * 1000:{sign}.3f}"


# ---------------------------------------------------------------- cache


async def cache_rows(directory: Path, redis_url: str | None, rounds: int) -> list[list[str]]:
    call = [ToolCall("c0", "api", {"city": "Zürich"})]
    caches: dict[str, Any] = {
        "MemoryCache": MemoryCache(),
        "SQLiteCache": SQLiteCache(directory / "cache.db"),
    }
    if redis_url is not None:
        caches["RedisCache"] = RedisCache(redis_url, prefix=f"bench:{uuid.uuid4().hex}:")
    floor = Orchestrator([noop], cache=False)
    try:
        runs: dict[str, Timed] = {
            "uncached": counting(Orchestrator([api], cache=False), call, runs=1),
            "floor": lambda: timed_run(floor, [ToolCall("c0", "noop", {"i": 0})]),
        }
        for name, cache in caches.items():
            runs[name] = await hits(Orchestrator([api], cache=cache), call)
        t = await alternating(runs, rounds)
    finally:
        for cache in caches.values():
            await cache.aclose()
    base = t["uncached"]
    rows = [
        [f"uncached, a {API_MS} ms API (cache=False)", ms(base), "1", "1.0x"],
        *([f"hit, {name}", ms(t[name]), "0", f"{base / t[name]:.0f}x"] for name in caches),
    ]
    if redis_url is None:
        rows.append(["hit, RedisCache", "skipped", "", ""])
    rows.append(["floor: one-call batch of a no-op tool", ms(t["floor"]), "", ""])

    # Merging alone: no cache, so every round calls the API again.
    same = [ToolCall(f"c{i}", "api", {"city": "Zürich"}) for i in range(SAME)]
    plain = [ToolCall(f"c{i}", "api_plain", {"city": "Zürich"}) for i in range(SAME)]
    t = await alternating(
        {
            "separate": counting(Orchestrator([api_plain]), plain, runs=SAME),
            "merged": counting(Orchestrator([api], cache=False), same, runs=1),
        },
        rounds,
    )
    rows.append([f"{SAME} equal calls, not idempotent", ms(t["separate"]), str(SAME), "1.0x"])
    rows.append(
        [
            f"{SAME} equal calls, idempotent (merged)",
            ms(t["merged"]),
            "1",
            f"{t['separate'] / t['merged']:.1f}x",
        ]
    )
    return rows


def counting(orchestrator: Orchestrator, calls: list[ToolCall], *, runs: int) -> Timed:
    """The batch, checking that the API was called ``runs`` times."""

    async def run() -> float:
        global api_runs
        api_runs = 0
        elapsed = await timed_run(orchestrator, calls)
        assert api_runs == runs, f"the API ran {api_runs} times, expected {runs}"
        return elapsed

    return run


async def hits(orchestrator: Orchestrator, call: list[ToolCall]) -> Timed:
    """One-call batches answered from the cache (the first run, here, stores the result)."""
    await timed_run(orchestrator, call)

    async def run() -> float:
        global api_runs
        api_runs = 0
        start = time.perf_counter()
        result = await orchestrator.run(call)
        elapsed = time.perf_counter() - start
        assert result.ok, result.results[0].error
        assert result.results[0].cached, "not a cache hit"
        assert api_runs == 0, "a cache hit called the API"
        return elapsed

    return run


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


# ---------------------------------------------------------------- report


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    rounds = 5 if args.quick else 21

    with tempfile.TemporaryDirectory(prefix="toolweave-bench-") as tmp:
        directory = Path(tmp)
        with postgres() as dsn, redis(directory / "redis") as redis_url:
            ledger = await ledger_rows(directory, dsn, rounds)
            cache = await cache_rows(directory, redis_url, rounds * 2)
    print()
    print(
        table(
            f"Call ledger: a batch of {BATCH} parallel calls "
            f"(median of {rounds} alternating rounds)",
            ["batch", "ms", "ms/call", "ledger ms/call", "x no ledger", "x new batch_id"],
            ledger,
        )
    )
    print()
    print(
        table(
            f"Result cache: one-call batches, and {SAME} calls of one API "
            f"(median of {rounds * 2} alternating rounds)",
            ["batch", "ms", "tool runs", "speed-up"],
            cache,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
