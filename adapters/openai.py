"""OpenAI adapter: toolweave tools as ``tools=[...]``, model tool calls as a batch, results
as the messages the API expects, and a complete agent loop.

Works with Chat Completions and the Responses API, on the ``openai`` client (2.x or 3.x) or
any OpenAI-compatible server. Dicts live only here, at the wire edge.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import AsyncIterable, AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from toolweave import (
    BatchResult,
    CallResult,
    Orchestrator,
    Tool,
    ToolCall,
    ToolweaveError,
    UsageError,
)
from toolweave._json_schemas import subschemas
from toolweave.telemetry._values import safe_str, to_text

from ._advertise import accept_references, describe_references, reference_instructions
from ._calls import CallIds, Written, one_call, unique_calls, usable_id

__all__ = [
    "AgentRun",
    "ModelStreamError",
    "StreamedBatch",
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

    A tool from ``Tool.from_schema`` goes out with its schema (BFCL type names normalised).
    Its schema is validated as written, so it is strict only when strict mode can express it
    as it is: every property required, no object open to other keys (an object that does not
    say gets ``additionalProperties: false``), only keywords strict mode supports, and
    ``default`` dropped. Otherwise it goes out unchanged with ``strict: false``.
    """
    if isinstance(tools, Orchestrator):
        tools = tools.tools
    items = list(tools.values()) if isinstance(tools, Mapping) else list(tools)
    out: list[dict[str, Any]] = []
    for t in items:
        schema, is_strict = _parameters(t, references=references, strict=strict)
        description = t.description
        if references:
            description = describe_references(description)
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
    if tool.defined_by_schema:
        problem = _not_strict_as_written(base) if strict else None
        schema = copy.deepcopy(base)
        if strict and problem is None:
            schema = _close(schema)
    else:
        problem = _free_form(base, base.get("$defs", {})) if strict else None
        schema = strict_schema(base) if strict and problem is None else _strip(copy.deepcopy(base))
    if strict and problem is not None:
        logger.info("toolweave: tool '%s' goes out with strict: false: %s", tool.name, problem)
    if references:
        schema = accept_references(schema)
    return schema, strict and problem is None


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a pydantic JSON schema in OpenAI strict form: every object closed
    (``additionalProperties: false``) with all its properties required, properties that were
    optional made nullable, and ``title``/``default`` dropped."""
    strict: dict[str, Any] = _strictify(_strip(copy.deepcopy(schema)))
    return strict


def _strip(node: Any) -> Any:
    """``title`` and ``default`` dropped from every schema inside ``node`` (a property named
    ``title`` or ``default`` is a property, and stays)."""
    if isinstance(node, dict):
        for key in ("title", "default"):
            node.pop(key, None)
        for child in subschemas(node):
            _strip(child)
    return node


# Strict mode's subset of JSON Schema, for tools whose schema is validated as written.
_STRICT_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "$ref",
        "$defs",
        "definitions",
        "title",
        "description",
        "default",  # dropped when it goes out strict
        "pattern",
        "format",
        "multipleOf",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minItems",
        "maxItems",
    }
)
_STRICT_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
_SHAPE_KEYWORDS = ("type", "$ref", "anyOf", "enum", "const")


def _not_strict_as_written(node: dict[str, Any]) -> str | None:
    """Why strict mode cannot express this schema without changing what it accepts, or None.

    Closing an object that does not say (``additionalProperties: false``) only narrows what
    the model may send; making an optional property required, or nullable, would not."""
    unsupported = sorted(set(node) - _STRICT_KEYWORDS)
    if unsupported:
        return f"the keyword '{safe_str(unsupported[0], 60)}' is not supported in strict mode"
    if not any(k in node for k in _SHAPE_KEYWORDS):
        return "a parameter accepts any value"
    kinds = node.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "object" in kinds or "properties" in node:
        if node.get("additionalProperties") not in (None, False):
            return "an object with free-form keys"
        if "properties" not in node:
            return "an object without declared properties"
        required = node.get("required") or []
        optional = [p for p in node["properties"] if p not in required]
        if optional:
            return (
                f"the property '{safe_str(optional[0], 60)}' is optional (strict mode needs "
                "every property required)"
            )
    if "array" in kinds and not isinstance(node.get("items"), dict):
        return "a list without an item type"
    if "format" in node and node["format"] not in _STRICT_FORMATS:
        return f"the format '{safe_str(node['format'], 60)}' is not supported in strict mode"
    return next((p for p in map(_not_strict_as_written, subschemas(node)) if p), None)


def _close(node: dict[str, Any]) -> dict[str, Any]:
    """Strict form of a schema ``_not_strict_as_written`` accepts: objects closed, defaults
    dropped (in place)."""
    node.pop("default", None)
    kinds = node.get("type")
    if "properties" in node or kinds == "object" or (isinstance(kinds, list) and "object" in kinds):
        node["additionalProperties"] = False
    for child in subschemas(node):
        _close(child)
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


# ------------------------------------------------------------------ model output -> calls

# Responses output items that need no answer from the client: the model's text and reasoning,
# and tools the API ran itself.
_RESPONSES_NO_ANSWER = frozenset(
    {
        "message",
        "reasoning",
        "web_search_call",
        "file_search_call",
        "image_generation_call",
        "code_interpreter_call",
        "mcp_call",
        "mcp_list_tools",
        "compaction",
        "additional_tools",
    }
)
# Responses output items the client must answer, but not with a function call's output.
_RESPONSES_OTHER_CALLS = frozenset(
    {
        "custom_tool_call",
        "computer_call",
        "local_shell_call",
        "shell_call",
        "apply_patch_call",
        "mcp_approval_request",
    }
)


def calls_from_openai(response: Any) -> list[ToolCall]:
    """Toolweave calls from a Chat Completions message (its ``tool_calls``), a whole
    ``ChatCompletion`` (its first choice), or a Responses API output (a ``Response`` or its
    ``output`` list). Argument strings stay raw, so bad JSON is an error for that call only
    when the batch runs.

    Whatever a model or compatible server sends, every call it wrote comes back as one
    ``ToolCall``, so every call gets exactly one answer. A call toolweave cannot run carries
    ``error`` and never runs; its result is an ``invalid_call`` error saying why:

    - a custom tool call (chat ``"type": "custom"``, Responses ``custom_tool_call``):
      toolweave runs function tools only;
    - a call without a usable name runs as ``"(no name)"``;
    - a call whose id repeats an earlier call's is renamed ``"{id}#{k}"``.

    A call without an id (or a non-text one) runs under ``call_{i}``, its 0-based position,
    made unique if the model used that id; arguments ``None`` mean ``{}``, and arguments that
    are neither an object nor text are reported by the planner as not a JSON object.

    Responses items: ``function_call`` is a call; ``custom_tool_call``, ``computer_call``,
    ``local_shell_call``, ``shell_call``, ``apply_patch_call``, ``mcp_approval_request``, a
    ``tool_search_call`` executed by the client, and any unknown item with a ``call_id`` need
    an answer from the client, so each becomes a call with ``error``. Items that need no
    answer (``message``, ``reasoning``, ``web_search_call``, ``file_search_call``,
    ``image_generation_call``, ``code_interpreter_call``, ``mcp_call``, ``mcp_list_tools``,
    ``*_output`` items, unknown items without a ``call_id``) and anything that is not an item
    at all are ignored.

    Raises ``UsageError`` only for an argument that is none of these shapes (not a dict, a
    list or an ``openai`` model).
    """
    return unique_calls(_read(response))


def _read(response: Any) -> list[Written]:
    data = _plain(response)
    if isinstance(data, dict) and "choices" in data:
        choices = data["choices"]
        first = _plain(choices[0]) if isinstance(choices, list) and choices else None
        message = _plain(first.get("message")) if isinstance(first, dict) else None
        data = message if isinstance(message, dict) else {}
    if isinstance(data, dict) and isinstance(data.get("output"), list | tuple):
        data = data["output"]
    if isinstance(data, dict):
        return _read_chat(data)
    if isinstance(data, list | tuple):
        return _read_responses(data)
    raise UsageError(
        f"calls_from_openai() takes a ChatCompletion, a message or a Responses output, got "
        f"{type(response).__name__}"
    )


def _read_chat(message: Mapping[str, Any]) -> list[Written]:
    items = message.get("tool_calls")
    if isinstance(items, Mapping):  # one call not wrapped in a list
        items = [items]
    if not isinstance(items, list | tuple):
        return []
    out = []
    for item in map(_plain, items):
        if not isinstance(item, dict):
            logger.debug("toolweave: ignored a tool call that is a %s", type(item).__name__)
            continue
        kind = item.get("type")
        if kind == "custom":
            custom = _plain(item.get("custom"))
            custom = custom if isinstance(custom, dict) else {}
            out.append(
                Written(
                    item.get("id"),
                    custom.get("name"),
                    custom.get("input"),
                    "this is a custom tool call with free-form input; only function tools run "
                    "here, so it was not run. Call a function tool with JSON arguments instead.",
                    kind="custom",
                )
            )
            continue
        function = _plain(item.get("function"))
        function = function if isinstance(function, dict) else {}
        problem = None
        if kind not in (None, "function"):
            problem = (
                f"this tool call is of type '{to_text(kind, 40)}'; only function tools run here, "
                "so it was not run. Call a function tool instead."
            )
        out.append(
            Written(item.get("id"), function.get("name"), function.get("arguments"), problem)
        )
    return out


def _read_responses(items: Sequence[Any]) -> list[Written]:
    out = []
    for item in map(_plain, items):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            continue
        kind: str = item["type"]
        call_id = item.get("call_id")
        if kind == "function_call":
            out.append(Written(call_id, item.get("name"), item.get("arguments")))
            continue
        if kind == "tool_search_call":
            if item.get("execution") != "client":
                continue
        elif kind in _RESPONSES_NO_ANSWER or kind.endswith("_output"):
            continue
        elif kind not in _RESPONSES_OTHER_CALLS and not (isinstance(call_id, str) and call_id):
            continue  # an item this version does not know, with nothing to answer
        if kind == "mcp_approval_request":
            call_id = item.get("id")
        name = item.get("name")
        what = "a custom tool call" if kind == "custom_tool_call" else f"a '{to_text(kind, 40)}'"
        out.append(
            Written(
                call_id,
                name if isinstance(name, str) and name else kind,
                {},
                f"this is {what}; only function tools run here, so it was not run. Call a "
                "function tool instead.",
                kind=kind,
            )
        )
    return out


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(exclude_none=False) if callable(dump) else value


# ------------------------------------------------------------------ results -> messages


def _content(result: CallResult) -> str:
    if result.status == "ok":
        return to_text(result.output)
    if result.status == "skipped":
        return f"Not run. {to_text(result.error)}"
    return f"Error: {to_text(result.error)}"


def to_openai_messages(result: BatchResult) -> list[dict[str, Any]]:
    """One ``{"role": "tool", "tool_call_id", "content"}`` message per call, in the model's
    order, errors and skips included as text the model can act on. Any output becomes text
    (``toolweave.telemetry`` ``to_text``): this never raises."""
    return [
        {"role": "tool", "tool_call_id": r.call_id, "content": _content(r)} for r in result.results
    ]


def to_responses_items(result: BatchResult) -> list[dict[str, Any]]:
    """One ``function_call_output`` item per call, for the Responses API; never raises."""
    return [
        {"type": "function_call_output", "call_id": r.call_id, "output": _content(r)}
        for r in result.results
    ]


# ------------------------------------------------------------------ streaming


@dataclass(eq=False, slots=True)
class _Fragments:
    """One streamed tool call, as its fragments arrived."""

    id: str | None = None
    name: str = ""
    bad_name: Any = None
    """A name fragment that was not text, kept to name it in the call's error."""
    pieces: list[str] = field(default_factory=list)
    """The argument fragments; joined only when read, so a long stream stays linear."""
    size: int = 0
    sent: bool = False

    @property
    def arguments(self) -> str:
        return "".join(self.pieces)

    def add(self, fragment: str) -> None:
        self.pieces.append(fragment)
        self.size += len(fragment)

    def ready(self) -> bool:
        """Complete on its own: id, name and a whole JSON object of arguments."""
        if not (self.id and self.name) or self.size > _EARLY_PARSE_CHARS:
            return False
        last = next((p for p in reversed(self.pieces) if p.strip()), "")
        if not last.rstrip().endswith("}"):
            return False  # cannot be whole yet: spare the join and the parse
        return _whole_object(self.arguments)

    def written(self, problem: str | None = None) -> Written:
        name = self.bad_name if self.bad_name is not None and not self.name else self.name
        return Written(self.id, name, self.arguments, problem)


