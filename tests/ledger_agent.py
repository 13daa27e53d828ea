"""A child "agent" for the crash, resume and race tests of the durable call ledger.

It runs one batch through a real ``Orchestrator`` with a ``SQLiteLedger`` or ``PostgresLedger``
(or none, with a ``RedisCache``), and prints the ``BatchResult`` as one JSON line when done::

    python ledger_agent.py --ledger sqlite --where /tmp/l.db --batch-id b1 --effects /tmp/fx \\
        [--pause email:after --marker /tmp/m] [--go /tmp/go] [--batch chain|race|quote] \\
        [--reverse] [--tool-sleep 0.2] [--redis URL --prefix P]

Every tool appends one JSON line to the ``--effects`` file (flushed and fsynced) at the moment
of its side effect: a read tool counts too, so a test sees every time a tool ran. ``--pause
CALL:POINT`` makes the process write ``--marker`` and sleep at that point of that call, for the
parent to SIGKILL it there:

- ``before``: inside the tool, before its side effect;
- ``after``: inside the tool, after its side effect, before it returns (the result is recorded
  when the call ends, so this is "run but not recorded");
- ``recorded``: the call's result is in the ledger: the next call of the chain, which needs
  its output, pauses before its own side effect.

``--go FILE`` waits (after the imports and connecting the ledger, before the batch) until FILE
exists, so a parent can start a process early and release it, or release two at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from typing import Any

from toolweave import (
    CallContext,
    CallLedger,
    Orchestrator,
    PostgresLedger,
    RedisCache,
    SQLiteLedger,
    Tool,
    tool,
)

CHAIN = ("lookup", "email", "inbox", "charge", "receipt")
"""The chain batch's call ids, each needing the one before: a strict order."""

CHAIN_TOOLS = {
    "lookup": "lookup_customer",
    "email": "send_email",
    "inbox": "check_inbox",
    "charge": "charge",
    "receipt": "get_receipt",
}
IDEMPOTENT = {"lookup_customer", "check_inbox", "charge", "get_receipt", "quote"}
"""Tools declared ``@tool(idempotent=True)``; ``send_email`` is not."""

CUSTOMER = "Zoë ☃ O'Brien"


def chain_calls() -> list[dict[str, Any]]:
    """lookup -> email -> inbox -> charge -> receipt, each through a reference."""
    return [
        {"id": "lookup", "name": "lookup_customer", "arguments": {"customer": CUSTOMER}},
        {
            "id": "email",
            "name": "send_email",
            "arguments": {"to": "${lookup.email}", "subject": "Your order, ${lookup.name}"},
        },
        {"id": "inbox", "name": "check_inbox", "arguments": {"message_id": "${email.message_id}"}},
        {
            "id": "charge",
            "name": "charge",
            "arguments": {
                "amount": {"$ref": "lookup", "path": "$.amount"},
                "memo": "${inbox.thread}",
            },
        },
        {"id": "receipt", "name": "get_receipt", "arguments": {"charge_id": "${charge.charge_id}"}},
    ]


def race_calls() -> list[dict[str, Any]]:
    """Independent side effects (all start at once) and one call needing another's output."""
    calls: list[dict[str, Any]] = [
        {
            "id": f"email-{n}",
            "name": "send_email",
            "arguments": {"to": f"user{n}@example.com", "subject": f"news {n}"},
        }
        for n in range(4)
    ]
    calls += [
        {"id": f"charge-{n}", "name": "charge", "arguments": {"amount": 100 + n, "memo": "race"}}
        for n in range(2)
    ]
    calls.append(
        {
            "id": "receipt",
            "name": "get_receipt",
            "arguments": {"charge_id": "${charge-0.charge_id}"},
        }
    )
    return calls


def quote_calls() -> list[dict[str, Any]]:
    """One cacheable read."""
    return [{"id": "q", "name": "quote", "arguments": {"symbol": "ACME-☃"}}]


BATCHES = {"chain": chain_calls, "race": race_calls, "quote": quote_calls}


