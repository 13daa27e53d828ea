"""Property tests on random graphs with random failures and random latencies.

Latency is a random number of event-loop yields, and "before" is read off one shared event log,
so the properties are checked on a logical clock, never on wall time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolweave import Orchestrator, ToolCall, tool


@st.composite
def batches(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(min_value=1, max_value=12))
    # Nodes are numbered in a topological order; edges go from lower to higher numbers.
    deps = [
        sorted(draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=3))) if i else []
        for i in range(n)
    ]
    fail = draw(st.sets(st.integers(min_value=0, max_value=n - 1)))
    spins = draw(st.lists(st.integers(min_value=0, max_value=4), min_size=n, max_size=n))
    as_ref = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    order = draw(st.permutations(range(n)))  # batch order differs from topological order
    limit = draw(st.sampled_from([None, 1, 2, 3]))
    return {
        "deps": deps,
        "fail": fail,
        "spins": spins,
        "as_ref": as_ref,
        "order": order,
        "limit": limit,
    }


def calls_for(case: dict[str, Any]) -> list[ToolCall]:
    """The batch for a drawn case: each edge a reference or a depends_on entry, calls in the
    drawn batch order."""
    deps = case["deps"]
    calls = []
    for node in case["order"]:
        refs = [f"${{n{d}}}" for d in deps[node]] if case["as_ref"][node] else []
        after = [] if case["as_ref"][node] else [f"n{d}" for d in deps[node]]
        calls.append(ToolCall(f"n{node}", "step", {"node": node, "inputs": refs}, after))
    return calls


def expected_statuses(deps: list[list[int]], fail: set[int]) -> list[str]:
    status: list[str] = []
    for node, ds in enumerate(deps):  # topological numbering
        if any(status[d] != "ok" for d in ds):
            status.append("skipped")
        else:
            status.append("error" if node in fail else "ok")
    return status


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_random_graphs(case: dict[str, Any]) -> None:
    deps, fail, spins, order = case["deps"], case["fail"], case["spins"], case["order"]
    log: list[tuple[str, int]] = []

    @tool
    async def step(node: int, inputs: list[Any]) -> int:
        log.append(("start", node))
        for _ in range(spins[node]):
            await asyncio.sleep(0)
        log.append(("end", node))
        if node in fail:
            raise RuntimeError(f"node {node} fails")
        assert inputs == [d for d in deps[node] if case["as_ref"][node]]
        return node

    calls = calls_for(case)

    result = asyncio.run(Orchestrator([step], max_concurrency=case["limit"]).run(calls))

    # Exactly one result per call, in the order the calls were given.
    assert [r.call_id for r in result.results] == [f"n{node}" for node in order]
    # Failures skip exactly their descendants; everything else runs.
    want = expected_statuses(deps, fail)
    assert {r.call_id: r.status for r in result.results} == {f"n{i}": s for i, s in enumerate(want)}
    # No call starts before all of its dependencies have ended.
    when = {event: k for k, event in enumerate(log)}
    for node, ds in enumerate(deps):
        if ("start", node) in when:
            for d in ds:
                assert when[("end", d)] < when[("start", node)]
    # execution_order ranks the starts as they happened.
    started = [node for kind, node in log if kind == "start"]
    by_order = sorted(
        (r for r in result.results if r.execution_order is not None),
        key=lambda r: r.execution_order or 0,
    )
    assert [r.call_id for r in by_order] == [f"n{node}" for node in started]
    # Levels: 0 without dependencies, else one more than the deepest dependency.
    level: list[int] = []
    for ds in deps:
        level.append(1 + max(level[d] for d in ds) if ds else 0)
    assert {r.call_id: r.group_index for r in result.results} == {
        f"n{i}": lv for i, lv in enumerate(level)
    }


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=10),
    edges=st.sets(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=20),
)
def test_every_call_on_a_cycle_is_flagged_and_the_rest_is_planned(
    n: int, edges: set[tuple[int, int]]
) -> None:
    graph = {i: sorted({b for a, b in edges if a == i and b < n and b != i}) for i in range(n)}

    def reaches(src: int, dst: int) -> bool:
        seen, stack = set(), list(graph[src])
        while stack:
            v = stack.pop()
            if v == dst:
                return True
            if v not in seen:
                seen.add(v)
                stack.extend(graph[v])
        return False

    @tool
    async def noop() -> None:
        return None

    calls = [ToolCall(f"c{i}", "noop", {}, [f"c{j}" for j in graph[i]]) for i in range(n)]
    plan = Orchestrator([noop]).plan(calls)
    for i in range(n):
        planned = plan.get(f"c{i}")
        on_cycle = reaches(i, i)
        assert (planned.error_type == "circular_dependency") == on_cycle
        behind = any(reaches(i, j) and reaches(j, j) for j in range(n))
        assert (planned.group_index is None) == (on_cycle or behind)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=batches(), choices=st.lists(st.integers(0, 9), min_size=40, max_size=40))
def test_random_graphs_with_a_random_decider(case: dict[str, Any], choices: list[int]) -> None:
    from toolweave import Decision, DecisionContext

    deps, fail, spins, order = case["deps"], case["fail"], case["spins"], case["order"]
    log: list[tuple[str, int]] = []
    script = iter(choices)

    @tool
    async def step(node: int, inputs: list[Any]) -> int:
        log.append(("start", node))
        for _ in range(spins[node]):
            await asyncio.sleep(0)
        log.append(("end", node))
        if node in fail:
            raise RuntimeError(f"node {node} fails")
        return node

    async def decide(ctx: DecisionContext) -> Decision:
        pick = next(script, 0)
        for _ in range(pick % 3):
            await asyncio.sleep(0)
        ids = ctx.waiting_ids
        if pick == 9:
            return Decision(action="stop", reason="random stop")
        if pick >= 6:
            return Decision(action="skip", skip=ids[: 1 + pick % len(ids)], reason="random skip")
        return Decision(action="continue", reason="go")

    calls = calls_for(case)
    orchestrator = Orchestrator([step], max_concurrency=case["limit"], decider=decide)
    result = asyncio.run(orchestrator.run(calls))

    assert [r.call_id for r in result.results] == [f"n{node}" for node in order]
    when = {event: k for k, event in enumerate(log)}
    status = {int(r.call_id[1:]): r for r in result.results}
    for node, ds in enumerate(deps):
        r = status[node]
        if ("start", node) in when:
            assert all(status[d].status == "ok" for d in ds)
            assert all(when[("end", d)] < when[("start", node)] for d in ds)
        if r.status == "skipped":
            assert r.error_type in ("dependency_failed", "skipped_by_decider", "stopped_by_decider")
        if r.error_type == "stopped_by_decider":
            assert result.stopped == "random stop"
        if r.status == "ok":
            assert ("start", node) in when
    for record in result.decisions:
        assert all(deps[int(c[1:])] for c in record.call_ids), "only dependent calls are asked"
        # A decision still in flight when another one stops the batch is cancelled, and says so.
        assert record.fallback is False or (
            record.error_type == "cancelled" and result.stopped == "random stop"
        )
