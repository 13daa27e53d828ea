"""Planning: edges, levels, strategy, the to_dict() shape, and plan-time errors."""

from __future__ import annotations

from typing import Any

import pytest

from toolweave import ExecutionPlan, InvalidBatchError, Orchestrator, ToolCall, tool
from toolweave._references import _compile_path


@tool
def search(q: str) -> dict[str, Any]:
    """Search."""
    return {"hits": [{"url": q}]}


@tool
def fetch(url: str) -> str:
    """Fetch."""
    return url


def plan(calls: list[Any], strategy: Any = "auto") -> ExecutionPlan:
    return Orchestrator([search, fetch], strategy=strategy).plan(calls)


def C(
    id: str, name: str = "fetch", depends_on: list[str] | None = None, **arguments: Any
) -> ToolCall:
    return ToolCall(id, name, arguments or {"url": "x"}, depends_on or [])


@pytest.mark.parametrize(
    ("calls", "strategy", "groups"),
    [
        pytest.param([C("a"), C("b"), C("c")], "parallel", [["a", "b", "c"]], id="parallel"),
        pytest.param(
            [C("a"), C("b", url="${a}"), C("c", url="${b}")],
            "serial",
            [["a"], ["b"], ["c"]],
            id="chain-is-serial",
        ),
        pytest.param(
            [C("a"), C("b", url="${a}"), C("c", url="${b}", depends_on=["a"])],
            "serial",
            [["a"], ["b"], ["c"]],
            id="transitive-edge-still-serial",
        ),
        pytest.param(
            [C("a"), C("b"), C("c", url="${a}"), C("d", url="${c} ${b}")],
            "dag",
            [["a", "b"], ["c"], ["d"]],
            id="dag",
        ),
        pytest.param([], "parallel", [], id="empty"),
        pytest.param([C("a")], "parallel", [["a"]], id="single"),
    ],
)
def test_strategy_and_groups(calls: list[ToolCall], strategy: str, groups: list[list[str]]) -> None:
    p = plan(calls)
    assert p.strategy == strategy
    assert p.groups == groups


def test_group_index_is_one_more_than_the_deepest_dependency() -> None:
    p = plan([C("a"), C("b", url="${a}"), C("c", url="${b}"), C("d", url="${a}", depends_on=["c"])])
    assert [c.group_index for c in p.calls] == [0, 1, 2, 3]


def test_calls_keep_batch_order_inside_a_group() -> None:
    p = plan([C("z"), C("y", url="${z}"), C("x"), C("w", url="${x}")])
    assert p.groups == [["z", "x"], ["y", "w"]]


def test_positions_are_one_based_and_an_equal_id_wins() -> None:
    p = plan([C("2"), C("b", url="${2}"), C("c", url="${1}", depends_on=["2"])])
    assert p.dependencies == {"2": [], "b": ["2"], "c": ["2"]}
    p = plan([C("x"), C("y"), C("z", url={"$ref": 2})])
    assert p.dependencies["z"] == ["y"]


def test_depends_on_accepts_positions_as_numbers() -> None:
    p = plan([C("a"), {"id": "b", "name": "fetch", "arguments": {"url": "u"}, "depends_on": [1]}])
    assert p.dependencies["b"] == ["a"]


def test_to_dict_has_the_shape_trace_viewers_read() -> None:
    calls = [
        ToolCall("call_a", "search", {"q": "x"}),
        ToolCall("call_b", "search", {"q": "y"}),
        ToolCall("call_c", "fetch", {"url": "${call_a.hits[0].url}"}, ["call_b"]),
    ]
    assert plan(calls).to_dict() == {
        "strategy": "dag",
        "execution_groups": [
            {
                "group_index": 0,
                "tools": [
                    {
                        "tool_id": "call_a",
                        "tool_type": "search",
                        "depends_on": [],
                        "dependency_groups": [],
                        "output_mapping": {},
                        "ordered_after": [],
                    },
                    {
                        "tool_id": "call_b",
                        "tool_type": "search",
                        "depends_on": [],
                        "dependency_groups": [],
                        "output_mapping": {},
                        "ordered_after": [],
                    },
                ],
                "parallel_execution": True,
            },
            {
                "group_index": 1,
                "tools": [
                    {
                        "tool_id": "call_c",
                        "tool_type": "fetch",
                        "depends_on": ["call_a", "call_b"],
                        "dependency_groups": [0],
                        "output_mapping": {"url": "${call_a.hits[0].url}"},
                        "ordered_after": [],
                    }
                ],
                "parallel_execution": False,
            },
        ],
        "total_groups": 2,
        "total_tools": 3,
        "tool_ids": ["call_a", "call_b", "call_c"],
    }


