"""examples/pydantic_ai_agent.py: a pydantic-ai agent whose external tool calls run through
toolweave.

The example runs offline as a script. Its glue is checked in process against a real
pydantic-ai agent, a real OpenAI-compatible server on 127.0.0.1 (``ScriptedOpenAIServer``)
and a real orchestrator, on what a model can write and a tool can return. The README's
pydantic-ai snippets run as written.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.util
import io
import json
import os
import pathlib
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from pydantic_ai import (
    Agent,
    DeferredToolRequests,
    ModelResponse,
    ToolCallPart,
    ToolFailed,
    ToolReturn,
    UnexpectedModelBehavior,
)
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from toolweave import BatchResult, InvalidBatchError, Orchestrator, Tool, ToolCall, tool
from toolweave.adapters.openai import reference_instructions
from toolweave.telemetry import to_jsonable
from toolweave.testing import Script, ScriptedOpenAIServer

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "pydantic_ai_agent.py"
README = ROOT / "README.md"

ANSWER = "The Oak standing desk (id 1042) costs 349.0 EUR; 4 in stock in Lisbon."


def _load_example() -> ModuleType:
    # Registered under the name the README imports it by (``from pydantic_ai_agent import``).
    spec = importlib.util.spec_from_file_location("pydantic_ai_agent", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pydantic_ai_agent"] = module
    spec.loader.exec_module(module)
    return module


ex = _load_example()


# ------------------------------------------------------------------------ the script


def test_the_example_runs_offline_and_resolves_the_reference() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == [
        "batch dag [['call_search'], ['call_price', 'call_stock']]",
        "  call_search ok {'query': 'standing desk', 'limit': 2} -> {'items': [{'id': 1042, "
        "'name': 'Oak standing desk'}, {'id': 1043, 'name': 'Walnut standing desk'}]}",
        # "${1.items[0].id}" and "${call_search.items[0].id}" reached the tools as 1042
        "  call_price ok {'product_id': 1042} -> {'product_id': 1042, 'eur': 349.0}",
        "  call_stock ok {'product_id': 1042, 'city': 'Lisbon'} -> {'product_id': 1042, "
        "'city': 'Lisbon', 'units': 4}",
        f"final: {ANSWER}",
    ]


# ------------------------------------------------------------------ in process


@dataclass
class Conversation:
    seen: dict[str, Any]
    """What the model read for each call in its second request: the tool message, read as
    JSON (a string output goes as it is)."""
    result: Any
    batches: list[BatchResult]
    server: ScriptedOpenAIServer


def _read(content: str) -> Any:
    try:
        return json.loads(content)
    except ValueError:  # a string output goes as it is
        return content


def echo_model(calls: Sequence[tuple[str, str, Any]]) -> Script:
    """A model that asks for ``calls``, then answers with the tool messages it got."""

    def model(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        results = {m["tool_call_id"]: m["content"] for m in messages if m.get("role") == "tool"}
        return {"content": json.dumps(results)} if results else {"tool_calls": list(calls)}

    return model


def converse(
    calls: Sequence[tuple[str, str, Any]],
    tools: Sequence[Tool] = ex.TOOLS,
    *,
    extend: Callable[[Agent[None, Any]], None] | None = None,
) -> Conversation:
    """The example's agent and loop (``build_agent``, ``ask``) against ``echo_model(calls)``."""

    async def go() -> Conversation:
        with ScriptedOpenAIServer(script=echo_model(calls)) as server:
            provider = OpenAIProvider(base_url=server.base_url, api_key="test")
            agent = ex.build_agent(OpenAIChatModel("scripted", provider=provider), tools)
            if extend is not None:
                extend(agent)
            async with Orchestrator(tools) as orchestrator:
                result, batches = await ex.ask(agent, orchestrator, "Go")
        server.assert_done()
        assert isinstance(result.output, str), result.output
        seen = {k: _read(v) for k, v in json.loads(result.output).items()}
        return Conversation(seen, result, batches, server)

    return asyncio.run(go())


STOCK = ("stock", "get_stock", {"product_id": 1042, "city": "Porto"})
"""A sound call, in every hostile batch: it must still run."""
SEARCH = ("search", "search_products", {"query": "desk"})


