"""Test helpers: a scripted decider and a scripted OpenAI-compatible server.

Test an agent the way toolweave tests its own, with fakes that fail loudly:

- ``ScriptedDecider`` answers decisions from a script of ``(expected waiting ids, answer)``
  steps and fails on a decision it did not expect.
- ``ScriptedOpenAIServer`` is a real HTTP server on 127.0.0.1 that speaks the Chat Completions
  and Responses APIs, streamed (server-sent events) or not, from a list of steps or a script
  function, and answers a request it cannot play with an HTTP error.
- ``completion``, ``tool_calls`` and ``response`` build the bodies the server returns;
  ``completion_chunks`` and ``response_events`` the events it streams.

Both fakes keep what they could not answer, and ``assert_done()`` fails on it and on any step
left unused. This module imports only the standard library and toolweave; ``openai`` is
imported by ``ScriptedOpenAIServer.client()`` and ``sync_client()`` alone.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeAlias, cast
from urllib.parse import urlsplit

from ._errors import UsageError
from ._log import log_event, logger
from ._models import Decision, DecisionContext

if TYPE_CHECKING:
    import openai

__all__ = [
    "DeciderAnswer",
    "Script",
    "ScriptedDecider",
    "ScriptedOpenAIServer",
    "ServerStep",
    "completion",
    "completion_chunks",
    "response",
    "response_events",
    "tool_calls",
]

DeciderAnswer: TypeAlias = (
    Decision | Mapping[str, Any] | BaseException | Callable[[DecisionContext], Any] | str
)
"""What a ``ScriptedDecider`` step answers: a ``Decision``; a dict (returned as it is, so the
engine's validation can be tested); an exception (raised); ``"hang"`` (never answers, until
the decider timeout cancels it); or a function of the ``DecisionContext`` returning any of
these, or a coroutine of one."""

Script: TypeAlias = Callable[[list[dict[str, Any]], list[dict[str, Any]]], Mapping[str, Any]]
"""A scripted model: ``script(messages, tools)`` returns ``{"content": "..."}`` or
``{"tool_calls": [(id, name, arguments), ...]}`` (or both). ``messages`` and ``tools`` are in
the Chat Completions shape, also for Responses API requests; ``arguments`` is a JSON string or
a dict."""

ServerStep: TypeAlias = (
    Mapping[str, Any] | list[Mapping[str, Any]] | tuple[int, Mapping[str, str]] | str
)
"""What a ``ScriptedOpenAIServer`` step answers: a body (returned as it is, or streamed when
the request asks for a stream); a list of events (streamed as they are); ``(status,
headers)`` (an HTTP error); ``"hang"`` (no answer until the server stops); or
``"disconnect"`` (the connection closes without an answer)."""

_Call: TypeAlias = tuple[str, str, "str | Mapping[str, Any]"]
_CHAT = "/v1/chat/completions"
_RESPONSES = "/v1/responses"
_ENDPOINTS = (_CHAT, _RESPONSES)
_ACTIONS = ("hang", "disconnect")


# ---------------------------------------------------------------------------------- bodies


def completion(
    content: str | None = None,
    *,
    tool_calls: Iterable[_Call] = (),
    refusal: str | None = None,
    finish_reason: str | None = None,
    model: str = "scripted",
    usage: tuple[int, int] = (0, 0),
) -> dict[str, Any]:
    """A Chat Completions body (``chat.completion``) whose one choice says ``content`` and asks
    for ``tool_calls``, each ``(id, name, arguments)`` with ``arguments`` a JSON string (sent
    as it is, valid or not) or a dict. ``finish_reason`` defaults to ``tool_calls`` when there
    are calls, else ``stop``; ``usage`` is ``(prompt_tokens, completion_tokens)``.

    >>> body = completion("Paris.", usage=(12, 2))
    >>> body["choices"][0]["message"]["content"], body["usage"]["total_tokens"]
    ('Paris.', 14)
    """
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
    calls = [
        {"id": i, "type": "function", "function": {"name": n, "arguments": _raw(a)}}
        for i, n, a in tool_calls
    ]
    if calls:
        message["tool_calls"] = calls
    prompt, completed = usage
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason or ("tool_calls" if calls else "stop"),
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completed,
            "total_tokens": prompt + completed,
        },
    }


def tool_calls(
    *calls: _Call, content: str | None = None, model: str = "scripted"
) -> dict[str, Any]:
    """A Chat Completions body asking for these ``(id, name, arguments)`` tool calls.

    >>> body = tool_calls(("call_1", "search", {"q": "owls"}), ("call_2", "fetch", '{"u'))
    >>> [c["function"]["arguments"] for c in body["choices"][0]["message"]["tool_calls"]]
    ['{"q": "owls"}', '{"u']
    """
    return completion(content, tool_calls=calls, model=model)


def response(
    text: str | None = None,
    *,
    function_calls: Iterable[_Call] = (),
    model: str = "scripted",
    usage: tuple[int, int] = (0, 0),
) -> dict[str, Any]:
    """A Responses API body (``response``) whose ``output`` holds a ``message`` saying
    ``text`` (if any), then a ``function_call`` item for each ``(call_id, name, arguments)``.
    ``usage`` is ``(input_tokens, output_tokens)``.

    >>> body = response(function_calls=[("call_1", "search", {"q": "owls"})])
    >>> [(i["type"], i["call_id"], i["arguments"]) for i in body["output"]]
    [('function_call', 'call_1', '{"q": "owls"}')]
    """
    output: list[dict[str, Any]] = []
    if text is not None:
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        output.append(
            {
                "type": "message",
                "id": "msg_scripted",
                "role": "assistant",
                "status": "completed",
                "content": [part],
            }
        )
    output += [
        {
            "type": "function_call",
            "id": f"fc_{call_id}",
            "call_id": call_id,
            "name": name,
            "arguments": _raw(arguments),
            "status": "completed",
        }
        for call_id, name, arguments in function_calls
    ]
    prompt, completed = usage
    return {
        "id": "resp_scripted",
        "object": "response",
        "created_at": 0,
        "status": "completed",
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "temperature": None,
        "top_p": None,
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": completed,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completed,
        },
    }


def completion_chunks(
    body: Mapping[str, Any], *, pieces: int = 3, include_usage: bool = False
) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects that stream the Chat Completions ``body``, as the
    API sends them: a role delta, the content (or refusal) in ``pieces`` deltas, each tool
    call's ``index``, ``id``, ``type`` and ``function.name`` in its first fragment and its
    arguments in ``pieces`` fragments, then a chunk with the ``finish_reason``; with
    ``include_usage`` (``stream_options``) every chunk has ``usage: null`` and a last chunk
    with no choices carries the usage. The server sends each as ``data:`` and ends with
    ``data: [DONE]``.

    >>> chunks = completion_chunks(tool_calls(("c1", "search", '{"q": "owls"}')), pieces=2)
    >>> [c["choices"][0]["delta"] for c in chunks][1:]  # doctest: +NORMALIZE_WHITESPACE
    [{'tool_calls': [{'index': 0, 'function': {'arguments': '{"q": "', 'name': 'search'},
                      'id': 'c1', 'type': 'function'}]},
     {'tool_calls': [{'index': 0, 'function': {'arguments': 'owls"}'}}]},
     {}]
    """
    [choice] = body["choices"]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        out = {
            "id": body["id"],
            "object": "chat.completion.chunk",
            "created": body.get("created", 0),
            "model": body["model"],
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if include_usage:
            out["usage"] = None
        return out

    content, refusal = message.get("content"), message.get("refusal")
    chunks = [chunk({"role": "assistant", "content": "" if content else None})]
    chunks += [chunk({"content": piece}) for piece in _split(content or "", pieces)]
    chunks += [chunk({"refusal": piece}) for piece in _split(refusal or "", pieces)]
    for index, call in enumerate(message.get("tool_calls") or []):
        if call.get("type", "function") != "function":
            raise ValueError(f"only function tool calls stream; this one is {call!r}")
        function = call["function"]
        for k, fragment in enumerate(_split(function["arguments"], pieces) or [""]):
            head: dict[str, Any] = {"index": index, "function": {"arguments": fragment}}
            if k == 0:
                head.update(id=call["id"], type="function")
                head["function"]["name"] = function["name"]
            chunks.append(chunk({"tool_calls": [head]}))
    chunks.append(chunk({}, choice.get("finish_reason") or "stop"))
    if include_usage:
        chunks.append({**chunk({}), "choices": [], "usage": body.get("usage")})
    return chunks


def response_events(body: Mapping[str, Any], *, pieces: int = 3) -> list[dict[str, Any]]:
    """The Responses API events that stream the ``response`` ``body``, as the API sends them,
    numbered by ``sequence_number``: ``response.created``, ``response.in_progress``, then for
    each output item ``response.output_item.added``, its text
    (``response.content_part.added``, ``response.output_text.delta`` in ``pieces``,
    ``response.output_text.done``, ``response.content_part.done``) or its arguments
    (``response.function_call_arguments.delta`` in ``pieces``, ``...arguments.done``),
    ``response.output_item.done``; then ``response.completed``. The server sends each with an
    ``event:`` line naming its type.

    >>> [e["type"] for e in response_events(response("Hi"), pieces=1)][2:6]
    ... # doctest: +NORMALIZE_WHITESPACE
    ['response.output_item.added', 'response.content_part.added',
     'response.output_text.delta', 'response.output_text.done']
    """
    events: list[dict[str, Any]] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append({"type": kind, "sequence_number": len(events), **fields})

    started = {**body, "status": "in_progress", "output": [], "usage": None}
    emit("response.created", response=started)
    emit("response.in_progress", response=started)
    for index, item in enumerate(body.get("output") or []):
        item_id = str(item.get("id") or f"item_{index}")
        at = {"item_id": item_id, "output_index": index}
        if item.get("type") == "message":
            emit("response.output_item.added", output_index=index,
                 item={**item, "status": "in_progress", "content": []})  # fmt: skip
            for part_index, part in enumerate(item.get("content") or []):
                _part_events(emit, {**at, "content_index": part_index}, part, pieces)
        elif item.get("type") == "function_call":
            arguments = str(item.get("arguments") or "")
            emit("response.output_item.added", output_index=index,
                 item={**item, "arguments": "", "status": "in_progress"})  # fmt: skip
            for piece in _split(arguments, pieces):
                emit("response.function_call_arguments.delta", **at, delta=piece)
            emit("response.function_call_arguments.done", **at, arguments=arguments)
        else:
            emit("response.output_item.added", output_index=index, item=item)
        emit("response.output_item.done", output_index=index, item=item)
    emit("response.completed", response={**body, "status": body.get("status") or "completed"})
    return events


def _part_events(
    emit: Callable[..., None], at: dict[str, Any], part: Mapping[str, Any], pieces: int
) -> None:
    """The events that stream one content part of a message."""
    if part.get("type") == "output_text":
        text = str(part.get("text") or "")
        emit("response.content_part.added", **at, part={**part, "text": ""})
        for piece in _split(text, pieces):
            emit("response.output_text.delta", **at, delta=piece, logprobs=[])
        emit("response.output_text.done", **at, text=text, logprobs=[])
    elif part.get("type") == "refusal":
        refusal = str(part.get("refusal") or "")
        emit("response.content_part.added", **at, part={**part, "refusal": ""})
        for piece in _split(refusal, pieces):
            emit("response.refusal.delta", **at, delta=piece)
        emit("response.refusal.done", **at, refusal=refusal)
    else:
        emit("response.content_part.added", **at, part=part)
    emit("response.content_part.done", **at, part=part)


def _raw(arguments: str | Mapping[str, Any]) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _split(text: str, pieces: int) -> list[str]:
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[k : k + size] for k in range(0, len(text), size)]


