"""Parity with LangGraph: the same graphs and tools run through LangGraph's ``ToolNode`` (and
plain ``create_agent``) and through toolweave's drop-ins (``ToolweaveNode``,
``ToolweaveMiddleware``), compared on final states and messages.

Each parity test runs over an ``engine`` and a ``kind``:

- engine ``toolnode`` is the baseline: LangGraph's own ``ToolNode``, or ``create_agent`` with no
  middleware. Its half pins what LangGraph does today, so ``-k toolnode`` checks the baseline.
- engine ``toolweave`` is the drop-in. Its half runs the same scenario through the baseline as
  well and asserts that the two are equal, then checks the same pinned facts.
- kind ``stategraph`` is a hand-written ``StateGraph`` (the tool node gets the whole state),
  ``react_agent`` is ``langgraph.prebuilt.create_react_agent`` (version v2: one ``Send`` per
  call, each carrying the state), ``create_agent`` is ``langchain.agents.create_agent`` (one
  ``Send`` per call carrying ``[tool_call]``; the node reads the state from the channels).

Messages are compared as (type, content, tool_call_id, name, status, artifact); ids are ignored.
The tests at the end cover references between the calls of one AI message, toolweave's own
feature; their toolnode half shows that ToolNode passes a reference on as a plain string.
"""

from __future__ import annotations

import asyncio
import operator
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Annotated, Any, NotRequired

import pytest
from langchain.agents import AgentState, create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatResult
from langchain_core.tools import BaseTool, InjectedToolCallId, ToolException
from langchain_core.tools import tool as lc_tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.managed import RemainingSteps
from langgraph.prebuilt import (
    InjectedState,
    InjectedStore,
    ToolNode,
    ToolRuntime,
    create_react_agent,
    tools_condition,
)
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command, StreamMode, interrupt
from langgraph.warnings import LangGraphDeprecatedSinceV10
from pydantic import Field
from typing_extensions import TypedDict  # pydantic needs it for TypedDicts on 3.11

from toolweave.adapters.langchain import ToolweaveMiddleware, ToolweaveNode

ENGINES = ("toolnode", "toolweave")
KINDS = ("stategraph", "react_agent", "create_agent")
NODE_KINDS = ("stategraph", "react_agent")  # the kinds that take ToolNode options
MODEL_NODE = {"stategraph": "agent", "react_agent": "agent", "create_agent": "model"}
STYLES = ("sync", "async")  # graph.invoke, or graph.ainvoke


def setups(kinds: Sequence[str] = KINDS, engines: Sequence[str] = ENGINES) -> list[Any]:
    return [pytest.param(e, k, id=f"{e}-{k}") for e in engines for k in kinds]


# --- states, model and graphs ---------------------------------------------------------------------


class Context(TypedDict):
    tenant: str


class GraphState(TypedDict):
    """The hand-written graph's state: messages plus keys for injection and Commands."""

    messages: Annotated[list[AnyMessage], add_messages]
    user: NotRequired[str]
    flag: NotRequired[str]
    notes: NotRequired[Annotated[list[str], operator.add]]


class ReactState(GraphState):
    """create_react_agent requires ``remaining_steps`` in a custom state."""

    remaining_steps: NotRequired[RemainingSteps]


class CreateAgentState(AgentState[Any]):
    """create_agent rejects managed keys such as ``remaining_steps`` in its state."""

    user: NotRequired[str]
    flag: NotRequired[str]
    notes: NotRequired[Annotated[list[str], operator.add]]


class ScriptedChatModel(GenericFakeChatModel):
    """A fake chat model that answers from a script, records the tool schemas it was bound to
    (as OpenAI tool dicts) and the messages of every call, and fails loudly when called past
    its script. Streaming is off: the fake's ``_stream`` drops ``tool_calls``."""

    disable_streaming: bool = True
    script_length: int = 0
    bound_tools: list[dict[str, Any]] = Field(default_factory=list)
    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        """Record the tools as OpenAI tool dicts; ``create_agent`` also passes
        ``tool_choice``."""
        self.bound_tools = [convert_to_openai_tool(t) for t in tools]
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        if len(self.seen) >= self.script_length:
            raise AssertionError(f"the model was called past its {self.script_length} replies")
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)

    def parameters_of(self, name: str) -> dict[str, Any]:
        """The parameters the model was shown for one tool."""
        [spec] = [t for t in self.bound_tools if t["function"]["name"] == name]
        return dict(spec["function"]["parameters"])


def scripted(*replies: AIMessage) -> ScriptedChatModel:
    return ScriptedChatModel(messages=iter(replies), script_length=len(replies))


