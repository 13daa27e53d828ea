"""LangChain and LangGraph adapter: LangChain tools in, toolweave tools out, a drop-in for
LangGraph's ``ToolNode`` (``ToolweaveNode``, also inside ``create_react_agent``), a middleware
for LangChain v1's ``create_agent`` (``ToolweaveMiddleware``), and a decider over any chat
model with structured output.

Needs the ``langchain`` extra: langchain-core, langgraph (whose ``ToolNode`` runs each call)
and langchain (for the middleware).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import inspect
import json
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from langchain.agents.middleware import AgentMiddleware, ModelRequest
from langchain_core.messages import AIMessage, BaseMessage, ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_config_list, get_executor_for_config
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langgraph.errors import GraphBubbleUp, GraphInterrupt, is_invalid_resume
from langgraph.prebuilt import ToolNode, ToolRuntime
from langgraph.prebuilt.tool_node import (
    AsyncToolCallWrapper,
    ToolCallRequest,
    ToolCallWrapper,
    _handle_tool_error,
)
from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict, create_model

from toolweave import (
    BatchResult,
    CallContext,
    Decision,
    DecisionContext,
    InvalidDecisionError,
    Orchestrator,
    Tool,
    UsageError,
    policies,
)
from toolweave._hooks import check_middleware
from toolweave._llm_decider import DEFAULT_INSTRUCTIONS, decision_prompt
from toolweave._tools import VALIDATION_ERRORS, as_tool, describe_validation_error
from toolweave.telemetry._values import to_text

from ._advertise import accept_references, describe_references, reference_instructions
from ._calls import Written, unique_calls
from ._turns import Saved, Turn, Turns, announce, asaved, current_context, dispatch, saved

__all__ = [
    "LangChainDecider",
    "ToolweaveMiddleware",
    "ToolweaveNode",
    "as_langchain_tools",
    "from_langchain_tool",
    "reference_instructions",
]


def from_langchain_tool(lc_tool: BaseTool) -> Tool:
    """A toolweave ``Tool`` running a LangChain tool, with its name, description and argument
    schema. ``Orchestrator`` calls this for you when given LangChain tools."""
    schema = lc_tool.tool_call_schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        model: type[BaseModel] = schema
        json_schema = None
    else:  # a JSON-schema dict: validate loosely, advertise it as it is
        model = create_model(f"{lc_tool.name}_arguments", __config__=ConfigDict(extra="allow"))
        json_schema = dict(schema) if isinstance(schema, Mapping) else None

    async def run(**arguments: Any) -> Any:
        plain = {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in arguments.items()}
        return await lc_tool.ainvoke(plain)

    run.__name__ = lc_tool.name
    return Tool(
        name=lc_tool.name,
        description=lc_tool.description or "",
        fn=run,
        args_schema=model,
        is_async=True,
        json_schema=json_schema,
    )


def as_langchain_tools(
    tools: Iterable[Tool | Any] | Orchestrator, *, references: bool = False
) -> list[StructuredTool]:
    """LangChain ``StructuredTool``s for toolweave tools (name, description, schema kept).

    With ``references`` every non-string parameter also accepts a ``"${...}"`` reference and
    the description says how, as ``openai_tools`` does: for tools a ``ToolweaveNode`` or
    ``ToolweaveMiddleware`` runs, which resolve the references before the tool is called.

    A tool with a pydantic argument model goes over with that model, and LangChain validates.
    A tool that advertises a JSON schema (one from ``Tool.from_schema``, say) or whose
    parameters are named by aliases (``_from``) goes over with its JSON schema as
    ``args_schema``; the tool then validates the arguments itself, raising a
    ``ToolException`` worded for the model when they do not fit, and is called as the engine
    calls it (a ``from_schema`` tool with the arguments as one dict).
    """
    items = tools.tools.values() if isinstance(tools, Orchestrator) else tools
    out = []
    for item in items:
        t = as_tool(item)  # the conversion Orchestrator applies
        if t.json_schema is not None or _aliased(t) or references:
            out.append(_with_json_schema(t, references))
            continue
        fn = _with_context(t)
        out.append(
            StructuredTool.from_function(
                func=None if t.is_async else _shown_sync(fn),
                coroutine=_shown_async(fn) if t.is_async else None,
                name=t.name,
                description=t.description or t.name,
                args_schema=t.args_schema,
            )
        )
    return out


def _shown(value: Any) -> Any:
    """A tool's output as LangChain can show it: JSON-able values as they are, anything else
    (a huge int, a cycle, an object whose ``__str__`` raises, a lone surrogate) as
    toolweave's safe text, where LangChain's own ``str()`` would fail the call."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except Exception:  # any failure means: show it as safe text
        return to_text(value)
    return value