# ---------------------------------------------------------------------------------- decider


class ScriptedDecider:
    """A decider that plays a script of ``(expected waiting ids, answer)`` steps, one per
    decision, and fails loudly.

    A decision about other calls than the next step expects, or one after the last step, is
    recorded in ``unexpected`` and raises ``AssertionError`` (which the engine, like any
    decider failure, turns into its fallback). ``assert_done()`` raises if anything was
    unexpected or a step is left. ``contexts`` keeps every ``DecisionContext`` received.
    ``fallback`` and ``breaker``, when given, are the attributes the engine honours on a
    decider. Answers are described by ``DeciderAnswer``.

    >>> import asyncio
    >>> from toolweave import Orchestrator, ToolCall, tool
    >>> @tool
    ... def echo(value: int) -> int:
    ...     "Return the value."
    ...     return value
    >>> decider = ScriptedDecider(
    ...     (["b"], Decision(action="skip", skip=["b"], reason="not needed")),
    ... )
    >>> calls = [ToolCall("a", "echo", {"value": 1}), ToolCall("b", "echo", {"value": "${a}"})]
    >>> result = asyncio.run(Orchestrator([echo], decider=decider).run(calls))
    >>> [r.status for r in result.results]
    ['ok', 'skipped']
    >>> decider.assert_done()
    """

    fallback: Decision
    """The decision the engine uses when this decider fails (set only when given)."""
    breaker: int
    """Failed decisions in a row after which the engine stops asking (set only when given)."""

    def __init__(
        self,
        *steps: tuple[Sequence[str], DeciderAnswer],
        fallback: Decision | None = None,
        breaker: int | None = None,
    ) -> None:
        for step in steps:
            if not (isinstance(step, tuple) and len(step) == 2) or isinstance(step[0], str):
                raise UsageError(
                    f"a ScriptedDecider step is (expected waiting ids, answer), not {step!r}"
                )
            if isinstance(step[1], str) and step[1] != "hang":
                raise UsageError(f"the only answer string is 'hang', not {step[1]!r}")
        self.steps: list[tuple[Sequence[str], DeciderAnswer]] = list(steps)
        self.contexts: list[DecisionContext] = []
        self.unexpected: list[str] = []
        if fallback is not None:
            self.fallback = fallback
        if breaker is not None:
            self.breaker = breaker

    async def decide(self, context: DecisionContext) -> Decision:
        """Check the decision is the one the next step expects, then play its answer."""
        self.contexts.append(context)
        ids = context.waiting_ids
        if not self.steps:
            self._fail(f"a decision about {ids} after the last step")
        expected, answer = self.steps.pop(0)
        if list(expected) != ids:
            self._fail(f"a decision about {ids}, but the step expected {list(expected)}")
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, str):  # "hang": wait for the decider timeout to cancel
            await asyncio.Event().wait()
        if callable(answer):
            answer = answer(context)
            if inspect.isawaitable(answer):
                answer = await answer
        return cast(Decision, answer)

    def assert_done(self) -> None:
        """Raise ``AssertionError`` listing unexpected decisions and unused steps, if any."""
        problems = [f"unexpected decision: {m}" for m in self.unexpected]
        problems += [f"unused step: {_short(step)}" for step in self.steps]
        if problems:
            raise AssertionError("ScriptedDecider is not done:\n  " + "\n  ".join(problems))

    def _fail(self, message: str) -> NoReturn:
        self.unexpected.append(message)
        log_event(logging.WARNING, "testing.unexpected_decision", problem=message)
        raise AssertionError(f"ScriptedDecider: {message}")


