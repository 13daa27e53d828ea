"""A tiny OpenAI-compatible Chat Completions server on 127.0.0.1, for examples and offline
runs: its "model" is a script, not a network call.

Given a conversation that ends with the user's request, it asks for a batch of tool calls
(with references between them); given tool results, it answers from them. Anything it cannot
script is answered with HTTP 400 and a message saying why.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ScriptedOpenAIServer", "demo_script"]

Script = Callable[[list[dict[str, Any]], list[dict[str, Any]]], dict[str, Any]]


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


class ScriptedOpenAIServer:
    """``with ScriptedOpenAIServer() as server:`` then ``AsyncOpenAI(base_url=server.base_url,
    api_key="offline")``. ``requests`` keeps every request body received."""

    def __init__(self, script: Script = demo_script) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                owner.requests.append(body)
                if self.path.rstrip("/") != "/v1/chat/completions" or body.get("stream"):
                    self._reply(400, {"error": {"message": "only non-streamed chat completions"}})
                    return
                turn = owner.script(body.get("messages", []), body.get("tools") or [])
                self._reply(200, _completion(body.get("model", "scripted"), turn))

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _completion(model: str, turn: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.get("content")}
    finish = "stop"
    if turn.get("tool_calls"):
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, n, a in turn["tool_calls"]
        ]
        finish = "tool_calls"
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