def test_the_model_is_shown_references_in_schemas_and_instructions() -> None:
    talk = converse([STOCK])
    first = talk.server.requests[0]
    assert reference_instructions() in first["messages"][0]["content"]
    shown = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert shown["get_price"]["parameters"]["properties"]["product_id"] == {
        "anyOf": [{"type": "integer"}, {"type": "string"}]
    }
    assert shown["get_stock"]["parameters"]["properties"]["city"] == {"type": "string"}
    assert '"${N.path}"' in shown["search_products"]["description"]
    assert talk.seen == {"stock": {"product_id": 1042, "city": "Porto", "units": 4}}


@pytest.mark.parametrize(
    ("calls", "error_type", "says"),
    [
        pytest.param(
            [("bad", "get_price", '{"product_id": ')],
            "invalid_arguments",
            "call 'bad' (get_price): arguments are not valid JSON (Expecting value at line 1 "
            "column 16). Send the arguments as one JSON object.",
            id="arguments-not-json",
        ),
        pytest.param(
            [("bad", "get_price", "[1042]")],
            "invalid_arguments",
            "call 'bad' (get_price): arguments must be a JSON object, got list.",
            id="arguments-a-json-list",
        ),
        pytest.param(
            [("bad", "get_price", "")],
            "invalid_arguments",
            "call 'bad' (get_price): invalid arguments: 'product_id': required argument is "
            "missing.",
            id="arguments-empty",
        ),
        pytest.param(
            [("bad", "get_price", {"product_id": "not-a-reference"})],
            "invalid_arguments",
            "'product_id': Input should be a valid integer, unable to parse string as an integer "
            "(got 'not-a-reference')",
            id="a-string-the-shown-schema-allows-but-the-tool-refuses",
        ),
        pytest.param(
            [("bad", "get_price", {"product_id": 9999})],
            "tool_error",
            "call 'bad' (get_price): failed: LookupError: no product with id 9999",
            id="tool-raises",
        ),
        pytest.param(
            [("bad", "get_price", {"product_id": "${99.items[0].id}"})],
            "invalid_reference",
            "refers to '${99.items[0].id}', but the batch has no call with id '99'",
            id="reference-to-no-call",
        ),
        pytest.param(
            [SEARCH, ("bad", "get_price", {"product_id": "${1.items[5].id}"})],
            "invalid_reference",
            "reference '${1.items[5].id}' found no value: nothing in the output matches "
            "$.items[5].id",
            id="reference-path-matches-nothing",
        ),
        pytest.param(
            [("bad", "get_price", {"product_id": "${bad}"})],
            "invalid_reference",
            "refers to '${bad}', which is this call itself",
            id="reference-to-itself",
        ),
        pytest.param(
            [("missing", "get_price", {"product_id": 9999}), ("bad", "get_stock", {
                "product_id": "${missing.product_id}", "city": "Lisbon"})],
            "dependency_failed",
            "Not run. skipped: it depends on call 'missing' (get_price), which failed.",
            id="depends-on-a-failed-call",
        ),
    ],
)  # fmt: skip
def test_a_bad_call_gets_a_readable_error_and_the_run_finishes(
    calls: list[tuple[str, str, Any]], error_type: str, says: str
) -> None:
    talk = converse([*calls, STOCK])
    (batch,) = talk.batches
    assert batch.get("bad").error_type == error_type
    assert says in talk.seen["bad"]["error"]  # pydantic-ai sends a ToolFailed as {"error": ...}
    assert talk.seen["stock"] == {"product_id": 1042, "city": "Porto", "units": 4}
    assert list(talk.seen) == [c[0] for c in [*calls, STOCK]]  # every call answered, in order


def test_a_call_pydantic_ai_answered_itself_keeps_the_models_numbering() -> None:
    talk = converse(
        [
            ("typo", "get_prize", {"product_id": 1042}),  # no such tool: pydantic-ai answers it
            SEARCH,
            ("price", "get_price", {"product_id": "${2.items[0].id}"}),  # the model's 2nd call
        ]
    )
    assert talk.seen["typo"]["error"].startswith("Unknown tool name: 'get_prize'.")
    assert talk.seen["price"] == {"product_id": 1042, "eur": 349.0}
    (batch,) = talk.batches
    assert batch.get("typo").error_type == "invalid_call"
    assert batch.get("typo").attempts == 0  # never ran
    assert batch.get("price").arguments == {"product_id": 1042}