class _StreamedCalls:
    """Gathers Chat Completions chunk deltas into calls, whatever the chunks look like.

    An int ``index`` (0 or more) names the call; another id at a used index begins a new call.
    Without a usable index the id finds the call (or begins one), and a delta with neither
    continues the latest call. Chunks and deltas of the wrong shape are skipped.
    """

    def __init__(self) -> None:
        self._all: list[_Fragments] = []
        self._by_index: dict[int, _Fragments] = {}
        self._by_id: dict[str, _Fragments] = {}
        self._next = 0  # first entry of _all not handed out yet: its batch position
        self._ids = CallIds()
        self._text: list[str] = []
        self._sent: list[tuple[ToolCall, Written]] = []

    def feed(self, chunk: Any) -> str | None:
        """Take in one chunk; a Chat Completions stream reports no failure in band."""
        data = _plain(chunk)
        choices = data.get("choices") if isinstance(data, dict) else None
        for choice in map(_plain, choices if isinstance(choices, list) else []):
            if not isinstance(choice, dict) or choice.get("index", 0) not in (0, None):
                continue  # only the first choice is read, as in calls_from_openai
            delta = _plain(choice.get("delta"))
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                self._text.append(delta["content"])
            deltas = _plain(delta.get("tool_calls")) if isinstance(delta, dict) else None
            if isinstance(deltas, dict):
                deltas = [deltas]
            for part in map(_plain, deltas if isinstance(deltas, list) else []):
                if isinstance(part, dict):
                    self._take(part)
        return None

    def _take(self, part: dict[str, Any]) -> None:
        raw_id = part.get("id")
        call_id = raw_id if isinstance(raw_id, str) and raw_id else None
        function = _plain(part.get("function"))
        function = function if isinstance(function, dict) else {}
        name, arguments = function.get("name"), function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = to_text(arguments)  # an object or a number sent as such
        if call_id is None and name is None and not (arguments and arguments.strip()):
            return  # a fragment that carries nothing: it must not begin a call of its own
        entry = self._entry(part.get("index"), call_id, begins=name is not None)
        text_name = name if isinstance(name, str) else ""
        fresh_name = text_name != "" and text_name != entry.name  # some servers repeat it
        if entry.sent:
            if fresh_name or (arguments and arguments.strip()):
                logger.warning(
                    "toolweave: a streamed fragment of call '%s' arrived after the call had "
                    "started; it was ignored",
                    entry.id,
                )
            return
        if call_id and not entry.id:
            entry.id = call_id
            self._by_id[call_id] = entry
            self._ids.note(call_id)
        if fresh_name and not (entry.name and entry.size):
            entry.name += text_name
        elif name is not None and not isinstance(name, str):
            entry.bad_name = name
        if arguments:
            entry.add(arguments)

    def _entry(self, index: Any, call_id: str | None, *, begins: bool) -> _Fragments:
        if type(index) is int and index >= 0:
            entry = self._by_index.get(index)
            if entry is None or (call_id and entry.id and call_id != entry.id):
                entry = self._by_index[index] = self._new()  # a new call at this index
            return entry
        if call_id is not None:
            found = self._by_id.get(call_id)
            if found is not None and not found.sent:
                return found
            return self._new()
        latest = self._all[-1] if self._all else None
        if latest is None or (latest.sent and begins):
            return self._new()
        return latest  # a continuation; if the call already started, it is dropped (logged)

    def _new(self) -> _Fragments:
        entry = _Fragments()
        self._all.append(entry)
        return entry

    def complete(self) -> list[ToolCall]:
        """Calls now complete, in order: a call is complete when a later one has begun, or
        when it has its id and name and its arguments form a whole JSON object."""
        out = []
        while self._next < len(self._all) and (
            self._next + 1 < len(self._all) or self._all[self._next].ready()
        ):
            out.append(self._send(self._all[self._next]))
        return out

    def rest(self, problem: str | None = None) -> list[ToolCall]:
        """Every call not handed out yet (at most the latest one), with ``problem`` as its
        error if given."""
        return [self._send(e, problem) for e in self._all[self._next :]]

    def _send(self, entry: _Fragments, problem: str | None = None) -> ToolCall:
        entry.sent = True
        self._next += 1
        written = entry.written(problem)
        call = one_call(written, self._next - 1, self._ids)
        self._sent.append((call, written))
        return call

    def assembled(self) -> dict[str, Any]:
        """The ``StreamedBatch`` fields: the assistant message, its calls under the ids they
        ran with."""
        text = "".join(self._text) if self._text else None
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if self._sent:
            message["tool_calls"] = [_echo(call, written) for call, written in self._sent]
        return {"api": "chat", "message": message, "text": text}