# ---------------------------------------------------------------------------------- server


@dataclass(frozen=True)
class _Reply:
    """What the handler does: answer JSON or a stream of events, hang, or disconnect."""

    action: Literal["answer", "hang", "disconnect"] = "answer"
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    payload: Any = None
    events: list[Mapping[str, Any]] | None = None


class ScriptedOpenAIServer:
    """A real OpenAI-compatible server on 127.0.0.1 (a free port) whose model is a script:
    ``POST /v1/chat/completions`` and ``POST /v1/responses``, streamed when the request says
    ``"stream": true`` (server-sent events exactly as the APIs send them: see
    ``completion_chunks`` and ``response_events``).

    It plays either ``steps``, one per request (see ``ServerStep``), or a ``script`` function
    (see ``Script``) for every request, on both endpoints: Responses ``input`` items and tools
    are shown to the script as Chat Completions messages and tools. As a real API does, it
    gives each response its own id: a body with the builders' placeholder id
    (``chatcmpl-scripted``, ``resp_scripted``) is answered, streamed or not, as
    ``chatcmpl-scripted-<n>-<token>`` or ``resp_scripted-<n>-<token>`` (its ``msg_scripted``
    message item as ``msg_scripted-<n>-<token>``), ``n`` counting the bodies this server
    answered from 1 and ``token`` eight random hex digits of this server's; any other
    id, and a step that is a list of events, goes out as it is. ``path`` limits the
    server to one endpoint. A request it cannot answer (an unknown path: 404; no step left:
    418; a script that raises or returns something else than a turn: 422, which clients do
    not retry, so the script runs once) gets a JSON error
    ``{"error": {"message": ...}}`` and is recorded in ``unexpected``; ``assert_done()``
    raises if anything was unexpected or a step is left. ``requests`` keeps every JSON body
    received.

    >>> with ScriptedOpenAIServer(completion("Owls hoot.")) as server:
    ...     client = server.sync_client()  # an openai.OpenAI; client() an AsyncOpenAI
    ...     answer = client.chat.completions.create(
    ...         model="any", messages=[{"role": "user", "content": "Owls?"}]
    ...     )
    >>> answer.choices[0].message.content
    'Owls hoot.'
    >>> server.requests[0]["messages"][0]["content"]
    'Owls?'
    >>> server.assert_done()

    >>> def model(messages, tools):
    ...     if messages[-1]["role"] == "tool":
    ...         return {"content": "done"}
    ...     return {"tool_calls": [("call_1", tools[0]["function"]["name"], {})]}
    >>> server = ScriptedOpenAIServer(script=model).start()
    >>> server.base_url.endswith("/v1")
    True
    >>> server.stop()
    """

    def __init__(
        self, *steps: ServerStep, script: Script | None = None, path: str | None = None
    ) -> None:
        for step in steps:
            _check_step(step)
        if steps and script is not None:
            raise UsageError("give ScriptedOpenAIServer steps or a script, not both")
        if path is not None and path not in _ENDPOINTS:
            raise UsageError(f"path must be one of {', '.join(_ENDPOINTS)}, not {path!r}")
        self.steps: list[ServerStep] = list(steps)
        self.script = script
        self.path = path
        self.requests: list[dict[str, Any]] = []
        self.unexpected: list[str] = []
        self._played = 0
        self._bodies = 0  # bodies answered: the n of their ids
        self._token = os.urandom(4).hex()  # ids unique across servers and processes
        self._lock = threading.Lock()
        self._idle = threading.Condition()
        self._reading = 0  # connections accepted whose request is not answered yet
        self._stopped = threading.Event()
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, for ``OpenAI(base_url=...)``; once started."""
        if self._base_url is None:
            raise UsageError("start the ScriptedOpenAIServer first (start() or 'with')")
        return self._base_url

    def start(self) -> ScriptedOpenAIServer:
        """Listen on a free port of 127.0.0.1 and serve from a thread; return the server."""
        if self._stopped.is_set():
            raise UsageError("this ScriptedOpenAIServer was stopped; create a new one")
        if self._http is None:
            self._http = _HTTPServer(self)
            self._base_url = f"http://127.0.0.1:{self._http.server_address[1]}/v1"
            self._thread = threading.Thread(
                target=self._http.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"ScriptedOpenAIServer {self._base_url}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port; requests held by ``"hang"`` are let go (their
        connections close unanswered). Does not wait for them; safe to call twice."""
        self._stopped.set()
        http, thread, self._http, self._thread = self._http, self._thread, None, None
        if http is not None and thread is not None:
            http.shutdown()
            http.server_close()
            thread.join()

    def __enter__(self) -> ScriptedOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def client(self, **options: Any) -> openai.AsyncOpenAI:
        """An ``openai.AsyncOpenAI`` pointed at this server (``api_key`` ``"scripted"``);
        ``options`` go to its constructor (``max_retries=0``, say)."""
        import openai

        return openai.AsyncOpenAI(**{"base_url": self.base_url, "api_key": "scripted", **options})

    def sync_client(self, **options: Any) -> openai.OpenAI:
        """An ``openai.OpenAI`` pointed at this server; ``options`` as for ``client()``."""
        import openai

        return openai.OpenAI(**{"base_url": self.base_url, "api_key": "scripted", **options})

    def assert_done(self) -> None:
        """Raise ``AssertionError`` listing unexpected requests and unused steps, if any.

        Requests already sent are waited for (up to 5 s) until their step is chosen."""
        with self._idle:
            self._idle.wait_for(lambda: self._reading == 0, timeout=5.0)
        problems = [f"unexpected request: {m}" for m in self.unexpected]
        problems += [f"unused step: {_short(step)}" for step in self.steps]
        if problems:
            raise AssertionError("ScriptedOpenAIServer is not done:\n  " + "\n  ".join(problems))

    # -- called from the server's threads

    def _accepted(self) -> None:
        with self._idle:
            self._reading += 1

    def _answered(self) -> None:
        with self._idle:
            self._reading -= 1
            self._idle.notify_all()

    def _answer(self, method: str, path: str, raw: bytes) -> _Reply:
        """The reply to one request; every request passes here once."""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if isinstance(body, dict):
            self.requests.append(body)
        where = f"{method} {path}"
        served = (self.path,) if self.path else _ENDPOINTS
        if method != "POST" or path not in served:
            why = f"this server answers POST {' and '.join(served)}"
            return self._refuse(404 if path not in served else 405, where, why)
        if not isinstance(body, dict):
            return self._refuse(400, where, "the body is not a JSON object")
        if self.script is not None:
            return self._play_script(where, path, body)
        with self._lock:
            step = self.steps.pop(0) if self.steps else None
            if step is not None:
                self._played += 1
            played = self._played
        if step is None:
            return self._refuse(418, where, f"no step left ({played} played)")
        if step == "hang" or step == "disconnect":
            return _Reply(action=cast(Literal["hang", "disconnect"], step))
        if isinstance(step, tuple):
            status, headers = step
            message = f"scripted error {status}"
            return _Reply(status=status, headers=headers, payload={"error": {"message": message}})
        if isinstance(step, list):
            if not body.get("stream"):
                return self._refuse(400, where, "the step is a stream; the request is not")
            return _Reply(events=step)
        return self._respond(where, body, cast(Mapping[str, Any], step))

    def _play_script(self, where: str, path: str, body: dict[str, Any]) -> _Reply:
        assert self.script is not None
        try:
            if path == _CHAT:
                messages, tools = list(body["messages"]), list(body.get("tools") or [])
            else:
                messages, tools = _messages_from_input(body), _chat_tools(body.get("tools") or [])
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            return self._refuse(400, where, f"cannot read the request ({exc!r})")
        try:
            turn = self.script(messages, tools)
        except BaseException as exc:  # SystemExit too: the test should hear of it
            return self._refuse(422, where, f"the script raised {type(exc).__name__}: {exc}")
        try:
            answer = _body_for_turn(path, turn, str(body.get("model") or "scripted"))
        except (TypeError, ValueError, KeyError) as exc:
            why = f"the script returned {_short(turn)}, not a turn ({exc})"
            return self._refuse(422, where, why)
        return self._respond(where, body, answer)

    def _respond(self, where: str, request: dict[str, Any], body: Mapping[str, Any]) -> _Reply:
        with self._lock:
            self._bodies += 1
            body = _own_ids(body, f"{self._bodies}-{self._token}")
        if not request.get("stream"):
            return _Reply(payload=body)
        options = request.get("stream_options") or {}
        try:
            if body.get("object") == "chat.completion":
                usage = bool(options.get("include_usage"))
                return _Reply(events=list(completion_chunks(body, include_usage=usage)))
            if body.get("object") == "response":
                return _Reply(events=list(response_events(body)))
        except (TypeError, ValueError, KeyError) as exc:
            return self._refuse(500, where, f"cannot stream {_short(body)}: {exc}")
        why = f"cannot stream a body whose object is {body.get('object')!r}"
        return self._refuse(500, where, why)

    def _refuse(self, status: int, where: str, why: str) -> _Reply:
        message = f"{where}: {why}"
        self.unexpected.append(message)
        log_event(logging.WARNING, "testing.unexpected_request", problem=message)
        error = {"message": f"ScriptedOpenAIServer: {message}", "type": "scripted_server"}
        return _Reply(status=status, payload={"error": error})


