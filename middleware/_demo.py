"""Sample tools with real latencies, and the batches ``toolweave demo`` runs through them."""

from __future__ import annotations

import asyncio
from typing import Any

from ._models import ToolCall
from ._tools import Tool, tool

__all__ = ["DEMO_BATCHES", "DEMO_TOOLS"]


@tool
async def get_weather(city: str) -> dict[str, Any]:
    """Current weather for a city."""
    await asyncio.sleep(0.20)
    return {"city": city, "temp_c": 10 + len(city) % 15, "sky": "clear"}


@tool
async def convert_currency(amount: float, source: str, target: str) -> dict[str, Any]:
    """Convert an amount between currencies."""
    await asyncio.sleep(0.10)
    return {"amount": round(amount * 1.08, 2), "currency": target}


@tool
async def search_web(query: str, limit: int = 3) -> dict[str, Any]:
    """Search the web; returns ranked hits with urls."""
    await asyncio.sleep(0.30)
    slug = query.lower().replace(" ", "-")
    return {"hits": [{"url": f"https://example.org/{slug}/{i}", "rank": i} for i in range(limit)]}


@tool
async def fetch_page(url: str) -> dict[str, Any]:
    """Fetch a page and return its text."""
    await asyncio.sleep(0.25)
    return {"url": url, "text": f"Text of {url}."}


@tool
def summarize(text: str) -> str:
    """Summarise a text in one line (a blocking function: it runs in a worker thread)."""
    import time

    time.sleep(0.15)
    return f"Summary: {text[:60]}"


@tool
async def lookup_user(user_id: int) -> dict[str, Any]:
    """Look up a user profile."""
    await asyncio.sleep(0.20)
    return {"id": user_id, "name": "Ada", "homepage": f"https://example.org/users/{user_id}"}


DEMO_TOOLS: list[Tool] = [
    get_weather,
    convert_currency,
    search_web,
    fetch_page,
    summarize,
    lookup_user,
]

DEMO_BATCHES: dict[str, list[ToolCall]] = {
    "parallel": [
        ToolCall("w1", "get_weather", {"city": "Lisbon"}),
        ToolCall("w2", "get_weather", {"city": "Oslo"}),
        ToolCall("w3", "get_weather", {"city": "Kyoto"}),
        ToolCall("fx", "convert_currency", {"amount": 120, "source": "EUR", "target": "USD"}),
    ],
    "serial": [
        ToolCall("user", "lookup_user", {"user_id": 42}),
        ToolCall("page", "fetch_page", {"url": "${user.homepage}"}),
        ToolCall("sum", "summarize", {"text": "${page.text}"}),
    ],
    "dag": [
        ToolCall("s1", "search_web", {"query": "graph scheduling"}),
        ToolCall("s2", "search_web", {"query": "tool calling", "limit": 1}),
        ToolCall("p1", "fetch_page", {"url": "${s1.hits[0].url}"}),
        ToolCall("p2", "fetch_page", {"url": {"$ref": 2, "path": "$.hits[0].url"}}),
        ToolCall("sum", "summarize", {"text": "${p1.text} ${p2.text}"}),
        ToolCall("wx", "get_weather", {"city": "Lisbon"}),
    ],
}
