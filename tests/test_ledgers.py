"""The durable call ledgers, SQLite and PostgreSQL, against real databases and real processes.

A second process claims calls through the same ledger, is SIGKILLed while it holds one, or races
this one over a batch: liveness comes from the kernel and the server, never from timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from postgres_server import PostgresServer, postgres_dsn  # noqa: F401

from toolweave import (
    CallLedger,
    Claim,
    LedgerError,
    LedgerRecord,
    PostgresLedger,
    SQLiteLedger,
    UsageError,
)

OK = LedgerRecord(status="ok", output={"sent": True, "to": ["a@example.com"]}, error=None,
                  error_type=None, attempts=1)  # fmt: skip
UNCERTAIN = LedgerRecord(
    status="error",
    output=None,
    error="the runner died while the call ran; it may or may not have happened",
    error_type="tool_error",
    attempts=1,
)
SECRET = "secret-id-\u2603"  # must never appear in an error message


@dataclass(frozen=True)
class Store:
    """Where a ledger lives, for this process and for child processes."""

    backend: str
    location: str  # a file path or a DSN
    table: str = "toolweave_calls"

    def open(self, poll: float = 0.02) -> CallLedger:
        if self.backend == "sqlite":
            return SQLiteLedger(self.location, poll=poll)
        return PostgresLedger(self.location, table=self.table, poll=poll)

    def spec(self) -> dict[str, str]:
        return {"backend": self.backend, "location": self.location, "table": self.table}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return Store("sqlite", str(tmp_path / "ledger.db"))
    dsn = request.getfixturevalue("postgres_dsn")
    return Store("postgres", dsn, f"calls_{uuid.uuid4().hex[:12]}")  # a table per test


def ledger_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("toolweave-ledger")]


# -- a second process ------------------------------------------------------------------------

CHILD = r"""
import asyncio, json, os, sys, time
from toolweave import LedgerRecord, PostgresLedger, SQLiteLedger

job = json.loads(sys.argv[1])

def open_ledger():
    if job["backend"] == "sqlite":
        return SQLiteLedger(job["location"], poll=0.01)
    return PostgresLedger(job["location"], table=job["table"], poll=0.01)

