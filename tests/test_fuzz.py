"""Fuzzing the promises of test_hardening.py: whatever the model writes and whatever a tool
returns, plan() and run() never raise, every call settles exactly once, and everything that
shows a value (tool messages, decider contexts, prompts, traces, previews) works.

Values that cannot be printed (10**5000, 1,500 levels of nesting, objects whose ``repr``
raises) are drawn as small placeholders (``Huge``, ``Deep``, ``Hostile``, ``AsModel``,
``AsDataclass``) and built inside the test, so a failing example prints as something a person
can read and replay.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import traceback
from typing import Any, Literal

from hostile import HOSTILE
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from toolweave import (
    BatchResult,
    DecisionContext,
    Orchestrator,
    RuleDecider,
    ToolCall,
    tool,
)
from toolweave._llm_decider import decision_prompt
from toolweave.adapters.openai import to_openai_messages, to_responses_items
from toolweave.telemetry._values import to_jsonable, to_text

GUARD = 20.0  # seconds; only reached when a run hangs
ARGUMENT_DEPTH = 64  # arguments nested deeper than this are the call's error (documented limit)
JSON_INT_DIGITS = 4300  # Python's int-to-string limit: json.loads refuses longer numbers

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@tool
async def echo(value: Any = None) -> Any:
    """Return the value."""
    return value


@tool
def echo_sync(value: Any = None) -> Any:
    """Return the value, from a worker thread."""
    return value


def run(orchestrator: Orchestrator, calls: list[Any]) -> BatchResult:
    async def main() -> BatchResult:
        async with orchestrator:
            return await asyncio.wait_for(orchestrator.run(calls), GUARD)

    return asyncio.run(main())


# ---------------------------------------------------------------- placeholders


@dataclasses.dataclass(frozen=True)
class Huge:
    """The int 10**digits."""

    digits: int


@dataclasses.dataclass(frozen=True)
class Deep:
    """``inner`` wrapped in ``depth`` lists or single-key dicts (``mixed`` alternates)."""

    inner: Any
    depth: int
    kind: Literal["list", "dict", "mixed"]

    def wrapper(self, level: int) -> str:
        if self.kind == "mixed":
            return "list" if level % 2 else "dict"
        return self.kind


@dataclasses.dataclass(frozen=True)
class Hostile:
    """A fresh value from ``hostile.HOSTILE[name]``."""

    name: str


@dataclasses.dataclass(frozen=True)
class AsModel:
    """``inner`` as the field of a pydantic model."""

    inner: Any


@dataclasses.dataclass(frozen=True)
class AsDataclass:
    """``inner`` as the field of a dataclass."""

    inner: Any


class Box(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    inner: Any
    n: int = 1


@dataclasses.dataclass
class Cell:
    inner: Any
    label: str = "cell"


def build(spec: Any) -> Any:
    """The real value a drawn spec stands for (fresh each time: generators, cycles)."""
    if isinstance(spec, Huge):
        return 10**spec.digits
    if isinstance(spec, Hostile):
        return HOSTILE[spec.name]()
    if isinstance(spec, AsModel):
        return Box(inner=build(spec.inner))
    if isinstance(spec, AsDataclass):
        return Cell(inner=build(spec.inner))
    if isinstance(spec, Deep):
        value = build(spec.inner)
        for level in range(spec.depth):
            value = [value] if spec.wrapper(level) == "list" else {"a": value}
        return value
    if isinstance(spec, dict):
        return {build(k): build(v) for k, v in spec.items()}
    if isinstance(spec, list):
        return [build(v) for v in spec]
    if isinstance(spec, tuple):
        return tuple(build(v) for v in spec)
    if isinstance(spec, frozenset):
        return {build(v) for v in spec}
    return spec


def json_text(spec: Any, ensure_ascii: bool) -> str:
    """A JSON-ish spec as the text a model writes; ``Huge`` as its digits, ``Deep`` as
    brackets, so neither needs the value built."""
    if isinstance(spec, Huge):
        return "1" + "0" * spec.digits
    if isinstance(spec, Deep):
        inner = json_text(spec.inner, ensure_ascii)
        kinds = [spec.wrapper(level) for level in range(spec.depth)]
        opening = "".join("[" if k == "list" else '{"a": ' for k in reversed(kinds))
        closing = "".join("]" if k == "list" else "}" for k in kinds)
        return opening + inner + closing
    if isinstance(spec, dict):
        items = (
            f"{json.dumps(k, ensure_ascii=ensure_ascii)}: {json_text(v, ensure_ascii)}"
            for k, v in spec.items()
        )
        return "{" + ", ".join(items) + "}"
    if isinstance(spec, list):
        return "[" + ", ".join(json_text(v, ensure_ascii) for v in spec) + "]"
    return json.dumps(spec, ensure_ascii=ensure_ascii)


def container_depth(spec: Any) -> int:
    """How many containers deep a JSON-ish spec nests (a scalar is 0)."""
    if isinstance(spec, Deep):
        return spec.depth + container_depth(spec.inner)
    if isinstance(spec, dict | list):
        children = spec.values() if isinstance(spec, dict) else spec
        return 1 + max((container_depth(c) for c in children), default=0)
    return 0


def may_refer(spec: Any) -> bool:
    """True when a JSON-ish spec holds anything that looks like a reference."""
    if isinstance(spec, str):
        return "${" in spec
    if isinstance(spec, Deep):
        return may_refer(spec.inner)
    if isinstance(spec, dict):
        return "$ref" in spec or any(may_refer(v) for v in spec.values())
    if isinstance(spec, list):
        return any(may_refer(v) for v in spec)
    return False


def longest_number(spec: Any) -> int:
    """Digits of the longest ``Huge`` in a JSON-ish spec."""
    if isinstance(spec, Huge):
        return spec.digits + 1
    if isinstance(spec, Deep):
        return longest_number(spec.inner)
    if isinstance(spec, dict | list):
        children = spec.values() if isinstance(spec, dict) else spec
        return max((longest_number(c) for c in children), default=0)
    return 0


# ---------------------------------------------------------------- what the model writes

NON_ASCII_DIGITS = ["²", "١", "٣", "𝟙", "७", "⑴"]
HUGE = st.builds(Huge, st.sampled_from([20, 5000]))
DEPTHS = st.sampled_from([1, 3, 62, 63, 64, 65, 200, 1500])
PATH_STEPS = st.one_of(
    st.text(max_size=5).map(lambda s: "." + s),
    st.integers(-3, 5).map(lambda i: f"[{i}]"),
    st.sampled_from([".x", "[0]", "[*]", "..x", "['x']", "[?(@.a > 1)]", "[0:2]", ".*", "["]),
)


@st.composite
def paths(draw: st.DrawFn) -> str:
    """A reference path: a few random steps, sometimes followed by hundreds of one step."""
    steps = "".join(draw(st.lists(PATH_STEPS, max_size=4)))
    if draw(st.booleans()):
        steps += draw(PATH_STEPS) * draw(st.sampled_from([63, 64, 65, 300]))
    return steps


def targets(ids: list[str], n: int) -> st.SearchStrategy[str]:
    """What a reference names: real ids, positions (in range or not), garbage, non-ASCII
    digits, huge digit strings."""
    return st.one_of(
        st.sampled_from(ids),
        st.integers(0, n + 1).map(str),
        st.text(max_size=6),
        st.sampled_from(NON_ASCII_DIGITS),
        st.sampled_from([40, 4301, 5000]).map(lambda k: "1" * k),
    )


@st.composite
def reference_texts(draw: st.DrawFn, ids: list[str], n: int) -> str:
    """A string with "${...}" in it: whole, inside text, escaped, broken or noise."""
    ref = "${" + draw(targets(ids, n)) + draw(paths()) + "}"
    shape = draw(st.sampled_from(["whole", "template", "escaped", "open", "empty", "noise"]))
    if shape == "whole":
        return ref
    if shape == "template":
        return draw(st.text(max_size=4)) + ref + draw(st.text(max_size=4))
    if shape == "escaped":
        return "$" + ref
    if shape == "open":
        return ref[:-1]
    if shape == "empty":
        return "${ }"
    return draw(st.text(alphabet="${}[].1ab '\"()", max_size=16))


def object_references(ids: list[str], n: int) -> st.SearchStrategy[dict[str, Any]]:
    """{"$ref": ..., "path": ...} with any values in both places."""
    target = st.one_of(
        targets(ids, n),
        st.integers(-1, n + 1),
        HUGE,
        st.none(),
        st.booleans(),
        st.floats(),
        st.lists(st.integers(), max_size=2),
    )
    path = st.one_of(
        paths(),
        st.text(max_size=8),
        st.none(),
        st.integers(),
        st.sampled_from(["$", "", "$.x", "[0]", "x.y", "$[*]", "$..a"]),
    )
    return st.one_of(
        st.builds(lambda t: {"$ref": t}, target),
        st.builds(lambda t, p: {"$ref": t, "path": p}, target, path),
    )


def json_values(ids: list[str], n: int) -> st.SearchStrategy[Any]:
    """A value as a model writes it, sometimes wrapped in many lists or dicts."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(),
        HUGE,
        reference_texts(ids, n),
        object_references(ids, n),
    )
    tree = st.recursive(
        scalars,
        lambda kids: st.one_of(
            st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=6), kids, max_size=3)
        ),
        max_leaves=6,
    )
    wrapped = st.builds(Deep, tree, DEPTHS, st.sampled_from(["list", "dict", "mixed"]))
    return st.one_of(tree, wrapped)