def test_a_reference_to_a_function_tool_pydantic_ai_ran_is_answered_not_run() -> None:
    """The documented limit: toolweave has no output for a call pydantic-ai ran itself."""

    def extend(agent: Agent[None, Any]) -> None:
        @agent.tool_plain
        def lookup(name: str) -> dict[str, int]:
            """Find a product by name."""
            return {"id": 1042}

    talk = converse(
        [("local", "lookup", {"name": "oak"}), ("price", "get_price", {"product_id": "${1.id}"})],
        extend=extend,
    )
    assert talk.seen["local"] == {"id": 1042}
    assert talk.seen["price"]["error"].startswith(
        "Not run. skipped: it depends on call 'local' (lookup), which failed."
    )


@pytest.mark.parametrize(
    ("second", "error", "says"),
    [
        pytest.param(
            ("c1", "get_stock", {"product_id": 1042, "city": "Oslo"}),
            UnexpectedModelBehavior,
            "Deferred tool calls must have unique tool_call_id values; duplicate ids: ['c1']",
            id="both-deferred",
        ),
        pytest.param(
            ("c1", "get_prize", {}),
            InvalidBatchError,
            "calls 1 and 2 share the id 'c1'; every call in a batch needs its own id",
            id="one-answered-by-pydantic-ai",
        ),
    ],
)
def test_two_calls_with_one_id_end_the_run_with_an_error_naming_the_id(
    second: tuple[str, str, Any], error: type[Exception], says: str
) -> None:
    """The documented limit: pydantic-ai matches deferred results by id, so it cannot resume."""
    with pytest.raises(error) as raised:
        converse([("c1", "get_price", {"product_id": 1042}), second])
    assert says in str(raised.value)


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


@tool
async def odd(kind: str) -> Any:
    """Return an odd value."""
    if kind == "cycle":
        value: dict[str, Any] = {"a": 1}
        value["self"] = value
        return value
    return {
        "huge": {"n": 10**5000},
        "unprintable": {"x": Unprintable()},
        "surrogate": "bad \ud800 text",
        "nan": {"v": float("nan")},
    }[kind]


def test_any_tool_output_reaches_the_model() -> None:
    kinds = ["cycle", "huge", "unprintable", "surrogate", "nan"]
    talk = converse([(k, "odd", {"kind": k}) for k in kinds], [odd])
    assert talk.seen == {
        "cycle": {"a": 1, "self": "<cycle>"},  # pydantic-ai alone fails on it (RecursionError)
        "huge": {"n": "<int of about 5001 digits>"},
        "unprintable": {"x": "<Unprintable object (cannot be shown)>"},
        "surrogate": "bad \ufffd text",
        "nan": {"v": "NaN"},
    }


def test_without_the_hook_pydantic_ai_ends_the_run_on_arguments_that_are_not_json() -> None:
    """Why ``KEEP_UNREADABLE_ARGUMENTS`` exists; if pydantic-ai changes this, revisit it."""

    async def go() -> None:
        with ScriptedOpenAIServer(
            script=echo_model([("bad", "get_price", '{"product_id": '), STOCK])
        ) as server:
            provider = OpenAIProvider(base_url=server.base_url, api_key="test")
            agent = Agent(
                OpenAIChatModel("scripted", provider=provider),
                output_type=[str, DeferredToolRequests],
                toolsets=[ex.external_toolset(ex.TOOLS)],
            )
            with pytest.raises(UnexpectedModelBehavior, match="exceeded max retries count of 0"):
                await agent.run("Go")

    asyncio.run(go())


