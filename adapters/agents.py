"""OpenAI Agents SDK adapter: ``weave(agent)`` returns the agent whose function-tool calls of
one model turn run as one toolweave batch (references between them resolved, each call started as
soon as its dependencies have finished, a decider between steps, OpenTelemetry traces).

How it meets the SDK. The SDK runs each function call of a model response in a task of its
own, through the tool's ``on_invoke_tool``. The woven agent's hooks see the whole response
first (``on_llm_end``) and note its function calls as a turn; each woven tool is a stand-in
whose ``on_invoke_tool`` joins its turn, and the first one to arrive starts the batch. The
batch runs every call through the original tool's own invoker, in the context of that call's
own task (its ``ToolContext``, the SDK's trace span), with the arguments resolved; each
stand-in then returns its own call's answer to the SDK, which goes on as without toolweave
(hooks, output items, stream events, ``tool_use_behavior``).

Needs the ``agents`` extra (``openai-agents``; tested with 0.24.0).
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import inspect
import json
import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from agents import Agent, AgentHooks, FunctionTool, ModelResponse, RunContextWrapper
from agents.exceptions import (
    ToolInputGuardrailTripwireTriggered,
    ToolOutputGuardrailTripwireTriggered,
)
from agents.exceptions import ToolTimeoutError as SDKToolTimeoutError
from agents.items import TResponseInputItem
from agents.run_context import AgentHookContext
from agents.strict_schema import ensure_strict_json_schema
from agents.tool import Tool as SDKTool
from agents.tool import (
    default_tool_timeout_error_message,
    invoke_function_tool,
    maybe_invoke_function_tool_failure_error_function,
    set_function_tool_failure_error_function,
)
from agents.tool_context import ToolContext
from agents.tool_guardrails import ToolInputGuardrailData, ToolOutputGuardrailData
from openai.types.responses import ResponseFunctionToolCall
from opentelemetry import context as otel_context
from pydantic import BaseModel, ConfigDict

from toolweave import (
    BatchResult,
    CallRequest,
    CallResult,
    Orchestrator,
    SkipCall,
    Tool,
    ToolCall,
    ToolTimeoutError,
    UsageError,
)
from toolweave._hooks import CallNext, check_middleware
from toolweave.telemetry._values import safe_str, to_jsonable, to_text

from ._advertise import accept_references, describe_references, reference_instructions
from ._calls import Written, unique_calls, usable_id

__all__ = ["reference_instructions", "weave"]

logger = logging.getLogger("toolweave")

_TAgent = TypeVar("_TAgent", bound=Agent[Any])

_ARRIVAL_GRACE = 1.0
"""Seconds a call that is ready to run waits for its own SDK task before it runs on another
call's behalf. The SDK starts every call's task at once; under ``RunConfig(tool_execution=
ToolExecutionConfig(max_function_tool_concurrency=k))`` a call can wait for a task the SDK
holds back until the calls it runs have finished, and this breaks that deadlock."""

_NOT_BATCHED = (
    "not run by toolweave: the Agents SDK runs '{name}' itself (a handoff, an MCP server's "
    "tool, a tool that needs approval or one added after weave()), so no other call of this "
    "batch can refer to its output. Pass the value itself, or call it in an earlier turn."
)
_ANSWERED_BEFORE = (
    "not run: the call id '{id}' was answered earlier in this run, so the Agents SDK does not "
    "run it again. Give every call its own id."
)

_MEMORY = 4096  # calls noted for their SDK task, beyond which those of idle turns are dropped
_RUNS = 256  # runs whose answered call ids are remembered

_TURN: contextvars.ContextVar[_Turn] = contextvars.ContextVar("toolweave_agents_turn")
_MEMBER: contextvars.ContextVar[_Member] = contextvars.ContextVar("toolweave_agents_call")


def weave(
    agent: _TAgent,
    *,
    references: bool = True,
    handoffs: bool = True,
    on_batch: Callable[[BatchResult], object] | None = None,
    **orchestrator_options: Any,
) -> _TAgent:
    """A copy of ``agent`` (``agent.clone()``) whose function-tool calls of each model turn run
    as one toolweave batch: ``await Runner.run(weave(agent), "...")``.

    ``orchestrator_options`` are ``Orchestrator``'s (``max_concurrency``, ``decider``,
    ``decide_on``, ``middleware``, ``tracer_provider``, ``trace_content``, ...); the batch span
    is named after the agent unless ``workflow_name`` is given. Middleware see the run's
    ``RunContextWrapper`` as ``request.metadata["run_context"]``.

    What is batched: the function tools in ``agent.tools`` (``@function_tool`` functions,
    agents as tools, ``FunctionTool`` objects), keeping their names, descriptions, schemas,
    ``is_enabled``, context, hooks, and failure and timeout behaviour. With ``references`` (the
    default) every non-string parameter also accepts a ``"${...}"`` reference and each
    description says how (strict schemas stay strict). Each tool's own input and output
    guardrails run inside the batch, on the arguments the tool really receives and before its
    output reaches any other call (so they are not listed in ``RunResult``'s
    ``tool_input_guardrail_results`` and ``tool_output_guardrail_results``).

    Not batched, and run by the SDK as before: hosted tools, handoffs, MCP servers' tools,
    function tools that need approval (a human approves the arguments that run), and tools
    added after weaving. Their function calls still count in a batch's positions, and a
    reference to one is answered with an error saying so.

    With ``handoffs`` the agents in ``agent.handoffs`` are woven too (each once, cycles
    included; an agent you wove already is kept); ``Handoff`` objects are kept as they are.
    ``on_batch`` is called with each turn's ``BatchResult`` (its exceptions are logged, never
    raised).

    Each turn's batch is named by its model response's id (``ModelResponse.response_id``: the
    Responses API's response id; the Chat Completions model gives none, and the engine names
    the batch), so with a ``ledger`` in ``orchestrator_options`` the calls of a response run
    again are replayed, not repeated. An id that is not text of 1 to 1,000 characters, or that
    an earlier turn of the same run already used, is not used.

    Raises ``UsageError`` for an agent woven already, two batched tools with one name, or a
    bad orchestrator option.
    """
    return _weave(agent, references, handoffs, on_batch, orchestrator_options, {})


def _weave(
    agent: _TAgent,
    references: bool,
    handoffs: bool,
    on_batch: Callable[[BatchResult], object] | None,
    options: dict[str, Any],
    done: dict[int, Agent[Any]],
) -> _TAgent:
    if not isinstance(agent, Agent):
        raise UsageError(f"weave() takes an agents.Agent, got {safe_str(type(agent).__name__)}")
    found = done.get(id(agent))
    if found is not None:
        return found  # type: ignore[return-value]  # the woven copy of this very agent
    if isinstance(agent.hooks, _Hooks):
        raise UsageError(
            f"agent '{safe_str(agent.name, 80)}' is woven already: weave the original agent once"
        )
    state = _Weave(agent, references, on_batch, options)
    woven = cast(_TAgent, agent.clone(tools=state.tools, hooks=_Hooks(agent.hooks, state)))
    done[id(agent)] = woven
    if handoffs:
        woven.handoffs = [
            _weave(h, references, handoffs, on_batch, options, done)
            if isinstance(h, Agent) and not isinstance(h.hooks, _Hooks)  # woven by you: as it is
            else h
            for h in agent.handoffs
        ]
    return woven


# ------------------------------------------------------------------ one woven agent


class _AnyArguments(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Weave:
    """What one woven agent shares across its runs: its orchestrator, its stand-ins, and the
    turns whose calls are on their way to them."""

    def __init__(
        self,
        agent: Agent[Any],
        references: bool,
        on_batch: Callable[[BatchResult], object] | None,
        options: dict[str, Any],
    ) -> None:
        self.on_batch = on_batch
        self.originals: dict[str, FunctionTool] = {}
        self.runners: dict[str, FunctionTool] = {}
        self.tools: list[Any] = []
        for t in agent.tools:
            if not isinstance(t, FunctionTool) or t.needs_approval is not False:
                self.tools.append(t)
                continue
            name = t.qualified_name
            if name in self.originals:
                raise UsageError(
                    f"agent '{safe_str(agent.name, 80)}' has two function tools named "
                    f"'{safe_str(name, 80)}'; give each tool its own name"
                )
            self.originals[name] = t
            self.runners[name] = _runner(t)
            self.tools.append(_stand_in(t, self, references))
        options = dict(options)
        if "tools" in options:
            raise UsageError("weave() batches the agent's own tools: pass no tools= to it")
        options.setdefault("workflow_name", agent.name or "toolweave")
        user = list(check_middleware(options.pop("middleware", ()), "weave()"))
        self.orchestrator = Orchestrator(
            [_batch_tool(name, t) for name, t in self.originals.items()],
            middleware=[_announce, *user],
            **options,
        )
        self._waiting: OrderedDict[int, tuple[Any, _Turn]] = OrderedDict()
        self.live: set[_Turn] = set()
        """Turns whose batch is running."""
        # id(run) -> (a weak reference to the run's context, the call ids it answered): what
        # the SDK will not run again in that run. Weak, so a finished run's context goes.
        self._answered: OrderedDict[int, tuple[weakref.ref[Any], set[str]]] = OrderedDict()
        # The same for the batch ids each run's turns used.
        self._named: OrderedDict[int, tuple[weakref.ref[Any], set[str]]] = OrderedDict()

    def turn(self, run: RunContextWrapper[Any], response: ModelResponse) -> None:
        """Note the function calls of a model response, before the SDK starts running them."""
        items = [o for o in response.output if isinstance(o, ResponseFunctionToolCall)]
        if not any(_qualified(o) in self.originals for o in items):
            return
        answered = self._answered_in(run)
        written = []
        for item in items:
            name = _qualified(item)
            problem = None
            if name not in self.originals:
                problem = _NOT_BATCHED.format(name=to_text(name, 80))
            elif item.call_id in answered:
                problem = _ANSWERED_BEFORE.format(id=to_text(item.call_id, 80))
            written.append(Written(item.call_id, name, _raw_arguments(item.arguments), problem))
        calls = unique_calls(written)
        turn = _Turn(self, run, calls, self._batch_id(run, response.response_id))
        for item, call in zip(items, calls, strict=True):
            if call.error is None:
                turn.members[call.id] = self._member(turn, call, item)
                self._waiting[id(item)] = (item, turn)
        if len(self._waiting) > _MEMORY:  # runs that failed before their tools ran, mostly
            for key in [k for k, (_, t) in self._waiting.items() if not t.running]:
                del self._waiting[key]
                if len(self._waiting) <= _MEMORY // 2:
                    break

    def _batch_id(self, run: RunContextWrapper[Any], response_id: Any) -> str | None:
        """A turn's batch id: its model response's id, unless that is not usable or an
        earlier turn of this run had it (a server that repeats ids); then None."""
        seen = self._named.get(id(run))
        if seen is None or seen[0]() is not run:
            seen = self._named[id(run)] = (weakref.ref(run), set())
        self._named.move_to_end(id(run))
        while len(self._named) > _RUNS:
            self._named.popitem(last=False)
        found = usable_id(response_id, seen[1])
        if found is not None:
            seen[1].add(found)
        return found

    def arrive(self, ctx: ToolContext[Any], original: FunctionTool, given: str) -> _Member:
        """The member a stand-in's invocation belongs to (its turn noted by the hooks), or a
        batch of its own when no turn knows it (a turn resumed after an approval, say)."""
        item = ctx.tool_call
        entry = self._waiting.get(id(item))
        member = None
        if entry is not None and entry[0] is item:
            member = entry[1].members.get(ctx.tool_call_id)
        if member is None:
            logger.debug(
                "toolweave: Agents SDK call %r runs in a batch of its own", ctx.tool_call_id
            )
            call = ToolCall(
                id=ctx.tool_call_id or "call_0",
                name=original.qualified_name,
                arguments=_raw_arguments(given),
            )
            turn = _Turn(self, ctx, [call])
            member = turn.members[call.id] = self._member(turn, call, item)
        member.arrived(ctx)
        return member

    def _member(self, turn: _Turn, call: ToolCall, item: Any) -> _Member:
        return _Member(turn, call.id, self.originals[call.name], self.runners[call.name], item)

    def moved_on(self, run: RunContextWrapper[Any]) -> None:
        """``run`` asks the model again: the SDK has run every tool call it meant to run."""
        for turn in list(self.live):
            if turn.run is run:
                turn.over.set()

    def forget(self, member: _Member) -> None:
        """The member's own task is done with it: nothing needs to find it any more."""
        entry = self._waiting.get(id(member.item))
        if entry is not None and entry[0] is member.item:
            del self._waiting[id(member.item)]

    def answered(self, member: _Member) -> None:
        """The SDK has this call's answer: in this run, it will not run the call id again."""
        run = member.turn.run
        seen = self._answered.get(id(run))
        if seen is None or seen[0]() is not run:
            seen = self._answered[id(run)] = (weakref.ref(run), set())
        seen[1].add(member.call_id)
        self._answered.move_to_end(id(run))
        while len(self._answered) > _RUNS:
            self._answered.popitem(last=False)

    def _answered_in(self, run: RunContextWrapper[Any]) -> set[str]:
        seen = self._answered.get(id(run))
        return seen[1] if seen is not None and seen[0]() is run else set()

    def finished(self, result: BatchResult) -> None:
        if self.on_batch is None:
            return
        try:
            self.on_batch(result)
        except Exception:  # a callback of the user's must not fail the run
            logger.warning("toolweave: on_batch raised; the run goes on", exc_info=True)


