"""An MCP server over stdio, written with the SDK's low-level ``Server``, whose tool listing
is paginated and holds schemas a client must be careful with.

    python odd.py

``tools/list`` answers in three pages (cursors ``"p2"`` and ``"p3"``). With ``ODD_DEPTH=N`` in
its environment, page 2 also holds a schema nested N deep. Every tool answers a
call with its own name and arguments as text JSON.
"""

from __future__ import annotations

import json
import os
from typing import Any

import anyio
import mcp.types as types
from mcp.server import Server
from mcp.server.stdio import stdio_server


def nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


def tool(name: str, schema: dict[str, Any], description: str | None = None) -> types.Tool:
    return types.Tool(name=name, description=description, input_schema=schema)


PAGES: dict[str | None, tuple[list[types.Tool], str | None]] = {
    None: (
        [
            tool(
                "plain",
                {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
                "A plain tool.",
            ),
            tool("bad_type", {"type": "object", "properties": {"x": {"type": "bogus"}}}),
            tool("bad_ref", {"type": "object", "properties": {"x": {"$ref": "#/$defs/Missing"}}}),
        ],
        "p2",
    ),
    "p2": (
        [
            tool("plain", {"type": "object", "properties": {}}, "A second tool of the same name."),
            tool(
                "huge",
                {
                    "type": "object",
                    "properties": {f"p{i}": {"type": "integer"} for i in range(5000)},
                },
            ),
            tool(
                "keyed",
                {
                    "type": "object",
                    "properties": {
                        "tags": {
                            "type": "object",
                            "patternProperties": {"^(a+)+$": {"type": "integer"}},
                            "additionalProperties": False,
                        }
                    },
                },
            ),
        ],
        "p3",
    ),
    "p3": (
        [
            tool(
                "guarded",
                {
                    "type": "object",
                    "properties": {"v": {"not": {"type": "string", "pattern": "^(a+)+$"}}},
                },
            ),
            tool(
                "last",
                {
                    "type": "object",
                    "properties": {"n": {"type": "integer", "minimum": 1}},
                    "required": ["n"],
                },
            ),
        ],
        None,
    ),
}


if os.environ.get("ODD_DEPTH"):  # a schema nested deeper than the client's JSON parser goes
    PAGES["p2"][0].append(tool("deep", nested(int(os.environ["ODD_DEPTH"]))))


async def list_tools(
    ctx: Any, params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    tools, cursor = PAGES[params.cursor if params is not None else None]
    return types.ListToolsResult(tools=tools, next_cursor=cursor)


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    text = json.dumps({"tool": params.name, "arguments": params.arguments})
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


server = Server("odd", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
