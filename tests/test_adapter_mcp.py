"""The MCP adapter against real MCP server processes (``tests/mcp_servers/``): the SDK's
``MCPServer`` over stdio and over streamable HTTP on 127.0.0.1, a low-level SDK server with a
paginated, odd listing, and a hand-written server that answers in ways the SDK's server
cannot. Each server logs the requests it receives, so a test can tell what reached it."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import os
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from toolweave import Orchestrator, ToolCall, UsageError
from toolweave.adapters.mcp import (
    MCPConnectionError,
    MCPProtocolError,
    MCPToolError,
    mcp_tools,
    tools_from_session,
)
from toolweave.adapters.openai import run_openai_agent
from toolweave.testing import ScriptedOpenAIServer

ROOT = pathlib.Path(__file__).resolve().parent.parent
SERVERS = pathlib.Path(__file__).resolve().parent / "mcp_servers"
CATALOG_TOOLS = [
    "search", "fetch", "shout", "fail", "slow", "crash", "pid", "code", "picture", "mixed",
]  # fmt: skip


# ------------------------------------------------------------------------------ servers


class Log:
    """The JSON lines a test server appends for every request it receives."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def calls(self, name: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.entries()
            if e.get("method") == "tools/call" and (name is None or e["name"] == name)
        ]

    def cancelled(self) -> list[str]:
        return [e["tag"] for e in self.entries() if e.get("event") == "cancelled"]

    async def wait_for(self, found: Callable[[], Any], seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while not found():
            assert time.monotonic() < deadline, f"the server log never showed it: {self.entries()}"
            await asyncio.sleep(0.05)


def stdio(script: str, *args: str, **env: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=[str(SERVERS / script), *args], env=env or None
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def http_catalog(log: Log) -> Iterator[str]:
    """Start the catalog over streamable HTTP on a free port of 127.0.0.1, wait until it
    answers, and stop it afterwards."""
    for _ in range(3):  # another process may take the port between choosing and binding it
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, str(SERVERS / "catalog.py"), "http", str(log.path), str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if _answers(proc, port):
                yield f"http://127.0.0.1:{port}/mcp"
                return
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    raise AssertionError("the HTTP MCP server did not start")


def _answers(proc: subprocess.Popen[bytes], port: int) -> bool:
    """Whether the server answers HTTP on /mcp (any status: a GET without a session is an
    error, but an answer), polling until it does or exits."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/mcp")
            connection.getresponse().read()
        except OSError:
            time.sleep(0.1)
            continue
        finally:
            connection.close()
        return True
    return False


@pytest.fixture
def log(tmp_path: pathlib.Path) -> Log:
    return Log(tmp_path / "requests.jsonl")


@pytest.fixture(params=["stdio", "http"])
def catalog(request: pytest.FixtureRequest, log: Log) -> Iterator[StdioServerParameters | str]:
    """The catalog server, over stdio (mcp_tools starts it) or streamable HTTP."""
    if request.param == "stdio":
        yield stdio("catalog.py", "stdio", str(log.path))
    else:
        with http_catalog(log) as url:
            yield url


def run(coro: Any, seconds: float = 120) -> Any:
    """Run ``coro``, bounded: nothing in these tests may hang."""
    return asyncio.run(asyncio.wait_for(coro, seconds))


def shown(result: Any) -> dict[str, Any]:
    return {r.call_id: r.output if r.ok else r.error for r in result.results}


# ------------------------------------------------------------------------------ listing


def test_every_server_tool_becomes_a_tool_with_its_name_description_and_schema(
    catalog: StdioServerParameters | str,
) -> None:
    async def main() -> Any:
        async with Client(catalog) as client:
            listed = {t.name: t for t in (await client.session.list_tools()).tools}
        async with mcp_tools(catalog) as tools:
            return listed, tools

    listed, tools = run(main())
    assert [t.name for t in tools] == CATALOG_TOOLS
    for t in tools:
        assert t.description == listed[t.name].description
        assert t.defined_by_schema
        if t.name != "code":
            assert t.parameters == listed[t.name].input_schema
    search = next(t for t in tools if t.name == "search")
    assert search.description == "Search the catalog; returns hits with ids."
    assert search.parameters["required"] == ["query"]


def test_a_prefix_names_the_tools_and_the_server_is_called_by_its_own_names(log: Log) -> None:
    async def main() -> Any:
        async with mcp_tools(stdio("catalog.py", "stdio", str(log.path)), prefix="cat_") as tools:
            result = await Orchestrator(tools).run([ToolCall("1", "cat_shout", {"text": "hi"})])
            return tools, result

    tools, result = run(main())
    assert [t.name for t in tools] == ["cat_" + n for n in CATALOG_TOOLS]
    assert shown(result) == {"1": "HI!"}
    assert [c["name"] for c in log.calls()] == ["shout"]


def test_two_servers_with_one_prefix_clash_in_the_orchestrator(log: Log) -> None:
    async def main() -> None:
        server = stdio("catalog.py", "stdio", str(log.path))
        async with mcp_tools(server, prefix="a_") as one, mcp_tools(server, prefix="a_") as two:
            with pytest.raises(UsageError, match="two tools are named 'a_search'"):
                Orchestrator([*one, *two])
        async with mcp_tools(server, prefix="a_") as one, mcp_tools(server, prefix="b_") as two:
            assert len(Orchestrator([*one, *two]).tools) == 2 * len(CATALOG_TOOLS)

    run(main())


def test_a_paginated_listing_is_read_whole_and_unusable_schemas_are_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> Any:
        async with mcp_tools(stdio("odd.py")) as tools:
            result = await Orchestrator(tools).run(
                [
                    ToolCall("1", "plain", {"q": "x"}),
                    ToolCall("2", "last", {"n": 0}),
                    ToolCall("3", "keyed", {"tags": {"aaa": 3}}),
                    ToolCall("4", "keyed", {"tags": {"b": 3}}),
                    ToolCall("5", "guarded", {"v": "a" * 3000 + "!"}),
                ]
            )
            return tools, result

    with caplog.at_level(logging.WARNING, logger="toolweave"):
        tools, result = run(main())
    # pages 1, 2 and 3; the second 'plain' is a duplicate, two schemas cannot be used
    assert [t.name for t in tools] == ["plain", "huge", "keyed", "guarded", "last"]
    assert len(tools[1].parameters["properties"]) == 5000
    left_out = "\n".join(r.getMessage() for r in caplog.records)
    assert (
        "tool 'bad_type' is left out: tool 'bad_type': parameters is not a valid JSON" in left_out
    )
    assert "tool 'bad_ref' is left out: tool 'bad_ref': $ref '#/$defs/Missing' points to" in (
        left_out
    )
    assert "lists a tool named 'plain' twice; the first is kept" in left_out
    assert result.get("1").output == {"tool": "plain", "arguments": {"q": "x"}}
    assert result.get("2").error_type == "invalid_arguments"
    assert "'n': expected a number >= 1 (got 0)" in result.get("2").error
    # regular expressions stay in the schemas, checked in bounded time
    assert result.get("3").output == {"tool": "keyed", "arguments": {"tags": {"aaa": 3}}}
    assert result.get("4").error_type == "invalid_arguments", "'b' matches no pattern"
    assert result.get("5").output == {"tool": "guarded", "arguments": {"v": "a" * 3000 + "!"}}


def test_a_listing_whose_pages_loop_is_an_error() -> None:
    async def main() -> None:
        async with mcp_tools(stdio("raw.py", RAW_LOOP="1")):
            raise AssertionError("entered")

    with pytest.raises(MCPProtocolError, match="pages that loop: the cursor 'again' came back"):
        run(main())


def test_a_listing_the_sdk_cannot_parse_fails_within_connect_timeout() -> None:
    # The SDK drops an answer nested deeper than its JSON parser goes, and would wait forever.
    async def main() -> None:
        async with mcp_tools(stdio("odd.py", ODD_DEPTH="100"), connect_timeout=3):
            raise AssertionError("entered")

    started = time.monotonic()
    with pytest.raises(MCPConnectionError, match=r"did not list its tools within 3 s"):
        run(main())
    assert time.monotonic() - started < 60


# ------------------------------------------------------------------------------ calls


def test_a_batch_refers_from_one_mcp_call_to_another(
    catalog: StdioServerParameters | str, log: Log
) -> None:
    async def main() -> Any:
        async with mcp_tools(catalog) as tools:
            return await Orchestrator(tools).run(
                [
                    ToolCall("1", "search", {"query": "owls", "limit": 2}),
                    ToolCall("2", "fetch", {"id": "${1.items[0].id}"}),
                    ToolCall("3", "shout", {"text": "Summary of ${2.text}"}),
                ]
            )

    result = run(main())
    assert result.plan.groups == [["1"], ["2"], ["3"]]
    assert shown(result) == {
        "1": {
            "items": [{"id": "owls-0", "title": "owls #0"}, {"id": "owls-1", "title": "owls #1"}]
        },
        "2": {"id": "owls-0", "text": "Text of owls-0."},
        "3": "SUMMARY OF TEXT OF OWLS-0.!",
    }
    assert [(c["name"], c["arguments"]) for c in log.calls()] == [
        ("search", {"query": "owls", "limit": 2}),
        ("fetch", {"id": "owls-0"}),
        ("shout", {"text": "Summary of Text of owls-0."}),
    ]


def test_outputs_are_structured_content_else_json_text_else_text_and_blocks_as_dicts(
    log: Log,
) -> None:
    async def main() -> Any:
        async with mcp_tools(stdio("catalog.py", "stdio", str(log.path))) as tools:
            return await Orchestrator(tools).run(
                [
                    ToolCall("structured", "search", {"query": "x", "limit": 1}),
                    ToolCall("json_text", "fetch", {"id": "d"}),
                    ToolCall("text", "shout", {"text": "hey"}),
                    ToolCall("image", "picture", {}),
                    ToolCall("blocks", "mixed", {}),
                ]
            )

    assert shown(run(main())) == {
        "structured": {"items": [{"id": "x-0", "title": "x #0"}]},
        "json_text": {"id": "d", "text": "Text of d."},
        "text": "HEY!",
        "image": {"type": "image", "data": "aGVsbG8=", "mimeType": "image/png"},
        "blocks": [
            {"n": 1},
            {"type": "image", "data": "aGVsbG8=", "mimeType": "image/png"},
            {
                "type": "resource",
                "resource": {"uri": "file:///notes.txt", "mimeType": "text/plain", "text": "notes"},
            },
        ],
    }


def test_an_is_error_answer_is_a_call_error_with_the_servers_text(
    catalog: StdioServerParameters | str,
) -> None:
    async def main() -> Any:
        async with mcp_tools(catalog) as tools:
            return await Orchestrator(tools).run([ToolCall("1", "fail", {"reason": "no disk"})])

    [r] = run(main()).results
    assert r.error_type == "tool_error"
    assert r.error.startswith("call '1' (fail): failed: MCPToolError: ")
    assert r.error.endswith("cannot do that: no disk")
    cause = r.exception.__cause__
    assert isinstance(cause, MCPToolError)
    assert cause.result.is_error
    assert (cause.server, cause.tool) == ("MCP server 'catalog'", "fail")


def test_bad_arguments_never_reach_the_server_and_are_not_retried(log: Log) -> None:
    async def main() -> Any:
        server = stdio("catalog.py", "stdio", str(log.path))
        async with mcp_tools(server, retries=3) as tools:
            return await Orchestrator(tools).run(
                [
                    ToolCall("wrong_type", "search", {"query": 3}),
                    ToolCall("missing", "search", {"limit": 2}),
                    ToolCall("extra_ok", "fetch", {"id": "a", "also": "b"}),  # schema allows it
                    ToolCall("good", "search", {"query": "fine"}),
                ]
            )

    result = run(main())
    for call_id in ("wrong_type", "missing"):
        r = result.get(call_id)
        assert (r.error_type, r.attempts) == ("invalid_arguments", 0)
    assert "'query': expected a string (got 3)" in result.get("wrong_type").error
    assert "'query': required argument is missing" in result.get("missing").error
    assert result.get("good").ok
    assert [c["arguments"] for c in log.calls("search")] == [{"query": "fine"}]


def test_is_error_is_retried_and_a_closed_connection_is_not(log: Log) -> None:
    async def main() -> Any:
        server = stdio("catalog.py", "stdio", str(log.path))
        async with mcp_tools(server, retries=2, retry_wait=_no_wait()) as tools:
            orchestrator = Orchestrator(tools)
            failed = await orchestrator.run([ToolCall("1", "fail", {"reason": "busy"})])
            await orchestrator.run([ToolCall("2", "crash", {})])
            dead = await orchestrator.run([ToolCall("3", "search", {"query": "x"})])
            return failed, dead

    failed, dead = run(main())
    assert failed.get("1").attempts == 3
    assert len(log.calls("fail")) == 3
    assert dead.get("3").attempts == 1
    assert isinstance(dead.get("3").exception.__cause__, MCPConnectionError)


def _no_wait() -> Any:
    from tenacity import wait_none

    return wait_none()


def test_calls_over_one_session_run_at_the_same_time(log: Log) -> None:
    async def main() -> Any:
        async with mcp_tools(stdio("catalog.py", "stdio", str(log.path))) as tools:
            return await Orchestrator(tools).run(
                [ToolCall(f"s{i}", "slow", {"seconds": 2, "tag": str(i)}) for i in range(4)]
            )

    result = run(main())
    assert [r.output for r in result.results] == ["slept 0", "slept 1", "slept 2", "slept 3"]
    # Every call reached the server before any of them ended: the session did not serialise.
    events = [e.get("event") or e["method"] for e in log.entries() if e.get("name") == "slow"]
    assert events == ["tools/call"] * 4 + ["slept"] * 4


def test_a_timeout_fails_the_call_cancels_it_on_the_server_and_keeps_the_session(
    catalog: StdioServerParameters | str, log: Log
) -> None:
    async def main() -> Any:
        async with mcp_tools(catalog, timeout=1) as tools:
            orchestrator = Orchestrator(tools)
            timed_out = await orchestrator.run(
                [ToolCall("1", "slow", {"seconds": 60, "tag": "late"})]
            )
            await log.wait_for(lambda: "late" in log.cancelled())
            after = await orchestrator.run([ToolCall("2", "shout", {"text": "still here"})])
            return timed_out, after

    timed_out, after = run(main())
    assert timed_out.get("1").error_type == "timeout"
    assert timed_out.get("1").error == (
        "call '1' (slow): timed out after 1 s. Try a smaller request or another approach."
    )
    assert after.get("2").output == "STILL HERE!"


def test_cancelling_a_batch_cancels_its_calls_on_the_server(log: Log) -> None:
    async def main() -> Any:
        async with mcp_tools(stdio("catalog.py", "stdio", str(log.path))) as tools:
            orchestrator = Orchestrator(tools)
            batch = asyncio.create_task(
                orchestrator.run([ToolCall("1", "slow", {"seconds": 60, "tag": "gone"})])
            )
            await log.wait_for(lambda: log.calls("slow"))
            batch.cancel()
            with pytest.raises(asyncio.CancelledError):
                await batch
            await log.wait_for(lambda: "gone" in log.cancelled())
            return await orchestrator.run([ToolCall("2", "shout", {"text": "ok"})])

    assert run(main()).get("2").output == "OK!"


def test_a_server_dying_mid_batch_answers_every_call(
    catalog: StdioServerParameters | str, log: Log
) -> None:
    async def main() -> Any:
        async with mcp_tools(catalog) as tools:
            orchestrator = Orchestrator(tools)
            batch = [
                *(ToolCall(f"s{i}", "slow", {"seconds": 60, "tag": str(i)}) for i in range(3)),
                ToolCall("crash", "crash", {"after": 0.5}),
                ToolCall("dependent", "fetch", {"id": "${crash}"}),
            ]
            during = await orchestrator.run(batch)
            after = await orchestrator.run([ToolCall("next", "search", {"query": "x"})])
            return during, after

    started = time.monotonic()
    during, after = run(main())
    assert time.monotonic() - started < 60  # the slow calls never finished: nothing waited on them
    assert [r.call_id for r in during.results] == ["s0", "s1", "s2", "crash", "dependent"]
    for r in [*during.results[:4], *after.results]:
        assert r.error_type == "tool_error", r
        assert "MCPConnectionError: MCP server 'catalog' closed the connection" in r.error
        assert isinstance(r.exception.__cause__, MCPConnectionError)
    assert during.get("dependent").status == "skipped"
    assert "depends on call 'crash'" in during.get("dependent").error


def test_a_call_the_server_never_answers_ends_at_its_timeout() -> None:
    async def main() -> Any:
        async with mcp_tools(stdio("raw.py"), timeout=1) as tools:
            return await Orchestrator(tools).run(
                [
                    ToolCall("silent", "shape", {"kind": "silent"}),
                    ToolCall("bad_json", "shape", {"kind": "bad_json"}),
                ]
            )

    result = run(main())
    assert [r.error_type for r in result.results] == ["timeout", "timeout"]


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        pytest.param(
            "not_a_list", "content: Input should be a valid list", id="content-not-a-list"
        ),
        pytest.param("video", "content.0.TextContent.text: Field required", id="unknown-block"),
        pytest.param("no_content", "content: Field required", id="no-content"),
    ],
)
def test_an_answer_of_the_wrong_shape_is_a_protocol_error(kind: str, problem: str) -> None:
    async def main() -> Any:
        async with mcp_tools(stdio("raw.py")) as tools:
            return await Orchestrator(tools).run([ToolCall("1", "shape", {"kind": kind})])

    [r] = run(main()).results
    assert r.error_type == "tool_error"
    assert isinstance(r.exception.__cause__, MCPProtocolError)
    assert "MCP server 'raw' sent an answer to tools/call for 'shape' that is not valid MCP: " in (
        r.error
    )
    assert problem in r.error


def test_structured_content_its_own_output_schema_rejects_is_a_protocol_error() -> None:
    async def main() -> Any:
        async with mcp_tools(stdio("raw.py")) as tools:
            return await Orchestrator(tools).run([ToolCall("1", "typed", {})])

    [r] = run(main()).results
    assert isinstance(r.exception.__cause__, MCPProtocolError)
    assert "MCPProtocolError: MCP server 'raw': Invalid structured content returned by tool " in (
        r.error
    )


@pytest.mark.parametrize(
    ("kind", "output"),
    [
        pytest.param(
            "audio", {"type": "audio", "data": "UklGRg==", "mimeType": "audio/wav"}, id="audio"
        ),
        pytest.param(
            "link", {"type": "resource_link", "uri": "file:///a.txt", "name": "a.txt"}, id="link"
        ),
        pytest.param("empty", None, id="no-blocks"),
        pytest.param("nan", "NaN", id="NaN-is-text-not-a-float"),
        pytest.param("null_structured", [1, 2], id="null-structured-content-means-none"),
    ],
)
def test_other_valid_answers(kind: str, output: Any) -> None:
    async def main() -> Any:
        async with mcp_tools(stdio("raw.py")) as tools:
            return await Orchestrator(tools).run([ToolCall("1", "shape", {"kind": kind})])

    [r] = run(main()).results
    assert r.ok, r.error
    assert r.output == output


def test_an_is_error_without_text_says_what_it_held() -> None:
    async def main() -> Any:
        async with mcp_tools(stdio("raw.py")) as tools:
            return await Orchestrator(tools).run([ToolCall("1", "shape", {"kind": "error_image"})])

    [r] = run(main()).results
    assert r.error == "call '1' (shape): failed: MCPToolError: [image content]"


# ------------------------------------------------------------------------------ patterns


def test_a_servers_catastrophic_pattern_fails_the_call_in_bounded_time(log: Log) -> None:
    # '^(a+)+$' takes exponential time in Python's re on 'aaa...!': 40 characters would block
    # the event loop for days. toolweave checks patterns with a time limit, so the call fails
    # before it reaches the server, and the other call of the batch runs.
    async def main() -> Any:
        async with mcp_tools(stdio("catalog.py", "stdio", str(log.path))) as tools:
            [code] = [t for t in tools if t.name == "code"]
            assert code.parameters["properties"]["value"]["pattern"] == "^(a+)+$"
            return await Orchestrator(tools).run(
                [
                    ToolCall("1", "code", {"value": "a" * 5000 + "!"}),
                    ToolCall("2", "code", {"value": "aaa"}),
                    ToolCall("3", "code", {"value": "ab"}),
                ]
            )

    result = run(main(), seconds=60)
    assert result.get("1").error_type == "invalid_arguments"
    assert "'value'" in result.get("1").error
    assert result.get("2").output == "accepted 3 characters"
    assert result.get("3").error_type == "invalid_arguments", "a plain mismatch is caught here"
    assert len(log.calls("code")) == 1, "only the valid call reached the server"


# ------------------------------------------------------------------------------ lifetime


def test_leaving_the_block_stops_the_stdio_server_and_leaves_no_task(log: Log) -> None:
    async def main() -> int:
        before = asyncio.all_tasks()
        async with mcp_tools(stdio("catalog.py", "stdio", str(log.path))) as tools:
            result = await Orchestrator(tools).run([ToolCall("1", "pid", {})])
        assert asyncio.all_tasks() == before
        pid: int = result.get("1").output
        return pid

    pid = run(main())
    assert pid != os.getpid()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_leaving_the_block_ends_the_http_session_and_leaves_no_task(log: Log) -> None:
    async def main(url: str) -> None:
        before = asyncio.all_tasks()
        async with mcp_tools(url) as tools:
            assert (await Orchestrator(tools).run([ToolCall("1", "shout", {"text": "x"})])).ok
        assert asyncio.all_tasks() == before

    with http_catalog(log) as url:
        run(main(url))


def test_calls_after_the_block_fail_with_a_connection_error(log: Log) -> None:
    async def main() -> Any:
        async with mcp_tools(stdio("catalog.py", "stdio", str(log.path))) as tools:
            pass
        return await Orchestrator(tools).run([ToolCall("1", "search", {"query": "x"})])

    [r] = run(main()).results
    assert isinstance(r.exception.__cause__, MCPConnectionError)
    assert "was closed when its 'async with mcp_tools(...)' block ended" in r.error


def test_the_block_may_be_entered_and_left_in_different_tasks(log: Log) -> None:
    # The SDK's task groups live in a task of the connection's own, entered and left there.
    async def main() -> Any:
        before = asyncio.all_tasks()
        block = mcp_tools(stdio("catalog.py", "stdio", str(log.path)))
        tools = await asyncio.create_task(block.__aenter__())
        result = await Orchestrator(tools).run([ToolCall("1", "shout", {"text": "x"})])
        await asyncio.create_task(block.__aexit__(None, None, None))
        assert asyncio.all_tasks() == before
        return result

    assert run(main()).get("1").output == "X!"


def test_an_error_in_the_block_propagates_and_the_server_is_stopped(log: Log) -> None:
    async def main() -> None:
        async with mcp_tools(stdio("catalog.py", "stdio", str(log.path))) as tools:
            result = await Orchestrator(tools).run([ToolCall("1", "pid", {})])
            raise KeyError(result.get("1").output)

    with pytest.raises(KeyError) as raised:
        run(main())
    with pytest.raises(ProcessLookupError):
        os.kill(raised.value.args[0], 0)


def test_a_server_that_cannot_be_reached_is_a_connection_error() -> None:
    port = free_port()
    url = f"http://user:secret@127.0.0.1:{port}/mcp?token=abc"

    async def enter(server: Any) -> None:
        async with mcp_tools(server, connect_timeout=30):
            raise AssertionError("entered")

    with pytest.raises(MCPConnectionError) as raised:
        run(enter(url))
    message = str(raised.value)
    assert message.startswith(f"cannot connect to the MCP server http://127.0.0.1:{port}/mcp: ")
    assert "secret" not in message
    assert "abc" not in message
    with pytest.raises(MCPConnectionError, match="cannot connect to the MCP server /nonexistent"):
        run(enter(StdioServerParameters(command="/nonexistent/mcp-server")))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda: mcp_tools("python server.py"),
            "takes an http(s) URL or StdioServerParameters, got the text 'python server.py'",
            id="command-as-text",
        ),
        pytest.param(lambda: mcp_tools(42), "got int", id="not-a-server"),  # type: ignore[arg-type]
        pytest.param(
            lambda: mcp_tools("http://x/mcp", timeout=-1),
            "tool '<each MCP tool>': timeout must be a positive number of seconds, got -1",
            id="bad-timeout",
        ),
        pytest.param(
            lambda: mcp_tools("http://x/mcp", prefix=3),  # type: ignore[arg-type]
            "prefix must be text",
            id="bad-prefix",
        ),
        pytest.param(
            lambda: mcp_tools("http://x/mcp", connect_timeout=0),
            "connect_timeout must be None or a positive number of seconds, got 0",
            id="bad-connect-timeout",
        ),
    ],
)
def test_mistakes_are_told_before_connecting(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(UsageError) as raised:
        make()
    assert message in str(raised.value)


def test_tools_from_session_takes_an_open_session_or_client(log: Log) -> None:
    async def main() -> Any:
        async with Client(stdio("catalog.py", "stdio", str(log.path))) as client:
            from_session = await tools_from_session(client.session, prefix="s_")
            from_client = await tools_from_session(client, prefix="c_", timeout=5)
            result = await Orchestrator([*from_session, *from_client]).run(
                [
                    ToolCall("1", "s_search", {"query": "owls"}),
                    ToolCall("2", "c_fetch", {"id": "${1.items[1].id}"}),
                ]
            )
            with pytest.raises(UsageError, match=r"takes an open mcp\.ClientSession"):
                await tools_from_session("not a session")  # type: ignore[arg-type]
            return from_client, result

    from_client, result = run(main())
    assert from_client[0].timeout == 5
    assert result.get("2").output == {"id": "owls-1", "text": "Text of owls-1."}


# ------------------------------------------------------------------------------ an agent


def test_an_openai_agent_loop_over_mcp_tools(log: Log) -> None:
    def model(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        if messages[-1]["role"] == "user":
            return {
                "tool_calls": [
                    ("call_search", "cat_search", {"query": "graphs", "limit": 1}),
                    ("call_fetch", "cat_fetch", {"id": "${call_search.items[0].id}"}),
                ]
            }
        return {"content": "Read: " + json.loads(messages[-1]["content"])["text"]}

    async def main(server: ScriptedOpenAIServer) -> Any:
        async with mcp_tools(stdio("catalog.py", "stdio", str(log.path)), prefix="cat_") as tools:
            return await run_openai_agent(
                server.client(max_retries=0),
                "scripted",
                [{"role": "user", "content": "find and read a page on graphs"}],
                Orchestrator(tools),
            )

    with ScriptedOpenAIServer(script=model) as server:
        agent = run(main(server))
        server.assert_done()
    assert agent.turns == 2
    assert agent.final == "Read: Text of graphs-0."
    [batch] = agent.batches
    assert batch.plan.groups == [["call_search"], ["call_fetch"]]
    assert batch.get("call_fetch").output == {"id": "graphs-0", "text": "Text of graphs-0."}
    first, _ = server.requests
    assert {t["function"]["name"] for t in first["tools"]} == {"cat_" + n for n in CATALOG_TOOLS}
    assert [c["arguments"] for c in log.calls("fetch")] == [{"id": "graphs-0"}]


def test_the_example_runs_offline() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    proc = subprocess.run(
        [sys.executable, "examples/mcp_agent.py"],
        capture_output=True, text=True, timeout=180, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "MCP tools: docs_search, docs_read"
    assert lines[1] == "batch serial [['call_search'], ['call_read']]"
    assert lines[3].startswith('  call_read ok {"id": "doc-dag", "text": ')
    assert lines[-1] == "final: From the docs: A task runs once the tasks it needs are done."


# ------------------------------------------------------------------------------ the README

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _readme_section() -> str:
    return README.read_text().split("### MCP servers", 1)[1].split("\n### ", 1)[0]


def test_the_readme_mcp_example_prints_what_it_says() -> None:
    import re

    found = re.search(r"```python\n(.*?)```\n\nprints\n\n```\n(.*?)```", _readme_section(), re.S)
    assert found is not None
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    proc = subprocess.run(
        [sys.executable, "-c", found.group(1)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=README.parent,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == found.group(2)


def test_the_readme_mcp_adoption_lines_work_as_written(log: Log) -> None:
    """The adoption block, its URL pointed at a real streamable-HTTP server, under a scripted
    model that calls one of the server's tools, then answers."""
    import ast
    import re

    from toolweave.testing import ScriptedOpenAIServer

    blocks = re.findall(r"```python\n(.*?)```", _readme_section(), re.S)
    code = next(b for b in blocks if "tools_from_session(" in b)

    def script(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        if messages[-1]["role"] == "tool":
            return {"content": f"pid {messages[-1]['content']}"}
        return {"tool_calls": [("c1", "fs_pid", {})]}

    with contextlib.ExitStack() as stack:
        url = stack.enter_context(http_catalog(log))
        model = stack.enter_context(ScriptedOpenAIServer(script=script))
        scope: dict[str, Any] = {
            "client": model.client(max_retries=0),
            "model": "scripted",
            "messages": [{"role": "user", "content": "which pid?"}],
            "my_tools": [],
            "server": stdio("catalog.py", "stdio", str(log.path)),
            "run_openai_agent": run_openai_agent,
            "Orchestrator": Orchestrator,
        }
        code = code.replace("http://127.0.0.1:8000/mcp", url)
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        run(eval(compile(code, "README.md", "exec", flags=flags), scope))
        model.assert_done()
    assert scope["run"].final.startswith("pid ")
    assert scope["run"].batches[0].ok
    assert any(t.name == "pid" for t in scope["tools"]), "the session's tools, unprefixed"