@dataclass(frozen=True)
class Config:
    """What one agent process does."""

    ledger: str  # "sqlite", "postgres" or "none"
    where: str  # the SQLite path or the PostgreSQL DSN
    table: str
    batch_id: str
    effects: str
    batch: str = "chain"
    reverse: bool = False  # send the calls in reverse order (same calls, same ids)
    pause: tuple[str, str] | None = None  # (call id, "before" | "after"), already resolved
    marker: str | None = None
    tool_sleep: float = 0.0
    redis: str | None = None
    prefix: str = "toolweave:cache:"


def resolve_pause(spec: str) -> tuple[str, str]:
    """``CALL:POINT`` as the (call id, point inside a tool) where the process stops."""
    call_id, _, point = spec.rpartition(":")
    if point == "recorded":
        if call_id not in CHAIN[:-1]:
            raise SystemExit(f"--pause {spec}: 'recorded' needs a chain call before the last")
        return CHAIN[CHAIN.index(call_id) + 1], "before"
    if point not in ("before", "after") or not call_id:
        raise SystemExit(f"--pause {spec}: write CALL:before, CALL:after or CALL:recorded")
    return call_id, point


def write_marker(path: str) -> None:
    """Say "paused here" with this pid, all at once (the parent polls for the file)."""
    temp = f"{path}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, str(os.getpid()).encode())
    finally:
        os.close(fd)
    os.replace(temp, path)


def exists(path: str) -> bool:
    """Whether ``path`` exists (a quick stat, fine on the event loop)."""
    return os.path.exists(path)


class Agent:
    """The tools of one process, writing their side effects to the effects file."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def effect(self, ctx: CallContext, tool_name: str, **details: Any) -> None:
        """Append one line for a side effect, durably: the parent counts lines."""
        line = json.dumps(
            {
                "call_id": ctx.call_id,
                "tool": tool_name,
                "key": ctx.idempotency_key,
                "attempt": ctx.attempt,
                "pid": os.getpid(),
                **details,
            }
        )
        fd = os.open(self.config.effects, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())  # one write: lines of racing processes never mix
            os.fsync(fd)
        finally:
            os.close(fd)

    async def checkpoint(self, ctx: CallContext, point: str) -> None:
        """Stop here for good if this is the kill point: say so, then wait to be killed."""
        if self.config.pause != (ctx.call_id, point):
            return
        assert self.config.marker is not None
        write_marker(self.config.marker)
        await asyncio.sleep(3600)  # the parent SIGKILLs this process here

    async def around(self, ctx: CallContext, tool_name: str, **details: Any) -> None:
        """The side effect of one call, with its two kill points around it."""
        if self.config.tool_sleep:
            await asyncio.sleep(self.config.tool_sleep)
        await self.checkpoint(ctx, "before")
        self.effect(ctx, tool_name, **details)
        await self.checkpoint(ctx, "after")

    def tools(self) -> list[Tool]:
        """The tools, as a real application declares them."""
        agent = self

        def ran_by() -> dict[str, Any]:
            return {"pid": os.getpid(), "nonce": uuid.uuid4().hex[:8]}

        @tool(idempotent=True)
        async def lookup_customer(customer: str, ctx: CallContext) -> dict[str, Any]:
            """Read a customer's record."""
            await agent.around(ctx, "lookup_customer")
            email = "zoe.obrien@example.com"
            return {"name": customer, "email": email, "amount": 4200, **ran_by()}

        @tool
        async def send_email(to: str, subject: str, ctx: CallContext) -> dict[str, Any]:
            """Send an email (not idempotent: a repeat sends it twice)."""
            await agent.around(ctx, "send_email", to=to)
            return {"message_id": f"msg-{uuid.uuid4().hex[:12]}", "to": to, **ran_by()}

        @tool(idempotent=True)
        async def check_inbox(message_id: str, ctx: CallContext) -> dict[str, Any]:
            """Read the thread an email started."""
            await agent.around(ctx, "check_inbox")
            return {"thread": f"thread-of-{message_id}", **ran_by()}

        @tool(idempotent=True)
        async def charge(amount: int, memo: str, ctx: CallContext) -> dict[str, Any]:
            """Charge a card; the payment API dedupes on the idempotency key."""
            await agent.around(ctx, "charge", amount=amount)
            return {
                "charge_id": f"ch-{uuid.uuid4().hex[:12]}",
                "amount": amount,
                "memo": memo,
                "key": ctx.idempotency_key,
                **ran_by(),
            }

        @tool(idempotent=True)
        async def get_receipt(charge_id: str, ctx: CallContext) -> dict[str, Any]:
            """Read a charge's receipt."""
            await agent.around(ctx, "get_receipt")
            return {"receipt": f"receipt-{charge_id}", **ran_by()}

        @tool(idempotent=True, cache_ttl=60)
        async def quote(symbol: str, ctx: CallContext) -> dict[str, Any]:
            """Read a price (cacheable for a minute)."""
            await agent.around(ctx, "quote")
            return {"symbol": symbol, "price": 1234, **ran_by()}

        return [lookup_customer, send_email, check_inbox, charge, get_receipt, quote]