def test_ask_stops_after_max_batches() -> None:
    async def go() -> None:
        def model(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
            return {"tool_calls": [(f"c{len(messages)}", *STOCK[1:])]}  # asks for ever

        with ScriptedOpenAIServer(script=model) as server:
            provider = OpenAIProvider(base_url=server.base_url, api_key="test")
            agent = ex.build_agent(OpenAIChatModel("scripted", provider=provider))
            async with Orchestrator(ex.TOOLS) as orchestrator:
                result, batches = await ex.ask(agent, orchestrator, "Go", max_batches=2)
        assert isinstance(result.output, DeferredToolRequests)
        assert len(batches) == 2
        assert len(server.requests) == 3

    asyncio.run(go())


# -------------------------------------------------------------- the glue, one by one


def test_calls_keep_the_models_arguments_as_written() -> None:
    parts = [
        ToolCallPart("get_price", {"product_id": 1042}, "dict"),
        ToolCallPart("get_price", '{"product_id": "${dict.product_id}"}', "text"),
        ToolCallPart("get_price", '{"product_id": ', "broken"),
        ToolCallPart("get_price", None, "none"),
        ToolCallPart("", {}, "nameless"),  # answered by pydantic-ai: not deferred
    ]
    requests = DeferredToolRequests(calls=parts[:4])
    calls = ex.calls_from_requests(requests, [ModelResponse(parts=parts)])
    assert calls == [
        ToolCall("dict", "get_price", {"product_id": 1042}),
        ToolCall("text", "get_price", '{"product_id": "${dict.product_id}"}'),
        ToolCall("broken", "get_price", '{"product_id": '),
        ToolCall("none", "get_price", {}),
        ToolCall(
            id="nameless",
            name="(no name)",
            error="toolweave did not run this call, so no other call can use its output.",
        ),
    ]


def test_a_deferred_call_missing_from_the_messages_still_runs() -> None:
    part = ToolCallPart("get_price", {"product_id": 1042}, "p")
    calls = ex.calls_from_requests(DeferredToolRequests(calls=[part]), [])
    assert calls == [ToolCall("p", "get_price", {"product_id": 1042})]


def test_results_are_returns_and_failures_for_the_deferred_calls_only() -> None:
    parts = [
        ToolCallPart("get_price", {"product_id": 1042}, "ok"),
        ToolCallPart("get_price", {"product_id": 9999}, "fails"),
        ToolCallPart("get_stock", {"product_id": "${fails.product_id}", "city": "Oslo"}, "after"),
        ToolCallPart("get_prize", {}, "typo"),  # not deferred
    ]
    requests = DeferredToolRequests(calls=parts[:3])
    batch = Orchestrator(ex.TOOLS).run_sync(
        ex.calls_from_requests(requests, [ModelResponse(parts=parts)])
    )
    results = ex.results_for_requests(requests, batch).calls
    assert list(results) == ["ok", "fails", "after"]
    assert results["ok"] == ToolReturn(to_jsonable({"product_id": 1042, "eur": 349.0}))
    assert results["fails"] == ToolFailed(
        "call 'fails' (get_price): failed: LookupError: no product with id 9999"
    )
    assert isinstance(results["after"], ToolFailed)
    assert results["after"].message == (
        "Not run. skipped: it depends on call 'fails' (get_price), which failed. "
        "Fix that call first."
    )


# ------------------------------------------------------------------------- README


def readme_snippets() -> list[str]:
    """The README's pydantic-ai snippets: its Python blocks that call ``calls_from_requests``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    found = [b for b in blocks if "calls_from_requests(" in b]
    if not found:
        pytest.skip("README.md has no pydantic-ai section yet")
    return found


def test_the_readme_snippets_work_as_written() -> None:
    loop, inline = readme_snippets()

    async def go() -> None:
        with ScriptedOpenAIServer(script=ex.scripted_model) as server:
            provider = OpenAIProvider(base_url=server.base_url, api_key="test")
            scope: dict[str, Any] = {
                "model": OpenAIChatModel("scripted", provider=provider),
                "tools": ex.TOOLS,
                "orchestrator": Orchestrator(ex.TOOLS),
            }
            out = io.StringIO()
            for snippet in (loop, inline):
                code = compile(snippet, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
                with contextlib.redirect_stdout(out):
                    done = eval(code, scope)
                    if done is not None:
                        await done
                if snippet is loop:
                    assert out.getvalue() == ANSWER + "\n"
                assert scope["result"].output == ANSWER
        server.assert_done()
        assert len(server.requests) == 4  # two per snippet: the batch, then the answer

    asyncio.run(go())
