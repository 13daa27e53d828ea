"""A pydantic-ai agent whose tool calls run through toolweave.

    python examples/pydantic_ai_agent.py

The agent's tools are external (pydantic-ai's ``ExternalToolset``), so the model's batch of
tool calls comes back as ``DeferredToolRequests``. One ``Orchestrator.run`` runs the batch as a
dependency graph (``"${1.items[0].id}"`` resolved), its results go back as
``DeferredToolResults``, and the run continues to the model's answer.

Offline it starts a scripted OpenAI-compatible server on 127.0.0.1; with OPENAI_API_KEY set
(and OPENAI_BASE_URL for another compatible server) it talks to the real model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_ai import (
    Agent,
    DeferredToolRequests,
    DeferredToolResults,
    ModelMessage,
    ModelResponse,
    ModelRetry,
    RunContext,
    ToolCallPart,
    ToolDefinition,
    ToolFailed,
    ToolReturn,
)
from pydantic_ai.agent import AgentRunResult
from pydantic_ai.capabilities import Hooks
from pydantic_ai.models import Model
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.toolsets import ExternalToolset

from toolweave import BatchResult, CallResult, Orchestrator, Tool, ToolCall, tool
from toolweave.adapters.openai import openai_tools, reference_instructions
from toolweave.telemetry import to_jsonable, to_text
from toolweave.testing import ScriptedOpenAIServer

# ------------------------------------------------------------------------------ the tools

CATALOGUE = {
    1042: {"name": "Oak standing desk", "eur": 349.0},
    1043: {"name": "Walnut standing desk", "eur": 429.0},
}


@tool
async def search_products(query: str, limit: int = 3) -> dict[str, Any]:
    """Search the shop's catalogue; returns the matching items, best first."""
    words = query.lower().split()
    hits = [
        {"id": pid, "name": item["name"]}
        for pid, item in CATALOGUE.items()
        if all(w in str(item["name"]).lower() for w in words)
    ]
    return {"items": hits[:limit]}


@tool
async def get_price(product_id: int) -> dict[str, Any]:
    """The price of a product, in euros."""
    if product_id not in CATALOGUE:
        raise LookupError(f"no product with id {product_id}")
    return {"product_id": product_id, "eur": CATALOGUE[product_id]["eur"]}


@tool
def get_stock(product_id: int, city: str) -> dict[str, Any]:
    """How many units of a product the warehouse of a city holds."""
    return {"product_id": product_id, "city": city, "units": 4 if product_id in CATALOGUE else 0}


TOOLS = [search_products, get_price, get_stock]

# ---------------------------------------------------- the glue: pydantic-ai <-> toolweave


def external_toolset(tools: Sequence[Tool]) -> ExternalToolset:
    """The tools as pydantic-ai shows them to the model: name, description, JSON schema. Every
    non-string parameter also takes a ``"${...}"`` reference, and each description says how."""
    return ExternalToolset(
        [
            ToolDefinition(
                name=s["name"], description=s["description"], parameters_json_schema=s["parameters"]
            )
            for s in openai_tools(tools, api="responses", strict=False)
        ]
    )


async def _keep_unreadable_arguments(
    ctx: RunContext[Any],
    *,
    call: ToolCallPart,
    tool_def: ToolDefinition,
    args: str | dict[str, Any],
    error: ValidationError | ModelRetry,
) -> dict[str, Any]:
    # pydantic-ai ends the whole run when an external call's arguments are not JSON (its
    # external tools get no retries). Let the call be deferred as written: toolweave then
    # answers it with an error the model can read, and runs the rest of the batch.
    if tool_def.kind != "external":
        raise error
    return {}


KEEP_UNREADABLE_ARGUMENTS = Hooks[Any](tool_validate_error=_keep_unreadable_arguments)
"""A capability that lets external calls whose arguments are not JSON reach toolweave."""


def calls_from_requests(
    requests: DeferredToolRequests, messages: Sequence[ModelMessage]
) -> list[ToolCall]:
    """One ``ToolCall`` per tool call of the model's last response in ``messages`` (the run's
    messages), in the model's order, so that ``"${2}"`` is the model's second call. Arguments
    go as the model wrote them: a JSON string stays raw, so bad JSON is that call's error."""
    response = next((m for m in reversed(messages) if isinstance(m, ModelResponse)), None)
    written = response.tool_calls if response is not None else []
    deferred = {part.tool_call_id for part in requests.calls}
    seen = {part.tool_call_id for part in written}
    return [
        *(_call(part, part.tool_call_id in deferred) for part in written),
        *(_call(part, True) for part in requests.calls if part.tool_call_id not in seen),
    ]