@pytest.mark.parametrize(
    ("calls", "call_id", "error_type", "message"),
    [
        pytest.param(
            [C("a", url="${zz.x}")],
            "a",
            "invalid_reference",
            "call 'a' (fetch): argument 'url' refers to '${zz.x}', but the batch has no call "
            "with id 'zz'; refer to another call of this batch by its id or its 1-based position",
            id="unknown-target",
        ),
        pytest.param(
            [C("a"), C("b", url="${5}")],
            "b",
            "invalid_reference",
            "call 'b' (fetch): argument 'url' refers to '${5}', but the batch has no call with "
            "id '5' and only 2 calls",
            id="position-out-of-range",
        ),
        pytest.param(
            [C("a", url="${a.x}")],
            "a",
            "invalid_reference",
            "argument 'url' refers to '${a.x}', which is this call itself",
            id="self-reference",
        ),
        pytest.param(
            [C("a", depends_on=["nope"])],
            "a",
            "invalid_reference",
            "call 'a' (fetch): depends_on names 'nope', but the batch has no call with id 'nope'",
            id="unknown-depends-on",
        ),
        pytest.param(
            [C("a", url="x ${ }")],
            "a",
            "invalid_reference",
            "call 'a' (fetch): argument 'url' has a malformed reference: empty reference '${}'",
            id="malformed",
        ),
        pytest.param(
            [ToolCall("a", "fetch", '{"url": ')],
            "a",
            "invalid_arguments",
            "call 'a' (fetch): arguments are not valid JSON (Expecting value at line 1 column 9)",
            id="bad-json",
        ),
        pytest.param(
            [ToolCall("a", "fetch", "[1, 2]")],
            "a",
            "invalid_arguments",
            "call 'a' (fetch): arguments must be a JSON object, got list",
            id="json-not-an-object",
        ),
        pytest.param(
            [ToolCall("a", "fech", {})],
            "a",
            "unknown_tool",
            "call 'a' (fech): unknown tool 'fech'. Did you mean 'fetch'? "
            "Available tools: fetch, search.",
            id="unknown-tool",
        ),
    ],
)
def test_plan_time_errors(
    calls: list[ToolCall], call_id: str, error_type: str, message: str
) -> None:
    planned = plan(calls).get(call_id)
    assert planned.error_type == error_type
    assert planned.error is not None
    assert planned.error.startswith(message) or message in planned.error


