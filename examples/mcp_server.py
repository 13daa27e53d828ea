"""A small MCP server over stdio, for ``mcp_agent.py``: a document search and a reader.

python examples/mcp_server.py   (speaks MCP on stdin/stdout; mcp_agent.py starts it)
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

DOCS = {  # id -> (title, text)
    "doc-dag": ("Dependency graphs", "A task runs once the tasks it needs are done."),
    "doc-retry": ("Retries", "Backoff turns a flaky call into a slow one, not a failed one."),
}

server = MCPServer("docs", log_level="ERROR")


class Hit(BaseModel):
    id: str
    title: str


class Hits(BaseModel):
    items: list[Hit]


@server.tool()
def search(query: str) -> Hits:
    """Search the documents; returns hits, best first, each with an id to read."""
    words = set(query.lower().split())
    ranked = sorted(DOCS, key=lambda d: -len(words & set(" ".join(DOCS[d]).lower().split())))
    return Hits(items=[Hit(id=d, title=DOCS[d][0]) for d in ranked])


@server.tool(structured_output=False)
def read(id: str) -> dict[str, str]:
    """Read a document by its id."""
    if id not in DOCS:
        raise ToolError(f"no document {id!r}; search first and use an id it returns")
    return {"id": id, "text": DOCS[id][1]}


if __name__ == "__main__":
    server.run()
