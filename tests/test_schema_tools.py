"""Tools defined by a JSON Schema (``Tool.from_schema``), ``_``-prefixed parameters of Python
functions, and per-tool middleware: real batches through the engine, the messages the model
reads, and what the OpenAI and LangChain adapters advertise and call."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import pathlib
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.tools import ToolException
from tenacity import wait_none

from toolweave import CallResult, Orchestrator, Tool, ToolCall, UsageError, tool
from toolweave._tools import VALIDATION_ERRORS, describe_validation_error
from toolweave.adapters.langchain import as_langchain_tools
from toolweave.adapters.openai import openai_tools

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"

# An odd property name for every way a name can be unusable as a Python identifier.
ODD_NAMES = {
    "type": "object",
    "properties": {
        "from": {"type": "string"},
        "_from": {"type": "string"},
        "user-id": {"type": "integer"},
        "$filter": {"type": "string"},
    },
    "required": ["from", "user-id"],
    "additionalProperties": False,
}

# As the Berkeley Function Calling Leaderboard writes function docs.
BFCL_TRIP = {
    "type": "dict",
    "properties": {
        "budget": {"type": "float", "description": "Most to spend, in euros."},
        "stops": {
            "type": "array",
            "items": {
                "type": "dict",
                "properties": {
                    "city": {"type": "string"},
                    "nights": {"type": "integer"},
                    "where": {"type": "tuple", "items": {"type": "float"}},
                },
                "required": ["city"],
            },
        },
        "note": {"type": "any"},
    },
    "required": ["budget", "stops"],
}


def echo(arguments: dict[str, Any]) -> dict[str, Any]:
    return arguments


async def aecho(arguments: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0)
    return arguments


def by_id(results: list[CallResult]) -> dict[str, CallResult]:
    return {r.call_id: r for r in results}


# ---------------------------------------------------------------- the engine runs them


@pytest.mark.parametrize("fn", [pytest.param(echo, id="sync"), pytest.param(aecho, id="async")])
def test_any_property_name_reaches_the_function_as_one_dict(fn: Any) -> None:
    odd = Tool.from_schema("odd", "Odd names.", ODD_NAMES, fn)
    arguments = {"from": "LIS", "_from": "OPO", "user-id": 7, "$filter": "price lt 100"}
    result = Orchestrator([odd]).run_sync([ToolCall("c1", "odd", arguments)])
    [r] = result.results
    assert (r.status, r.output) == ("ok", arguments)
    assert odd.is_async is (fn is aecho)
    assert odd.defined_by_schema
    assert odd.bind(arguments) == ((arguments,), {})


def test_bfcl_schemas_are_normalised_at_any_depth() -> None:
    trip = Tool.from_schema("trip", "Plan a trip.", BFCL_TRIP, echo)
    schema = trip.parameters
    assert schema["type"] == "object"
    assert schema["properties"]["budget"] == {
        "type": "number",
        "description": "Most to spend, in euros.",
    }
    stop = schema["properties"]["stops"]["items"]
    assert stop["type"] == "object"
    assert stop["properties"]["where"] == {"type": "array", "items": {"type": "number"}}
    assert schema["properties"]["note"] == {}, "BFCL's 'any' means no type constraint"
    assert BFCL_TRIP["type"] == "dict", "the caller's schema is left as it was"

    good = {"budget": 120, "stops": [{"city": "Oslo", "where": [59.9, 10.7]}], "note": [1]}
    assert trip.validate_arguments(good) == good, "nothing is converted or filled in"


@pytest.mark.parametrize(
    "kind",
    [pytest.param("float", id="float"), pytest.param(["float", "null"], id="float-or-null")],
)
def test_bfcl_type_names_work_in_type_lists_too(kind: Any) -> None:
    t = Tool.from_schema("t", "", {"type": "dict", "properties": {"x": {"type": kind}}}, echo)
    assert t.validate_arguments({"x": 1.5}) == {"x": 1.5}
    with pytest.raises(VALIDATION_ERRORS):
        t.validate_arguments({"x": "1.5"})


def test_references_between_schema_tools_and_function_tools() -> None:
    search = Tool.from_schema(
        "search",
        "Find flights.",
        {"type": "dict", "properties": {"from": {"type": "string"}}, "required": ["from"]},
        lambda a: {"id": f"{a['from']}-1", "price": 99.5},
    )

    @tool
    async def book(_from: str, flight: str, price: float) -> str:
        """Book a flight."""
        return f"{flight} from {_from} at {price}"

    result = Orchestrator([search, book]).run_sync(
        [
            ToolCall("1", "search", {"from": "LIS"}),
            ToolCall("2", "book", {"_from": "LIS", "flight": "${1.id}", "price": "${1.price}"}),
        ]
    )
    assert result.get("2").output == "LIS-1 from LIS at 99.5"
    assert result.get("2").depends_on == ["1"]


def test_an_explicit_null_goes_through_as_written() -> None:
    schema = {
        "type": "object",
        "properties": {
            "limit": {"type": ["integer", "null"], "default": 10},
            "page": {"type": "integer", "default": 1},
        },
    }
    t = Tool.from_schema("list", "", schema, echo)
    assert t.validate_arguments({"limit": None}) == {"limit": None}, "no default filled in"
    result = Orchestrator([t]).run_sync([ToolCall("c", "list", {"page": None})])
    assert result.get("c").error == (
        "call 'c' (list): invalid arguments: 'page': expected an integer (got null). "
        "Fix these and call again."
    )


# ---------------------------------------------------------------- what the model reads


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param({"user-id": 7}, "'from': required argument is missing", id="missing"),
        pytest.param(
            {"from": "LIS", "user-id": "seven"},
            "'user-id': expected an integer (got 'seven')",
            id="wrong-type",
        ),
        pytest.param(
            {"from": "LIS", "user-id": 7, "to": "OSL"},
            "'to': unexpected argument (odd takes: from, _from, user-id, $filter)",
            id="unexpected",
        ),
        pytest.param(
            {"from": "LIS", "user-id": 7, "$filter": ["x" * 500]},
            "'$filter': expected a string (got [\"" + "x" * 55 + "...)",
            id="long-value-cut",
        ),
    ],
)
def test_validation_errors_name_the_field_and_what_was_expected(
    arguments: dict[str, Any], message: str
) -> None:
    odd = Tool.from_schema("odd", "", ODD_NAMES, echo)
    result = Orchestrator([odd]).run_sync([ToolCall("c1", "odd", arguments)])
    [r] = result.results
    assert (r.status, r.error_type) == ("error", "invalid_arguments")
    assert r.error is not None
    assert r.error.startswith("call 'c1' (odd): invalid arguments: ")
    assert message in r.error
    assert r.error.endswith("Fix these and call again.")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(
            {"budget": 10, "stops": [{"city": "Oslo"}, {"nights": 2}]},
            "'stops[1].city': required argument is missing",
            id="nested-missing",
        ),
        pytest.param(
            {"budget": 10, "stops": [{"city": "Oslo", "where": [1, "north"]}]},
            "'stops[0].where[1]': expected a number (got 'north')",
            id="nested-type",
        ),
        pytest.param(
            {"budget": "cheap", "stops": []},
            "'budget': expected a number (got 'cheap')",
            id="float",
        ),
    ],
)
def test_nested_problems_name_the_path(arguments: dict[str, Any], message: str) -> None:
    trip = Tool.from_schema("trip", "", BFCL_TRIP, echo)
    with pytest.raises(VALIDATION_ERRORS) as info:
        trip.validate_arguments(arguments)
    assert message in describe_validation_error(info.value, trip)


def test_every_problem_gets_a_line_the_shallow_ones_first() -> None:
    odd = Tool.from_schema("odd", "", ODD_NAMES, echo)
    with pytest.raises(VALIDATION_ERRORS) as info:
        odd.validate_arguments({"user-id": 1.5, "$filter": 3, "zzz": 0})
    assert describe_validation_error(info.value, odd) == (
        "invalid arguments: 'from': required argument is missing; 'zzz': unexpected argument "
        "(odd takes: from, _from, user-id, $filter); 'user-id': expected an integer "
        "(got 1.5); '$filter': expected a string (got 3). Fix these and call again."
    )


@pytest.mark.parametrize(
    ("schema", "value", "message"),
    [
        pytest.param(
            {"enum": ["fast", "deep"]}, "slow", "'x': expected one of 'fast', 'deep'", id="enum"
        ),
        pytest.param({"minimum": 1}, 0, "'x': expected a number >= 1 (got 0)", id="minimum"),
        pytest.param(
            {"type": "string", "maxLength": 3},
            "long",
            "'x': expected at most 3 characters (got 'long')",
            id="max-length",
        ),
        pytest.param(
            {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "one",
            "'x': expected an integer or null (got 'one')",
            id="any-of",
        ),
        pytest.param(
            {"type": "array", "items": {"anyOf": [{"type": "integer"}, {"type": "string"}]}},
            [1, "a", None],
            "'x[2]': expected an integer or a string (got null)",
            id="any-of-inside",
        ),
    ],
)
def test_keywords_are_worded(schema: dict[str, Any], value: Any, message: str) -> None:
    t = Tool.from_schema("t", "", {"type": "object", "properties": {"x": schema}}, echo)
    with pytest.raises(VALIDATION_ERRORS) as info:
        t.validate_arguments({"x": value})
    assert message in describe_validation_error(info.value, t)


def test_messages_stay_short_whatever_the_model_sends() -> None:
    node: dict[str, Any] = {
        "anyOf": [
            {"type": "integer"},
            {"type": "array", "items": {"$ref": "#/$defs/node"}},
            {"type": "object", "additionalProperties": {"$ref": "#/$defs/node"}},
        ]
    }
    schema = {
        "type": "object",
        "properties": {"v": {"$ref": "#/$defs/node"}},
        "additionalProperties": False,
        "$defs": {"node": node},
    }
    deep: Any = "leaf"
    for i in range(60):
        deep = [deep] if i % 2 else {"k" * 500: deep}
    noisy = {"v": [[["x" * 100_000]] * 200], **{f"extra-{i}-" + "e" * 300: i for i in range(500)}}
    t = Tool.from_schema("t", "", schema, echo)
    result = Orchestrator([t]).run_sync(
        [ToolCall("deep", "t", {"v": deep}), ToolCall("noisy", "t", noisy)]
    )
    for r in result.results:
        assert r.status == "error"
        assert r.error is not None
        assert len(r.error) < 3000, r.error[:300]
    assert "and 492 more unexpected arguments" in (result.get("noisy").error or "")


# ---------------------------------------------------------------- schemas the developer writes


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        pytest.param(
            {"type": "string"},
            "tool 'bad': parameters must be an object schema",
            id="not-an-object",
        ),
        pytest.param({}, r"must be an object schema .* got no type", id="empty"),
        pytest.param(["x"], "parameters must be a JSON Schema object", id="not-a-dict"),
        pytest.param(
            {"type": "object", "properties": {"x": {"type": "strng"}}},
            "tool 'bad': parameters is not a valid JSON Schema at 'properties.x.type'",
            id="unknown-type",
        ),
        pytest.param(
            {"type": "object", "properties": {"x": {"type": "string", "minLength": -1}}},
            "at 'properties.x.minLength'",
            id="bad-keyword-value",
        ),
        pytest.param(
            {"type": "object", "properties": {"x": {"$ref": "#/$defs/Missing"}}},
            r"tool 'bad': \$ref '#/\$defs/Missing' points to nothing",
            id="dangling-ref",
        ),
        pytest.param(
            {
                "$schema": "http://json-schema.org/draft-04/schema#",
                "type": "object",
                "properties": {"x": {"type": "number", "exclusiveMinimum": 0}},
            },
            "at 'properties.x.exclusiveMinimum'",
            id="wrong-for-its-draft",
        ),
    ],
)
def test_a_bad_schema_is_a_usage_error_naming_the_tool(parameters: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Tool.from_schema("bad", "", parameters, echo)


def test_schema_tools_take_the_same_options_as_function_tools() -> None:
    calls = []

    def flaky(arguments: dict[str, Any]) -> str:
        calls.append(arguments)
        if len(calls) < 3:
            raise ConnectionError("try again")
        return "done"

    async def mw(request: Any, call_next: Any) -> Any:
        return await call_next(request)

    t = Tool.from_schema(
        "flaky",
        "Flaky.",
        {"type": "object", "properties": {}},
        flaky,
        timeout=5,
        retries=2,
        retry_wait=None,
        retry_on=ConnectionError,
        middleware=[mw],
    )
    assert (t.timeout, t.retries, t.retry_on, t.middleware) == (5, 2, (ConnectionError,), (mw,))
    fast = Tool.from_schema(
        "flaky", "", {"type": "object", "properties": {}}, flaky, retries=2, retry_wait=wait_none()
    )
    result = Orchestrator([fast]).run_sync([ToolCall("c", "flaky", {})])
    assert (result.get("c").output, result.get("c").attempts) == ("done", 3)


# ---------------------------------------------------------------- per-tool middleware


async def outer(request: Any, call_next: Any) -> Any:
    return await call_next(request)


def test_tool_middleware_is_kept_as_a_tuple() -> None:
    @tool(middleware=[outer])
    def ping() -> str:
        return "pong"

    assert ping.middleware == (outer,)
    assert Tool.from_function(ping.fn, middleware=(outer, outer)).middleware == (outer, outer)
    assert Tool.from_function(ping.fn).middleware == ()


@pytest.mark.parametrize(
    ("middleware", "message"),
    [
        pytest.param([outer, 42], r"tool 'ping': middleware item '42' is not callable", id="item"),
        pytest.param("outer", r"tool 'ping': middleware must be a list", id="a-string"),
        pytest.param(outer, r"tool 'ping': middleware must be a list", id="not-a-list"),
    ],
)
def test_bad_middleware_is_a_usage_error(middleware: Any, message: str) -> None:
    def ping() -> str:
        return "pong"

    with pytest.raises(UsageError, match=message):
        tool(middleware=middleware)(ping)
    with pytest.raises(UsageError, match=message):
        Tool.from_schema("ping", "", {"type": "object"}, ping, middleware=middleware)


# ---------------------------------------------------------------- `_` parameters of functions


def test_underscore_parameters_keep_their_name_in_the_schema_and_the_call() -> None:
    @tool
    def book(_from: str, to: str, /, _class: str = "economy", *, seats: int = 1) -> str:
        """Book a flight."""
        return f"{_from}->{to} {_class} x{seats}"

    schema = book.parameters
    assert list(schema["properties"]) == ["_from", "to", "_class", "seats"]
    assert schema["required"] == ["_from", "to"]
    assert book.validate_arguments({"_from": "LIS", "to": "OSL", "_class": None}) == {
        "_from": "LIS",
        "to": "OSL",
        "_class": "economy",
        "seats": 1,
    }
    result = Orchestrator([book]).run_sync(
        [
            ToolCall("ok", "book", {"_from": "LIS", "to": "OSL", "_class": "first"}),
            ToolCall("bad", "book", {"from": "LIS", "to": "OSL"}),
        ]
    )
    assert result.get("ok").output == "LIS->OSL first x1"
    assert result.get("bad").error == (
        "call 'bad' (book): invalid arguments: '_from': required argument is missing; 'from': "
        "unexpected argument (book takes: _from, to, _class, seats). Fix these and call again."
    )


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("model_config", id="model_config"),
        pytest.param("schema", id="schema"),
        pytest.param("json", id="json"),
        pytest.param("copy", id="copy"),
        pytest.param("model_fields", id="model_fields"),
        pytest.param("p_from", id="internal-looking"),
        pytest.param("__dunder", id="dunder"),
    ],
)
def test_names_that_clash_with_pydantic_still_work(name: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"def f(_from: int, {name}: int) -> int:\n    return _from + {name}\n", namespace)
    t = Tool.from_function(namespace["f"], name="f")
    assert list(t.parameters["properties"]) == ["_from", name]
    assert t.validate_arguments({"_from": 1, name: 2}) == {"_from": 1, name: 2}
    assert (
        Orchestrator([t]).run_sync([ToolCall("c", "f", {"_from": 1, name: 2})]).get("c").output == 3
    )


def test_underscore_parameters_with_kwargs_keep_extra_arguments() -> None:
    @tool
    def loose(_a: int, **rest: Any) -> dict[str, Any]:
        return {"_a": _a, **rest}

    assert loose.validate_arguments({"_a": 1, "b": 2}) == {"_a": 1, "b": 2}


# ---------------------------------------------------------------- OpenAI


STRICT_AS_WRITTEN = {
    "type": "object",
    "properties": {
        "from": {"type": "string", "description": "IATA code"},
        "title": {"type": "string"},
        "legs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"id": {"type": "integer", "default": 0}},
                "required": ["id"],
            },
        },
    },
    "required": ["from", "title", "legs"],
}


def test_openai_strict_when_the_schema_can_be_strict_as_written() -> None:
    t = Tool.from_schema("trip", "Plan.", STRICT_AS_WRITTEN, echo)
    [spec] = openai_tools([t], references=False)
    assert spec["function"]["strict"] is True
    assert spec["function"]["parameters"] == {
        "type": "object",
        "properties": {
            "from": {"type": "string", "description": "IATA code"},
            "title": {"type": "string"},
            "legs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"id": {"type": "integer"}},
                    "required": ["id"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["from", "title", "legs"],
        "additionalProperties": False,
    }
    assert t.parameters == STRICT_AS_WRITTEN, "advertising leaves the tool's schema alone"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(
            {"properties": {"from": {"type": "string"}}, "required": []},
            "the property 'from' is optional",
            id="optional",
        ),
        pytest.param(
            {"additionalProperties": True}, "an object with free-form keys", id="open-object"
        ),
        pytest.param(
            {"properties": {"from": {"type": "string", "minLength": 3}}, "required": ["from"]},
            "the keyword 'minLength' is not supported",
            id="unsupported-keyword",
        ),
        pytest.param(
            {"properties": {"from": {"type": "any"}}, "required": ["from"]},
            "a parameter accepts any value",
            id="bfcl-any",
        ),
        pytest.param(
            {"properties": {"from": {"type": "string", "format": "uri"}}, "required": ["from"]},
            "the format 'uri' is not supported",
            id="format",
        ),
        pytest.param(
            {"properties": {"from": {"type": "dict"}}, "required": ["from"]},
            "an object without declared properties",
            id="free-dict",
        ),
    ],
)
def test_openai_not_strict_when_strict_would_change_the_schema(
    change: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    t = Tool.from_schema("trip", "Plan.", {**STRICT_AS_WRITTEN, **change}, echo)
    with caplog.at_level(logging.INFO, logger="toolweave"):
        [spec] = openai_tools([t], references=False)
    assert spec["function"]["strict"] is False
    assert spec["function"]["parameters"] == t.parameters, "the normalised schema as it is"
    assert reason in caplog.text


def test_openai_references_and_the_responses_api() -> None:
    t = Tool.from_schema("odd", "Odd names.", ODD_NAMES, echo)
    [spec] = openai_tools([t], api="responses")
    assert (spec["name"], spec["strict"]) == ("odd", False)  # '_from', '$filter' are optional
    properties = spec["parameters"]["properties"]
    assert properties["user-id"] == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert properties["$filter"] == {"type": "string"}
    assert "${N.path}" in spec["description"]


def test_openai_keeps_properties_named_title_or_default() -> None:
    @tool
    def create_issue(title: str, default: bool = False) -> str:
        return title

    for strict in (True, False):
        [spec] = openai_tools([create_issue], references=False, strict=strict)
        assert list(spec["function"]["parameters"]["properties"]) == ["title", "default"]


# ---------------------------------------------------------------- LangChain


def test_langchain_gets_the_schema_and_calls_with_the_dict() -> None:
    t = Tool.from_schema("odd", "Odd names.", ODD_NAMES, aecho)
    s = Tool.from_schema("trip", "Plan a trip.", BFCL_TRIP, echo)
    odd, trip = as_langchain_tools([t, s])
    assert odd.args_schema == ODD_NAMES
    assert trip.args_schema == s.parameters
    assert set(odd.args) == {"from", "_from", "user-id", "$filter"}
    arguments = {"from": "LIS", "user-id": 7, "$filter": "x"}
    assert asyncio.run(odd.ainvoke(arguments)) == arguments
    good = {"budget": 10.5, "stops": [{"city": "Oslo"}]}
    assert trip.invoke(good) == good
    with pytest.raises(ToolException, match=r"'user-id': expected an integer \(got 'seven'\)"):
        asyncio.run(odd.ainvoke({"from": "LIS", "user-id": "seven"}))


def test_langchain_gets_underscore_parameters_by_their_name() -> None:
    @tool
    def book(_from: str, to: str) -> str:
        """Book a flight."""
        return f"{_from}->{to}"

    [converted] = as_langchain_tools([book])
    assert set(converted.args) == {"_from", "to"}
    assert converted.invoke({"_from": "LIS", "to": "OSL"}) == "LIS->OSL"


# ---------------------------------------------------------------- properties

SMALL = {
    "type": "dict",
    "properties": {
        "q": {"type": "string"},
        "n": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "opts": {
            "type": "dict",
            "properties": {"deep": {"type": "boolean"}, "w": {"type": "float"}},
            "additionalProperties": False,
        },
    },
    "required": ["q"],
    "additionalProperties": False,
}

text = st.text(alphabet=st.characters(blacklist_characters="$"), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
arguments = st.dictionaries(st.sampled_from(["q", "n", "tags", "opts", "x"]) | text, json_values)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(arguments, min_size=1, max_size=4))
def test_any_json_either_validates_or_is_worded_and_every_call_settles_once(
    batch: list[dict[str, Any]],
) -> None:
    small = Tool.from_schema("small", "", SMALL, aecho)
    accepted = []
    for args in batch:
        try:
            assert small.validate_arguments(args) == args
            accepted.append(True)
        except VALIDATION_ERRORS as exc:
            message = describe_validation_error(exc, small)
            assert message.startswith("invalid arguments: '")
            assert len(message) < 2000
            accepted.append(False)
    calls = [ToolCall(f"c{i}", "small", args) for i, args in enumerate(batch)]
    result = Orchestrator([small]).run_sync(calls)
    assert [r.call_id for r in result.results] == [c.id for c in calls]
    for r, args, ok in zip(result.results, batch, accepted, strict=True):
        assert (r.status, r.output) == (("ok", args) if ok else ("error", None))


# ---------------------------------------------------------------- README


def test_the_readme_schema_tool_example_prints_what_it_says() -> None:
    found = re.search(
        r"### Tools defined by JSON Schema.*?```python\n(.*?)```\n\nprints\n\n```\n(.*?)```",
        README.read_text(),
        re.S,
    )
    assert found is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(found.group(1), "README.md", "exec"), {})
    assert out.getvalue() == found.group(2)


def test_a_number_too_long_to_print_is_named_by_its_field() -> None:
    @tool
    async def measure(url: str) -> dict[str, Any]:
        """A size past Python's digit limit."""
        return {"size": 10**5000}

    store = Tool.from_schema(
        "store",
        "Store a name.",
        {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        lambda arguments: "stored",
    )
    calls = [ToolCall("a", "measure", {"url": "u"}), ToolCall("b", "store", {"name": "${a.size}"})]
    result = Orchestrator([measure, store]).run_sync(calls)
    assert result.get("b").error == (
        "call 'b' (store): invalid arguments: 'name': a number too large to check against the "
        "schema (over 4,000 digits); send a smaller one. Fix these and call again."
    )


# ------------------------------------------------------------------ patterns from untrusted schemas

# With Python's re, '(x+x+)+y' against 26 x's backtracks for about 7 s, and each x more doubles
# it; validation runs on the event loop, where no call timeout can stop it.
CATASTROPHIC = "(x+x+)+y"
EVIL = "(a|aa)+$"  # hard for the regex engine too: it stops at the time limit


def test_a_catastrophic_pattern_fails_the_call_not_the_batch() -> None:
    def echo(arguments: dict[str, Any]) -> Any:
        return arguments

    tools = [
        Tool.from_schema(
            "lookup",
            "Look a code up.",
            {"type": "object", "properties": {"code": {"type": "string", "pattern": EVIL}}},
            echo,
        ),
        Tool.from_schema(
            "tag",
            "Tag by key.",
            {
                "type": "object",
                "patternProperties": {CATASTROPHIC: {"type": "integer"}},
                "additionalProperties": False,
            },
            echo,
        ),
        Tool.from_schema(
            "plain",
            "A normal pattern.",
            {"type": "object", "properties": {"id": {"type": "string", "pattern": r"^\d{3}$"}}},
            echo,
        ),
    ]
    calls = [
        ToolCall(id="slow", name="lookup", arguments={"code": "a" * 5_000 + "b"}),
        ToolCall(id="keys", name="tag", arguments={"x" * 40: 1}),
        ToolCall(id="good", name="plain", arguments={"id": "123"}),
        ToolCall(id="bad", name="plain", arguments={"id": "12a"}),
        ToolCall(id="fine", name="lookup", arguments={"code": "aaa"}),
    ]

    async def main() -> Any:
        return await asyncio.wait_for(Orchestrator(tools).run(calls), 60)

    result = asyncio.run(main())
    slow = result.get("slow")
    assert slow.error_type == "invalid_arguments"
    assert "'code'" in str(slow.error)
    assert "was stopped" in str(slow.error)
    assert "send a shorter or simpler value" in str(slow.error)
    keys = result.get("keys")
    assert keys.error_type == "invalid_arguments", "an unmatched key is an extra property"
    assert result.get("good").output == {"id": "123"}
    assert result.get("bad").error_type == "invalid_arguments"
    assert result.get("fine").output == {"code": "aaa"}
