"""Tools: the decorator, schemas from type hints, validation errors worded for the model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field, ValidationError

from toolweave import Orchestrator, Tool, UsageError, tool
from toolweave._tools import describe_validation_error


class Filters(BaseModel):
    owner: str
    limit: int = 10


@tool(timeout=5, retries=2)
async def search(
    query: Annotated[str, Field(description="what to look for")],
    filters: Filters | None = None,
    mode: Literal["fast", "deep"] = "fast",
    /,
) -> list[str]:
    """Search the index.

    Returns matching urls.
    """
    return [query]


def test_decorator_forms_and_metadata() -> None:
    assert isinstance(search, Tool)
    assert search.name == "search"
    assert search.description == "Search the index.\n\nReturns matching urls."
    assert (search.timeout, search.retries, search.is_async) == (5, 2, True)

    @tool
    def plain(x: int) -> int:
        return x

    named = tool(name="other", description="Other thing.")(plain.fn)
    assert (plain.name, plain.is_async, plain.description) == ("plain", False, "")
    assert (named.name, named.description) == ("other", "Other thing.")
    assert plain(3) == 3, "a decorated function stays callable"


def test_schema_comes_from_type_hints() -> None:
    schema = search.parameters
    assert schema["required"] == ["query"]
    assert schema["properties"]["query"] == {
        "description": "what to look for",
        "title": "Query",
        "type": "string",
    }
    assert schema["properties"]["mode"]["enum"] == ["fast", "deep"]
    assert "Filters" in schema["$defs"]


def test_validation_returns_keyword_arguments_and_null_means_default() -> None:
    values = search.validate_arguments({"query": "q", "filters": {"owner": "me"}, "mode": None})
    assert values == {"query": "q", "filters": Filters(owner="me"), "mode": "fast"}
    args, kwargs = search.bind(values)
    assert args == ("q", Filters(owner="me"), "fast")
    assert kwargs == {}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param({}, "'query': required argument is missing", id="missing"),
        pytest.param(
            {"query": "q", "size": 3},
            "'size': unexpected argument (search takes: query, filters, mode)",
            id="extra",
        ),
        pytest.param(
            {"query": "q", "filters": {"owner": "me", "limit": "ten"}},
            "'filters.limit': Input should be a valid integer, unable to parse string as an "
            "integer (got 'ten')",
            id="nested-field",
        ),
        pytest.param(
            {"query": "q", "mode": "slow"},
            "'mode': Input should be 'fast' or 'deep' (got 'slow')",
            id="enum",
        ),
    ],
)
def test_validation_errors_name_the_field(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        search.validate_arguments(arguments)
    text = describe_validation_error(info.value, search)
    assert text.startswith("invalid arguments: ")
    assert message in text
    assert text.endswith("Fix these and call again.")


def test_kwargs_tools_accept_extra_arguments() -> None:
    @tool
    def loose(a: int, **rest: Any) -> dict[str, Any]:
        return rest

    assert loose.validate_arguments({"a": 1, "b": 2}) == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda: tool(lambda x: x), "cannot name the tool", id="lambda"),
        pytest.param(lambda: tool(timeout=0)(_ok), "timeout must be a positive", id="timeout"),
        pytest.param(lambda: tool(retries=-1)(_ok), "retries must be 0 or more", id="retries"),
        pytest.param(lambda: tool(_varargs), r"\*items cannot be sent by a model", id="varargs"),
        pytest.param(
            lambda: Orchestrator([search, search]), "two tools are named 'search'", id="dup"
        ),
        pytest.param(lambda: Orchestrator([42]), "42 is not a tool", id="not-callable"),
        pytest.param(
            lambda: Orchestrator([], strategy="fast"),
            "strategy must be 'auto' or 'serial', got 'fast'",
            id="strategy",
        ),
        pytest.param(
            lambda: Orchestrator([], max_concurrency=0), "max_concurrency must be None", id="mc"
        ),
    ],
)
def test_usage_errors(make: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        make()


def _ok(x: int) -> None: ...


def _varargs(*items: str) -> None: ...


def test_plain_functions_and_mappings_are_accepted_as_tools() -> None:
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    assert set(Orchestrator([add]).tools) == {"add"}
    assert set(Orchestrator({"add": add}).tools) == {"add"}


def test_string_hints_naming_local_types_resolve_where_the_tool_is_defined() -> None:
    class Point(BaseModel):
        x: int

    @tool
    async def locate(p: Point) -> int:
        return p.x

    @tool(timeout=1)
    async def locate2(p: Point) -> int:
        return p.x

    assert locate.validate_arguments({"p": {"x": 1}}) == {"p": Point(x=1)}
    assert locate2.validate_arguments({"p": {"x": 2}}) == {"p": Point(x=2)}


def test_unresolvable_hints_are_a_usage_error_at_definition() -> None:
    def make() -> Tool:
        async def lost(p: Nowhere) -> None:  # type: ignore[name-defined]  # noqa: F821
            return None

        return Tool.from_function(lost, namespace={})

    with pytest.raises(UsageError, match=r"tool 'lost': cannot resolve the type hints p: Nowhere"):
        make()