class StreamedBatch(BatchResult):
    """What ``dispatch_stream`` returns: the ``BatchResult`` of the calls the stream carried,
    plus what the model wrote, assembled, so the conversation can go on without rebuilding it.

    For a Chat Completions stream, append ``message`` and then ``to_openai_messages(batch)``;
    for a Responses stream, extend the input with ``output`` and then
    ``to_responses_items(batch)``. Calls appear there under the ids they ran with (a repeated
    or missing id was made unique), so every answer names a call of the conversation.
    """

    api: Literal["chat", "responses"]
    """Which API the stream spoke."""
    text: str | None = None
    """The text the model wrote besides its tool calls; None when it wrote none."""
    message: dict[str, Any] | None = None
    """Chat Completions: the assistant message (``content`` and ``tool_calls``)."""
    output: list[dict[str, Any]] = Field(default_factory=list)
    """Responses: the output items (messages, reasoning, calls), in the model's order."""
    failure: str | None = None
    """Why the stream ended before the model's answer was complete (an exception from the
    iterator, a Responses ``error`` or ``response.failed`` event), or None."""


class ModelStreamError(ToolweaveError):
    """Raised by ``run_openai_agent(stream=True)`` when the model's streamed answer failed
    before it held any tool call (an ``error`` or ``response.failed`` event, a broken
    connection): there is nothing to answer, and no answer to end the run with. A stream that
    fails after some calls is answered call by call instead (``StreamedBatch.failure``)."""


