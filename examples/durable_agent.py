"""A durable agent: kill it in the middle of a batch, start it again, and no side effect
happens twice.

    python examples/durable_agent.py --crash charge   # dies inside charge, card already charged
    python examples/durable_agent.py                  # resumes the same batch
    python examples/durable_agent.py --reset && python examples/durable_agent.py --crash email

The agent keeps two things on disk, in --dir (default: ./durable-agent-state): the model's
response, saved before its calls run (a restarted agent must run the same response, not ask the
model again), and the call ledger, which records every call of the batch. The "payment API"
and the "mail server" are files in the same folder, so you can see what really happened.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil

from toolweave import CallContext, Orchestrator, SQLiteLedger, ToolCall, tool

parser = argparse.ArgumentParser()
parser.add_argument("--dir", default="durable-agent-state", type=pathlib.Path)
parser.add_argument("--crash", choices=["charge", "email"], help="die inside this tool")
parser.add_argument("--reset", action="store_true", help="forget everything and stop")
args = parser.parse_args()
state: pathlib.Path = args.dir
if args.reset:
    shutil.rmtree(state, ignore_errors=True)
    raise SystemExit(0)
state.mkdir(exist_ok=True)


def record(what: str) -> None:
    with open(state / "world.txt", "a", encoding="utf-8") as world:
        world.write(what + "\n")
        world.flush()
        os.fsync(world.fileno())


def crash_here(tool_name: str) -> None:
    if args.crash == tool_name:
        os._exit(9)  # as abrupt as a SIGKILL: nothing is cleaned up or recorded


@tool(idempotent=True)
def lookup_customer(name: str) -> dict[str, str]:
    """Read-only: safe to run again."""
    return {"email": f"{name.lower()}@example.org", "card": "tok_4242"}


@tool(idempotent=True)
def charge(card: str, cents: int, ctx: CallContext) -> dict[str, str]:
    """The payment API dedupes on the idempotency key, as Stripe does: a repeat is a no-op."""
    world = state / "world.txt"
    if ctx.idempotency_key not in (world.read_text() if world.exists() else ""):
        record(f"charged {card} {cents} cents, key {ctx.idempotency_key}")
    crash_here("charge")
    return {"charge": ctx.idempotency_key[-8:], "cents": str(cents)}


@tool
def send_email(to: str, text: str) -> str:
    """Not idempotent: a repeat sends a second email."""
    record(f"emailed {to}: {text}")
    crash_here("email")
    return "sent"


def model_response() -> dict[str, object]:
    """The model's answer (scripted here), saved before anything runs."""
    saved = state / "response.json"
    if saved.exists():
        return dict(json.loads(saved.read_text()))
    response = {
        "id": "resp_0001",
        "calls": [
            {"id": "c1", "name": "lookup_customer", "arguments": {"name": "Ann"}},
            {"id": "c2", "name": "charge", "arguments": {"card": "${c1.card}", "cents": 1999}},
            {"id": "c3", "name": "send_email",
             "arguments": {"to": "${c1.email}", "text": "Receipt: ${c2.charge}"}},
        ],
    }  # fmt: skip
    saved.write_text(json.dumps(response))
    return response


response = model_response()
calls = [ToolCall.model_validate(c) for c in response["calls"]]  # type: ignore[attr-defined]
with SQLiteLedger(state / "calls.db") as ledger:
    orchestrator = Orchestrator([lookup_customer, charge, send_email], ledger=ledger)
    result = orchestrator.run_sync(calls, batch_id=str(response["id"]))
for r in result.results:
    how = "replayed" if r.replayed else ("ran" if r.attempts else "not run")
    print(f"{r.call_id} {r.name}: {r.status} ({how}){' ' + r.error_type if r.error_type else ''}")
print("what happened in the world:")
print((state / "world.txt").read_text(), end="")
