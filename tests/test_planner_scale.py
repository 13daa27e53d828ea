"""Planning large batches: the fast paths give the plan the general ones give.

A batch whose edges all point back to earlier calls is levelled in the same pass that prepares
it; any other batch goes through Kahn's algorithm (and Tarjan's, for cycles). Both must agree,
and both must agree with graphlib on which orders are valid. Timing is measured in
bench/bench_plan.py, never here.
"""

from __future__ import annotations

import graphlib
import random
from typing import Any

import pytest

from toolweave import ExecutionPlan, Orchestrator, ToolCall, tool
from toolweave._references import compile_arguments


@tool
def work(inputs: list[Any] | None = None) -> int:
    """Do nothing."""
    return 0


def random_dag(n: int, edges: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    deps: list[set[int]] = [set() for _ in range(n)]
    added = 0
    while added < edges:
        a, b = sorted(rng.sample(range(n), 2))
        if a not in deps[b]:
            deps[b].add(a)
            added += 1
    return [sorted(ds) for ds in deps]


def to_calls(deps: list[list[int]], positions: bool = False) -> list[ToolCall]:
    """References for half the edges (some by 1-based position), depends_on for the rest."""
    return [
        ToolCall(
            f"c{i}",
            "work",
            {
                "inputs": [
                    f"${{{d + 1}}}" if positions and d % 2 else f"${{c{d}.v}}" for d in ds[::2]
                ]
            },
            [f"c{d}" for d in ds[1::2]],
        )
        for i, ds in enumerate(deps)
    ]


def plan(calls: list[ToolCall], strategy: Any = "auto") -> ExecutionPlan:
    return Orchestrator([work], strategy=strategy).plan(calls)


def longest_paths(deps: list[list[int]]) -> list[int]:
    level: list[int] = []
    for ds in deps:
        level.append(1 + max((level[d] for d in ds), default=-1))
    return level


@pytest.mark.parametrize(
    ("n", "edges"),
    [
        pytest.param(2_000, 4_000, id="2000-calls"),
        pytest.param(300, 3_000, id="dense"),
        pytest.param(500, 0, id="no-edges"),
    ],
)
def test_levels_are_longest_paths_in_and_out_of_batch_order(n: int, edges: int) -> None:
    deps = random_dag(n, edges, seed=n + edges)
    calls = to_calls(deps)
    shuffled = list(calls)
    random.Random(1).shuffle(shuffled)  # references now point at later calls too
    expected = longest_paths(deps)

    in_order, out_of_order = plan(calls), plan(shuffled)
    by_position = plan(to_calls(deps, positions=True))
    assert (by_position.groups, by_position.dependencies) == (
        in_order.groups,
        in_order.dependencies,
    )

    assert [c.group_index for c in in_order.calls] == expected
    assert {c.call_id: c.group_index for c in out_of_order.calls} == {
        f"c{i}": level for i, level in enumerate(expected)
    }
    # References first, then depends_on, each in the order written.
    assert in_order.dependencies == {
        f"c{i}": [f"c{d}" for d in ds[::2] + ds[1::2]] for i, ds in enumerate(deps)
    }
    assert out_of_order.dependencies == in_order.dependencies
    assert in_order.strategy == out_of_order.strategy == ("dag" if edges else "parallel")
    # Within a level, calls keep batch order.
    position = {c.id: k for k, c in enumerate(shuffled)}
    for group in out_of_order.groups:
        assert [position[i] for i in group] == sorted(position[i] for i in group)


def test_levels_give_an_order_graphlib_accepts() -> None:
    deps = random_dag(3_000, 6_000, seed=3)
    p = plan(to_calls(deps))
    order = [call_id for group in p.groups for call_id in group]
    sorter = graphlib.TopologicalSorter(
        {f"c{i}": [f"c{d}" for d in ds] for i, ds in enumerate(deps)}
    )
    sorter.prepare()
    done: set[str] = set()
    for call_id in order:  # every call's dependencies come before it
        assert all(dep in done for dep in p.dependencies[call_id])
        done.add(call_id)
    assert len(order) == len(deps) == len(set(order))


def test_a_cycle_late_in_a_long_batch_still_flags_only_its_calls() -> None:
    deps = random_dag(1_000, 2_000, seed=5)
    calls = to_calls(deps)
    # c998 and c999 wait for each other; everything before them is in batch order.
    calls[998] = ToolCall("c998", "work", {"inputs": ["${c999}"]})
    calls[999] = ToolCall("c999", "work", {"inputs": ["${c998}"]})
    p = plan(calls)
    assert set(p.errors) == {"c998", "c999"}
    assert "c998 -> c999 -> c998" in p.errors["c998"]
    expected = longest_paths(deps[:998])
    assert [c.group_index for c in p.calls[:998]] == expected
    assert p.get("c998").group_index is None
    assert p.get("c999").group_index is None


def test_serial_strategy_levels_each_call_by_its_position() -> None:
    deps = random_dag(500, 1_000, seed=9)
    p = plan(to_calls(deps), strategy="serial")
    assert p.strategy == "serial"
    assert [c.group_index for c in p.calls] == list(range(500))
    assert p.groups == [[f"c{i}"] for i in range(500)]


class Unprintable:
    """A dict key that refuses to be formatted, as a key of a tool's own dicts might."""

    def __format__(self, spec: str) -> str:
        raise RuntimeError("not printable")


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(Unprintable(), id="unprintable-key"),
        pytest.param(10**5000, id="int-past-the-string-limit"),
    ],
)
def test_keys_are_formatted_only_for_a_reference_or_an_error(key: Any) -> None:
    arguments = {"a": {key: [["plain"], {"b": 1}]}, "c": "${x}"}
    compiled, found = compile_arguments(arguments)
    assert compiled["a"] is arguments["a"]
    assert [(f.location, f.text) for f in found] == [("c", "${x}")]


@pytest.mark.parametrize(
    ("arguments", "locations"),
    [
        pytest.param({"a": {1: ["${x}"]}}, ["a[1][0]"], id="int-key"),
        pytest.param({"a": {True: "${x}"}}, ["a[True]"], id="bool-key"),
        pytest.param({"": {"": "${x}", "b": ["${y}"]}}, ["", "b[0]"], id="empty-keys"),
        pytest.param({"a": [{"b": [[{"c": "${x}"}]]}]}, ["a[0].b[0][0].c"], id="nested"),
        pytest.param({"a": {(1, 2): {"b": "${x}"}}}, ["a.(1, 2).b"], id="tuple-key"),
    ],
)
def test_reference_locations(arguments: dict[str, Any], locations: list[str]) -> None:
    _, found = compile_arguments(arguments)
    assert [f.location for f in found] == locations