_PLACEHOLDER_IDS = ("chatcmpl-scripted", "resp_scripted")


def _own_ids(body: Mapping[str, Any], n: str) -> Mapping[str, Any]:
    """``body`` with the builders' placeholder ids made those of the server's answer ``n``
    (its number and the server's token: with a call ledger, two responses under one id, in
    this process or another, would be one batch resumed)."""
    if body.get("id") not in _PLACEHOLDER_IDS:
        return body
    output = body.get("output")
    out = {**body, "id": f"{body['id']}-{n}"}
    if isinstance(output, list):
        out["output"] = [
            {**item, "id": f"msg_scripted-{n}"}
            if isinstance(item, Mapping) and item.get("id") == "msg_scripted"
            else item
            for item in output
        ]
    return out


def _check_step(step: Any) -> None:
    if isinstance(step, str):
        ok = step in _ACTIONS
    elif isinstance(step, tuple):
        ok = len(step) == 2 and isinstance(step[0], int) and isinstance(step[1], Mapping)
    elif isinstance(step, list):
        ok = all(isinstance(event, Mapping) for event in step)
    else:
        ok = isinstance(step, Mapping)
    if not ok:
        raise UsageError(
            f"a ScriptedOpenAIServer step is a body dict, a list of events, (status, headers), "
            f"'hang' or 'disconnect', not {_short(step)}; pass a function as script="
        )