def _call(part: ToolCallPart, deferred: bool) -> ToolCall:
    if deferred:
        return ToolCall(id=part.tool_call_id, name=part.tool_name, arguments=part.args or {})
    # pydantic-ai answered this call itself (an unknown tool name, say). It stays in the batch,
    # never run, so that positions in references count as the model counted.
    return ToolCall(
        id=part.tool_call_id,
        name=part.tool_name or "(no name)",
        error="toolweave did not run this call, so no other call can use its output.",
    )


def results_for_requests(requests: DeferredToolRequests, batch: BatchResult) -> DeferredToolResults:
    """A result for every deferred call: an output as JSON-safe data (``to_jsonable``: a tool
    may return anything), a failure or a skip as ``ToolFailed`` carrying toolweave's text,
    which names the call and the fix. ``ToolFailed``, not ``ModelRetry``: toolweave has
    already retried, and the model should adapt rather than repeat the call."""
    by_id = {r.call_id: r for r in batch.results}
    return requests.build_results(
        calls={part.tool_call_id: _result(by_id[part.tool_call_id]) for part in requests.calls}
    )


def _result(r: CallResult) -> ToolReturn | ToolFailed:
    if r.ok:
        return ToolReturn(to_jsonable(r.output))
    return ToolFailed(("Not run. " if r.status == "skipped" else "") + to_text(r.error))


# ------------------------------------------------------------------------------ the model


def scripted_model(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The offline model: one batch of calls, two of them using the search's output; then an
    answer read from the tool results it was sent."""
    results = {m["tool_call_id"]: m["content"] for m in messages if m.get("role") == "tool"}
    if not results:
        return {
            "tool_calls": [
                ("call_search", "search_products", {"query": "standing desk", "limit": 2}),
                ("call_price", "get_price", {"product_id": "${1.items[0].id}"}),
                (
                    "call_stock",
                    "get_stock",
                    {"product_id": "${call_search.items[0].id}", "city": "Lisbon"},
                ),
            ]
        }
    try:
        desk = json.loads(results["call_search"])["items"][0]
        price, stock = json.loads(results["call_price"]), json.loads(results["call_stock"])
        return {
            "content": f"The {desk['name']} (id {price['product_id']}) costs {price['eur']} EUR; "
            f"{stock['units']} in stock in {stock['city']}."
        }
    except (KeyError, IndexError, TypeError, ValueError):
        return {"content": "Some tools failed: " + json.dumps(results)}


# ------------------------------------------------------------------------------ the agent

INSTRUCTIONS = "You answer questions about the shop's catalogue."


def build_agent(
    model: Model, tools: Sequence[Tool] = TOOLS
) -> Agent[None, str | DeferredToolRequests]:
    """An agent whose tools are external: a batch of calls ends the run as
    ``DeferredToolRequests``, for toolweave to run."""
    return Agent(
        model,
        output_type=[str, DeferredToolRequests],
        toolsets=[external_toolset(tools)],
        instructions=[INSTRUCTIONS, reference_instructions()],
        capabilities=[KEEP_UNREADABLE_ARGUMENTS],
    )


async def ask(
    agent: Agent[None, str | DeferredToolRequests],
    orchestrator: Orchestrator,
    prompt: str,
    *,
    max_batches: int = 8,
) -> tuple[AgentRunResult[str | DeferredToolRequests], list[BatchResult]]:
    """Run the agent to its answer: each batch of calls the model asks for runs through
    ``orchestrator``, and the run goes on with the results. Returns the last run's result
    (its ``output`` is still ``DeferredToolRequests`` if ``max_batches`` ran out) and every
    ``BatchResult``."""
    result = await agent.run(prompt)
    batches: list[BatchResult] = []
    while isinstance(result.output, DeferredToolRequests) and len(batches) < max_batches:
        requests = result.output
        batches.append(await orchestrator.run(calls_from_requests(requests, result.all_messages())))
        result = await agent.run(
            message_history=result.all_messages(),
            deferred_tool_results=results_for_requests(requests, batches[-1]),
        )
    return result, batches


async def main() -> None:
    with contextlib.ExitStack() as stack:
        if os.environ.get("OPENAI_API_KEY"):  # OpenAIProvider reads OPENAI_BASE_URL too
            provider = OpenAIProvider()
            model = OpenAIChatModel(os.environ.get("MODEL", "gpt-4.1-mini"), provider=provider)
        else:
            server = stack.enter_context(ScriptedOpenAIServer(script=scripted_model))
            provider = OpenAIProvider(base_url=server.base_url, api_key="offline")
            model = OpenAIChatModel("scripted", provider=provider)
        async with Orchestrator(TOOLS) as orchestrator:
            result, batches = await ask(
                build_agent(model),
                orchestrator,
                "How much is the oak standing desk, and is it in stock in Lisbon?",
            )

    for batch in batches:
        print("batch", batch.plan.strategy, batch.plan.groups)
        for r in batch.results:
            print(" ", r.call_id, r.status, r.arguments, "->", r.output if r.ok else r.error)
    print("final:", result.output)


if __name__ == "__main__":
    asyncio.run(main())