def say(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()

async def main():
    ledger = open_ledger()
    if job["mode"] == "hold":  # claim, say so, and hold the call until killed
        claim = await ledger.claim(job["batch"], job["call"], "h")
        say(state=claim.state)
        await asyncio.sleep(3600)
    elif job["mode"] == "exit":  # claim and return without closing anything
        claim = await ledger.claim(job["batch"], job["call"], "h")
        say(state=claim.state)
        return
    elif job["mode"] == "race":
        say(ready=True)
        while not os.path.exists(job["go"]):
            time.sleep(0.005)
        for n in range(job["calls"]):
            claim = await ledger.claim(job["batch"], f"call-{n}", "h")
            if claim.state == "new":
                await asyncio.sleep(0.01)  # hold it a while, so the other process must wait
                await ledger.finish(
                    claim, LedgerRecord("ok", {"pid": os.getpid()}, None, None, 1)
                )
            say(call=f"call-{n}", state=claim.state)
        await ledger.aclose()

asyncio.run(main())
"""


def spawn(store: Store, **job: Any) -> subprocess.Popen[str]:
    argv = json.dumps({**store.spec(), **job})  # ASCII: NUL and surrogates survive as escapes
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_line(child: subprocess.Popen[str], timeout: float = 60.0) -> dict[str, Any]:
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    line = child.stdout.readline() if ready else ""
    if not line:
        child.kill()
        _, err = child.communicate(timeout=30)
        pytest.fail(f"the child process said nothing (exit {child.returncode}):\n{err[-3000:]}")
    return dict(json.loads(line))


# -- one process -----------------------------------------------------------------------------


def test_new_then_finished_replays_the_record(store: Store) -> None:
    async def main() -> tuple[Claim, Claim, dict[str, Any]]:
        ledger = store.open()
        try:
            first = await ledger.claim("batch-1", "send_email", "hash-a")
            assert await ledger.records("batch-1") == {"send_email": ("started", None)}
            await ledger.finish(first, OK)
            again = await ledger.claim("batch-1", "send_email", "hash-a")
            return first, again, await ledger.records("batch-1")
        finally:
            await ledger.aclose()

    first, again, records = asyncio.run(main())
    assert (first.state, first.runs, first.record) == ("new", 0, None)
    assert (again.state, again.runs, again.record) == ("finished", 1, OK)
    assert records == {"send_email": ("finished", OK)}


def test_the_record_survives_a_new_ledger(store: Store) -> None:
    async def main() -> Claim:
        ledger = store.open()
        claim = await ledger.claim("batch-1", "c1", "h")
        await ledger.finish(claim, UNCERTAIN)
        await ledger.aclose()
        reopened = store.open()
        try:
            return await reopened.claim("batch-1", "c1", "h")
        finally:
            await reopened.aclose()

    again = asyncio.run(main())
    assert (again.state, again.record) == ("finished", UNCERTAIN)


def test_other_arguments_are_a_conflict(store: Store) -> None:
    async def main() -> tuple[Claim, Claim]:
        ledger = store.open()
        try:
            claim = await ledger.claim("batch-1", "c1", "hash-a")
            await ledger.finish(claim, OK)
            conflict = await ledger.claim("batch-1", "c1", "hash-b")
            # a conflict holds nothing: the call can be claimed at once
            same = await asyncio.wait_for(ledger.claim("batch-1", "c1", "hash-a"), 30)
            return conflict, same
        finally:
            await ledger.aclose()

    conflict, same = asyncio.run(main())
    assert (conflict.state, conflict.recorded_hash, conflict.record) == ("conflict", "hash-a", None)
    assert conflict.args_hash == "hash-b"
    assert same.state == "finished"


def test_release_of_a_new_claim_leaves_no_row(store: Store) -> None:
    async def main() -> tuple[dict[str, Any], Claim]:
        ledger = store.open()
        try:
            claim = await ledger.claim("batch-1", "c1", "h")
            await ledger.release(claim)
            records = await ledger.records("batch-1")
            return records, await asyncio.wait_for(ledger.claim("batch-1", "c1", "h"), 30)
        finally:
            await ledger.aclose()

    records, again = asyncio.run(main())
    assert records == {}
    assert (again.state, again.runs) == ("new", 0)


HOSTILE_IDS = [
    "",
    "\x00",
    "a\x00b",
    "\\u0000",  # the text of an escape: must stay apart from a real NUL
    "\\",
    "\ud800",
    "\udfff\ud800",
    "\ud83d\ude00",  # a surrogate pair as two code points
    "😀",
    "\n\r\t\x7f",
    "'; DROP TABLE toolweave_calls; --",
    "é" * 5_000 + "\x00" + "x" * 5_000,
]
HOSTILE_BATCH = "batch\x00\ud800/" + "b" * 10_000


def test_hostile_ids_round_trip(store: Store) -> None:
    async def main() -> tuple[dict[str, Any], list[Claim]]:
        ledger = store.open()
        try:
            for n, call_id in enumerate(HOSTILE_IDS):
                claim = await ledger.claim(HOSTILE_BATCH, call_id, f"\x00hash\ud800{n}")
                record = LedgerRecord(
                    status="error",
                    output={"echo": call_id, "n": n},
                    error=f"failed: {call_id}",
                    error_type="tool_error\x00",
                    attempts=n,
                )
                await ledger.finish(claim, record)
            await ledger.claim("batch\x00\ud801", "other batch", "h")  # not listed below
            again = [
                await ledger.claim(HOSTILE_BATCH, call_id, f"\x00hash\ud800{n}")
                for n, call_id in enumerate(HOSTILE_IDS)
            ]
            return await ledger.records(HOSTILE_BATCH), again
        finally:
            await ledger.aclose()

    records, again = asyncio.run(main())
    assert list(records) == HOSTILE_IDS
    for n, call_id in enumerate(HOSTILE_IDS):
        state, record = records[call_id]
        assert state == "finished"
        # outputs are JSON: surrogates come back as json.loads reads them; the rest exactly
        output = json.loads(json.dumps({"echo": call_id, "n": n}))
        assert record == LedgerRecord("error", output, f"failed: {call_id}", "tool_error\x00", n)
    assert [c.state for c in again] == ["finished"] * len(HOSTILE_IDS)
    assert [c.call_id for c in again] == HOSTILE_IDS


@pytest.mark.parametrize("second", ["same ledger", "second ledger"])
def test_a_second_claim_in_the_same_process_waits_for_the_first(store: Store, second: str) -> None:
    async def main() -> Claim:
        first_ledger = store.open()
        other = first_ledger if second == "same ledger" else store.open()
        try:
            first = await first_ledger.claim("batch-1", "c1", "h")
            waiting = asyncio.create_task(other.claim("batch-1", "c1", "h"))
            await asyncio.sleep(0.5)
            assert not waiting.done(), "a second claimer ran a call the first one holds"
            await first_ledger.finish(first, OK)
            return await asyncio.wait_for(waiting, 30)
        finally:
            await first_ledger.aclose()
            await other.aclose()

    got = asyncio.run(main())
    assert (got.state, got.record) == ("finished", OK)


def test_a_cancelled_wait_holds_nothing(store: Store) -> None:
    async def main() -> Claim:
        ledger = store.open()
        try:
            first = await ledger.claim("batch-1", "c1", "h")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ledger.claim("batch-1", "c1", "h"), 0.3)
            await ledger.release(first)
            return await asyncio.wait_for(ledger.claim("batch-1", "c1", "h"), 30)
        finally:
            await ledger.aclose()

    assert asyncio.run(main()).state == "new"


def test_finish_and_release_need_a_held_claim(store: Store) -> None:
    async def main() -> None:
        ledger = store.open()
        try:
            claim = await ledger.claim("batch-1", "c1", "h")
            await ledger.finish(claim, OK)
            with pytest.raises(UsageError, match="needs a claim this ledger holds"):
                await ledger.finish(claim, OK)
            finished = await ledger.claim("batch-1", "c1", "h")
            with pytest.raises(UsageError, match=r"release\(\) needs a claim .*'finished'"):
                await ledger.release(finished)
            with pytest.raises(UsageError, match="status must be one of"):
                await ledger.finish(finished, LedgerRecord("done", None, None, None, 1))  # type: ignore[arg-type]
        finally:
            await ledger.aclose()
        with pytest.raises(UsageError, match="closed"):
            await ledger.claim("batch-1", "c2", "h")

    asyncio.run(main())


def test_an_output_that_is_not_json_keeps_the_claim(store: Store) -> None:
    async def main() -> tuple[str, Claim]:
        ledger = store.open()
        try:
            claim = await ledger.claim("batch-1", SECRET, "h")
            with pytest.raises(LedgerError) as caught:
                await ledger.finish(claim, LedgerRecord("ok", {"x": float("nan")}, None, None, 1))
            await ledger.finish(claim, OK)  # still held: finish with a record that stores
            return str(caught.value), await ledger.claim("batch-1", SECRET, "h")
        finally:
            await ledger.aclose()

    message, again = asyncio.run(main())
    assert f"{store.backend} ledger at" in message
    assert "cannot be stored as JSON" in message
    assert SECRET not in message
    assert again.record == OK


def test_aclose_leaves_no_thread_or_connection(store: Store) -> None:
    app = f"leakcheck_{uuid.uuid4().hex[:8]}"
    location = store.location
    if store.backend == "postgres":
        location += f"?application_name={app}"
    local = Store(store.backend, location, store.table)

    def open_files() -> list[str]:
        found = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                found.append(os.readlink(f"/proc/self/fd/{fd}"))
        return [f for f in found if f.startswith(store.location)]

    def connections() -> int:
        with psycopg.connect(store.location) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
            ).fetchone()
            assert row is not None
            return int(row[0])

    async def main() -> None:
        ledger = local.open()
        claim = await ledger.claim("batch-1", "c1", "h")
        await ledger.finish(claim, OK)
        held = await ledger.claim("batch-1", "c2", "h")  # still held at close
        assert held.state == "new"
        assert ledger_threads()
        if store.backend == "postgres":
            assert connections() == 1
        else:
            assert open_files()
        await ledger.aclose()
        await ledger.aclose()  # twice is fine

    asyncio.run(main())
    assert ledger_threads() == []
    if store.backend == "postgres":
        assert connections() == 0
    else:
        assert open_files() == []

    async def reopen() -> Claim:  # the call held at close counts as interrupted
        ledger = store.open()
        try:
            return await asyncio.wait_for(ledger.claim("batch-1", "c2", "h"), 30)
        finally:
            await ledger.aclose()

    assert asyncio.run(reopen()).state == "interrupted"


def test_close_without_an_event_loop(store: Store) -> None:
    async def main() -> CallLedger:
        ledger = store.open()
        await ledger.claim("batch-1", "c1", "h")
        return ledger

    ledger = asyncio.run(main())
    ledger.close()
    ledger.close()
    assert ledger_threads() == []


# -- two processes ---------------------------------------------------------------------------


def test_a_killed_holder_leaves_an_interrupted_call(
    store: Store, children: list[subprocess.Popen[str]]
) -> None:
    child = spawn(store, mode="hold", batch=HOSTILE_BATCH, call="send_email")
    children.append(child)
    assert read_line(child) == {"state": "new"}

    async def main() -> list[Claim]:
        ledger = store.open()
        try:
            # the holder lives, however long it takes: claim waits
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ledger.claim(HOSTILE_BATCH, "send_email", "h"), 1.5)
            waiting = asyncio.create_task(ledger.claim(HOSTILE_BATCH, "send_email", "h"))
            await asyncio.sleep(0.5)
            assert not waiting.done(), "a live holder was taken for dead"
            child.kill()
            interrupted = await asyncio.wait_for(waiting, 60)
            await ledger.release(interrupted)  # not run after all: still interrupted, runs kept
            again = await asyncio.wait_for(ledger.claim(HOSTILE_BATCH, "send_email", "h"), 30)
            await ledger.finish(again, UNCERTAIN)
            last = await ledger.claim(HOSTILE_BATCH, "send_email", "h")
            return [interrupted, again, last]
        finally:
            await ledger.aclose()

    interrupted, again, last = asyncio.run(main())
    assert (interrupted.state, interrupted.runs) == ("interrupted", 1)
    assert (again.state, again.runs) == ("interrupted", 1)
    assert (last.state, last.record, last.runs) == ("finished", UNCERTAIN, 2)


def test_two_processes_racing_run_each_call_once(
    store: Store, children: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    calls = 20
    go = tmp_path / "go"
    racers = [spawn(store, mode="race", batch="raced", calls=calls, go=str(go)) for _ in range(2)]
    children.extend(racers)
    for racer in racers:
        assert read_line(racer) == {"ready": True}
    go.touch()
    seen: dict[int, dict[str, str]] = {}
    for racer in racers:
        seen[racer.pid] = {}
        for _ in range(calls):
            line = read_line(racer, timeout=120)
            seen[racer.pid][line["call"]] = line["state"]
        assert racer.wait(timeout=60) == 0

    async def main() -> dict[str, Any]:
        ledger = store.open()
        try:
            return await ledger.records("raced")
        finally:
            await ledger.aclose()

    records = asyncio.run(main())
    for n in range(calls):
        call = f"call-{n}"
        states = sorted(seen[pid][call] for pid in seen)
        assert states == ["finished", "new"], f"{call}: {states}"
        (winner,) = [pid for pid in seen if seen[pid][call] == "new"]
        state, record = records[call]
        assert state == "finished"
        assert record is not None
        assert record.output == {"pid": winner}


def test_an_exiting_process_is_not_kept_alive(
    store: Store, children: list[subprocess.Popen[str]]
) -> None:
    child = spawn(store, mode="exit", batch="b", call="c")
    children.append(child)
    assert read_line(child) == {"state": "new"}
    assert child.wait(timeout=60) == 0


# -- failures ----------------------------------------------------------------------------------


def test_sqlite_where_no_database_can_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(UsageError, match=r"the folder .*a-file' does not exist; create it first"):
        SQLiteLedger(blocker / "ledger.db")
    with pytest.raises(UsageError, match="is a directory: give the path of a database file"):
        SQLiteLedger(tmp_path)
    folder = tmp_path / "gone"
    folder.mkdir()
    path = folder / "ledger.db"

    async def main() -> str:
        ledger = SQLiteLedger(path)
        folder.rmdir()  # gone after the ledger was made: found when it is first used
        try:
            with pytest.raises(LedgerError) as caught:
                await ledger.claim(SECRET, SECRET, "h")
            with pytest.raises(LedgerError):  # and again: nothing is left half-open
                await ledger.records(SECRET)
            return str(caught.value)
        finally:
            await ledger.aclose()

    message = asyncio.run(main())
    assert message.startswith(f"sqlite ledger at {path}: ")
    assert "unable to open database file" in message
    assert SECRET not in message
    assert ledger_threads() == []


def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(b"\x00garbage" * 1000)

    async def main() -> str:
        ledger = SQLiteLedger(path)
        try:
            with pytest.raises(LedgerError) as caught:
                await ledger.claim(SECRET, "c", "h")
            return str(caught.value)
        finally:
            await ledger.aclose()

    message = asyncio.run(main())
    assert message == f"sqlite ledger at {path}: file is not a database"


def test_postgres_stopped_mid_call() -> None:
    server = PostgresServer().start()
    try:
        dsn = f"postgresql://postgres:hunter2@127.0.0.1:{server.port}/postgres"

        async def main() -> list[str]:
            ledger = PostgresLedger(dsn)
            try:
                claim = await ledger.claim(SECRET, SECRET, "h")
                assert claim.state == "new"
                server.stop()
                messages = []
                with pytest.raises(LedgerError) as caught:
                    await ledger.finish(claim, LedgerRecord("ok", SECRET, SECRET, None, 1))
                messages.append(str(caught.value))
                with pytest.raises(LedgerError) as caught:
                    await ledger.claim(SECRET, SECRET, "h")
                messages.append(str(caught.value))
                return messages
            finally:
                await ledger.aclose()

        messages = asyncio.run(main())
    finally:
        server.cleanup()
    where = f"postgres ledger at 127.0.0.1:{server.port}/postgres (table toolweave_calls): "
    for message in messages:
        assert message.startswith(where), message
        assert SECRET not in message
        assert "hunter2" not in message
    assert "connection" in messages[1].lower()
    assert ledger_threads() == []


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda: SQLiteLedger(":memory:"), "not ':memory:'", id="sqlite-memory"),
        pytest.param(lambda: SQLiteLedger(""), "not empty", id="sqlite-empty"),
        pytest.param(lambda: SQLiteLedger(42), "needs a file path, got int", id="sqlite-int"),  # type: ignore[arg-type]
        pytest.param(
            lambda: SQLiteLedger("x.db", poll=0), "poll must be a positive", id="poll-zero"
        ),
        pytest.param(
            lambda: SQLiteLedger("x.db", poll=float("nan")), "poll must be a positive", id="nan"
        ),
        pytest.param(
            lambda: PostgresLedger("postgresql://u@h/d", table="calls; DROP TABLE x"),
            "table must be a plain table name",
            id="pg-table",
        ),
        pytest.param(
            lambda: PostgresLedger("host=h password='hunter2 port=x"),
            "DSN is not a valid",
            id="pg-dsn",
        ),
    ],
)
def test_constructor_mistakes(make: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        make()
    assert "hunter2" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_a_slow_backend_never_blocks_the_event_loop(tmp_path: Path) -> None:
    """While the worker thread waits on SQLite's write lock, other tasks keep running."""
    import sqlite3

    path = tmp_path / "ledger.db"

    async def main() -> int:
        ledger = SQLiteLedger(path)
        try:
            await ledger.records("warm-up")  # creates the table
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")  # holds the database's write lock
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            ticker = asyncio.create_task(tick())
            claiming = asyncio.create_task(ledger.claim("b", "c", "h"))
            await asyncio.sleep(0.5)
            assert not claiming.done()
            blocker.execute("COMMIT")
            blocker.close()
            claim = await asyncio.wait_for(claiming, 30)
            ticker.cancel()
            assert claim.state == "new"
            return ticks
        finally:
            await ledger.aclose()

    start = time.monotonic()
    ticks = asyncio.run(main())
    assert ticks >= 5, f"the event loop ran {ticks} times in {time.monotonic() - start:.1f} s"


def test_a_claim_cancelled_while_its_attempt_runs_gives_the_call_back(tmp_path: Path) -> None:
    """The attempt on the worker thread cannot be stopped; once it is done, what it took (the
    lock and the new row) is given back, so nothing waits on a claim nobody holds."""
    import sqlite3

    path = tmp_path / "ledger.db"

    async def main() -> tuple[dict[str, Any], Claim]:
        ledger = SQLiteLedger(path)
        try:
            await ledger.records("warm-up")
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")  # the attempt's insert waits on this
            claiming = asyncio.create_task(ledger.claim("b", "c", "h"))
            await asyncio.sleep(0.5)
            claiming.cancel()
            with pytest.raises(asyncio.CancelledError):
                await claiming
            blocker.execute("COMMIT")
            blocker.close()
            again = await asyncio.wait_for(ledger.claim("b", "c", "h"), 30)
            await ledger.release(again)
            return await ledger.records("b"), again
        finally:
            await ledger.aclose()

    records, again = asyncio.run(main())
    assert (again.state, again.runs) == ("new", 0)
    assert records == {}


def test_abandon_keeps_the_row_started(store: Store) -> None:
    """A call cancelled while its tool ran may have happened: the next claim is told so."""

    async def main() -> tuple[dict[str, Any], Claim]:
        ledger = store.open()
        try:
            claim = await ledger.claim("batch-1", "c1", "h")
            await ledger.abandon(claim)
            with pytest.raises(UsageError, match=r"abandon\(\) needs a claim"):
                await ledger.abandon(claim)
            records = await ledger.records("batch-1")
            return records, await asyncio.wait_for(ledger.claim("batch-1", "c1", "h"), 30)
        finally:
            await ledger.aclose()

    records, again = asyncio.run(main())
    assert records == {"c1": ("started", None)}
    assert (again.state, again.runs) == ("interrupted", 1)


def test_a_finish_is_handed_over_when_called_even_if_never_awaited(store: Store) -> None:
    """An agent whose loop ends (or is cancelled) right after a call's answer still records
    it: the write goes to the ledger's thread when ``finish()`` is called, and ``aclose()`` (or
    the end of the process) waits for it."""

    async def main() -> dict[str, tuple[str, LedgerRecord | None]]:
        ledger = store.open()
        claim = await ledger.claim("b", "c", "h")
        pending = ledger.finish(claim, OK)
        pending.close()  # type: ignore[attr-defined]  # never awaited, as a cancelled task's
        await ledger.aclose()
        again = store.open()
        try:
            return await again.records("b")
        finally:
            await again.aclose()

    assert asyncio.run(main()) == {"c": ("finished", OK)}


def test_a_ledger_never_closed_still_writes_its_last_records_at_exit(
    store: Store, children: list[subprocess.Popen[str]]
) -> None:
    code = (
        "import asyncio, json, sys\n"
        "from toolweave import LedgerRecord, PostgresLedger, SQLiteLedger\n"
        "job = json.loads(sys.argv[1])\n"
        "async def main():\n"
        "    ledger = (SQLiteLedger(job['location']) if job['backend'] == 'sqlite'\n"
        "              else PostgresLedger(job['location'], table=job['table']))\n"
        "    claim = await ledger.claim('b', 'c', 'h')\n"
        "    ledger.finish(claim, LedgerRecord('ok', 1, None, None, 1)).close()\n"
        "    globals()['kept'] = ledger  # alive until the interpreter exits, never closed\n"
        "asyncio.run(main())\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(store.spec())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children.append(child)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err

    async def main() -> dict[str, tuple[str, LedgerRecord | None]]:
        ledger = store.open()
        try:
            return await ledger.records("b")
        finally:
            await ledger.aclose()

    recorded = asyncio.run(main())
    assert recorded["c"][0] == "finished"
