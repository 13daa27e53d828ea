"""A hand-written MCP server over stdio that answers in ways the SDK's server API cannot:
results of the wrong shape, a listing whose pages loop, an answer that never comes.

    python raw.py

It speaks newline-delimited JSON-RPC: ``server/discover`` is refused (the client falls back
to ``initialize``), ``tools/list`` lists ``shape`` and ``typed`` (one page, unless
``RAW_LOOP=1`` is set: then every page points to the next with the same cursor). ``typed``
answers structured content its own output schema rejects; ``shape`` answers the ``kind`` it
is given:

- ``not_a_list``: ``content`` is a string; ``video``: a block of an unknown type;
  ``no_content``: ``structuredContent`` only; ``bad_json``: a line that is not JSON;
- ``silent``: no answer at all;
- ``audio``, ``link``, ``empty``, ``error_image``, ``nan``, ``null_structured``: valid answers
  (an audio block, a resource link, no content, an ``isError`` with only an image, the text
  ``NaN``, ``structuredContent: null`` beside text).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

SHAPE = {
    "name": "shape",
    "description": "Answers in the shape asked for.",
    "inputSchema": {
        "type": "object",
        "properties": {"kind": {"type": "string"}},
        "required": ["kind"],
    },
}

TYPED = {
    "name": "typed",
    "description": "Declares an output schema its answer does not follow.",
    "inputSchema": {"type": "object"},
    "outputSchema": {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
    },
}

ANSWERS: dict[str, Any] = {
    "not_a_list": {"content": "text where a list belongs"},
    "video": {"content": [{"type": "video", "url": "https://example.invalid/v.mp4"}]},
    "no_content": {"structuredContent": {"a": 1}},
    "audio": {"content": [{"type": "audio", "data": "UklGRg==", "mimeType": "audio/wav"}]},
    "link": {"content": [{"type": "resource_link", "uri": "file:///a.txt", "name": "a.txt"}]},
    "empty": {"content": []},
    "error_image": {
        "content": [{"type": "image", "data": "aGVsbG8=", "mimeType": "image/png"}],
        "isError": True,
    },
    "nan": {"content": [{"type": "text", "text": "NaN"}]},
    "null_structured": {"content": [{"type": "text", "text": "[1, 2]"}], "structuredContent": None},
}


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(request_id: Any, method: str, params: dict[str, Any]) -> None:
    if method == "initialize":
        result = {
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "raw", "version": "1"},
        }
    elif method == "tools/list":
        result = {"tools": [SHAPE, TYPED]}
        if os.environ.get("RAW_LOOP"):
            result["nextCursor"] = "again"
    elif method == "tools/call" and params.get("name") == "typed":
        result = {"content": [], "structuredContent": {"n": "not a number"}}
    elif method == "tools/call":
        kind = (params.get("arguments") or {}).get("kind")
        if kind == "silent":
            return
        if kind == "bad_json":
            sys.stdout.write("{this is not json\n")
            sys.stdout.flush()
            return
        result = ANSWERS[kind]
    else:
        send(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "error": {"code": -32601, "message": "Method not found"},
            }
        )
        return
    send({"jsonrpc": "2.0", "id": request_id, "result": result})


for line in sys.stdin:
    message = json.loads(line)
    if "id" in message and "method" in message:
        answer(message["id"], message["method"], message.get("params") or {})