def open_ledger(config: Config) -> CallLedger | None:
    """The ledger the config names, or None."""
    if config.ledger == "sqlite":
        return SQLiteLedger(config.where, poll=0.02)
    if config.ledger == "postgres":
        return PostgresLedger(config.where, table=config.table, poll=0.02)
    return None


async def run(config: Config, go: str | None = None) -> dict[str, Any]:
    """Run the configured batch once; its ``to_trace(include_content=True)`` and this pid.
    With ``go``, connect the ledger first, then wait until that file exists."""
    ledger = open_ledger(config)
    cache = RedisCache(config.redis, prefix=config.prefix) if config.redis else None
    try:
        orchestrator = Orchestrator(Agent(config).tools(), ledger=ledger, cache=cache)
        calls = BATCHES[config.batch]()
        if config.reverse:
            calls.reverse()
        if go is not None:
            if ledger is not None:  # connected, so racers start even
                await ledger.records(config.batch_id)
            while not exists(go):  # noqa: ASYNC110
                await asyncio.sleep(0.002)
        result = await orchestrator.run(calls, batch_id=config.batch_id)
        return {"pid": os.getpid(), **result.to_trace(include_content=True)}
    finally:
        if cache is not None:
            await cache.aclose()
        if ledger is not None:
            await ledger.aclose()


def parse(argv: list[str]) -> tuple[Config, str | None]:
    """The ``Config`` and the ``--go`` file from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ledger", choices=["sqlite", "postgres", "none"], required=True)
    parser.add_argument("--where", default="")
    parser.add_argument("--table", default="toolweave_calls")
    parser.add_argument("--batch-id", required=True)
    parser.add_argument("--effects", required=True)
    parser.add_argument("--batch", choices=sorted(BATCHES), default="chain")
    parser.add_argument("--reverse", action="store_true")
    parser.add_argument("--pause")
    parser.add_argument("--marker")
    parser.add_argument("--go")
    parser.add_argument("--tool-sleep", type=float, default=0.0)
    parser.add_argument("--redis")
    parser.add_argument("--prefix", default="toolweave:cache:")
    args = parser.parse_args(argv)
    if args.pause and not args.marker:
        parser.error("--pause needs --marker")
    config = Config(
        ledger=args.ledger,
        where=args.where,
        table=args.table,
        batch_id=args.batch_id,
        effects=args.effects,
        batch=args.batch,
        reverse=args.reverse,
        pause=resolve_pause(args.pause) if args.pause else None,
        marker=args.marker,
        tool_sleep=args.tool_sleep,
        redis=args.redis,
        prefix=args.prefix,
    )
    return config, args.go


def main(argv: list[str]) -> None:
    config, go = parse(argv)
    record = asyncio.run(run(config, go))
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
