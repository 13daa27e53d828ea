"""An MCP server for the adapter's tests, written with the SDK's ``MCPServer``.

    python catalog.py stdio LOG
    python catalog.py http LOG PORT

Every request it receives is appended to the file LOG as one JSON line (``{"method", "name",
"arguments"}``) before the SDK validates it, so a test can tell which calls reached it. A tool
call of ``slow`` adds ``{"event": "slept", "name", "tag"}`` when it ends, or ``{"event":
"cancelled", ...}`` when it is cancelled.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import EmbeddedResource, ImageContent, TextContent, TextResourceContents
from pydantic import BaseModel, Field

LOG = sys.argv[2] if len(sys.argv) > 2 else os.devnull


def record(entry: dict[str, Any]) -> None:
    with open(LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


async def log_requests(ctx: Any, call_next: Any) -> Any:
    params = ctx.params or {}
    if ctx.request_id is not None:
        record(
            {"method": ctx.method, "name": params.get("name"), "arguments": params.get("arguments")}
        )
    return await call_next(ctx)


server = MCPServer("catalog", log_level="ERROR", middleware=[log_requests])


class Hit(BaseModel):
    id: str
    title: str


class Hits(BaseModel):
    items: list[Hit]


@server.tool()
def search(query: str, limit: int = 3) -> Hits:
    """Search the catalog; returns hits with ids."""
    slug = query.replace(" ", "-")
    return Hits(items=[Hit(id=f"{slug}-{i}", title=f"{query} #{i}") for i in range(limit)])


@server.tool(structured_output=False)
def fetch(id: str) -> dict[str, Any]:
    """Fetch a document by id."""
    return {"id": id, "text": f"Text of {id}."}


@server.tool(structured_output=False)
def shout(text: str) -> str:
    """Say it louder."""
    return text.upper() + "!"


@server.tool()
def fail(reason: str) -> str:
    """Always fails, with the reason given."""
    raise ToolError(f"cannot do that: {reason}")


@server.tool(structured_output=False)
async def slow(seconds: float, tag: str = "") -> str:
    """Sleep, then answer with the tag."""
    try:
        await asyncio.sleep(seconds)
    except BaseException:
        record({"event": "cancelled", "name": "slow", "tag": tag})
        raise
    record({"event": "slept", "name": "slow", "tag": tag})
    return f"slept {tag}"


@server.tool(structured_output=False)
async def crash(after: float = 0.0) -> str:
    """End the server process without answering."""
    await asyncio.sleep(after)
    os._exit(3)


@server.tool(structured_output=False)
def pid() -> int:
    """This server's process id."""
    return os.getpid()


@server.tool(structured_output=False)
def code(value: Annotated[str, Field(pattern=r"^(a+)+$")]) -> str:
    """Accepts only runs of a's (a regular expression that backtracks badly)."""
    return f"accepted {len(value)} characters"


@server.tool(structured_output=False)
def picture() -> ImageContent:
    """A tiny image."""
    return ImageContent(type="image", data="aGVsbG8=", mime_type="image/png")


@server.tool(structured_output=False)
def mixed() -> list[Any]:
    """Text, an image and a resource."""
    return [
        TextContent(type="text", text='{"n": 1}'),
        ImageContent(type="image", data="aGVsbG8=", mime_type="image/png"),
        EmbeddedResource(
            type="resource",
            resource=TextResourceContents(
                uri="file:///notes.txt", text="notes", mime_type="text/plain"
            ),
        ),
    ]


if __name__ == "__main__":
    if sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[3]))
    else:
        server.run()