async def dispatch_stream(
    stream: AsyncIterable[Any],
    orchestrator: Orchestrator,
    *,
    goal: str | None = None,
    batch_id: str | None = None,
) -> StreamedBatch:
    """Consume a streamed model response (``stream=True``) and start each tool call as soon as
    its arguments are complete and its dependencies allow, while the model is still writing
    the rest of the batch. Returns the same results as ``orchestrator.run``, as a
    ``StreamedBatch`` (a ``BatchResult``) that also holds the assistant message or output items
    the stream assembled.

    Chat Completions chunks and Responses API events are both read; the first chunk that says
    which it is decides. Chat Completions: a call is complete when the next one begins, or when
    it has its id and name and its arguments already form a whole JSON object. Responses: a
    call is complete when its ``response.output_item.done`` arrives. Calls join the batch in
    the order they began (the model's order); a call still open when the stream ends joins it
    then. Every call that appeared in the stream gets exactly one result, as in
    ``calls_from_openai`` (generated ``call_{i}`` ids, renamed repeats, ``"(no name)"``).
    Index gaps, indexes missing or of the wrong kind (the id, else the latest call, says which
    call a fragment continues) and chunks of the wrong shape are tolerated: they are skipped or
    coerced.

    ``batch_id`` names the batch (``Orchestrator.run``); with the orchestrator's ``ledger``,
    dispatching the same response again replays the calls that finished. When it is None the
    batch is named by the response's own id, as the stream carries it: a Chat Completions
    chunk's ``id``, a Responses event's ``response.id`` (``response.created`` comes first).
    The batch opens once that id is read, or when a call is ready before any id came (the
    stream's end included); an id that is not text of 1 to 1,000 characters is ignored, and
    the engine names the batch. A ``batch_id`` given that is not such text is a ``UsageError``.

    If the stream fails midway (an ``Exception`` from the iterator, or a Responses ``error`` or
    ``response.failed`` event), the calls already complete run to their results, each call
    left incomplete gets an error naming the failure, the failure is logged on the
    ``toolweave`` logger and kept in ``StreamedBatch.failure``; cancellation still propagates.
    """
    return await _dispatch(stream, orchestrator, goal=goal, batch_id=batch_id)


