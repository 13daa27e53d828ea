"""LangChain and LangGraph adapter: LangChain tools in, toolweave tools out, a drop-in for
LangGraph's ``ToolNode``, and a decider over any chat model with structured output.

Needs ``langchain-core`` (the ``langchain`` extra); LangGraph itself is not required.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, ConfigDict, create_model

from toolweave import (
    BatchResult,
    Decision,
    DecisionContext,
    InvalidDecisionError,
    Orchestrator,
    Tool,
    UsageError,
)
from toolweave._llm_decider import DEFAULT_INSTRUCTIONS, decision_prompt
from toolweave._tools import VALIDATION_ERRORS, as_tool, describe_validation_error
from toolweave.telemetry._values import to_text

from ._calls import Written, unique_calls

__all__ = ["LangChainDecider", "ToolweaveNode", "as_langchain_tools", "from_langchain_tool"]


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


def as_langchain_tools(tools: Iterable[Tool | Any] | Orchestrator) -> list[StructuredTool]:
    """LangChain ``StructuredTool``s for toolweave tools (name, description, schema kept).

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
        if t.json_schema is not None or _aliased(t):
            out.append(_with_json_schema(t))
            continue
        out.append(
            StructuredTool.from_function(
                func=None if t.is_async else t.fn,
                coroutine=t.fn if t.is_async else None,
                name=t.name,
                description=t.description or t.name,
                args_schema=t.args_schema,
            )
        )
    return out


def _aliased(t: Tool) -> bool:
    """Whether the model sends names that are not the model's field names (LangChain would
    advertise and pass the field names)."""
    return any(f.alias not in (None, n) for n, f in t.args_schema.model_fields.items())


def _with_json_schema(t: Tool) -> StructuredTool:
    def arguments(given: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        try:
            values = t.validate_arguments(given)
        except VALIDATION_ERRORS as exc:
            raise ToolException(describe_validation_error(exc, t)) from exc
        return t.bind(values)

    async def acall(**given: Any) -> Any:
        args, kwargs = arguments(given)
        return await t.fn(*args, **kwargs)

    def call(**given: Any) -> Any:
        args, kwargs = arguments(given)
        return t.fn(*args, **kwargs)

    return StructuredTool.from_function(
        func=None if t.is_async else call,
        coroutine=acall if t.is_async else None,
        name=t.name,
        description=t.description or t.name,
        args_schema=copy.deepcopy(t.parameters),
    )


class ToolweaveNode(Runnable[Any, Any]):
    """A drop-in for LangGraph's ``ToolNode`` that runs the last AI message's tool calls as a
    toolweave batch: references, dependency order, timeouts, retries and traces included.

    Input: an ``AIMessage``, a list of messages, or a state with ``messages``. Output: one
    ``ToolMessage`` per tool call, in order (``status="error"`` for failures and skips), as a
    list for list or message input and as ``{"messages": [...]}`` for a state, like ToolNode.
    Unlike ToolNode it also answers the message's ``invalid_tool_calls`` (after the valid
    ones), so every ``tool_call_id`` gets exactly one answer.
    """

    def __init__(
        self,
        tools: Iterable[Any] | Orchestrator,
        *,
        messages_key: str = "messages",
        **orchestrator_options: Any,
    ) -> None:
        if isinstance(tools, Orchestrator):
            if orchestrator_options:
                raise UsageError("pass orchestrator options to the Orchestrator you give")
            self.orchestrator = tools
        else:
            self.orchestrator = Orchestrator(list(tools), **orchestrator_options)
        self.messages_key = messages_key
        self.last_result: BatchResult | None = None
        """The ``BatchResult`` of the latest invocation, for inspection."""

    @property
    def name(self) -> str:  # type: ignore[override]
        """The node's name in a graph."""
        return "tools"

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the tool calls (from synchronous code)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.ainvoke(input, config, **kwargs))
        raise UsageError("ToolweaveNode.invoke() inside a running event loop: use ainvoke()")

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the tool calls."""
        message, shape, goal = self._parse(input)
        result = await self.orchestrator.run(unique_calls(_written(message)), goal=goal)
        self.last_result = result
        messages = [
            ToolMessage(
                content=to_text(r.output) if r.status == "ok" else f"Error: {to_text(r.error)}",
                tool_call_id=r.call_id,
                name=r.name,
                status="success" if r.status == "ok" else "error",
            )
            for r in result.results
        ]
        return messages if shape == "list" else {self.messages_key: messages}

    def _parse(self, input: Any) -> tuple[AIMessage, str, str | None]:
        """The AI message to run, the output shape, and the user's latest request."""
        if isinstance(input, AIMessage):
            return input, "list", None
        if isinstance(input, list):
            messages, shape = input, "list"
        elif isinstance(input, Mapping):
            messages, shape = list(input.get(self.messages_key) or []), "dict"
        else:
            messages, shape = list(getattr(input, self.messages_key, []) or []), "dict"
        ai = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        if ai is None:
            raise ValueError("ToolweaveNode needs an AIMessage with tool_calls in its input")
        human = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
        return ai, shape, str(human.content) if human is not None else None


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
