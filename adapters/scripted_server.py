"""The demo's model, for examples and offline runs: ``demo_script``, played by
``ScriptedOpenAIServer`` (``toolweave.testing``, re-exported here) on 127.0.0.1.

    with ScriptedOpenAIServer(script=demo_script) as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="offline")

Given a conversation that ends with the user's request, the script asks for a batch of tool
calls (with references between them); given tool results, it answers from them.
"""

from __future__ import annotations

from typing import Any

from toolweave.testing import ScriptedOpenAIServer

__all__ = ["ScriptedOpenAIServer", "demo_script"]


def demo_script(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The demo model: one batch of calls with references, then an answer from the results."""
    names = {t["function"]["name"] for t in tools if t.get("type") == "function"}
    results = [m for m in messages if m.get("role") == "tool"]
    if not results:
        wanted = {"search_web", "fetch_page", "summarize", "get_weather"}
        if not wanted <= names:
            return {"content": f"I need the tools {sorted(wanted)}; I was given {sorted(names)}."}
        return {
            "tool_calls": [
                ("call_search", "search_web", {"query": "dependency graphs", "limit": 2}),
                ("call_fetch", "fetch_page", {"url": "${1.hits[0].url}"}),
                ("call_sum", "summarize", {"text": "${call_fetch.text}"}),
                ("call_weather", "get_weather", {"city": "Lisbon"}),
            ]
        }
    lines = [f"- {m['tool_call_id']}: {str(m['content'])[:80]}" for m in results]
    return {"content": "Here is what the tools found:\n" + "\n".join(lines)}