async def _dispatch(
    stream: AsyncIterable[Any],
    orchestrator: Orchestrator,
    *,
    goal: str | None,
    batch_id: str | None,
    taken: Collection[str] = (),
) -> StreamedBatch:
    """``dispatch_stream``; a response id in ``taken`` (a batch of this run already has it)
    does not name the batch."""
    # A closed orchestrator or a bad batch_id is told before the stream is read.
    orchestrator.stream(goal=goal, batch_id=batch_id)
    reading = _Reading(aiter(stream), taken, named=batch_id is not None)
    ready: list[ToolCall] = []
    while not (reading.named or ready or reading.over):
        ready = await reading.next()
    async with orchestrator.stream(goal=goal, batch_id=batch_id or reading.batch_id) as batch:
        reading.named = True
        for call in ready:
            batch.add(call)
        while not reading.over:
            for call in await reading.next():
                batch.add(call)
        for call in reading.rest():
            batch.add(call)
    result = batch.result
    fields = {name: getattr(result, name) for name in BatchResult.model_fields}
    reader = reading.reader if reading.reader is not None else _StreamedCalls()
    return StreamedBatch(**fields, **reader.assembled(), failure=reading.failure)


class _Reading:
    """A model's stream, read chunk by chunk: the calls each chunk completes, the response id
    it names, and how the stream ended."""

    def __init__(self, chunks: AsyncIterator[Any], taken: Collection[str], *, named: bool) -> None:
        self._chunks = chunks
        self._taken = taken
        self.reader: _StreamedCalls | _StreamedItems | None = None
        self.named = named
        """Whether the batch's name is settled: given, or the stream's id read (usable or not)."""
        self.batch_id: str | None = None
        """The response id the stream carries, if it is a usable batch id."""
        self.failure: str | None = None
        self.over = False

    async def next(self) -> list[ToolCall]:
        """Read one chunk; the calls it completes."""
        try:
            chunk = await anext(self._chunks)
        except StopAsyncIteration:
            self.over = True
            return []
        except Exception as exc:  # the stream broke: answer what it left incomplete
            self.failure = f"{type(exc).__name__}: {safe_str(exc, 500)}"
            self.over = True
            return []
        if self.reader is None:
            self.reader = _reader_for(chunk)
            if self.reader is None:
                return []  # a chunk that says nothing yet (a comment, a bare usage chunk)
        if not self.named:
            self._name(chunk)
        self.failure = self.reader.feed(chunk)
        self.over = self.failure is not None
        return self.reader.complete()

    def _name(self, chunk: Any) -> None:
        """Take the response id this chunk carries, if it carries one."""
        data = _plain(chunk)
        if isinstance(self.reader, _StreamedItems) and isinstance(data, dict):
            data = _plain(data.get("response"))
        found = data.get("id") if isinstance(data, dict) else None
        if found is not None:
            self.named = True
            self.batch_id = usable_id(found, self._taken)

    def rest(self) -> list[ToolCall]:
        """The calls the stream left open, once it is over."""
        reader = self.reader if self.reader is not None else _StreamedCalls()
        if self.failure is None:
            return reader.rest()
        rest = reader.rest(
            f"the response stream failed before this call was complete: {self.failure}"
        )
        logger.warning(
            "toolweave: the response stream failed (%s); %d incomplete tool calls were "
            "answered with an error",
            self.failure,
            len(rest),
        )
        return rest


