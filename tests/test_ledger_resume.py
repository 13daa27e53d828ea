"""Crash and resume of a durable batch, in real processes killed with SIGKILL.

``ledger_agent.py`` runs a chain of calls (lookup -> send_email -> check_inbox -> charge ->
get_receipt, each needing the one before) through a real ``Orchestrator`` and ledger, and stops
at a kill point: before a tool's side effect, after it but before the result is recorded, or
after the record. The test SIGKILLs it there, resumes the same ``batch_id`` in a new process,
then runs it a third time, and checks the side effects a file counted and what each run
answered. Two processes racing on one batch, and a Redis cache shared by two processes, too.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ledger_agent
import pytest
from ledger_agent import CHAIN, CHAIN_TOOLS, IDEMPOTENT
from postgres_server import postgres_dsn  # noqa: F401
from redis_server import redis_server, redis_url  # noqa: F401

from toolweave import CallLedger, LedgerRecord, PostgresLedger, SQLiteLedger
from toolweave._hooks import idempotency_key
from toolweave._reuse import same_call

AGENT = Path(__file__).with_name("ledger_agent.py")
WAIT = 90.0  # seconds for a child to reach a point or finish: a loaded 2-core machine


@dataclass(frozen=True)
class Store:
    """Where the ledger lives, for this process and the agents."""

    kind: str
    where: str
    table: str = "toolweave_calls"

    def args(self) -> list[str]:
        return ["--ledger", self.kind, "--where", self.where, "--table", self.table]

    def open(self) -> CallLedger:
        if self.kind == "sqlite":
            return SQLiteLedger(self.where)
        return PostgresLedger(self.where, table=self.table)

    def records(self, batch_id: str) -> dict[str, tuple[str, LedgerRecord | None]]:
        async def read() -> dict[str, tuple[str, LedgerRecord | None]]:
            ledger = self.open()
            try:
                return await ledger.records(batch_id)
            finally:
                await ledger.aclose()

        return asyncio.run(read())


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return Store("sqlite", str(tmp_path / "ledger.db"))
    dsn = request.getfixturevalue("postgres_dsn")
    return Store("postgres", dsn, f"resume_{uuid.uuid4().hex[:12]}")  # a table per test


def start(children: list[subprocess.Popen[str]], *args: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, str(AGENT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children.append(child)
    return child


def wait_for(path: Path, child: subprocess.Popen[str]) -> None:
    """Until ``child`` wrote ``path`` (it reached its kill point)."""
    deadline = time.monotonic() + WAIT
    while not path.exists():
        if child.poll() is not None:
            _, err = child.communicate(timeout=30)
            pytest.fail(f"the agent ended ({child.returncode}) before its kill point:\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"the agent did not reach its kill point in {WAIT:.0f}s")
        time.sleep(0.01)


def result_of(child: subprocess.Popen[str]) -> dict[str, Any]:
    """The agent's printed ``BatchResult`` trace, once it has ended well."""
    out, err = child.communicate(timeout=WAIT)
    if child.returncode != 0:
        pytest.fail(f"the agent failed ({child.returncode}):\n{err[-4000:]}")
    record: dict[str, Any] = json.loads(out)
    return record


