"""``toolweave demo --agent``: a complete OpenAI agent loop over the demo tools.

Offline it talks to ``ScriptedOpenAIServer`` on 127.0.0.1; with ``OPENAI_API_KEY`` set it uses
the real endpoint (``OPENAI_BASE_URL`` and ``TOOLWEAVE_DEMO_MODEL`` are honoured).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Any, TextIO

from toolweave import Orchestrator
from toolweave._demo import DEMO_TOOLS
from toolweave.telemetry._values import safe_str, to_text

from .openai import AgentRun, run_openai_agent
from .scripted_server import ScriptedOpenAIServer, demo_script

__all__ = ["main", "run_demo_agent"]

PROMPT = "Find a good page about dependency graphs, summarise it, and tell me Lisbon's weather."


async def run_demo_agent(client: Any, model: str) -> AgentRun:
    """Run the demo request through ``run_openai_agent`` with the demo tools."""
    orchestrator = Orchestrator(DEMO_TOOLS)
    return await run_openai_agent(
        client, model, [{"role": "user", "content": PROMPT}], orchestrator, max_turns=4
    )


def main(out: TextIO = sys.stdout) -> int:
    """Run the demo agent and print the conversation; the exit code. ``ConnectionError`` when
    the model endpoint cannot be reached and ``RuntimeError`` when it refuses the request, each
    naming the endpoint and the settings to check."""
    import openai
    from openai import AsyncOpenAI

    with contextlib.ExitStack() as stack:
        if os.environ.get("OPENAI_API_KEY"):
            # No retries: a wrong endpoint or key is reported at once, not after back-offs.
            client = AsyncOpenAI(max_retries=0, timeout=60.0)
            model = os.environ.get("TOOLWEAVE_DEMO_MODEL", "gpt-4.1-mini")
            print(f"agent demo against {client.base_url} ({model})", file=out)
        else:
            server = stack.enter_context(ScriptedOpenAIServer(script=demo_script))
            client = AsyncOpenAI(base_url=server.base_url, api_key="offline")
            model = "scripted"
            print(f"agent demo offline, against a scripted model at {server.base_url}", file=out)
        try:
            run = asyncio.run(run_demo_agent(client, model))
        except openai.APIConnectionError as exc:  # APITimeoutError included
            raise ConnectionError(
                f"the model endpoint {client.base_url} could not be reached "
                f"({type(exc).__name__}: {safe_str(exc, 200)}); check OPENAI_BASE_URL "
                "(unset for api.openai.com) and OPENAI_API_KEY (unset to run offline)"
            ) from exc
        except openai.APIStatusError as exc:
            raise RuntimeError(
                f"the model endpoint {client.base_url} refused the request with HTTP "
                f"{exc.status_code} ({safe_str(exc, 200)}); check OPENAI_API_KEY, "
                "OPENAI_BASE_URL and TOOLWEAVE_DEMO_MODEL"
            ) from exc
    print(f"user: {PROMPT}", file=out)
    for batch in run.batches:
        print(f"\nbatch: {batch.plan.strategy}, groups {batch.plan.groups}", file=out)
        for r in batch.results:
            shown = to_text(r.output if r.ok else r.error, 70)
            print(f"  {r.call_id} {r.name}: {r.status} {shown}", file=out)
    print(f"\nassistant: {run.final}", file=out)
    print(f"({run.turns} model turns, {len(run.batches)} batches)", file=out)
    return 0 if run.final is not None and all(b.ok for b in run.batches) else 1
