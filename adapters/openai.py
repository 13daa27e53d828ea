"""OpenAI adapter: toolweave tools as ``tools=[...]``, model tool calls as a batch, results
as the messages the API expects, and a complete agent loop.

Works with Chat Completions and the Responses API, on the ``openai`` client (2.x or 3.x) or
any OpenAI-compatible server. Dicts live only here, at the wire edge.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from toolweave import BatchResult, Orchestrator, Tool, ToolCall, UsageError

__all__ = [
    "AgentRun",
    "calls_from_openai",
    "dispatch_stream",
    "openai_tools",
    "reference_instructions",
    "run_openai_agent",
    "strict_schema",
    "to_openai_messages",
    "to_responses_items",
]

logger = logging.getLogger("toolweave")

_REFERENCE_HINT = (
    'Or a reference "${N.path}" to the output of call N (its id or 1-based position) of this '
    "same batch."
)


def reference_instructions() -> str:
    """A system-prompt paragraph that teaches a model toolweave's reference syntax."""
    return (
        "You may call several tools at once. When one call needs the output of another call in "
        'the same batch, write a reference instead of the value: "${N}" is the whole output of '
        'call N, "${N.field[0].name}" a value inside it, where N is that call\'s id or its '
        "1-based position in your list of calls. The calls then run in the right order. "
        'Example: call 1 search(query="graph scheduling"), call 2 fetch(url="${1.hits[0].url}").'
    )


def openai_tools(
    tools: Iterable[Tool] | Mapping[str, Tool] | Orchestrator,
    *,
    api: Literal["chat", "responses"] = "chat",
    references: bool = True,
    strict: bool = True,
) -> list[dict[str, Any]]:
    """The ``tools=[...]`` parameter for Chat Completions (``api="chat"``) or the Responses API.

    With ``strict`` every schema follows strict mode (closed objects, every property required,
    optional ones nullable); a tool whose parameters strict mode cannot express (free-form
    objects, ``Any``) goes out with ``strict: false`` and a logged reason. With ``references``
    every non-string parameter also accepts a ``"${...}"`` reference string.
    """
    if isinstance(tools, Orchestrator):
        tools = tools.tools
    items = list(tools.values()) if isinstance(tools, Mapping) else list(tools)
    out: list[dict[str, Any]] = []
    for t in items:
        schema, is_strict = _parameters(t, references=references, strict=strict)
        description = t.description
        if references:
            description = (description + "\n\n" if description else "") + (
                "Arguments may refer to earlier calls of this batch: " + _REFERENCE_HINT
            )
        if api == "chat":
            out.append(
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": description,
                        "parameters": schema,
                        "strict": is_strict,
                    },
                }
            )
        elif api == "responses":
            out.append(
                {
                    "type": "function",
                    "name": t.name,
                    "description": description,
                    "parameters": schema,
                    "strict": is_strict,
                }
            )
        else:
            raise UsageError(f"api must be 'chat' or 'responses', got {api!r}")
    return out