def calls_of(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {call["call_id"]: call for call in record["calls"]}


def effects(path: Path) -> list[dict[str, Any]]:
    """The side effects counted so far, one line each."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def effects_of(path: Path, call_id: str) -> list[dict[str, Any]]:
    return [line for line in effects(path) if line["call_id"] == call_id]


# -- crash and resume --------------------------------------------------------------------------

KILL_POINTS = [
    pytest.param("email", "before", id="send_email-killed-before-its-effect"),
    pytest.param("email", "after", id="send_email-killed-after-its-effect-unrecorded"),
    pytest.param("email", "recorded", id="send_email-killed-after-its-record"),
    pytest.param("charge", "before", id="idempotent-charge-killed-before-its-effect"),
    pytest.param("charge", "after", id="idempotent-charge-killed-after-its-effect-unrecorded"),
    pytest.param("charge", "recorded", id="idempotent-charge-killed-after-its-record"),
]


@pytest.mark.parametrize(("target", "point"), KILL_POINTS)
def test_killed_batch_resumes_without_repeating_a_finished_call(
    store: Store,
    children: list[subprocess.Popen[str]],
    tmp_path: Path,
    target: str,
    point: str,
) -> None:
    batch_id = f"order-☃-{uuid.uuid4().hex[:8]}"
    fx, marker, go = tmp_path / "effects.jsonl", tmp_path / "paused", tmp_path / "go"
    common = [*store.args(), "--batch-id", batch_id, "--effects", str(fx)]
    killed = start(children, *common, "--pause", f"{target}:{point}", "--marker", str(marker))
    resumer = start(children, *common, "--go", str(go))  # imports while the first one runs
    wait_for(marker, killed)

    # the kill point is where it should be: the ledger and the effects file agree
    paused = CHAIN[CHAIN.index(target) + 1] if point == "recorded" else target
    done_before = CHAIN[: CHAIN.index(paused)]
    at_kill = store.records(batch_id)
    assert list(at_kill) == [*done_before, paused]
    assert at_kill[paused] == ("started", None)
    for call_id in done_before:
        state, record = at_kill[call_id]
        assert state == "finished"
        assert record is not None
        assert (record.status, record.attempts) == ("ok", 1)
        assert record.output["pid"] == killed.pid
    assert len(effects_of(fx, paused)) == (1 if point == "after" else 0)

    os.kill(killed.pid, signal.SIGKILL)
    assert killed.wait(timeout=WAIT) == -signal.SIGKILL
    go.touch()
    second = calls_of(result_of(resumer))
    assert list(second) == list(CHAIN)

    # nothing recorded is lost and no finished call ran again
    for call_id in done_before:
        result = second[call_id]
        assert result["replayed"] is True, call_id
        assert result["status"] == "ok"
        assert result["output"] == at_kill[call_id][1].output  # type: ignore[union-attr]
        assert len(effects_of(fx, call_id)) == 1, f"{call_id} ran twice"

    lines = effects_of(fx, paused)
    result = second[paused]
    assert result["replayed"] is False
    if CHAIN_TOOLS[paused] in IDEMPOTENT:
        # re-run, which is what idempotent means, with the key a real API dedupes on
        assert result["status"] == "ok", result["error"]
        assert result["output"]["pid"] == resumer.pid
        assert [line["pid"] for line in lines] == (
            [killed.pid, resumer.pid] if point == "after" else [resumer.pid]
        )
        arguments = result["arguments"]  # as resolved and validated: what the key hashes
        expected = idempotency_key(batch_id, paused, same_call(CHAIN_TOOLS[paused], arguments))
        assert {line["key"] for line in lines} == {expected}
        if paused == "charge":
            assert result["output"]["key"] == lines[0]["key"]
        for call_id in CHAIN[CHAIN.index(paused) + 1 :]:
            assert (second[call_id]["status"], second[call_id]["replayed"]) == ("ok", False)
            assert [line["pid"] for line in effects_of(fx, call_id)] == [resumer.pid]
    else:
        # not idempotent: not repeated, and the model is told to check
        assert (result["status"], result["error_type"]) == ("error", "uncertain")
        assert result["error"].startswith("call 'email' (send_email): uncertain: ")
        assert "may or may not have taken effect" in result["error"]
        assert "Check whether it took effect" in result["error"]
        # killed before its effect: the ledger cannot know, but the effects file shows it
        assert len(lines) == (1 if point == "after" else 0)
        for call_id in CHAIN[CHAIN.index(paused) + 1 :]:
            assert second[call_id]["status"] == "skipped", second[call_id]
            assert second[call_id]["error_type"] == "dependency_failed"
            assert effects_of(fx, call_id) == []

    # a third run replays everything recorded and changes nothing
    recorded = store.records(batch_id)
    assert all(state == "finished" for state, _ in recorded.values()), recorded
    counted = effects(fx)
    config = ledger_agent.Config(
        ledger=store.kind, where=store.where, table=store.table, batch_id=batch_id, effects=str(fx)
    )
    third = calls_of(asyncio.run(ledger_agent.run(config)))
    assert effects(fx) == counted
    assert store.records(batch_id) == recorded
    for call_id in CHAIN:
        assert third[call_id]["replayed"] is (call_id in recorded), call_id
        for field in ("status", "error_type", "error", "output"):
            assert third[call_id][field] == second[call_id][field], (call_id, field)


# -- racing ------------------------------------------------------------------------------------


def test_two_processes_racing_on_one_batch_run_each_call_once(
    store: Store, children: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    batch_id = f"race-{uuid.uuid4().hex[:8]}"
    fx, go = tmp_path / "effects.jsonl", tmp_path / "go"
    args = [*store.args(), "--batch-id", batch_id, "--effects", str(fx), "--batch", "race"]
    args += ["--go", str(go), "--tool-sleep", "0.2"]
    # the second sends the calls in reverse order, so that each process usually wins some
    racers = [start(children, *args), start(children, *args, "--reverse")]
    go.touch()
    runs = [calls_of(result_of(racer)) for racer in racers]

    lines = effects(fx)
    call_ids = [call["id"] for call in ledger_agent.race_calls()]
    assert sorted(line["call_id"] for line in lines) == sorted(call_ids), "a call ran twice"
    for call_id in call_ids:
        a, b = (run[call_id] for run in runs)
        assert (a["status"], b["status"]) == ("ok", "ok"), (a["error"], b["error"])
        # one process ran it; the other waited for it and replayed its result
        assert sorted([a["replayed"], b["replayed"]]) == [False, True], call_id
        assert a["output"] == b["output"]
        runner = racers[0] if not a["replayed"] else racers[1]
        assert [line["pid"] for line in lines if line["call_id"] == call_id] == [runner.pid]
        assert a["output"]["pid"] == runner.pid


# -- a cache shared by processes -----------------------------------------------------------------


def test_redis_cache_answers_a_second_process(
    redis_url: str,  # noqa: F811
    children: list[subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    fx, go = tmp_path / "effects.jsonl", tmp_path / "go"
    args = ["--ledger", "none", "--batch", "quote", "--effects", str(fx), "--redis", redis_url]
    args += ["--prefix", f"toolweave-test:{uuid.uuid4().hex}:"]
    first = start(children, *args, "--batch-id", "first")
    second = start(children, *args, "--batch-id", "second", "--go", str(go))
    (a,) = result_of(first)["calls"]
    go.touch()
    (b,) = result_of(second)["calls"]

    assert (a["status"], a["cached"], a["replayed"]) == ("ok", False, False)
    assert (b["status"], b["cached"], b["replayed"]) == ("ok", True, False)
    assert b["output"] == a["output"]
    assert a["output"]["pid"] == first.pid
    assert [line["pid"] for line in effects(fx)] == [first.pid]