RAW_ARGUMENTS = st.one_of(
    st.sampled_from(["", "  ", "null", "[1, 2]", "42", "{", '{"value": 1', '{"value": NaN}']),
    st.text(max_size=20),
)


@dataclasses.dataclass(frozen=True)
class CallSpec:
    """One call as the model wrote it; ``value`` goes under "value", as a dict or as JSON text
    (``form``), or ``raw`` is the whole arguments text."""

    id: str
    name: str
    form: Literal["dict", "text", "raw"]
    value: Any
    raw: str = ""
    ensure_ascii: bool = True
    depends_on: tuple[Any, ...] = ()

    def call(self) -> ToolCall:
        if self.form == "dict":
            arguments: Any = {"value": build(self.value)}
        elif self.form == "text":
            arguments = json_text({"value": self.value}, self.ensure_ascii)
        else:
            arguments = self.raw
        return ToolCall(self.id, self.name, arguments, [build(d) for d in self.depends_on])

    def must_succeed(self) -> bool:
        """No reference, no depends_on, a known tool and arguments it accepts."""
        if self.name not in ("echo", "echo_sync") or self.form == "raw" or self.depends_on:
            return False
        if may_refer(self.value) or 1 + container_depth(self.value) > ARGUMENT_DEPTH:
            return False
        return not (self.form == "text" and longest_number(self.value) > JSON_INT_DIGITS)