def _parameters(tool: Tool, *, references: bool, strict: bool) -> tuple[dict[str, Any], bool]:
    base = tool.parameters
    problem = _free_form(base, base.get("$defs", {})) if strict else None
    if strict and problem is None:
        schema = strict_schema(base)
    else:
        if strict:
            logger.info("toolweave: tool '%s' goes out with strict: false: %s", tool.name, problem)
        schema = _strip(copy.deepcopy(base))
    if references:
        for name, prop in schema.get("properties", {}).items():
            if not _is_string(prop):
                schema["properties"][name] = {"anyOf": [prop, {"type": "string"}]}
    return schema, strict and problem is None


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a pydantic JSON schema in OpenAI strict form: every object closed
    (``additionalProperties: false``) with all its properties required, properties that were
    optional made nullable, and ``title``/``default`` dropped."""
    strict: dict[str, Any] = _strictify(_strip(copy.deepcopy(schema)))
    return strict


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        for key in ("title", "default"):
            node.pop(key, None)
        for value in node.values():
            _strip(value)
    elif isinstance(node, list):
        for value in node:
            _strip(value)
    return node


def _strictify(node: Any) -> Any:
    if isinstance(node, list):
        return [_strictify(n) for n in node]
    if not isinstance(node, dict):
        return node
    for key, value in list(node.items()):
        if key == "properties" and isinstance(value, dict):
            node[key] = {k: _strictify(v) for k, v in value.items()}
        elif isinstance(value, dict | list):
            node[key] = _strictify(value)
    if node.get("type") == "object" or "properties" in node:
        props = node.setdefault("properties", {})
        required = set(node.get("required", []))
        for name in props:
            if name not in required:
                props[name] = _nullable(props[name])
        node["required"] = list(props)
        node["additionalProperties"] = False
    return node


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "anyOf" in schema:
        if not any(s.get("type") == "null" for s in schema["anyOf"]):
            schema["anyOf"].append({"type": "null"})
        return schema
    kind = schema.get("type")
    if isinstance(kind, str) and "$ref" not in schema:
        schema["type"] = [kind, "null"]
        if "enum" in schema and None not in schema["enum"]:
            schema["enum"] = [*schema["enum"], None]
        return schema
    return {"anyOf": [schema, {"type": "null"}]}


def _free_form(node: Any, defs: Mapping[str, Any]) -> str | None:
    """Why strict mode cannot express this schema, or None."""
    if isinstance(node, list):
        return next((p for p in (_free_form(n, defs) for n in node) if p), None)
    if not isinstance(node, dict):
        return None
    if node == {} or (set(node) <= {"title", "description", "default"}):
        return "a parameter accepts any value (Any)"
    if node.get("type") == "object" or "additionalProperties" in node:
        extra = node.get("additionalProperties")
        if extra not in (None, False):
            return "an object with free-form keys (a dict parameter)"
        if "properties" not in node:
            return "an object without declared properties"
    if node.get("type") == "array" and "items" not in node:
        return "a list without an item type"
    for key, value in node.items():
        if key in ("properties", "$defs"):
            found = _free_form(list(value.values()), defs)
        elif isinstance(value, dict | list):
            found = _free_form(value, defs)
        else:
            found = None
        if found:
            return found
    return None


def _is_string(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "string" or (isinstance(kind, list) and "string" in kind)


# ------------------------------------------------------------------ model output -> calls


def calls_from_openai(response: Any) -> list[ToolCall]:
    """Toolweave calls from a Chat Completions message (its ``tool_calls``), a whole
    ``ChatCompletion``, or a Responses API output (a ``Response`` or its ``output`` list of
    ``function_call`` items). Argument strings stay raw, so bad JSON is an error for that call
    only when the batch runs."""
    data = _plain(response)
    if isinstance(data, dict) and "choices" in data:
        choices = data["choices"]
        data = choices[0]["message"] if choices else {}
    if isinstance(data, dict) and "output" in data and isinstance(data["output"], list):
        data = data["output"]
    if isinstance(data, dict):
        calls = []
        for item in data.get("tool_calls") or []:
            function = item.get("function") or {}
            calls.append(
                ToolCall(item["id"], function.get("name", ""), function.get("arguments") or "")
            )
        return calls
    if isinstance(data, list):
        return [
            ToolCall(item["call_id"], item["name"], item.get("arguments") or "")
            for item in map(_plain, data)
            if isinstance(item, dict) and item.get("type") == "function_call"
        ]
    raise UsageError(
        f"calls_from_openai() takes a ChatCompletion, a message or a Responses output, got "
        f"{type(response).__name__}"
    )


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(exclude_none=False) if callable(dump) else value


# ------------------------------------------------------------------ results -> messages


def _content(result: Any) -> str:
    if result.status == "ok":
        output = result.output
        return output if isinstance(output, str) else json.dumps(output, default=str)
    if result.status == "skipped":
        return f"Not run. {result.error}"
    return f"Error: {result.error}"


def to_openai_messages(result: BatchResult) -> list[dict[str, Any]]:
    """One ``{"role": "tool", "tool_call_id", "content"}`` message per call, in the model's
    order, errors and skips included as text the model can act on."""
    return [
        {"role": "tool", "tool_call_id": r.call_id, "content": _content(r)} for r in result.results
    ]


def to_responses_items(result: BatchResult) -> list[dict[str, Any]]:
    """One ``function_call_output`` item per call, for the Responses API."""
    return [
        {"type": "function_call_output", "call_id": r.call_id, "output": _content(r)}
        for r in result.results
    ]


# ------------------------------------------------------------------ streaming


async def dispatch_stream(
    stream: AsyncIterable[Any], orchestrator: Orchestrator, *, goal: str | None = None
) -> BatchResult:
    """Consume a streamed Chat Completions response (``stream=True``) and start each tool call
    as soon as its arguments are complete and its dependencies allow, while the model is still
    writing the rest of the batch. Returns the same ``BatchResult`` as ``orchestrator.run``.

    A call is complete when the next one begins or its arguments already form a whole JSON
    object; calls join the batch in the model's order.
    """
    parts: dict[int, dict[str, str]] = {}
    sent = 0
    async with orchestrator.stream(goal=goal) as batch:
        async for chunk in stream:
            for choice in _plain(chunk).get("choices") or []:
                for delta in (choice.get("delta") or {}).get("tool_calls") or []:
                    entry = parts.setdefault(
                        delta.get("index", len(parts)), {"id": "", "name": "", "arguments": ""}
                    )
                    entry["id"] = delta.get("id") or entry["id"]
                    function = delta.get("function") or {}
                    entry["name"] += function.get("name") or ""
                    entry["arguments"] += function.get("arguments") or ""
            while sent in parts and (sent + 1 in parts or _whole_object(parts[sent]["arguments"])):
                batch.add(_streamed_call(parts[sent], sent))
                sent += 1
        while sent in parts:
            batch.add(_streamed_call(parts[sent], sent))
            sent += 1
    return batch.result


def _whole_object(text: str) -> bool:
    text = text.strip()
    if not text.endswith("}"):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def _streamed_call(entry: dict[str, str], index: int) -> ToolCall:
    return ToolCall(entry["id"] or f"call_{index}", entry["name"], entry["arguments"])


# ------------------------------------------------------------------ agent loop


@dataclass
class AgentRun:
    """What ``run_openai_agent`` did: the whole conversation and every batch it ran."""

    messages: list[dict[str, Any]]
    batches: list[BatchResult] = field(default_factory=list)
    final: str | None = None
    """The model's last answer without tool calls; None if the turn limit ended the loop."""
    turns: int = 0