def calls(*specs: tuple[str, str, dict[str, Any]]) -> AIMessage:
    """An AI message with tool calls given as (id, name, args)."""
    return AIMessage(content="", tool_calls=[{"id": i, "name": n, "args": a} for i, n, a in specs])


DEFAULT: Any = object()  # "leave handle_tool_errors at the node's default"


def build(
    kind: str,
    engine: str,
    tools: Sequence[BaseTool],
    model: ScriptedChatModel,
    *,
    handle_tool_errors: Any = DEFAULT,
    store: BaseStore | None = None,
    references: bool = True,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The agent graph of one kind, its tools run by LangGraph (``toolnode``) or toolweave,
    compiled with an ``InMemorySaver`` and a store. ``references`` is toolweave's option to
    advertise references in the tools the model sees."""
    saver, store = InMemorySaver(), store if store is not None else InMemoryStore()
    options = {} if handle_tool_errors is DEFAULT else {"handle_tool_errors": handle_tool_errors}
    if kind == "create_agent":
        assert not options, "create_agent has no handle_tool_errors"
        return create_agent(
            model,
            list(tools),
            middleware=[ToolweaveMiddleware(references=references)]
            if engine == "toolweave"
            else [],
            state_schema=CreateAgentState,
            context_schema=Context,
            checkpointer=saver,
            store=store,
        )
    if engine == "toolweave":
        options["references"] = references
    node_class = ToolNode if engine == "toolnode" else ToolweaveNode
    node = node_class(list(tools), **options)
    if kind == "react_agent":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LangGraphDeprecatedSinceV10)
            return create_react_agent(
                model,
                tools=node,
                state_schema=ReactState,
                context_schema=Context,
                checkpointer=saver,
                store=store,
            )
    assert kind == "stategraph"
    bound = model.bind_tools(list(node.tools_by_name.values()))

    def agent(state: GraphState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    graph = StateGraph(GraphState, context_schema=Context)
    graph.add_node("agent", agent)
    graph.add_node("tools", node)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=saver, store=store)


CONFIG: Any = {"configurable": {"thread_id": "parity"}}
CONTEXT: Context = {"tenant": "acme"}


def start(text: str = "go") -> dict[str, Any]:
    return {"messages": [HumanMessage(text)], "user": "ada"}


def invoke(graph: CompiledStateGraph[Any, Any, Any, Any], value: Any, style: str = "sync") -> Any:
    """One turn, with ``graph.invoke`` or (style "async") ``graph.ainvoke``."""
    if style == "async":
        return asyncio.run(graph.ainvoke(value, CONFIG, context=CONTEXT))
    return graph.invoke(value, CONFIG, context=CONTEXT)


Row = tuple[str, Any, Any, Any, Any, Any]


def row(message: BaseMessage) -> Row:
    """A message as (type, content, tool_call_id, name, status, artifact)."""
    return (
        message.type,
        message.content,
        getattr(message, "tool_call_id", None),
        getattr(message, "name", None) if isinstance(message, ToolMessage) else None,
        getattr(message, "status", None),
        getattr(message, "artifact", None),
    )


def plain(value: Any) -> Any:
    """A value with its messages as rows, for comparing and sorting."""
    if isinstance(value, BaseMessage):
        return row(value)
    if isinstance(value, Command):
        return ("Command", plain(value.update), value.goto, value.graph)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def final_state(graph: CompiledStateGraph[Any, Any, Any, Any]) -> dict[str, Any]:
    """The thread's state after the run, messages as rows."""
    return dict(plain(dict(graph.get_state(CONFIG).values)))


def run_to_end(graph: CompiledStateGraph[Any, Any, Any, Any], style: str) -> dict[str, Any]:
    """One turn from ``start()``, then the thread's state."""
    invoke(graph, start(), style)
    return final_state(graph)


def contents(state: dict[str, Any]) -> list[Any]:
    return [r[1] for r in state["messages"]]


def tool_rows(state: dict[str, Any]) -> list[Row]:
    return [r for r in state["messages"] if r[0] == "tool"]


def settle(run: Callable[[], Any]) -> tuple[str, Any]:
    """What a run gives: ("state", value), or ("raised", (exception type name, message))."""
    try:
        return ("state", run())
    except Exception as exc:
        return ("raised", (type(exc).__name__, str(exc)))


def parity(scenario: Callable[..., Any], engine: str, kind: str, *args: Any) -> Any:
    """The scenario's result for ``engine``; for toolweave, asserted equal to ToolNode's."""
    got = scenario(engine, kind, *args)
    if engine != "toolnode":
        assert got == scenario("toolnode", kind, *args)
    return got


# --- tools ----------------------------------------------------------------------------------------


@lc_tool
def add(a: int, b: int = 1) -> int:
    """Add two integers."""
    return a + b


@lc_tool
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


# --- a batch of two independent calls -------------------------------------------------------------


def two_calls(engine: str, kind: str) -> dict[str, Any]:
    model = scripted(
        calls(("c1", "add", {"a": 2, "b": 3}), ("c2", "shout", {"text": "hi"})),
        AIMessage("done"),
    )
    graph = build(kind, engine, [add, shout], model)
    invoke(graph, start())
    assert len(model.seen) == model.script_length
    return final_state(graph)


@pytest.mark.parametrize(("engine", "kind"), setups())
def test_a_batch_of_two_independent_calls(engine: str, kind: str) -> None:
    state = parity(two_calls, engine, kind)
    assert tool_rows(state) == [
        ("tool", "5", "c1", "add", "success", None),
        ("tool", "HI", "c2", "shout", "success", None),
    ]
    assert contents(state) == ["go", "", "5", "HI", "done"]
    assert state["user"] == "ada"


# --- what the model is shown ----------------------------------------------------------------------


def shown(engine: str, kind: str, references: bool = False) -> list[dict[str, Any]]:
    model = scripted(AIMessage("nothing to do"))
    graph = build(kind, engine, [add, shout], model, references=references)
    invoke(graph, start())
    return model.bound_tools


@pytest.mark.parametrize("kind", KINDS)
def test_with_references_the_model_is_told_it_may_refer_to_other_calls(kind: str) -> None:
    """toolweave's default: every non-string parameter also takes a reference, and each
    description says how; the rest of the schema is the one ToolNode shows."""
    [add_spec, shout_spec] = shown("toolweave", kind, references=True)
    hint = (
        'Any argument may instead be a reference "${N.path}" to the output of call N (its id or '
        "1-based position) of this same batch; the call then runs after call N."
    )
    assert add_spec["function"]["description"] == "Add two integers.\n\n" + hint
    assert add_spec["function"]["parameters"]["properties"] == {
        "a": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "b": {"anyOf": [{"type": "integer"}, {"type": "string"}], "default": 1},
    }
    assert add_spec["function"]["parameters"]["required"] == ["a"]
    assert shout_spec["function"]["parameters"]["properties"] == {"text": {"type": "string"}}


@pytest.mark.parametrize(("engine", "kind"), setups())
def test_the_model_is_shown_the_same_tools(engine: str, kind: str) -> None:
    specs = parity(shown, engine, kind)
    assert specs == [
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add two integers.",
                "parameters": {
                    "properties": {
                        "a": {"type": "integer"},
                        "b": {"default": 1, "type": "integer"},
                    },
                    "required": ["a"],
                    "type": "object",
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "shout",
                "description": "Upper-case a text.",
                "parameters": {
                    "properties": {"text": {"type": "string"}},
                    "required": ["text"],
                    "type": "object",
                },
            },
        },
    ]