def _body_for_turn(path: str, turn: Any, model: str) -> dict[str, Any]:
    """The completion or response body for a script's turn."""
    if not isinstance(turn, Mapping) or not set(turn) <= {"content", "tool_calls"}:
        raise TypeError("expected a dict with 'content' and/or 'tool_calls'")
    content = turn.get("content")
    if content is not None and not isinstance(content, str):
        raise TypeError("'content' must be a string")
    calls: list[_Call] = []
    for call in turn.get("tool_calls") or []:
        call_id, name, arguments = call
        calls.append((str(call_id), str(name), arguments))
    if path == _CHAT:
        return completion(content, tool_calls=calls, model=model)
    return response(content, function_calls=calls, model=model)


def _messages_from_input(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A Responses request's ``instructions`` and ``input`` as Chat Completions messages."""
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    if isinstance(items, str):
        return [*messages, {"role": "user", "content": items}]
    for item in items or []:
        kind = item.get("type", "message")
        if kind == "message":
            messages.append({"role": item.get("role", "user"), "content": _text(item)})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments")},
            }
            if messages and messages[-1]["role"] == "assistant":
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id"),
                    "content": output if isinstance(output, str) else json.dumps(output),
                }
            )
    return messages


def _text(item: Mapping[str, Any]) -> Any:
    content = item.get("content")
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return content