async def run_openai_agent(
    client: Any,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    orchestrator: Orchestrator,
    max_turns: int = 8,
    *,
    references: bool = True,
    **create_options: Any,
) -> AgentRun:
    """A complete Chat Completions agent loop: model -> batch -> results -> model, until the
    model answers without tool calls or ``max_turns`` model calls were made.

    With ``references`` the tools advertise the reference syntax and a short system message
    teaches it. ``create_options`` go to ``client.chat.completions.create``.
    """
    if max_turns < 1:
        raise UsageError("max_turns must be at least 1")
    conversation = [dict(m) for m in messages]
    if references:
        conversation.insert(0, {"role": "system", "content": reference_instructions()})
    tools = openai_tools(orchestrator, references=references)
    goal = next((str(m.get("content")) for m in messages if m.get("role") == "user"), None)
    run = AgentRun(messages=conversation)
    while run.turns < max_turns:
        run.turns += 1
        response = await client.chat.completions.create(
            model=model, messages=conversation, tools=tools, **create_options
        )
        message = response.choices[0].message
        calls = calls_from_openai(message)
        conversation.append(_assistant_message(message))
        if not calls:
            run.final = message.content
            break
        result = await orchestrator.run(calls, goal=goal)
        run.batches.append(result)
        conversation.extend(to_openai_messages(result))
    return run


def _assistant_message(message: Any) -> dict[str, Any]:
    data = _plain(message)
    out: dict[str, Any] = {"role": "assistant", "content": data.get("content")}
    if data.get("tool_calls"):
        out["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {
                    "name": c["function"]["name"],
                    "arguments": c["function"]["arguments"],
                },
            }
            for c in data["tool_calls"]
        ]
    return out
