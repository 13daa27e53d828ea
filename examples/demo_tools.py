"""The four tools both examples give their agents."""

from __future__ import annotations

from toolweave import tool


@tool
async def search_web(query: str, limit: int = 3) -> dict:
    """Search the web; returns hits with urls."""
    slug = query.replace(" ", "-")
    return {"hits": [{"url": f"https://example.org/{slug}/{i}"} for i in range(limit)]}


@tool
async def fetch_page(url: str) -> dict:
    """Fetch a page and return its text."""
    return {"url": url, "text": f"A page about {url.split('/')[-2]}."}


@tool
def summarize(text: str) -> str:
    """Summarise a text in one line."""
    return f"Summary: {text}"


@tool
async def get_weather(city: str) -> dict:
    """Current weather for a city."""
    return {"city": city, "temp_c": 19}


TOOLS = [search_web, fetch_page, summarize, get_weather]