@st.composite
def model_batches(draw: st.DrawFn) -> list[CallSpec]:
    """A batch of 1-5 calls with unique ids, random tools, arguments and depends_on."""
    n = draw(st.integers(1, 5))
    some_ids = st.sampled_from(["a", "b", "1", "2", "c.d", "x[0]", "é"])
    ids = draw(
        st.lists(
            st.one_of(some_ids, st.text(min_size=1, max_size=6)),
            min_size=n,
            max_size=n,
            unique=True,
        )
    )
    specs = []
    for call_id in ids:
        depends_on = draw(
            st.one_of(
                st.just(()),
                st.lists(
                    st.one_of(targets(ids, n), st.integers(0, n + 1), HUGE, st.none()),
                    max_size=2,
                ).map(tuple),
            )
        )
        specs.append(
            CallSpec(
                id=call_id,
                name=draw(st.sampled_from(["echo", "echo", "echo_sync", "nope"])),
                form=draw(st.sampled_from(["dict", "text", "text", "raw"])),
                value=draw(json_values(ids, n)),
                raw=draw(RAW_ARGUMENTS),
                ensure_ascii=draw(st.booleans()),
                depends_on=depends_on,
            )
        )
    return specs


@FUZZ
@given(specs=model_batches())
def test_whatever_the_model_writes_every_call_settles_once(specs: list[CallSpec]) -> None:
    """Invariant: plan() and run() never raise on what a model writes; every call gets one
    result, in order; errors name their call; calls without references and with arguments the
    tool accepts succeed."""
    calls = [s.call() for s in specs]
    orchestrator = Orchestrator([echo, echo_sync])
    plan = orchestrator.plan(calls)
    assert [c.call_id for c in plan.calls] == [s.id for s in specs]

    result = run(orchestrator, calls)

    assert [r.call_id for r in result.results] == [s.id for s in specs]
    for spec, r in zip(specs, result.results, strict=True):
        assert r.status in ("ok", "error", "skipped")
        if r.status == "error":
            assert r.error
            assert r.error.startswith(f"call '{spec.id}' ({spec.name}): "), r.error
        if r.status == "skipped":
            assert r.error
        if spec.must_succeed():
            assert r.status == "ok", r.error


# ---------------------------------------------------------------- what a tool returns

HASHABLES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=5),
    st.binary(max_size=5),
    HUGE,
    st.tuples(st.integers(), st.text(max_size=3)),
)
"""Values that may be set members and dict keys."""


def outputs() -> st.SearchStrategy[Any]:
    """Any Python value a tool may return: the hostile ones, and trees of dicts with any keys,
    tuples, sets, bytes, floats (NaN, infinities), huge ints, models and dataclasses."""
    leaves = st.one_of(
        st.sampled_from(sorted(HOSTILE)).map(Hostile),
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(),
        st.binary(max_size=10),
        HUGE,
    )
    tree = st.recursive(
        leaves,
        lambda kids: st.one_of(
            st.lists(kids, max_size=4),
            st.lists(kids, max_size=3).map(tuple),
            st.frozensets(HASHABLES, max_size=4),
            st.dictionaries(st.one_of(st.text(max_size=4), HASHABLES), kids, max_size=4),
            st.dictionaries(st.sampled_from(["x", "a", "n"]), kids, min_size=1, max_size=3),
            kids.map(AsModel),
            kids.map(AsDataclass),
        ),
        max_leaves=8,
    )
    wrapped = st.builds(Deep, tree, DEPTHS, st.sampled_from(["list", "dict", "mixed"]))
    return st.one_of(tree, wrapped)