def _qualified(item: Any) -> str:
    name = getattr(item, "name", None)
    namespace = getattr(item, "namespace", None)
    name = name if isinstance(name, str) else ""
    return f"{namespace}.{name}" if isinstance(namespace, str) and namespace and name else name


def _raw_arguments(arguments: Any) -> Any:
    """The model's argument text; nothing at all means no arguments (the SDK reads it so)."""
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return "{}"
    return arguments


# ------------------------------------------------------------------ the SDK's side


def _stand_in(original: FunctionTool, state: _Weave, references: bool) -> FunctionTool:
    """The tool the woven agent shows the model and the SDK invokes: the original's name,
    description and schema (accepting references), its invocation handed to the batch."""

    async def on_invoke_tool(ctx: ToolContext[Any], input: str) -> Any:
        member = state.arrive(ctx, original, input)
        try:
            answer = await asyncio.shield(member.answer)
        except asyncio.CancelledError:
            member.turn.abandon()  # the SDK is tearing the turn down: so does the batch
            raise
        finally:
            state.forget(member)
        state.answered(member)
        if answer.error is not None:
            raise answer.error
        return answer.value

    stand_in = copy.copy(original)
    schema = copy.deepcopy(original.params_json_schema)
    if references:
        schema = _flat(accept_references(schema))
        if stand_in.strict_json_schema:
            schema = ensure_strict_json_schema(schema)
        stand_in.description = describe_references(original.description)
    stand_in.params_json_schema = schema
    stand_in.on_invoke_tool = on_invoke_tool
    # Run inside the batch instead: on the resolved arguments, before other calls read the
    # output, and without counting the wait for dependencies against the tool's timeout.
    stand_in.tool_input_guardrails = None
    stand_in.tool_output_guardrails = None
    stand_in.timeout_seconds = None
    return stand_in