def _reader_for(chunk: Any) -> _StreamedCalls | _StreamedItems | None:
    """The reader for a stream whose first telling chunk is this one."""
    data = _plain(chunk)
    if not isinstance(data, dict):
        return None
    kind = data.get("type")
    if isinstance(kind, str) and (kind.startswith("response.") or kind == "error"):
        return _StreamedItems()
    if "choices" in data or data.get("object") == "chat.completion.chunk":
        return _StreamedCalls()
    return None


class _StreamedItems:
    """Gathers Responses API stream events into output items and calls.

    Each item the stream begins gets a slot, in the order items began (the model's order).
    ``output_index`` finds the slot (else the item id; else a delta continues the latest
    item, and an item event begins a new one); an item whose call id or item id differs
    from the one of a finished slot at its index is a new item. A call is complete at its
    ``response.output_item.done``, or at ``response.completed`` if that brings it; once a
    call was handed out, later events for it change nothing. Events of the wrong shape are
    skipped.
    """

    def __init__(self) -> None:
        self._items: dict[int, dict[str, Any]] = {}  # slot -> latest snapshot of the item
        self._slot_at: dict[int, int] = {}  # output_index -> slot
        self._by_item_id: dict[str, int] = {}
        self._arguments: dict[int, list[str]] = {}  # streamed argument pieces, until done
        self._texts: dict[int, list[str]] = {}  # streamed text of message items not done yet
        self._done: set[int] = set()
        self._sent: dict[int, tuple[ToolCall, dict[str, Any]]] = {}  # the call, as it ran
        self._ids = CallIds()
        self._changed = False  # an item was done since complete() last looked

    def feed(self, event: Any) -> str | None:
        """Take in one event; the failure it reports, if it reports one."""
        data = _plain(event)
        if not isinstance(data, dict):
            return None
        kind = data.get("type")
        if kind == "error":
            return f"the server sent an error event: {to_text(data.get('message'), 300)}"
        if kind in ("response.failed", "response.incomplete"):
            response = _plain(data.get("response"))
            response = response if isinstance(response, dict) else {}
            why = response.get("error") or response.get("incomplete_details") or kind
            return f"{kind}: {to_text(_plain(why), 300)}"
        if kind == "response.completed":
            response = _plain(data.get("response"))
            output = response.get("output") if isinstance(response, dict) else None
            for position, raw in enumerate(output if isinstance(output, list) else []):
                item = _plain(raw)
                if isinstance(item, dict):
                    self._put(self._slot(position, item), item, done=True)
            return None
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = _plain(data.get("item"))
            if isinstance(item, dict):
                slot = self._slot(data.get("output_index"), item)
                self._put(slot, item, done=kind == "response.output_item.done")
            return None
        at = self._continued(data)
        if at is None or at in self._sent or not isinstance(data.get("delta"), str):
            return None
        if kind == "response.function_call_arguments.delta":
            self._arguments.setdefault(at, []).append(data["delta"])
        elif kind == "response.output_text.delta":
            self._texts.setdefault(at, []).append(data["delta"])
        return None

    def _slot(self, index: Any, item: dict[str, Any]) -> int:
        """The slot of an item event: the item at that index (else with that item id), unless
        that one is another item; a new slot when nothing says which. An item that began and
        is displaced keeps its slot, so it is still answered."""
        indexed = type(index) is int and index >= 0
        slot = self._slot_at.get(index) if indexed else None
        if not indexed and isinstance(item.get("id"), str):
            slot = self._by_item_id.get(item["id"])
        if slot is not None and _same(self._items[slot], item):
            return slot
        slot = len(self._items)
        self._items[slot] = item
        if indexed:
            self._slot_at[index] = slot
        return slot

    def _continued(self, data: dict[str, Any]) -> int | None:
        """The slot a delta continues."""
        index = data.get("output_index")
        if type(index) is int and index in self._slot_at:
            return self._slot_at[index]
        item_id = data.get("item_id")
        if isinstance(item_id, str) and item_id in self._by_item_id:
            return self._by_item_id[item_id]
        return len(self._items) - 1 if self._items else None

    def _put(self, slot: int, item: dict[str, Any], *, done: bool) -> None:
        if slot in self._sent or (slot in self._done and not done):
            return  # what ran is what is echoed; a late "added" does not undo a "done"
        self._items[slot] = item
        if isinstance(item.get("id"), str):
            self._by_item_id.setdefault(item["id"], slot)
        if done:
            self._done.add(slot)
            self._changed = True

    def _written(self, slot: int) -> Written | None:
        item = self._items[slot]
        if slot not in self._done and item.get("type") == "function_call":
            pieces = self._arguments.get(slot)
            item = {**item, "arguments": "".join(pieces) if pieces else item.get("arguments")}
        found = _read_responses([item])
        return found[0] if found else None

    def complete(self) -> list[ToolCall]:
        """Call items now done whose earlier call items were all handed out, in order."""
        if not self._changed:
            return []
        self._changed = False
        out = []
        for slot in sorted(self._items):
            if slot in self._sent or self._written(slot) is None:
                continue
            if slot not in self._done:
                break  # an earlier call is still being written: keep the model's order
            out.append(self._send(slot))
        return out

    def rest(self, problem: str | None = None) -> list[ToolCall]:
        """Every call item not handed out yet, with ``problem`` as its error if given."""
        return [
            self._send(slot, problem)
            for slot in sorted(self._items)
            if slot not in self._sent and self._written(slot) is not None
        ]

    def _send(self, slot: int, problem: str | None = None) -> ToolCall:
        written = self._written(slot)
        assert written is not None
        if isinstance(written.id, str) and written.id:
            self._ids.note(written.id)
        if problem is not None and written.problem is None:
            written = Written(written.id, written.name, written.arguments, problem, written.kind)
        call = one_call(written, len(self._sent), self._ids)
        item = _without_none(self._items[slot])
        if item.get("type") in ("function_call", "custom_tool_call"):
            item["call_id"] = call.id
        if item.get("type") == "function_call":
            item["arguments"] = written.arguments if isinstance(written.arguments, str) else ""
        self._sent[slot] = (call, item)
        return call

    def assembled(self) -> dict[str, Any]:
        """The ``StreamedBatch`` fields: the output items (calls as they ran, under the ids
        they ran with) and the text of the message items."""
        output: list[dict[str, Any]] = []
        texts: list[str] = []
        for slot in sorted(self._items):
            sent = self._sent.get(slot)
            item = sent[1] if sent is not None else _without_none(self._items[slot])
            if item.get("type") == "message":
                text = _message_text(item) if slot in self._done else None
                texts.append(text if text is not None else "".join(self._texts.get(slot, ())))
            output.append(item)
        return {"api": "responses", "output": output, "text": "".join(texts) if texts else None}


