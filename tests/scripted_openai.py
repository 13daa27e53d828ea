"""A scripted OpenAI-compatible endpoint for tests, on the real ``openai`` client.

``ScriptedServer`` keeps the interface the tests were written against and plays its steps on
the public ``toolweave.testing.ScriptedOpenAIServer``: a real HTTP server on 127.0.0.1,
started by ``client()`` and stopped after each test by the autouse fixture in ``conftest.py``
(``stop_all``). It records any request it did not expect and ``assert_done()`` fails on it,
and on any step left unused.

Steps: a response body, ``(status, headers)``, ``"hang"`` (no answer until the server stops)
and ``"connect-error"``: a real server cannot refuse one connection and accept the next, so
the connection is closed without an answer, which the client reports the same way
(``APIConnectionError``).
"""

from __future__ import annotations

import json
from typing import Any

import openai._base_client as _openai_http
from openai import AsyncOpenAI

from toolweave.testing import ScriptedOpenAIServer, completion_chunks
from toolweave.testing import completion as _completion
from toolweave.testing import tool_calls as _tool_calls

# openai 3.x sends requests through httpx2, 2.x through httpx; tests that need a transport of
# their own (to hold a stream at a given chunk, say) use whichever it uses.
httpx2: Any = getattr(_openai_http, "httpx2", None) or _openai_http.httpx

_started: list[ScriptedOpenAIServer] = []


def stop_all() -> None:
    """Stop every server a ``ScriptedServer`` started (the fixture calls it after each test)."""
    while _started:
        _started.pop().stop()


def completion(
    content: str | None, *, refusal: str | None = None, finish: str = "stop"
) -> dict[str, Any]:
    return _completion(
        content, refusal=refusal, finish_reason=finish, model="decider-model", usage=(120, 9)
    )


def answer(action: str, skip: list[str] | None = None, reason: str = "because") -> dict[str, Any]:
    return completion(json.dumps({"action": action, "skip": skip or [], "reason": reason}))


class ScriptedServer:
    """An OpenAI-compatible endpoint (Chat Completions by default, or ``path``) that plays a
    script of responses."""

    def __init__(self, *steps: Any, path: str = "/v1/chat/completions") -> None:
        real = ["disconnect" if step == "connect-error" else step for step in steps]
        self.server = ScriptedOpenAIServer(*real, path=path)

    @property
    def steps(self) -> list[Any]:
        return self.server.steps

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.server.requests

    @property
    def unexpected(self) -> list[str]:
        return self.server.unexpected

    def client(self, **options: Any) -> AsyncOpenAI:
        if self.server not in _started:
            _started.append(self.server.start())
        return self.server.client(api_key="test-key", **options)

    def assert_done(self) -> None:
        self.server.assert_done()


def tool_calls(*calls: tuple[str, str, str], content: str | None = None) -> dict[str, Any]:
    """A chat completion whose message asks for these (id, name, raw arguments) tool calls."""
    return _completion(content, tool_calls=calls, model="decider-model", usage=(120, 9))


def sse_tool_call_chunks(
    calls: list[tuple[str, str, str]], pieces: int = 3
) -> list[dict[str, Any]]:
    """Chat completion chunks that stream these (id, name, raw arguments) tool calls, each
    call's arguments split into ``pieces`` fragments, as the API streams them."""
    return completion_chunks(_tool_calls(*calls), pieces=pieces)