def _chat_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Responses API tools (flat) in the Chat Completions shape (under ``function``)."""
    out: list[dict[str, Any]] = []
    for t in tools:
        if t.get("type") == "function":
            function = {k: v for k, v in t.items() if k != "type"}
            out.append({"type": "function", "function": function})
        else:
            out.append(dict(t))
    return out


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: ScriptedOpenAIServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        TCPServer.server_bind(self)  # no reverse DNS lookup of the host, as HTTPServer does
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner._accepted()
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.exception("testing.server_error the scripted server failed on a request")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def handle(self) -> None:
        self._settled = False
        try:
            super().handle()
        finally:
            self._settle()

    def _settle(self) -> None:
        if not self._settled:
            self._settled = True
            self.server.owner._answered()

    def _serve(self) -> None:
        self.close_connection = True  # one request per connection: nothing left open
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            reply = owner._answer(self.command, urlsplit(self.path).path.rstrip("/"), raw)
        finally:
            self._settle()
        if reply.action == "hang":
            owner._stopped.wait()
            return
        if reply.action == "disconnect":
            return
        try:
            if reply.events is not None:
                self._stream(reply.events)
            else:
                self._json(reply)
        except (BrokenPipeError, ConnectionResetError):  # the client went away: fine
            return

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _serve

    def _json(self, reply: _Reply) -> None:
        data = json.dumps(reply.payload).encode()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, events: list[Mapping[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")  # the stream ends when the connection does
        self.end_headers()
        chat = False
        for event in events:
            chat = event.get("object") == "chat.completion.chunk"
            head = "" if chat or "type" not in event else f"event: {event['type']}\n"
            self.wfile.write(f"{head}data: {json.dumps(event)}\n\n".encode())
        if chat:
            self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        log_event(logging.DEBUG, "testing.request", line=format % args)