# --- injected arguments ---------------------------------------------------------------------------


@lc_tool
def greet(greeting: str, user: Annotated[str, InjectedState("user")]) -> str:
    """Greet the current user."""
    return f"{greeting}, {user}"


@lc_tool
def describe_state(state: Annotated[dict[str, Any], InjectedState]) -> str:
    """Describe the conversation so far."""
    return f"{len(state['messages'])} messages, user {state.get('user')}"


@lc_tool
def remember(key: str, value: str, store: Annotated[BaseStore, InjectedStore()]) -> str:
    """Remember a value under a key."""
    store.put(("memory",), key, {"value": value})
    return f"remembered {key}"


@lc_tool
def whoami(note: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> str:
    """Say which call this is."""
    return f"{note} from {tool_call_id}"


@lc_tool
def inspect_runtime(topic: str, runtime: ToolRuntime[Context]) -> dict[str, Any]:
    """Report what the runtime carries."""
    seed = runtime.store.get(("prefs",), "seed") if runtime.store is not None else None
    return {
        "topic": topic,
        "call": runtime.tool_call_id,
        "user": runtime.state.get("user"),
        "messages": len(runtime.state["messages"]),
        "tenant": runtime.context["tenant"],
        "seed": seed.value if seed is not None else None,
    }


INJECTED_TOOLS = [greet, describe_state, remember, whoami, inspect_runtime]
MODEL_ARGUMENTS = {  # what the model may send; the injected arguments are hidden from it
    "greet": ["greeting"],
    "describe_state": [],
    "remember": ["key", "value"],
    "whoami": ["note"],
    "inspect_runtime": ["topic"],
}


def injected(engine: str, kind: str) -> dict[str, Any]:
    model = scripted(
        calls(
            ("c1", "greet", {"greeting": "hello"}),
            ("c2", "describe_state", {}),
            ("c3", "remember", {"key": "colour", "value": "teal"}),
            ("c4", "whoami", {"note": "hi"}),
            ("c5", "inspect_runtime", {"topic": "weather"}),
        ),
        AIMessage("done"),
    )
    store = InMemoryStore()
    store.put(("prefs",), "seed", {"colour": "red"})
    graph = build(kind, engine, INJECTED_TOOLS, model, store=store)
    invoke(graph, start())
    stored = store.get(("memory",), "colour")
    return {
        "state": final_state(graph),
        "schemas": {name: model.parameters_of(name) for name in MODEL_ARGUMENTS},
        "stored": stored.value if stored is not None else None,
    }


@pytest.mark.parametrize(("engine", "kind"), setups())
def test_injected_arguments_are_hidden_from_the_model_and_filled_in(engine: str, kind: str) -> None:
    got = parity(injected, engine, kind)
    for name, arguments in MODEL_ARGUMENTS.items():
        schema = got["schemas"][name]
        assert sorted(schema.get("properties", {})) == sorted(arguments), name
        assert sorted(schema.get("required", [])) == sorted(arguments), name
    assert [r[1] for r in tool_rows(got["state"])] == [
        "hello, ada",
        "2 messages, user ada",
        "remembered colour",
        "hi from c4",
        '{"topic": "weather", "call": "c5", "user": "ada", "messages": 2, "tenant": "acme",'
        ' "seed": {"colour": "red"}}',
    ]
    assert got["stored"] == {"value": "teal"}


# --- Commands -------------------------------------------------------------------------------------


@lc_tool
def set_flag(value: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> Command[Any]:
    """Set the flag."""
    message = ToolMessage(f"flag is {value}", tool_call_id=tool_call_id)
    return Command(update={"messages": [message], "flag": value})


@lc_tool
def add_note(note: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> Command[Any]:
    """Add a note to the notes."""
    message = ToolMessage(f"noted {note}", tool_call_id=tool_call_id)
    return Command(update={"messages": [message], "notes": [note]})


COMMAND_BATCHES: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "one-command": [("c1", "set_flag", {"value": "on"}), ("c2", "add", {"a": 1})],
    "different-keys": [("c1", "set_flag", {"value": "on"}), ("c2", "add_note", {"note": "a"})],
    "same-key-with-reducer": [("c1", "add_note", {"note": "a"}), ("c2", "add_note", {"note": "b"})],
    "same-key-without-reducer": [
        ("c1", "set_flag", {"value": "on"}),
        ("c2", "set_flag", {"value": "off"}),
    ],
}


def commands(engine: str, kind: str, batch: str, style: str) -> tuple[str, Any]:
    model = scripted(calls(*COMMAND_BATCHES[batch]), AIMessage("done"))
    graph = build(kind, engine, [set_flag, add_note, add], model)
    return settle(lambda: run_to_end(graph, style))


EXPECTED_COMMAND_STATES: dict[str, Any] = {
    "one-command": {"flag": "on", "notes": [], "tools": ["flag is on", "2"]},
    "different-keys": {"flag": "on", "notes": ["a"], "tools": ["flag is on", "noted a"]},
    "same-key-with-reducer": {"flag": None, "notes": ["a", "b"], "tools": ["noted a", "noted b"]},
}


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("batch", list(COMMAND_BATCHES))
@pytest.mark.parametrize(("engine", "kind"), setups())
def test_commands_update_the_state(engine: str, kind: str, batch: str, style: str) -> None:
    how, got = parity(commands, engine, kind, batch, style)
    if batch == "same-key-without-reducer":  # two writes to a plain key in one step
        assert how == "raised"
        assert got[0] == "InvalidUpdateError"
        assert got[1].startswith("At key 'flag': Can receive only one value per step.")
        return
    assert how == "state"
    expected = EXPECTED_COMMAND_STATES[batch]
    assert got.get("flag") == expected["flag"]
    assert got["notes"] == expected["notes"]
    assert [r[1] for r in tool_rows(got)] == expected["tools"]
    assert [(r[2], r[3], r[4]) for r in tool_rows(got)] == [
        ("c1", COMMAND_BATCHES[batch][0][1], "success"),
        ("c2", COMMAND_BATCHES[batch][1][1], "success"),
    ]


# --- content and artifact -------------------------------------------------------------------------


@lc_tool(response_format="content_and_artifact")
def chart(points: int) -> tuple[str, dict[str, Any]]:
    """Draw a chart."""
    return f"a chart of {points} points", {"points": list(range(points))}


def artifact(engine: str, kind: str) -> dict[str, Any]:
    model = scripted(
        calls(("c1", "chart", {"points": 3}), ("c2", "add", {"a": 1})), AIMessage("ok")
    )
    graph = build(kind, engine, [chart, add], model)
    invoke(graph, start())
    return final_state(graph)


@pytest.mark.parametrize(("engine", "kind"), setups())
def test_content_and_artifact_keeps_the_artifact(engine: str, kind: str) -> None:
    state = parity(artifact, engine, kind)
    assert tool_rows(state) == [
        ("tool", "a chart of 3 points", "c1", "chart", "success", {"points": [0, 1, 2]}),
        ("tool", "2", "c2", "add", "success", None),
    ]


# --- interrupts -----------------------------------------------------------------------------------


def interrupting_tools(ran: list[str]) -> list[BaseTool]:
    """``tick`` finishes at once; ``ask`` waits for it, then interrupts for an answer."""
    ticked = threading.Event()

    @lc_tool
    def tick(n: int) -> str:
        """Count a tick."""
        ran.append("tick")
        ticked.set()
        return f"tick {n}"

    @lc_tool
    def ask(question: str) -> str:
        """Ask the human a question."""
        ticked.wait(timeout=5)
        answer = interrupt({"question": question})
        return f"the human said {answer}"

    return [tick, ask]


def interrupted(engine: str, kind: str, style: str, runs: dict[str, list[str]]) -> dict[str, Any]:
    ran = runs[engine]
    model = scripted(
        calls(("c1", "tick", {"n": 1}), ("c2", "ask", {"question": "proceed?"})),
        AIMessage("done"),
    )
    graph = build(kind, engine, interrupting_tools(ran), model)
    paused = invoke(graph, start(), style)
    snapshot = graph.get_state(CONFIG)
    ticks_before_resume = ran.count("tick")
    invoke(graph, Command(resume="yes"), style)
    return {
        "paused": [i.value for i in paused["__interrupt__"]],
        "pending": [i.value for i in snapshot.interrupts],
        "next": snapshot.next,
        "ticks_before_resume": ticks_before_resume,
        "state": final_state(graph),
    }


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(("engine", "kind"), setups())
def test_interrupt_inside_a_tool_pauses_and_resumes(engine: str, kind: str, style: str) -> None:
    runs: dict[str, list[str]] = {e: [] for e in ENGINES}
    got = parity(interrupted, engine, kind, style, runs)
    assert got["paused"] == got["pending"] == [{"question": "proceed?"}]
    assert got["next"] == ("tools",)
    assert got["ticks_before_resume"] == 1
    assert tool_rows(got["state"]) == [
        ("tool", "tick 1", "c1", "tick", "success", None),
        ("tool", "the human said yes", "c2", "ask", "success", None),
    ]
    assert contents(got["state"])[-1] == "done"
    # Observed ToolNode fact: a single tools node (stategraph) re-runs as a whole on resume, so
    # the call that had finished before the interrupt runs a second time; with one Send per
    # call (react_agent, create_agent) its write is kept and it runs once.
    assert runs["toolnode"].count("tick") == (2 if kind == "stategraph" else 1)
    if engine == "toolweave":  # toolweave runs a finished call exactly once, in every kind
        assert runs["toolweave"].count("tick") == 1


# --- tool errors ----------------------------------------------------------------------------------


@lc_tool
def reject(value: str) -> str:
    """Always fails with a ValueError."""
    raise ValueError(f"bad value: {value}")


@lc_tool
def break_down(value: str) -> str:
    """Always fails with a ToolException."""
    raise ToolException(f"tool broke on {value}")


def handle_value_errors(e: ValueError) -> str:
    return f"handled: {e}"


SETTINGS: dict[str, Any] = {
    "default": DEFAULT,
    "true": True,
    "string": "Something went wrong; try again.",
    "callable": handle_value_errors,
    "false": False,
}
FAILURES = {
    "value-error": ("reject", {"value": "x"}),
    "tool-exception": ("break_down", {"value": "x"}),
    "bad-arguments": ("add", {"a": "many"}),
}
BAD_ARGUMENTS = (
    "Error invoking tool 'add' with kwargs {'a': 'many'} with error:\n"
    " a: Input should be a valid integer, unable to parse string as an integer\n"
    " Please fix the error and try again."
)
RAISED = {
    "value-error": ("raised", ("ValueError", "bad value: x")),
    "tool-exception": ("raised", ("ToolException", "tool broke on x")),
    "bad-arguments": ("raised", ("ToolInvocationError", BAD_ARGUMENTS)),
}


def answered(content: str) -> tuple[str, Any]:
    return ("answered", content)


# What ToolNode does with each setting and failure: the failing call's content (its status is
# "error"), or the exception the graph raises.
EXPECTED_ERRORS: dict[tuple[str, str], tuple[str, Any]] = {
    ("default", "value-error"): RAISED["value-error"],
    ("default", "tool-exception"): RAISED["tool-exception"],
    ("default", "bad-arguments"): answered(BAD_ARGUMENTS),
    ("true", "value-error"): answered(
        "Error: ValueError('bad value: x')\n Please fix your mistakes."
    ),
    ("true", "tool-exception"): answered(
        "Error: ToolException('tool broke on x')\n Please fix your mistakes."
    ),
    ("true", "bad-arguments"): answered(
        f"Error: ToolInvocationError({BAD_ARGUMENTS!r})\n Please fix your mistakes."
    ),
    ("string", "value-error"): answered("Something went wrong; try again."),
    ("string", "tool-exception"): answered("Something went wrong; try again."),
    ("string", "bad-arguments"): answered("Something went wrong; try again."),
    ("callable", "value-error"): answered("handled: bad value: x"),
    ("callable", "tool-exception"): RAISED["tool-exception"],
    ("callable", "bad-arguments"): RAISED["bad-arguments"],  # not a ValueError once wrapped
    ("false", "value-error"): RAISED["value-error"],
    ("false", "tool-exception"): RAISED["tool-exception"],
    ("false", "bad-arguments"): RAISED["bad-arguments"],
}


def error_cases() -> list[Any]:
    cases = []
    for engine in ENGINES:
        for kind in KINDS:
            for setting in SETTINGS if kind in NODE_KINDS else ["default"]:
                for failure in FAILURES:
                    cases.append(
                        pytest.param(
                            engine,
                            kind,
                            setting,
                            failure,
                            id=f"{engine}-{kind}-{setting}-{failure}",
                        )
                    )
    return cases


def failing(engine: str, kind: str, setting: str, failure: str, style: str) -> tuple[str, Any]:
    name, args = FAILURES[failure]
    model = scripted(calls(("c1", "add", {"a": 1}), ("c2", name, args)), AIMessage("done"))
    graph = build(
        kind, engine, [add, reject, break_down], model, handle_tool_errors=SETTINGS[setting]
    )
    return settle(lambda: run_to_end(graph, style))


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(("engine", "kind", "setting", "failure"), error_cases())
def test_tool_errors(engine: str, kind: str, setting: str, failure: str, style: str) -> None:
    how, got = parity(failing, engine, kind, setting, failure, style)
    expected = EXPECTED_ERRORS[(setting, failure)]
    if expected[0] == "raised":
        assert (how, got) == expected
        return
    assert how == "state"
    name = FAILURES[failure][0]
    assert tool_rows(got) == [
        ("tool", "2", "c1", "add", "success", None),
        ("tool", expected[1], "c2", name, "error", None),
    ]


def unknown_tool(engine: str, kind: str, setting: str) -> tuple[str, Any]:
    model = scripted(calls(("c1", "add", {"a": 1}), ("c2", "nope", {"x": 1})), AIMessage("done"))
    graph = build(kind, engine, [add, shout], model, handle_tool_errors=SETTINGS[setting])
    return settle(lambda: run_to_end(graph, "sync"))


@pytest.mark.parametrize(
    ("engine", "kind", "setting"),
    [
        pytest.param(e, k, s, id=f"{e}-{k}-{s}")
        for e in ENGINES
        for k in KINDS
        for s in (["default", "false"] if k in NODE_KINDS else ["default"])
    ],
)
def test_an_unknown_tool_is_answered_whatever_the_error_setting(
    engine: str, kind: str, setting: str
) -> None:
    how, got = parity(unknown_tool, engine, kind, setting)
    assert how == "state"
    assert tool_rows(got) == [
        ("tool", "2", "c1", "add", "success", None),
        (
            "tool",
            "Error: nope is not a valid tool, try one of [add, shout].",
            "c2",
            "nope",
            "error",
            None,
        ),
    ]


# --- sync invoke inside a running event loop ------------------------------------------------------


@pytest.mark.parametrize(("engine", "kind"), setups())
def test_sync_invoke_inside_a_running_event_loop(engine: str, kind: str) -> None:
    async def inside_a_loop() -> dict[str, Any]:
        asyncio.get_running_loop()
        return two_calls(engine, kind)

    assert asyncio.run(inside_a_loop()) == two_calls("toolnode", kind)


# --- streaming ------------------------------------------------------------------------------------


def streamed(engine: str, kind: str, mode: StreamMode) -> dict[str, Any]:
    model = scripted(
        calls(("c1", "add", {"a": 2, "b": 3}), ("c2", "shout", {"text": "hi"})),
        AIMessage("done"),
    )
    graph = build(kind, engine, [add, shout], model)

    async def chunks() -> list[Any]:
        stream = graph.astream(start(), CONFIG, context=CONTEXT, stream_mode=mode)
        return [chunk async for chunk in stream]

    items: list[Any] = []
    for chunk in asyncio.run(chunks()):
        if mode == "updates":
            items.extend((node, plain(update)) for node, update in chunk.items())
        elif mode == "messages":
            message, metadata = chunk
            items.append((metadata["langgraph_node"], *row(message)))
        else:
            items.append(plain(chunk))
    if mode == "values":  # one snapshot per step: the order is deterministic
        return {"values": items}
    # Calls sent separately finish in any order: compare updates and messages as multisets,
    # and the order of the nodes with repeats of one node collapsed.
    nodes = [item[0] for item in items]
    return {
        "multiset": sorted(items, key=repr),
        "nodes": [n for i, n in enumerate(nodes) if i == 0 or nodes[i - 1] != n],
    }


@pytest.mark.parametrize("mode", ["updates", "messages", "values"])
@pytest.mark.parametrize(("engine", "kind"), setups())
def test_astream(engine: str, kind: str, mode: StreamMode) -> None:
    got = parity(streamed, engine, kind, mode)
    agent = MODEL_NODE[kind]
    tool_messages = [
        ("tool", "5", "c1", "add", "success", None),
        ("tool", "HI", "c2", "shout", "success", None),
    ]
    if mode == "values":
        last = got["values"][-1]
        assert tool_rows(last) == tool_messages
        assert [len(v["messages"]) for v in got["values"]] == [1, 2, 4, 5]
        return
    assert got["nodes"] == [agent, "tools", agent]
    tools = [item for item in got["multiset"] if item[0] == "tools"]
    if mode == "messages":
        assert [item[1:] for item in tools] == tool_messages
    else:
        assert sorted(m for item in tools for m in item[1]["messages"]) == tool_messages


# --- a checkpointer across turns ------------------------------------------------------------------


def two_turns(engine: str, kind: str) -> dict[str, Any]:
    model = scripted(
        calls(("c1", "add", {"a": 1, "b": 2})),
        AIMessage("three"),
        calls(("c2", "describe_state", {})),
        AIMessage("that is all"),
    )
    graph = build(kind, engine, [add, describe_state], model)
    invoke(graph, start("first"))
    invoke(graph, {"messages": [HumanMessage("again")]})
    return {"state": final_state(graph), "model_saw": [len(seen) for seen in model.seen]}


@pytest.mark.parametrize(("engine", "kind"), setups())
def test_a_checkpointer_carries_the_conversation_across_turns(engine: str, kind: str) -> None:
    got = parity(two_turns, engine, kind)
    assert got["model_saw"] == [1, 3, 5, 7]
    assert contents(got["state"]) == [
        "first",
        "",
        "3",
        "three",
        "again",
        "",
        "6 messages, user ada",
        "that is all",
    ]


# --- references between the calls of one AI message: toolweave's own feature ----------------------


def reference_tools(events: list[tuple[str, str, str]]) -> list[BaseTool]:
    @lc_tool
    def search(query: str) -> dict[str, Any]:
        """Search the web."""
        events.append(("start", "search", query))
        time.sleep(0.01)  # a fetch started too early would start inside this window
        events.append(("end", "search", query))
        return {"hits": [{"url": f"https://example.org/{query}/{i}"} for i in range(2)]}

    @lc_tool
    def fetch(url: str) -> str:
        """Fetch a page."""
        events.append(("start", "fetch", url))
        events.append(("end", "fetch", url))
        return f"<p>{url}</p>"

    return [search, fetch]


@pytest.mark.parametrize(
    "reference", ["${c1.hits[1].url}", "${1.hits[1].url}"], ids=["by-id", "by-position"]
)
@pytest.mark.parametrize(("engine", "kind"), setups())
def test_a_call_reads_an_earlier_calls_output(engine: str, kind: str, reference: str) -> None:
    events: list[tuple[str, str, str]] = []
    model = scripted(
        calls(("c1", "search", {"query": "owls"}), ("c2", "fetch", {"url": reference})),
        AIMessage("done"),
    )
    graph = build(kind, engine, reference_tools(events), model)
    invoke(graph, start())
    rows = tool_rows(final_state(graph))
    assert rows[0][1] == (
        '{"hits": [{"url": "https://example.org/owls/0"}, {"url": "https://example.org/owls/1"}]}'
    )
    if engine == "toolnode":  # the baseline: the reference is an ordinary string
        assert rows[1][1] == f"<p>{reference}</p>"
        return
    url = "https://example.org/owls/1"
    assert rows[1] == ("tool", f"<p>{url}</p>", "c2", "fetch", "success", None)
    assert events == [
        ("start", "search", "owls"),
        ("end", "search", "owls"),
        ("start", "fetch", url),
        ("end", "fetch", url),
    ]


# --- expected differences: where toolweave does not match ToolNode, on purpose --------------------
# Each checks what toolweave does, then asserts parity with ToolNode; the mark says why parity
# cannot hold (strict: if it ever starts to hold, the test fails and the README must change).


class Differs(AssertionError):
    """toolweave's result is not ToolNode's."""


def same(ours: Any, theirs: Any) -> None:
    if ours != theirs:
        raise Differs(f"toolweave: {ours!r}\nToolNode: {theirs!r}")


def difference(reason: str) -> Any:
    return pytest.mark.xfail(raises=Differs, strict=True, reason=f"expected difference: {reason}")


@difference("the model is shown that arguments may be references (references=True)")
@pytest.mark.parametrize("kind", KINDS)
def test_difference_references_are_advertised(kind: str) -> None:
    ours = shown("toolweave", kind, references=True)
    assert "${N.path}" in ours[0]["function"]["description"]
    same(ours, shown("toolnode", kind))


def literal_reference(engine: str, kind: str) -> dict[str, Any]:
    model = scripted(
        calls(("c1", "search", {"query": "owls"}), ("c2", "fetch", {"url": "${c1.hits[0].url}"})),
        AIMessage("done"),
    )
    graph = build(kind, engine, reference_tools([]), model)
    return run_to_end(graph, "sync")


@difference("a reference is resolved; ToolNode passes the literal text to the tool")
@pytest.mark.parametrize("kind", KINDS)
def test_difference_references_are_resolved(kind: str) -> None:
    ours = literal_reference("toolweave", kind)
    assert tool_rows(ours)[1][1] == "<p>https://example.org/owls/0</p>"
    same(ours, literal_reference("toolnode", kind))


def after_a_failure(engine: str, kind: str) -> dict[str, Any]:
    model = scripted(
        calls(("c1", "add", {"a": "many"}), ("c2", "shout", {"text": "${c1}"})),
        AIMessage("done"),
    )
    return run_to_end(build(kind, engine, [add, shout], model), "sync")


@difference("a call that refers to a failed call is answered with an error, not run")
@pytest.mark.parametrize("kind", KINDS)
def test_difference_a_dependent_of_a_failed_call_is_not_run(kind: str) -> None:
    ours = after_a_failure("toolweave", kind)
    assert tool_rows(ours)[1][4] == "error"
    assert "depends on call 'c1'" in tool_rows(ours)[1][1]
    same(ours, after_a_failure("toolnode", kind))


@lc_tool
async def slow_shout(text: str) -> str:
    """Upper-case a text, asynchronously."""
    await asyncio.sleep(0)
    return text.upper()


def async_tool_under_invoke(engine: str, kind: str) -> tuple[str, Any]:
    model = scripted(calls(("c1", "slow_shout", {"text": "hi"})), AIMessage("done"))
    graph = build(kind, engine, [slow_shout], model)
    return settle(lambda: run_to_end(graph, "sync"))


@difference("ToolweaveNode runs an async-only tool under invoke(); ToolNode raises")
@pytest.mark.parametrize("kind", NODE_KINDS)
def test_difference_async_tools_run_under_invoke(kind: str) -> None:
    ours = async_tool_under_invoke("toolweave", kind)
    assert ours[0] == "state"
    assert tool_rows(ours[1])[0][1] == "HI"
    same(ours, async_tool_under_invoke("toolnode", kind))


def with_an_invalid_call(engine: str, kind: str) -> dict[str, Any]:
    turn = AIMessage(
        content="",
        tool_calls=[{"id": "c1", "name": "shout", "args": {"text": "hi"}}],
        invalid_tool_calls=[
            {"type": "invalid_tool_call", "id": "c2", "name": "shout", "args": "{", "error": None}
        ],
    )
    model = scripted(turn, AIMessage("done"))
    graph = build(kind, engine, [shout], model)
    return run_to_end(graph, "sync")


@difference("a node given a whole AI message also answers its invalid_tool_calls")
def test_difference_invalid_tool_calls_are_answered() -> None:
    ours = with_an_invalid_call("toolweave", "stategraph")
    assert [(r[2], r[4]) for r in tool_rows(ours)] == [("c1", "success"), ("c2", "error")]
    same(ours, with_an_invalid_call("toolnode", "stategraph"))