def with_every_hostile(**others: Any) -> Any:
    """Decorate a test with one explicit example per ``HOSTILE`` value, so each is tried on
    every run, whatever the random draws."""

    def decorate(test: Any) -> Any:
        for name in sorted(HOSTILE, reverse=True):  # applied bottom-up: run in sorted order
            test = example(spec=Hostile(name), **others)(test)
        return test

    return decorate


CONSUMERS = ["whole", "position", "path", "text", "object", "drawn", "after"]


@FUZZ
@given(spec=outputs(), blocking=st.booleans(), drawn=reference_texts(["p", "whole"], 2))
@with_every_hostile(blocking=False, drawn="${p.a}")
def test_whatever_a_tool_returns_is_passed_on_and_shown(
    spec: Any, blocking: bool, drawn: str
) -> None:
    """Invariant: whatever a tool returns, references to it settle, every call settles once in
    order, and the tool messages, decider contexts, prompts, traces and previews all work."""
    if blocking:

        @tool(name="produce")
        def produce_sync() -> Any:
            return build(spec)

        produce = produce_sync
    else:

        @tool(name="produce")
        async def produce_async() -> Any:
            return build(spec)

        produce = produce_async

    problems: list[str] = []
    seen: list[Any] = []
    lock = threading.Lock()

    def look(ctx: DecisionContext) -> None:  # a sync rule: runs in a worker thread
        try:
            outputs = [f.output for f in ctx.finished]
            dumped = ctx.model_dump_json()
            prompt = decision_prompt(ctx)
            json.dumps(prompt)
            with lock:
                seen.extend(outputs)
                assert isinstance(dumped, str)
                assert all(isinstance(m["content"], str) for m in prompt)
        except BaseException:
            problems.append(traceback.format_exc())

    calls = [
        ToolCall("p", "produce"),
        ToolCall("whole", "echo", {"value": "${p}"}),
        ToolCall("position", "echo", {"value": "${1}"}),
        ToolCall("path", "echo", {"value": "${p.x[0]}"}),
        ToolCall("text", "echo", {"value": "a ${p} b"}),
        ToolCall("object", "echo", {"value": {"$ref": "p", "path": "$.x"}}),
        ToolCall("drawn", "echo", {"value": drawn}),
        ToolCall("after", "echo_sync", {"value": ["${whole}", "${text}"]}),
    ]
    result = run(Orchestrator([produce, echo, echo_sync], decider=RuleDecider(look)), calls)

    assert [r.call_id for r in result.results] == ["p", *CONSUMERS]
    assert all(r.status in ("ok", "error", "skipped") for r in result.results)
    assert [result.get(i).status for i in ("p", "whole", "position", "text", "after")] == [
        "ok"
    ] * 5, [r.error for r in result.results]
    assert isinstance(result.get("text").output, str)

    assert problems == [], problems[0]
    assert seen, "the decider saw the producer finish"
    assert all(o is None or isinstance(o, str) for o in seen)
    assert all(not d.fallback for d in result.decisions), [d.error for d in result.decisions]

    for items, id_key, content_key in (
        (to_openai_messages(result), "tool_call_id", "content"),
        (to_responses_items(result), "call_id", "output"),
    ):
        assert [item[id_key] for item in items] == ["p", *CONSUMERS]
        assert all(isinstance(item[content_key], str) for item in items)
        json.dumps(items)

    json.dumps(to_jsonable(result.to_trace(include_content=True)), allow_nan=False)
    preview = to_text(result.get("p").output, 200)
    assert isinstance(preview, str)
    assert len(preview) <= 200
    preview.encode("utf-8")


@FUZZ
@given(spec=outputs(), limit=st.integers(3, 300))
@with_every_hostile(limit=3)
def test_any_value_becomes_json_and_bounded_text(spec: Any, limit: int) -> None:
    """Invariant: to_jsonable gives strict JSON data and to_text text of at most ``limit``
    characters that encodes as UTF-8, for any value, without raising."""
    value = build(spec)
    json.dumps(to_jsonable(value), allow_nan=False)
    json.dumps(to_jsonable(value, max_items=limit), allow_nan=False)
    text = to_text(value, limit)
    assert isinstance(text, str)
    assert len(text) <= limit
    text.encode("utf-8")