def _same(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether two snapshots are of one item: no type, call id or item id tells them apart."""
    for key in ("type", "call_id", "id"):
        a, b = one.get(key), other.get(key)
        if isinstance(a, str) and isinstance(b, str) and a != b:
            return False
    return True


def _message_text(item: Mapping[str, Any]) -> str | None:
    content = item.get("content")
    if not isinstance(content, list):
        return None
    parts = [_plain(p) for p in content]
    return "".join(
        p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
    )


_EARLY_PARSE_CHARS = 65_536
"""Arguments longer than this are not parsed on every fragment to see whether they are whole
(that is quadratic); such a call starts when the next one begins or the stream ends."""


def _whole_object(text: str) -> bool:
    if len(text) > _EARLY_PARSE_CHARS:
        return False
    text = text.strip()
    if not text.endswith("}"):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):  # bad JSON, or an int past the int-to-string limit
        return False


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
    stream: bool = False,
    api: Literal["chat", "responses"] = "chat",
    **create_options: Any,
) -> AgentRun:
    """A complete agent loop: model -> batch -> results -> model, until the model answers
    without tool calls or ``max_turns`` model calls were made.

    ``api="chat"`` calls ``client.chat.completions.create``; ``api="responses"`` calls
    ``client.responses.create`` with the conversation as ``input`` (``messages`` are input
    items: role messages, or items a previous run returned). With ``stream`` the model's answer
    is streamed and each call starts while the model is still writing the rest
    (``dispatch_stream``). With ``references`` the tools advertise the reference syntax and a
    short system message teaches it. ``create_options`` go to the create call.

    A streamed answer that fails before it holds any tool call raises ``ModelStreamError``
    (as a failed request raises the client's error); one that fails later is answered call by
    call, and the loop goes on.

    Each turn's batch is named by the model response's id (``ChatCompletion.id``,
    ``Response.id``, or the id its stream carries), so with the orchestrator's ``ledger`` the
    calls of a response that is dispatched again are replayed, never repeated. An id that is
    not text of 1 to 1,000 characters, or that an earlier turn of this run already used (a
    server giving every response one id), is ignored: the engine names that batch.

    ``AgentRun.messages`` is the whole conversation in the API's own shape: chat messages, or
    Responses input items (the model's output items, then one ``function_call_output`` per
    call), ready for the next request.
    """
    if max_turns < 1:
        raise UsageError("max_turns must be at least 1")
    if api not in ("chat", "responses"):
        raise UsageError(f"api must be 'chat' or 'responses', got {to_text(api, 40)}")
    conversation = [dict(m) for m in messages]
    if references:
        conversation.insert(0, {"role": "system", "content": reference_instructions()})
    tools = openai_tools(orchestrator, api=api, references=references)
    goal = next((str(m.get("content")) for m in messages if m.get("role") == "user"), None)
    run = AgentRun(messages=conversation)
    named: set[str] = set()  # batch ids of this run: a server repeating an id gets no resume
    while run.turns < max_turns:
        run.turns += 1
        options = {**create_options, "stream": True} if stream else create_options
        if api == "chat":
            answer = await client.chat.completions.create(
                model=model, messages=conversation, tools=tools, **options
            )
        else:
            answer = await client.responses.create(
                model=model, input=conversation, tools=tools, **options
            )
        if stream:
            result: BatchResult | None = await _streamed_turn(answer, orchestrator, goal, named)
            assert isinstance(result, StreamedBatch)
            if result.failure is not None and not result.results:
                raise ModelStreamError(f"the model's streamed answer failed: {result.failure}")
            said, text = result.message if api == "chat" else result.output, result.text
        else:
            said, text, calls = _whole_turn(answer, api)
            batch_id = usable_id(_field(answer, "id"), named)
            result = await orchestrator.run(calls, goal=goal, batch_id=batch_id) if calls else None
        if result is not None:
            named.add(result.batch_id)
        if isinstance(said, dict):
            conversation.append(said)
        elif said is not None:
            conversation.extend(said)
        if result is None or not result.results:
            run.final = text
            break
        run.batches.append(result)
        answers = to_openai_messages(result) if api == "chat" else to_responses_items(result)
        conversation.extend(answers)
    return run


async def _streamed_turn(
    events: Any, orchestrator: Orchestrator, goal: str | None, named: Collection[str]
) -> BatchResult:
    """Dispatch a streamed answer, and close the stream however the dispatch ends."""
    try:
        return await _dispatch(events, orchestrator, goal=goal, batch_id=None, taken=named)
    finally:
        close = getattr(events, "close", None)
        if callable(close):
            closed = close()
            if hasattr(closed, "__await__"):
                await closed


def _whole_turn(
    answer: Any, api: Literal["chat", "responses"]
) -> tuple[dict[str, Any] | list[dict[str, Any]], str | None, list[ToolCall]]:
    """What a whole (not streamed) answer said, its text, and its calls."""
    if api == "chat":
        message = answer.choices[0].message
        written = _read(message)
        calls = unique_calls(written)
        return _assistant_message(message, calls, written), _plain(message).get("content"), calls
    data = _plain(answer)
    items = [_plain(i) for i in (data.get("output") or [])] if isinstance(data, dict) else []
    written = _read_responses(items)
    calls = unique_calls(written)
    return _echo_items(items, calls), _responses_text(items), calls


def _echo_items(items: Sequence[Any], calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """The output items to send back, each call item under the id its call ran with."""
    out = []
    ran = iter(calls)
    for item in items:
        if not isinstance(item, dict):
            continue
        item = _without_none(item)
        if _read_responses([item]):
            call = next(ran)
            if item.get("type") in ("function_call", "custom_tool_call"):
                item["call_id"] = call.id
        out.append(item)
    return out


def _responses_text(items: Sequence[Any]) -> str | None:
    texts = [
        _message_text(i) or "" for i in items if isinstance(i, dict) and i.get("type") == "message"
    ]
    return "".join(texts) if texts else None


def _field(value: Any, name: str) -> Any:
    """A field of an SDK object or of a dict."""
    return value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)


def _without_none(value: Any) -> Any:
    """``value`` without the null fields a dumped SDK object carries (the API refuses some)."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _assistant_message(
    message: Any, calls: Sequence[ToolCall], written: Sequence[Written]
) -> dict[str, Any]:
    """The model's message to send back, its tool calls under the ids they ran with, so every
    answer names a call of the conversation."""
    data = _plain(message)
    out: dict[str, Any] = {"role": "assistant", "content": data.get("content")}
    if calls:
        out["tool_calls"] = [_echo(call, w) for call, w in zip(calls, written, strict=True)]
    return out


def _echo(call: ToolCall, written: Written) -> dict[str, Any]:
    raw = written.arguments
    if written.kind == "custom":
        text = raw if isinstance(raw, str) else ""
        return {"id": call.id, "type": "custom", "custom": {"name": call.name, "input": text}}
    text = raw if isinstance(raw, str) else to_text(call.arguments)
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": text}}
