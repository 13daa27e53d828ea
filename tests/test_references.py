"""Reference syntax: scanning, escapes, typed values, interpolation, JSONPath lookups."""

from __future__ import annotations

from typing import Any

import pytest

from toolweave._references import (
    PathError,
    Reference,
    ReferenceSyntaxError,
    Template,
    _compile_path,
    compile_arguments,
    extract,
    resolve_arguments,
)

OUTPUTS: dict[str, Any] = {
    "s": {"items": [{"id": 7, "tags": ["a", "b"]}, {"id": 8, "tags": []}], "name": "Ada", "n": 3},
}


def resolve(arguments: dict[str, Any]) -> Any:
    compiled, _ = compile_arguments(arguments)
    return resolve_arguments(compiled, lambda ref: extract(OUTPUTS[ref.target], ref))


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        pytest.param({"x": "${s}"}, {"x": OUTPUTS["s"]}, id="whole-output"),
        pytest.param({"x": "${s.n}"}, {"x": 3}, id="exact-reference-keeps-type"),
        pytest.param({"x": "${s.items[0].id}"}, {"x": 7}, id="nested-and-index"),
        pytest.param({"x": "${s.items[-1].id}"}, {"x": 8}, id="negative-index"),
        pytest.param({"x": "${s.items[*].id}"}, {"x": [7, 8]}, id="wildcard-gives-list"),
        pytest.param({"x": "${s.items[5:9].id}"}, {"x": []}, id="slice-no-match-empty-list"),
        pytest.param({"x": "${s..id}"}, {"x": [7, 8]}, id="recursive-descent-gives-list"),
        pytest.param({"x": "${s.items[?(@.id > 7)].id}"}, {"x": [8]}, id="filter-gives-list"),
        pytest.param({"x": "Hi ${s.name}!"}, {"x": "Hi Ada!"}, id="interpolated-string"),
        pytest.param({"x": "n=${s.n} t=${s.items[0].tags}"}, {"x": 'n=3 t=["a", "b"]'}, id="json"),
        pytest.param({"x": "cost $${s.n} ${s.n}"}, {"x": "cost ${s.n} 3"}, id="escape"),
        pytest.param({"x": "$${s}"}, {"x": "${s}"}, id="escape-alone-is-literal"),
        pytest.param({"x": "$5 and $ sign"}, {"x": "$5 and $ sign"}, id="plain-dollars"),
        pytest.param({"x": {"$ref": "s", "path": "$.items[1].id"}}, {"x": 8}, id="object-form"),
        pytest.param({"x": {"$ref": "s"}}, {"x": OUTPUTS["s"]}, id="object-form-default-path"),
        pytest.param({"x": {"$ref": "s", "path": "name"}}, {"x": "Ada"}, id="object-path-no-$"),
        pytest.param(
            {"x": {"$ref": "s", "path": "name", "extra": 1}},
            {"x": {"$ref": "s", "path": "name", "extra": 1}},
            id="object-with-other-keys-is-data",
        ),
        pytest.param(
            {"deep": [{"a": ["${s.n}"]}], "keep": 1}, {"deep": [{"a": [3]}], "keep": 1}, id="deep"
        ),
    ],
)
def test_resolution(arguments: dict[str, Any], expected: Any) -> None:
    assert resolve(arguments) == expected


def test_arguments_without_references_are_returned_as_they_are() -> None:
    arguments = {"q": "plain", "nested": {"list": [1, "two"]}}
    compiled, found = compile_arguments(arguments)
    assert compiled is arguments
    assert found == []


def test_found_references_carry_the_argument_path_and_text() -> None:
    _, found = compile_arguments(
        {"url": "${a.hits[0].url}", "f": {"owner": {"$ref": 2, "path": "$.x"}}, "l": ["t ${b}"]}
    )
    assert [(f.location, f.text) for f in found] == [
        ("url", "${a.hits[0].url}"),
        ("f.owner", "${2.x}"),
        ("l[0]", "t ${b}"),
    ]
    assert found[0].references == (Reference("a", "$.hits[0].url", "${a.hits[0].url}"),)


def test_target_ends_at_the_first_dot_or_bracket() -> None:
    compiled, _ = compile_arguments({"a": "${c1[0].x}", "b": "${ 2 }"})
    assert compiled["a"] == Reference("c1", "$[0].x", "${c1[0].x}")
    assert compiled["b"] == Reference("2", "$", "${ 2 }")


def test_braces_inside_a_filter_do_not_end_the_reference() -> None:
    compiled, _ = compile_arguments({"a": "${s.items[?(@.name == '}')].id}"})
    assert compiled["a"].path == "$.items[?(@.name == '}')].id"


def test_interpolation_builds_a_template() -> None:
    compiled, _ = compile_arguments({"a": "x ${s.n} y"})
    assert isinstance(compiled["a"], Template)


@pytest.mark.parametrize(
    ("arguments", "message", "location"),
    [
        pytest.param({"a": "${}"}, "empty reference '${}'", "a", id="empty"),
        pytest.param({"a": {"b": "x ${s.n"}}, "unterminated reference", "a.b", id="unterminated"),
        pytest.param({"a": ["${.x}"]}, "names no call before its path", "a[0]", id="no-target"),
        pytest.param({"a": {"$ref": True}}, '"$ref" must be a call id', "a", id="bool-target"),
        pytest.param({"a": {"$ref": ""}}, '"$ref" must be a call id', "a", id="empty-target"),
        pytest.param({"a": {"$ref": 1, "path": 3}}, '"path" must be a JSONPath', "a", id="path"),
    ],
)
def test_malformed_references(arguments: dict[str, Any], message: str, location: str) -> None:
    with pytest.raises(ReferenceSyntaxError, match=message.replace("$", r"\$")) as info:
        compile_arguments(arguments)
    assert info.value.location == location


def test_a_single_valued_path_that_matches_nothing_is_an_error() -> None:
    with pytest.raises(PathError, match=r"nothing in the output matches \$\.items\[9\]\.id"):
        extract(OUTPUTS["s"], Reference("s", "$.items[9].id", "${s.items[9].id}"))


def test_an_invalid_path_is_an_error_naming_it() -> None:
    with pytest.raises(PathError, match=r"'\$\.items\[' is not a valid JSONPath"):
        extract(OUTPUTS["s"], Reference("s", "$.items[", "${s.items[}"))


def test_paths_are_parsed_once_and_cached() -> None:
    _compile_path.cache_clear()
    for _ in range(5):
        extract(OUTPUTS["s"], Reference("s", "$.items[0].id", ""))
    info = _compile_path.cache_info()
    assert (info.misses, info.hits) == (1, 4)


def test_pydantic_and_dataclass_outputs_are_looked_into() -> None:
    import dataclasses

    from pydantic import BaseModel

    class Hit(BaseModel):
        url: str

    @dataclasses.dataclass
    class Page:
        title: str

    assert extract(Hit(url="u"), Reference("x", "$.url", "")) == "u"
    assert extract(Page(title="t"), Reference("x", "$.title", "")) == "t"


def test_references_inside_a_tools_output_stay_text() -> None:
    # The value substituted in is never scanned again.
    outputs = {"s": "${s}", "t": {"x": "${t.x}"}}
    compiled, _ = compile_arguments({"a": "${s}", "b": "${t}", "c": "<${s}>"})
    value = resolve_arguments(compiled, lambda ref: extract(outputs[ref.target], ref))
    assert value == {"a": "${s}", "b": {"x": "${t.x}"}, "c": "<${s}>"}