def _flat(schema: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [{anyOf: [a, b]}, string]`` as ``anyOf: [a, b, string]`` (an optional
    parameter that also takes a reference)."""
    for name, prop in (schema.get("properties") or {}).items():
        options = prop.get("anyOf") if isinstance(prop, dict) else None
        if isinstance(options, list) and options and isinstance(options[0], dict):
            inner = options[0]
            if set(inner) == {"anyOf"} and isinstance(inner["anyOf"], list):
                schema["properties"][name] = {**prop, "anyOf": [*inner["anyOf"], *options[1:]]}
    return schema


@dataclass(slots=True)
class _Answer:
    """What a stand-in gives the SDK: a value, or an exception to raise."""

    value: Any = None
    error: BaseException | None = None


# ------------------------------------------------------------------ one model turn


@dataclass(eq=False)
class _Member:
    """One batched call: its tool, its SDK task's context once it arrives, and its answer."""

    turn: _Turn
    call_id: str
    tool: FunctionTool
    runner: FunctionTool
    item: Any
    """The model's function call item (the SDK hands the same object to the call's task)."""
    answer: asyncio.Future[_Answer] = field(init=False)
    ctx: ToolContext[Any] | None = None
    context: contextvars.Context | None = None
    came: asyncio.Event = field(default_factory=asyncio.Event)
    pending: _Answer | None = None
    """The answer the last attempt set when it failed (a guardrail's, the failure text)."""
    used: RunContextWrapper[Any] | None = None
    """The context the call last ran with."""

    def __post_init__(self) -> None:
        self.answer = asyncio.get_running_loop().create_future()

    def arrived(self, ctx: ToolContext[Any]) -> None:
        if self.ctx is None:
            self.ctx = ctx
            self.context = contextvars.copy_context()
            self.came.set()
        self.turn.start()

    def settle(self, answer: _Answer) -> None:
        if not self.answer.done():
            self.answer.set_result(answer)


class _Turn:
    """The function calls of one model response, run as one batch."""

    def __init__(
        self,
        state: _Weave,
        run: RunContextWrapper[Any],
        calls: list[ToolCall],
        batch_id: str | None = None,
    ) -> None:
        self.state = state
        self.run = run
        self.calls = calls
        self.batch_id = batch_id
        """The model response's id (``ModelResponse.response_id``), or None."""
        self.members: dict[str, _Member] = {}
        self.goal = _goal(run)
        self.over = asyncio.Event()
        """Set when the run asks the model again: calls whose tasks have not come never will."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is not None:
            return
        context = contextvars.copy_context()
        context.run(_TURN.set, self)
        self._task = asyncio.get_running_loop().create_task(self._drive(), context=context)
        self._task.add_done_callback(_read_outcome)
        self.state.live.add(self)

    @property
    def running(self) -> bool:
        """Whether its batch has started and not ended (its calls' tasks may still come)."""
        return self._task is not None and not self._task.done()

    def abandon(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _drive(self) -> None:
        try:
            result = await self.state.orchestrator.run(
                self.calls,
                goal=self.goal,
                metadata={"run_context": self.run},
                batch_id=self.batch_id,
            )
        except BaseException as exc:
            self.state.live.discard(self)
            text = f"Error: not run: the toolweave batch ended early ({type(exc).__name__})."
            for m in self.members.values():
                m.settle(_Answer(value=text))
            raise
        self.state.live.discard(self)
        for r in result.results:
            member = self.members.get(r.call_id)
            if member is not None:
                member.settle(_Answer(value=r.output if r.ok else _for_model(r)))
        self.state.finished(result)

    async def execute(self, member: _Member, arguments: dict[str, Any]) -> Any:
        """Run ``member``'s tool with these (resolved) arguments, in its own task's context."""
        member.pending = None
        ctx, context = await self._context_for(member)
        text = _arguments_json(arguments)
        ctx.tool_arguments = text  # guardrails, the tool and on_tool_end see what runs
        member.used = ctx
        job = asyncio.get_running_loop().create_task(
            _invoke(member, ctx, text, otel_context.get_current()), context=context.copy()
        )
        try:
            return await job
        finally:
            job.cancel()  # a no-op once it ended; else the batch gave up on it

    async def _context_for(self, member: _Member) -> tuple[ToolContext[Any], contextvars.Context]:
        """The call's own ``ToolContext`` and task context, once its SDK task arrives. A task
        that has not come within ``_ARRIVAL_GRACE`` is run for with a context made from another
        call's; once the SDK has moved past the turn's tools, it is not coming at all."""
        if not member.came.is_set():
            came = asyncio.ensure_future(member.came.wait())
            over = asyncio.ensure_future(self.over.wait())
            try:
                await asyncio.wait(
                    {came, over}, timeout=_ARRIVAL_GRACE, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                came.cancel()
                over.cancel()
        if member.ctx is not None and member.context is not None:
            return member.ctx, member.context
        if self.over.is_set():
            raise SkipCall("the Agents SDK did not start it before it moved on from this turn")
        other = next((m for m in self.members.values() if m.ctx is not None), None)
        if other is None or other.ctx is None or other.context is None:
            raise SkipCall("the Agents SDK did not start it")
        logger.debug("toolweave: Agents SDK call %r runs before its task came", member.call_id)
        ctx = ToolContext.from_agent_context(
            other.ctx,
            member.call_id,
            tool_call=member.item,
            agent=other.ctx.agent,
            run_config=other.ctx.run_config,
        )
        return ctx, other.context


async def _invoke(member: _Member, ctx: ToolContext[Any], text: str, otel: Any) -> Any:
    """The original tool, as the SDK runs it: input guardrails, its invoker (its failure
    policy deciding what the model is told), output guardrails. Under the call's
    ``execute_tool`` span, so the tool's own spans nest there."""
    token = otel_context.attach(otel)
    try:
        tool = member.tool
        agent: Any = ctx.agent
        for guard in tool.tool_input_guardrails or ():
            verdict = await guard.run(ToolInputGuardrailData(context=ctx, agent=agent))
            kind = verdict.behavior["type"]
            if kind == "raise_exception":
                tripped = ToolInputGuardrailTripwireTriggered(guardrail=guard, output=verdict)
                member.pending = _Answer(error=tripped)
                raise tripped
            if kind == "reject_content":
                message = str(verdict.behavior.get("message", ""))
                member.pending = _Answer(value=message)
                raise SkipCall(f"the input guardrail '{guard.get_name()}' rejected it: {message}")
        try:
            output = await invoke_function_tool(
                function_tool=member.runner, context=ctx, arguments=text
            )
        except Exception as exc:
            told = await maybe_invoke_function_tool_failure_error_function(
                function_tool=tool, context=ctx, error=exc
            )
            member.pending = _Answer(error=exc) if told is None else _Answer(value=told)
            raise
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # not an Exception: the SDK lets it end the run, as here
            member.pending = _Answer(error=exc)
            raise
        for out_guard in tool.tool_output_guardrails or ():
            data = ToolOutputGuardrailData(context=ctx, agent=agent, output=output)
            verdict = await out_guard.run(data)
            kind = verdict.behavior["type"]
            if kind == "raise_exception":
                raised = ToolOutputGuardrailTripwireTriggered(guardrail=out_guard, output=verdict)
                member.pending = _Answer(error=raised)
                raise raised
            if kind == "reject_content":
                message = str(verdict.behavior.get("message", ""))
                member.pending = _Answer(value=message)
                raise _OutputRejected(out_guard.get_name(), message)
        return output
    finally:
        otel_context.detach(token)


class _OutputRejected(Exception):
    """A tool's output guardrail rejected its output: the model is told the guardrail's
    message, and no other call of the batch reads the output."""

    def __init__(self, guardrail: str, message: str) -> None:
        super().__init__(
            f"the output guardrail '{guardrail}' rejected this call's output: {message}"
        )


def _runner(tool: FunctionTool) -> FunctionTool:
    """A copy of ``tool`` that raises what the tool raises (``_invoke`` applies its failure
    policy, so the batch knows the call failed) and has no timeout (the batch applies it)."""
    runner = copy.copy(tool)
    set_function_tool_failure_error_function(runner, None)
    runner.timeout_seconds = None
    runner.tool_input_guardrails = runner.tool_output_guardrails = None
    return runner


# ------------------------------------------------------------------ toolweave's side


def _batch_tool(name: str, original: FunctionTool) -> Tool:
    async def run(**arguments: Any) -> Any:
        member = _MEMBER.get()
        return await member.turn.execute(member, arguments)

    run.__name__ = name
    return Tool(
        name=name,
        description=original.description,
        fn=run,
        args_schema=_AnyArguments,  # the SDK's tool validates, and words its own errors
        is_async=True,
        json_schema=copy.deepcopy(original.params_json_schema),
        timeout=original.timeout_seconds,
    )


async def _announce(request: CallRequest, call_next: CallNext) -> Any:
    """The outermost middleware: each call's SDK task gets its answer as soon as the call's
    chain has ended, and other calls read the output as data (JSON text parsed)."""
    turn = _TURN.get(None)
    member = turn.members.get(request.call.id) if turn is not None else None
    if member is None:
        return await call_next(request)
    token = _MEMBER.set(member)
    try:
        value = await call_next(request)
    except ToolTimeoutError as exc:
        member.settle(await _timed_out(member, exc.timeout))
        raise
    except BaseException:
        if member.pending is not None:
            member.settle(member.pending)
        raise
    finally:
        _MEMBER.reset(token)
    member.settle(_Answer(value=value))
    return _as_data(value)


async def _timed_out(member: _Member, seconds: float) -> _Answer:
    """What the SDK tells the model when the tool times out (its ``timeout_behavior``)."""
    tool = member.tool
    error = SDKToolTimeoutError(tool_name=tool.name, timeout_seconds=seconds)
    if tool.timeout_behavior == "raise_exception":
        return _Answer(error=error)
    if tool.timeout_error_function is None:
        return _Answer(
            value=default_tool_timeout_error_message(tool_name=tool.name, timeout_seconds=seconds)
        )
    try:
        told = tool.timeout_error_function(member.used or member.turn.run, error)
        return _Answer(value=await told if inspect.isawaitable(told) else told)
    except Exception as exc:
        return _Answer(error=exc)


def _for_model(result: CallResult) -> str:
    """A call toolweave answered without running it to the end, as the model reads it."""
    text = to_text(result.error or result.status, 4000)
    return f"Not run: {text}" if result.status == "skipped" else f"Error: {text}"


def _as_data(value: Any) -> Any:
    """The output other calls' references read: JSON text of an object or a list parsed (a
    tool answering the model in text often writes JSON), anything else as it is."""
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            return value
        return parsed if isinstance(parsed, dict | list) else value
    return value


def _arguments_json(arguments: Mapping[str, Any]) -> str:
    """Resolved arguments as the JSON text an SDK tool reads. Values from other calls'
    outputs that JSON cannot hold as they are (a pydantic model, a dataclass, NaN, an int
    past Python's digit limit) become JSON-safe data."""
    try:
        return json.dumps(arguments, allow_nan=False, default=to_jsonable)
    except (TypeError, ValueError, RecursionError):
        return json.dumps(to_jsonable(dict(arguments)))


def _goal(run: RunContextWrapper[Any]) -> str | None:
    """The user's latest message of this run, for the decider."""
    for item in reversed(getattr(run, "turn_input", None) or []):
        if isinstance(item, Mapping) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, list):
                content = " ".join(
                    str(p.get("text", "")) for p in content if isinstance(p, Mapping)
                )
            return to_text(content, 4000)
    return None


def _read_outcome(task: asyncio.Task[None]) -> None:
    """Read a finished batch's outcome, so asyncio never reports it as unretrieved (its
    calls were answered already)."""
    if not task.cancelled() and task.exception() is not None:
        logger.warning("toolweave: an Agents SDK batch failed: %s", safe_str(task.exception(), 300))


# ------------------------------------------------------------------ the agent's hooks


class _Hooks(AgentHooks[Any]):
    """The woven agent's hooks: the agent's own (if any), and the turn noted at
    ``on_llm_end``, before the SDK runs the response's tool calls."""

    def __init__(self, inner: Any, state: _Weave) -> None:
        self.inner = inner
        self.state = state

    async def on_llm_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], response: ModelResponse
    ) -> None:
        try:
            self.state.turn(context, response)
        except Exception:  # the calls then run in batches of their own; the run goes on
            logger.warning("toolweave: could not note an Agents SDK turn", exc_info=True)
        if self.inner is not None:
            await self.inner.on_llm_end(context, agent, response)

    async def on_llm_start(
        self,
        context: RunContextWrapper[Any],
        agent: Agent[Any],
        system_prompt: str | None,
        input_items: list[TResponseInputItem],
    ) -> None:
        self.state.moved_on(context)
        if self.inner is not None:
            await self.inner.on_llm_start(context, agent, system_prompt, input_items)

    async def on_start(self, context: AgentHookContext[Any], agent: Agent[Any]) -> None:
        if self.inner is not None:
            await self.inner.on_start(context, agent)

    async def on_end(self, context: AgentHookContext[Any], agent: Agent[Any], output: Any) -> None:
        if self.inner is not None:
            await self.inner.on_end(context, agent, output)

    async def on_handoff(
        self, context: RunContextWrapper[Any], agent: Agent[Any], source: Agent[Any]
    ) -> None:
        if self.inner is not None:
            await self.inner.on_handoff(context, agent, source)

    async def on_tool_start(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: SDKTool
    ) -> None:
        if self.inner is not None:
            await self.inner.on_tool_start(context, agent, tool)

    async def on_tool_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: SDKTool, result: object
    ) -> None:
        if self.inner is not None:
            await self.inner.on_tool_end(context, agent, tool, result)
