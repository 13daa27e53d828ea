"""A scripted OpenAI-compatible endpoint for tests, on the real ``openai`` client.

``openai`` 3.x sends requests through httpx2, which respx cannot intercept, so the client gets
an ``http_client`` on a mock transport; the script records any request it did not expect and
``assert_done()`` fails on it, and on any step left unused.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai._base_client as _openai_http
from openai import AsyncOpenAI

# openai 3.x sends requests through httpx2, 2.x through httpx: mock whichever it uses.
httpx2: Any = getattr(_openai_http, "httpx2", None) or _openai_http.httpx


def completion(
    content: str | None, *, refusal: str | None = None, finish: str = "stop"
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "decider-model",
        "choices": [
            {
                "index": 0,
                "finish_reason": finish,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
            }
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129},
    }


def answer(action: str, skip: list[str] | None = None, reason: str = "because") -> dict[str, Any]:
    return completion(json.dumps({"action": action, "skip": skip or [], "reason": reason}))


class ScriptedServer:
    """An OpenAI-compatible endpoint (Chat Completions by default, or ``path``) that plays a
    script of responses."""

    def __init__(self, *steps: Any, path: str = "/v1/chat/completions") -> None:
        self.steps = list(steps)
        self.path = path
        self.requests: list[dict[str, Any]] = []
        self.unexpected: list[str] = []

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        if request.url.path != self.path or not self.steps:
            self.unexpected.append(f"{request.method} {request.url.path}")
            return httpx2.Response(418, json={"error": {"message": "unexpected request"}})
        step = self.steps.pop(0)
        if step == "hang":
            await asyncio.sleep(3600)
        if step == "connect-error":
            raise httpx2.ConnectError("connection refused", request=request)
        if isinstance(step, tuple):  # (status, headers)
            status, headers = step
            return httpx2.Response(
                status, headers=headers, json={"error": {"message": f"{status}"}}
            )
        return httpx2.Response(200, json=step)

    def client(self, **options: Any) -> AsyncOpenAI:
        transport = httpx2.MockTransport(self.handle)
        return AsyncOpenAI(
            api_key="test-key",
            base_url="http://model.test/v1",
            http_client=httpx2.AsyncClient(transport=transport),
            **options,
        )

    def assert_done(self) -> None:
        assert self.unexpected == [], f"unexpected requests: {self.unexpected}"
        assert self.steps == [], f"unused steps: {self.steps}"


def tool_calls(*calls: tuple[str, str, str], content: str | None = None) -> dict[str, Any]:
    """A chat completion whose message asks for these (id, name, raw arguments) tool calls."""
    body = completion(content, finish="tool_calls")
    body["choices"][0]["message"]["tool_calls"] = [
        {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in calls
    ]
    return body


def sse_tool_call_chunks(
    calls: list[tuple[str, str, str]], pieces: int = 3
) -> list[dict[str, Any]]:
    """Chat completion chunks that stream these (id, name, raw arguments) tool calls, each
    call's arguments split into ``pieces`` fragments, as the API streams them."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }  # fmt: skip

    out = [chunk({"role": "assistant", "content": None})]
    for index, (call_id, name, arguments) in enumerate(calls):
        size = max(1, -(-len(arguments) // pieces))
        fragments = [arguments[k : k + size] for k in range(0, len(arguments), size)] or [""]
        for k, fragment in enumerate(fragments):
            head: dict[str, Any] = {"index": index, "function": {"arguments": fragment}}
            if k == 0:
                head.update(id=call_id, type="function")
                head["function"]["name"] = name
            out.append(chunk({"tool_calls": [head]}))
    out.append(chunk({}, finish="tool_calls"))
    return out