def _with_context(t: Tool) -> Callable[..., Any]:
    """``t.fn``, given its ``CallContext`` when it declares one: the toolweave call's (the
    batch running it sets it), or, outside toolweave, one with a fresh idempotency key."""
    name = t.context_parameter
    if name is None:
        return t.fn
    fn = t.fn

    @functools.wraps(fn)
    def with_context(*args: Any, **kwargs: Any) -> Any:
        context = current_context.get()
        if context is None:
            key = "tw-" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
            context = CallContext(call_id="", batch_id="", idempotency_key=key, attempt=1)
        return fn(*args, **{**kwargs, name: context})

    return with_context


def _shown_sync(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        return _shown(fn(*args, **kwargs))

    return run


def _shown_async(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        return _shown(await fn(*args, **kwargs))

    return run


def _aliased(t: Tool) -> bool:
    """Whether the model sends names that are not the model's field names (LangChain would
    advertise and pass the field names)."""
    return any(f.alias not in (None, n) for n, f in t.args_schema.model_fields.items())


def _with_json_schema(t: Tool, references: bool = False) -> StructuredTool:
    def arguments(given: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        try:
            values = t.validate_arguments(given)
        except VALIDATION_ERRORS as exc:
            raise ToolException(describe_validation_error(exc, t)) from exc
        return t.bind(values)

    fn = _with_context(t)

    async def acall(**given: Any) -> Any:
        args, kwargs = arguments(given)
        return _shown(await fn(*args, **kwargs))

    def call(**given: Any) -> Any:
        args, kwargs = arguments(given)
        return _shown(fn(*args, **kwargs))

    return StructuredTool.from_function(
        func=None if t.is_async else call,
        coroutine=acall if t.is_async else None,
        name=t.name,
        description=describe_references(t.description) if references else t.description or t.name,
        args_schema=accept_references(t.parameters) if references else copy.deepcopy(t.parameters),
    )


_DEFAULT_ERRORS: Any = inspect.signature(ToolNode.__init__).parameters["handle_tool_errors"].default


class ToolweaveNode(ToolNode):
    """LangGraph's ``ToolNode`` that runs the calls of one AI message as one toolweave batch:
    references between calls, dependency order, middleware, a decider, traces.

    Accepted wherever ``ToolNode`` is: a node of your ``StateGraph``, or
    ``create_react_agent(model, tools=ToolweaveNode(tools))``, whose graph sends each call to
    the node on its own: the calls of one AI message are gathered into one batch all the same,
    and each call still runs in its own task, so ``interrupt()``, ``Command`` returns,
    injected state, store and ``ToolRuntime``, artifacts and ``handle_tool_errors`` behave as
    they do with ``ToolNode``.

    ``tools`` are LangChain tools, plain functions, toolweave tools (their ``timeout``,
    ``retries`` and ``middleware`` apply) or an ``Orchestrator`` (its tools and options).
    ``orchestrator_options`` are ``Orchestrator``'s (``max_concurrency``, ``decider``,
    ``middleware``, ``tracer_provider``, ...). With ``references`` (the default) the tools a
    model is bound to (``tools_by_name``) accept a ``"${...}"`` reference in every non-string
    parameter and say so in their descriptions.

    Unlike ``ToolNode``, a node given a whole AI message also answers its
    ``invalid_tool_calls``, so every ``tool_call_id`` gets exactly one answer.

    A turn's batch is named by its AI message's id (``BatchResult.batch_id``; a resume after
    an interrupt adds ``#resume-{k}``). With a ``ledger`` in ``orchestrator_options``, a step
    run again for the same message replays the calls that finished (answered with their
    recorded output; a ``Command`` or artifact they returned is not replayed).
    """

    def __init__(
        self,
        tools: Iterable[Any] | Orchestrator,
        *,
        name: str = "tools",
        tags: list[str] | None = None,
        handle_tool_errors: Any = _DEFAULT_ERRORS,
        messages_key: str = "messages",
        wrap_tool_call: ToolCallWrapper | None = None,
        awrap_tool_call: AsyncToolCallWrapper | None = None,
        references: bool = True,
        **orchestrator_options: Any,
    ) -> None:
        if isinstance(tools, Orchestrator):
            if orchestrator_options:
                raise UsageError("pass orchestrator options to the Orchestrator you give")
            items: list[Any] = list(tools.tools.values())
            orchestrator_options = _options_of(tools)
        else:
            items = list(tools)
        native = {id(t): as_tool(t) for t in items if isinstance(t, Tool)}
        super().__init__(
            [as_langchain_tools([native[id(t)]])[0] if id(t) in native else t for t in items],
            name=name,
            tags=tags,
            handle_tool_errors=handle_tool_errors,
            messages_key=messages_key,
            wrap_tool_call=wrap_tool_call,
            awrap_tool_call=awrap_tool_call,
        )
        own = {t.name: t for t in native.values()}
        self.orchestrator = _orchestrator(self._tools_by_name, own, orchestrator_options)
        """The orchestrator that plans and runs each turn (its tools hand calls back here)."""
        self.references = references
        self._advertised = (
            {n: _advertised(t, own.get(n)) for n, t in self._tools_by_name.items()}
            if references
            else self._tools_by_name
        )
        self.last_result: BatchResult | None = None
        """The ``BatchResult`` of the latest turn, for inspection."""
        self._turns = Turns(on_result=self._keep)

    @property
    def tools_by_name(self) -> dict[str, BaseTool]:
        """The tools as a model should see them (with ``references``, accepting references);
        what runs are the tools given."""
        return self._advertised

    def __iter__(self) -> Any:
        raise TypeError(
            "a ToolweaveNode is not a list of tools. LangChain's create_agent takes a list: "
            "create_agent(model, tools, middleware=[ToolweaveMiddleware()]) runs them through "
            "toolweave."
        )

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the calls; outside a graph too (given an ``AIMessage`` or a list of messages),
        and from synchronous code inside a running event loop."""
        return super().invoke(input, config, **_outside_a_graph(config, kwargs))

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the calls (see ``invoke``)."""
        return await super().ainvoke(input, config, **_outside_a_graph(config, kwargs))

    def _func(self, input: Any, config: RunnableConfig, runtime: Runtime | None = None) -> Any:
        input = [input] if isinstance(input, AIMessage) else input
        calls, input_type = self._parse_input(input)
        alone = input_type == "tool_calls" and len(calls) == 1
        calls, refused = (calls, {}) if alone else _checked(calls)
        runtimes = self._runtimes(input, calls, config, runtime)
        turn = self._turn(input, calls, runtimes, alone, refused, saved(config))
        # Threads here mostly wait for their turn: one each, so none waits for a free thread.
        pool = {**config, "max_concurrency": max(len(calls), config.get("max_concurrency") or 1)}
        with get_executor_for_config(cast(RunnableConfig, pool)) as executor:
            futures = [
                executor.submit(
                    turn.attend_sync,
                    call,
                    functools.partial(self._run_call, input_type=input_type, runtime=rt),
                    functools.partial(self._arun_call, input_type=input_type, runtime=rt)
                    if _async_only(self._tools_by_name.get(call["name"]))
                    else None,
                )
                for call, rt in zip(calls, runtimes, strict=True)
                if call["id"] not in refused
            ]
            outcomes = iter([_settled(f) for f in futures])
        answers = [refused.get(str(c["id"])) or next(outcomes) for c in calls]
        return self._finish(turn, input, input_type, answers)

    async def _afunc(
        self, input: Any, config: RunnableConfig, runtime: Runtime | None = None
    ) -> Any:
        input = [input] if isinstance(input, AIMessage) else input
        calls, input_type = self._parse_input(input)
        alone = input_type == "tool_calls" and len(calls) == 1
        calls, refused = (calls, {}) if alone else _checked(calls)
        runtimes = self._runtimes(input, calls, config, runtime)
        answered = await asaved(config)
        turn = self._turn(input, calls, runtimes, alone, refused, answered)
        runs = [
            functools.partial(self._arun_call, input_type=input_type, runtime=rt) for rt in runtimes
        ]
        outcomes = iter(
            await asyncio.gather(
                *(
                    turn.attend(call, run)
                    for call, run in zip(calls, runs, strict=True)
                    if call["id"] not in refused
                ),
                return_exceptions=True,
            )
        )
        answers = [refused.get(str(c["id"])) or next(outcomes) for c in calls]
        return self._finish(turn, input, input_type, answers)

    def _runtimes(
        self, input: Any, calls: list[Any], config: RunnableConfig, runtime: Runtime | None
    ) -> list[ToolRuntime]:
        """One ``ToolRuntime`` per call, as ``ToolNode`` builds them (outside a graph, where
        ``ToolNode`` cannot be invoked, with an empty runtime)."""
        runtime = runtime if runtime is not None else Runtime()
        return [
            ToolRuntime(
                state=self._extract_state(input, cfg),  # type: ignore[arg-type]
                tool_call_id=call["id"],
                config=cfg,
                context=runtime.context,
                store=runtime.store,
                stream_writer=runtime.stream_writer,
                tools=list(self._tools_by_name.values()),
                execution_info=runtime.execution_info,
                server_info=runtime.server_info,
            )
            for call, cfg in zip(calls, get_config_list(config, len(calls)), strict=False)
        ]

    def _turn(
        self,
        input: Any,
        calls: list[Any],
        runtimes: list[Any],
        alone: bool,
        refused: Mapping[str, Any],
        answered: Saved,
    ) -> Turn:
        # One call sent on its own (create_react_agent, create_agent) belongs to the AI
        # message in the state; otherwise the calls given are the whole turn.
        return self._turns.join(
            calls[0] if calls else {},
            runtimes[0].state if runtimes else input,
            runtimes[0].config if runtimes else None,
            self.orchestrator,
            self._messages_key,
            calls=None if alone else [c for c in calls if c["id"] not in refused],
            saved=answered,
            message=None if alone else _latest_ai(input, self._messages_key),
        )

    def _keep(self, result: BatchResult) -> None:
        self.last_result = result

    def _finish(self, turn: Turn, input: Any, input_type: Any, outcomes: list[Any]) -> Any:
        asking = [o for o in outcomes if isinstance(o, GraphInterrupt) and o.args[0]]
        if asking:  # the first, as ToolNode: the others ask again once it is answered
            raise asking[0]
        if any(isinstance(o, GraphInterrupt) for o in outcomes):
            raise GraphInterrupt(())
        for o in outcomes:
            if isinstance(o, BaseException):
                raise o
        if input_type != "tool_calls":
            outcomes = [*outcomes, *_invalid_answers(input, self._messages_key)]
        return self._combine_tool_outputs(outcomes, input_type)

    def _request(self, call: Any, runtime: ToolRuntime) -> ToolCallRequest:
        if runtime.tool_call_id != call["id"]:  # run on behalf of a call whose task is late
            runtime = dataclasses.replace(runtime, tool_call_id=call["id"])
        return ToolCallRequest(
            tool_call=call,
            tool=self._tools_by_name.get(call["name"]),
            state=runtime.state,
            runtime=runtime,
        )

    async def _arun_call(self, call: Any, *, input_type: Any, runtime: ToolRuntime) -> Any:
        """One call, as ``ToolNode`` runs it (its wrappers and error handling included)."""
        request = self._request(call, runtime)
        config = runtime.config
        if self._awrap_tool_call is None:
            if self._wrap_tool_call is None:
                return await self._execute_tool_async(request, input_type, config)
            return self._through_sync_wrapper(request, input_type, config)

        async def execute(req: ToolCallRequest) -> Any:
            return await self._execute_tool_async(req, input_type, config)

        try:
            return await self._awrap_tool_call(request, execute)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return self._wrapper_failed(request, exc)

    def _run_call(self, call: Any, *, input_type: Any, runtime: ToolRuntime) -> Any:
        """``_arun_call()`` for a thread. An async-only tool runs on a loop of its own here
        (``ToolNode`` refuses it under ``invoke``)."""
        request = self._request(call, runtime)
        if _async_only(request.tool):
            return asyncio.run(self._arun_call(call, input_type=input_type, runtime=runtime))
        config = runtime.config
        if self._wrap_tool_call is None:
            return self._execute_tool_sync(request, input_type, config)
        return self._through_sync_wrapper(request, input_type, config)

    def _through_sync_wrapper(
        self, request: ToolCallRequest, input_type: Any, config: RunnableConfig
    ) -> Any:
        assert self._wrap_tool_call is not None
        try:
            return self._wrap_tool_call(
                request,
                lambda req: self._execute_tool_sync(req, input_type, config),  # type: ignore[arg-type,return-value]
            )
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return self._wrapper_failed(request, exc)

    def _wrapper_failed(self, request: ToolCallRequest, exc: Exception) -> ToolMessage:
        if not self._handle_tool_errors or is_invalid_resume(exc):
            raise exc
        return ToolMessage(
            content=_handle_tool_error(exc, flag=self._handle_tool_errors),
            name=request.tool_call["name"],
            tool_call_id=request.tool_call["id"],
            status="error",
        )


def _bound(cache: OrderedDict[Any, Any], size: int = 64) -> None:
    while len(cache) > size:
        cache.popitem(last=False)


def _for_call(request: ToolCallRequest, call: dict[str, Any]) -> ToolCallRequest:
    """``request`` for ``call``: its own arguments, or (run on behalf of a call whose task is
    late) another call of the same turn, with that call's tool and id."""
    if call["id"] == request.tool_call["id"]:
        return request.override(tool_call=cast(ToolCall, call))
    tools = getattr(request.runtime, "tools", None) or []
    tool = next((t for t in tools if getattr(t, "name", None) == call["name"]), None)
    runtime = request.runtime
    if isinstance(runtime, ToolRuntime):
        runtime = dataclasses.replace(runtime, tool_call_id=call["id"])
    return dataclasses.replace(request, tool_call=cast(ToolCall, call), tool=tool, runtime=runtime)


def _config(request: ToolCallRequest) -> Any:
    return getattr(request.runtime, "config", None)


def _async_only(tool: Any) -> bool:
    return isinstance(tool, StructuredTool) and tool.func is None and tool.coroutine is not None


def _outside_a_graph(config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    configurable = (config or {}).get("configurable") or {}
    if "__pregel_runtime" not in configurable:
        kwargs.setdefault("runtime", None)
    return kwargs


def _checked(calls: list[Any]) -> tuple[list[Any], dict[str, ToolMessage]]:
    """The calls of a whole message with usable ids (``call_{i}`` for a missing one), and an
    error answer for each that cannot run as written (a repeated id, no name)."""
    checked = unique_calls([Written(c.get("id"), c.get("name"), c.get("args")) for c in calls])
    out = [{**c, "id": k.id, "name": k.name} for c, k in zip(calls, checked, strict=True)]
    refused = {
        k.id: ToolMessage(
            content=f"Error: call '{k.id}' ({k.name}): {k.error}",
            tool_call_id=k.id,
            name=k.name,
            status="error",
        )
        for k in checked
        if k.error
    }
    return out, refused


def _settled(future: Any) -> Any:
    try:
        return future.result()
    except BaseException as exc:  # collected like asyncio.gather(return_exceptions=True)
        return exc


def _latest_ai(input: Any, key: str) -> AIMessage | None:
    """The AI message whose calls a node given messages runs (as ``ToolNode`` finds it)."""
    if isinstance(input, list):
        messages = input
    elif isinstance(input, Mapping):
        messages = input.get(key) or []
    else:
        messages = getattr(input, key, None) or []
    return next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)


def _invalid_answers(input: Any, key: str) -> list[ToolMessage]:
    """Answers to the AI message's ``invalid_tool_calls`` (LangGraph's ToolNode leaves them
    unanswered, and the next model request then fails on a call without an answer)."""
    ai = _latest_ai(input, key)
    if ai is None or not ai.invalid_tool_calls:
        return []
    calls = unique_calls(_written(ai))
    bad_json = (
        "arguments are not valid JSON, so it was not run. Send it again with its arguments "
        "as one JSON object."
    )
    return [
        ToolMessage(
            content=f"Error: call '{c.id}' ({c.name}): {c.error or bad_json}",
            tool_call_id=c.id,
            name=c.name,
            status="error",
        )
        for c in calls[len(ai.tool_calls) :]
    ]


def _written(message: AIMessage) -> list[Written]:
    """Every call of the message, its ``tool_calls`` then its ``invalid_tool_calls``, so each
    gets exactly one answer (LangGraph's ToolNode leaves invalid ones unanswered, and the next
    model request then fails on the call without an answer).

    An invalid call keeps its raw argument text, so the planner reports the bad JSON to the
    model; one whose arguments are not text carries the parser's error instead. Ids and names
    are checked as in ``calls_from_openai``: generated ``call_{i}`` for a missing id, a
    repeated id renamed ``{id}#{k}`` with an error, ``"(no name)"`` with an error.
    """
    out = []
    for c in message.tool_calls or []:
        if isinstance(c, Mapping):
            out.append(Written(c.get("id"), c.get("name"), c.get("args")))
    for bad in message.invalid_tool_calls or []:
        if not isinstance(bad, Mapping):
            continue
        args, problem = bad.get("args"), None
        if not isinstance(args, str):
            why = bad.get("error")
            problem = (
                "the call could not be read"
                + (f" ({to_text(why, 300)})" if why else "")
                + ", so it was not run. Send it again with its arguments as one JSON object."
            )
        out.append(Written(bad.get("id"), bad.get("name"), args, problem))
    return out


def _options_of(orchestrator: Orchestrator) -> dict[str, Any]:
    return {
        "max_concurrency": orchestrator.max_concurrency,
        "strategy": orchestrator.strategy,
        "decider": orchestrator.decider,
        "decide_on": orchestrator.decide_on,
        "decider_timeout": orchestrator.decider_timeout,
        "decision_output_chars": orchestrator.decision_output_chars,
        "tracer_provider": orchestrator.tracer_provider,
        "workflow_name": orchestrator.workflow_name,
        "trace_content": orchestrator.trace_content,
        "middleware": list(orchestrator.middleware),
        "ledger": orchestrator.ledger,
        "cache": orchestrator.cache,
    }


class _AnyArguments(BaseModel):
    model_config = ConfigDict(extra="allow")


def _stand_in(name: str, description: str, schema: dict[str, Any], own: Tool | None) -> Tool:
    """The batch's tool for a LangChain tool: validation is left to LangChain (so errors read
    as they do with ToolNode) and the call runs in its own task (``_turns.dispatch``). A
    toolweave tool's own middleware, timeout and retries wrap that."""

    def never(**_: Any) -> None:  # pragma: no cover - dispatch answers before the tool
        raise AssertionError("toolweave: a LangGraph stand-in tool was called")

    chain: list[Any] = [dispatch]
    if own is not None:
        chain = [
            *own.middleware,
            *policies.standard(
                timeout=own.timeout, retries=own.retries, wait=own.retry_wait, on=own.retry_on
            ),
            dispatch,
        ]
    effects: dict[str, Any] = {}
    if own is not None:  # what its calls read and write, and whether they may repeat
        effects = {
            "reads": own.reads,
            "writes": own.writes,
            "idempotent": own.idempotent,
            "cache_ttl": own.cache_ttl,
        }
    return Tool(
        name=name, description=description, fn=never, args_schema=_AnyArguments,
        json_schema=schema, middleware=tuple(chain), **effects,
    )  # fmt: skip


def _orchestrator(
    tools: Mapping[str, BaseTool],
    own: Mapping[str, Tool],
    options: dict[str, Any],
    where: str = "ToolweaveNode",
) -> Orchestrator:
    options = dict(options)
    user = list(check_middleware(options.pop("middleware", ()), where))
    stand_ins = [
        _stand_in(n, t.description or "", _schema_of(t), own.get(n)) for n, t in tools.items()
    ]
    return Orchestrator(stand_ins, middleware=[announce, *user], **options)


def _schema_of(t: BaseTool) -> dict[str, Any]:
    schema = t.tool_call_schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_json_schema()
    return dict(schema) if isinstance(schema, Mapping) else {"type": "object", "properties": {}}


def _advertised(t: BaseTool, own: Tool | None) -> BaseTool:
    """``t`` as a model should see it: every non-string parameter also takes a reference."""
    schema = accept_references(own.parameters if own is not None else _schema_of(t))

    async def arun(**kwargs: Any) -> Any:
        return await t.ainvoke(kwargs)

    def run(**kwargs: Any) -> Any:
        return t.invoke(kwargs)

    return StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name=t.name,
        description=describe_references(t.description or ""),
        args_schema=schema,
    )


class ToolweaveMiddleware(AgentMiddleware[Any, Any]):
    """LangChain v1 agent middleware that runs the agent's tool calls through toolweave:
    ``create_agent(model, tools, middleware=[ToolweaveMiddleware()])``.

    The calls of one model turn run as one batch (references between them, dependency order,
    ``max_concurrency``, a decider, middleware, traces), each still executed by the agent's
    own tool node in its own task, so injected arguments, ``Command`` returns, ``interrupt()``
    and the agent's other middleware behave as without it. ``orchestrator_options`` are
    ``Orchestrator``'s. With ``references`` (the default) the tools the model is given accept
    a ``"${...}"`` reference in every non-string parameter and say so. A turn's batch is
    named by its AI message's id, as in ``ToolweaveNode``.
    """

    def __init__(self, *, references: bool = True, **orchestrator_options: Any) -> None:
        super().__init__()
        self.references = references
        self._options = dict(orchestrator_options)
        # A mistake in the options is told here, not at the first tool call.
        _orchestrator({}, {}, self._options, "ToolweaveMiddleware")
        self.last_result: BatchResult | None = None
        """The ``BatchResult`` of the latest turn, for inspection."""
        self._turns = Turns(on_result=self._keep, steal=False)
        # Both keyed by the tools' ids, which stay theirs while the tools are held here;
        # bounded, for agents whose tools change from turn to turn.
        self._orchestrators: OrderedDict[tuple[int, ...], tuple[Orchestrator, list[Any]]] = (
            OrderedDict()
        )
        self._advertised: OrderedDict[int, tuple[BaseTool, BaseTool]] = OrderedDict()

    def _keep(self, result: BatchResult) -> None:
        self.last_result = result

    def _orchestrator(self, tools: Sequence[Any]) -> Orchestrator:
        table = {t.name: t for t in tools if isinstance(t, BaseTool)}
        key = tuple(id(t) for t in table.values())
        found = self._orchestrators.get(key)
        if found is None:
            found = (
                _orchestrator(table, {}, self._options, "ToolweaveMiddleware"),
                list(table.values()),
            )
            self._orchestrators[key] = found
            _bound(self._orchestrators)
        return found[0]

    def _turn(self, request: ToolCallRequest, answered: Saved) -> Turn:
        tools = list(getattr(request.runtime, "tools", None) or [])
        if request.tool is not None and all(t is not request.tool for t in tools):
            tools.append(request.tool)
        return self._turns.join(
            request.tool_call,
            request.state,
            _config(request),
            self._orchestrator(tools),
            saved=answered,
        )

    def wrap_tool_call(self, request: ToolCallRequest, handler: Callable[..., Any]) -> Any:
        """Run the call when its batch says so, through the rest of the agent's chain."""
        turn = self._turn(request, saved(_config(request)))
        return turn.attend_sync(request.tool_call, lambda call: handler(_for_call(request, call)))

    async def awrap_tool_call(self, request: ToolCallRequest, handler: Callable[..., Any]) -> Any:
        """``wrap_tool_call()`` for an agent run with ``ainvoke``/``astream``."""
        turn = self._turn(request, await asaved(_config(request)))

        async def run(call: dict[str, Any]) -> Any:
            return await handler(_for_call(request, call))

        return await turn.attend(request.tool_call, run)

    def _advertise(self, request: ModelRequest) -> ModelRequest:
        if not self.references:
            return request
        tools: list[Any] = []
        for t in request.tools:
            if not isinstance(t, BaseTool):
                tools.append(t)
                continue
            cached = self._advertised.get(id(t))
            if cached is None or cached[0] is not t:
                cached = (t, _advertised(t, None))
                self._advertised[id(t)] = cached
                _bound(self._advertised)
            tools.append(cached[1])
        return request.override(tools=tools)

    def wrap_model_call(self, request: ModelRequest, handler: Callable[..., Any]) -> Any:
        """Give the model the tools with references accepted (``references=True``)."""
        return handler(self._advertise(request))

    async def awrap_model_call(self, request: ModelRequest, handler: Callable[..., Any]) -> Any:
        """``wrap_model_call()`` for an agent run with ``ainvoke``/``astream``."""
        return await handler(self._advertise(request))


class LangChainDecider:
    """The intermediate decider over any LangChain chat model that supports
    ``with_structured_output``. Fallback, breaker and timeout work as for
    ``IntermediateLLMDecider`` (the engine applies ``fallback`` and ``breaker``)."""

    def __init__(
        self,
        chat_model: Any,
        *,
        fallback: Decision | None = None,
        breaker: int = 3,
        timeout: float = 10.0,
        instructions: str = DEFAULT_INSTRUCTIONS,
        output_chars: int = 1000,
    ) -> None:
        if not hasattr(chat_model, "with_structured_output"):
            raise UsageError(f"{chat_model!r} has no with_structured_output()")
        self.structured = chat_model.with_structured_output(Decision, include_raw=True)
        self.model_name = (
            str(getattr(chat_model, "model_name", None) or getattr(chat_model, "model", None) or "")
            or type(chat_model).__name__
        )
        if fallback is not None:
            self.fallback = fallback
        self.breaker = breaker
        self.timeout = timeout
        self.instructions = instructions
        self.output_chars = output_chars

    async def decide(self, context: DecisionContext) -> Decision:
        """Ask the chat model; raise when its answer cannot be used."""
        prompt = decision_prompt(context, self.instructions, self.output_chars)
        messages: Sequence[tuple[str, str]] = [(m["role"], m["content"]) for m in prompt]
        async with asyncio.timeout(self.timeout):
            answer = await self.structured.ainvoke(list(messages))
        raw = answer.get("raw") if isinstance(answer, Mapping) else None
        usage = getattr(raw, "usage_metadata", None) or {}
        context.report_usage(
            int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)),
            model=self.model_name,
        )  # fmt: skip
        if isinstance(answer, Mapping):
            if answer.get("parsing_error") is not None:
                raise InvalidDecisionError(f"unusable answer: {answer['parsing_error']}")
            answer = answer.get("parsed")
        if isinstance(answer, BaseMessage) or answer is None:
            raise InvalidDecisionError("the model gave no structured decision")
        return answer if isinstance(answer, Decision) else Decision.model_validate(answer)