@pytest.mark.parametrize(
    ("calls", "on_cycle", "behind", "named"),
    [
        pytest.param(
            [C("a", url="${b}"), C("b", url="${a}")],
            {"a", "b"},
            set(),
            {"a": "a -> b -> a", "b": "b -> a -> b"},
            id="cycle-of-two",
        ),
        pytest.param(
            [C("a", url="${c}"), C("b", url="${a}"), C("c", url="${b}"), C("d", url="${c}")],
            {"a", "b", "c"},
            {"d"},
            {"a": "a -> c -> b -> a"},
            id="cycle-of-three-with-a-call-behind",
        ),
        pytest.param(
            [C("a", depends_on=["b"]), C("b", url="${a}"), C("ok")],
            {"a", "b"},
            set(),
            {"a": "a -> b -> a"},
            id="depends-on-closes-the-cycle",
        ),
        pytest.param(
            [C("a", url="${b}"), C("b", url="${a}"), C("x", url="${a}"), C("y", url="${x}")],
            {"a", "b"},
            {"x", "y"},
            {},
            id="chain-behind-a-cycle",
        ),
        pytest.param(
            [C("a", url="${b} ${c}"), C("b", url="${a}"), C("c", url="${a}")],
            {"a", "b", "c"},
            set(),
            {"c": "c -> a -> c"},
            id="two-cycles-sharing-a-call",
        ),
    ],
)
def test_cycles(
    calls: list[ToolCall], on_cycle: set[str], behind: set[str], named: dict[str, str]
) -> None:
    p = plan(calls)
    flagged = {c.call_id for c in p.calls if c.error_type == "circular_dependency"}
    assert flagged == on_cycle
    grouped = {i for g in p.groups for i in g}
    for call_id in on_cycle | behind:
        assert p.get(call_id).group_index is None
        assert call_id not in grouped
    for call_id in behind:
        assert p.get(call_id).error is None
    for call_id, cycle in named.items():
        assert f"circular dependency: {cycle}." in (p.get(call_id).error or "")
    assert p.strategy == "dag"


def test_a_cycle_does_not_disturb_the_rest_of_the_batch() -> None:
    p = plan([C("a", url="${b}"), C("b", url="${a}"), C("c"), C("d", url="${c}")])
    assert p.groups == [["c"], ["d"]]


def test_serial_strategy_orders_by_batch_and_rejects_forward_references() -> None:
    p = plan([C("a", url="${b}"), C("b"), C("c", url="${b}")], strategy="serial")
    assert p.strategy == "serial"
    assert p.groups == [["a"], ["b"], ["c"]]
    assert [c.group_index for c in p.calls] == [0, 1, 2]
    assert "refers to '${b}', a later call; with strategy 'serial'" in (p.get("a").error or "")
    assert p.get("c").error is None


def test_output_mapping_names_argument_paths() -> None:
    p = plan([C("a"), C("b", url={"$ref": "a", "path": "$.x[0]"})])
    assert p.get("b").output_mapping == {"url": "${a.x[0]}"}


def test_planning_parses_no_jsonpath() -> None:
    _compile_path.cache_clear()
    plan([C("a"), C("b", url="${a.hits[0].url}"), C("c", url={"$ref": 1, "path": "$..x"})])
    assert _compile_path.cache_info().currsize == 0


@pytest.mark.parametrize(
    ("calls", "message"),
    [
        pytest.param("not a list", "a batch is a list of tool calls, got str", id="string"),
        pytest.param({"id": "a"}, "a batch is a list of tool calls, got dict", id="dict"),
        pytest.param([C("a"), C("a")], "calls 1 and 2 share the id 'a'", id="duplicate-ids"),
        pytest.param(
            [C("a"), {"name": "fetch"}],
            "item 2 of the batch is not a tool call: 'id': Field required",
            id="item-missing-id",
        ),
        pytest.param([C("a"), 42], "item 2 of the batch is not a tool call", id="not-a-call"),
    ],
)
def test_invalid_batches_raise_before_anything_runs(calls: Any, message: str) -> None:
    with pytest.raises(InvalidBatchError, match=message):
        plan(calls)


def test_tool_call_accepts_fields_by_position_and_keyword() -> None:
    a = ToolCall("a", "fetch", {"url": "u"}, ["b"])
    b = ToolCall(id="a", name="fetch", arguments={"url": "u"}, depends_on=["b"])
    assert a == b
    with pytest.raises(TypeError, match="two values for 'name'"):
        ToolCall("a", "fetch", name="x")


def test_null_or_empty_arguments_mean_no_arguments() -> None:
    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    orchestrator = Orchestrator([ping])
    result = orchestrator.run_sync(
        [{"id": "a", "name": "ping", "arguments": None}, ToolCall("b", "ping", "  ")]
    )
    assert [r.output for r in result.results] == ["pong", "pong"]
