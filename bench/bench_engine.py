"""Engine benchmarks: makespan against the critical path, overhead per call, planning time.

    python bench/bench_engine.py            # everything (about a minute)
    python bench/bench_engine.py --quick    # fewer seeds and repetitions

Every figure is measured in this run beside its baseline, and reported as a ratio to it or per
call: a level-by-level scheduler and one-by-one execution for makespan, a raw asyncio.TaskGroup
(and LangGraph's ToolNode, when langgraph is installed) for overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench_plan import HEADER as PLANNING_HEADER
from bench_plan import budget_line, planning_rows

from toolweave import Orchestrator, ToolCall, tool

# ---------------------------------------------------------------- makespan


@tool
async def work(ms: int, inputs: list[Any] | None = None) -> int:
    """Sleep for ``ms`` milliseconds: a tool with a real latency."""
    await asyncio.sleep(ms / 1000)
    return ms


Graph = list[tuple[int, list[int]]]  # per call: latency in ms, indexes of its dependencies


def skewed_graph() -> Graph:
    """A long call beside a chain of short ones; a level barrier makes the chain wait."""
    graph: Graph = [(400, []), (40, [])]  # 0: long, 1: chain head
    for _ in range(7):
        graph.append((40, [len(graph) - 1]))  # chain of 40 ms calls
    chain_end = len(graph) - 1
    graph.append((100, [chain_end]))  # after the chain only
    graph.append((50, [0, 3]))  # after the long call and the chain's third link
    return graph


def random_graph(seed: int, n: int = 30) -> Graph:
    rng = random.Random(seed)
    graph: Graph = []
    for i in range(n):
        k = rng.choice([0, 0, 1, 1, 2, 3]) if i else 0
        deps = sorted(rng.sample(range(i), min(k, i)))
        graph.append((rng.randint(10, 200), deps))
    return graph


def critical_path(graph: Graph) -> float:
    finish: list[float] = []
    for ms, deps in graph:
        finish.append(ms + max((finish[d] for d in deps), default=0))
    return max(finish) / 1000


def to_calls(graph: Graph) -> list[ToolCall]:
    calls = []
    for i, (ms, deps) in enumerate(graph):
        # Half the edges as data references, half as depends_on.
        refs = [f"${{c{d}}}" for d in deps[::2]]
        calls.append(
            ToolCall(f"c{i}", "work", {"ms": ms, "inputs": refs}, [f"c{d}" for d in deps[1::2]])
        )
    return calls


async def level_by_level(graph: Graph) -> float:
    """Baseline: run each level with a TaskGroup, waiting for the whole level (a barrier)."""
    level: list[int] = []
    for _, deps in graph:
        level.append(1 + max((level[d] for d in deps), default=-1))
    start = time.perf_counter()
    for lv in range(max(level) + 1):
        async with asyncio.TaskGroup() as tg:
            for i, (ms, _) in enumerate(graph):
                if level[i] == lv:
                    tg.create_task(work.fn(ms))
    return time.perf_counter() - start


async def oracle(graph: Graph) -> float:
    """Reference: the best plain asyncio can do, each call awaiting its dependencies' events.
    What separates it from the critical path is the event loop's own timer overshoot."""
    done = [asyncio.Event() for _ in graph]

    async def node(i: int) -> None:
        for d in graph[i][1]:
            await done[d].wait()
        await work.fn(graph[i][0])
        done[i].set()

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for i in range(len(graph)):
            tg.create_task(node(i))
    return time.perf_counter() - start


async def one_by_one(graph: Graph) -> float:
    start = time.perf_counter()
    for ms, _ in graph:
        await work.fn(ms)
    return time.perf_counter() - start


async def toolweave_makespan(graph: Graph) -> float:
    result = await Orchestrator([work]).run(to_calls(graph))
    assert result.ok, [r.error for r in result.results if r.error]
    return result.elapsed


async def makespan_rows(seeds: int) -> list[list[str]]:
    graphs = [("skewed", skewed_graph())]
    graphs += [(f"random seed {s}", random_graph(s)) for s in range(seeds)]
    rows = []
    ratios: dict[str, list[float]] = {"toolweave": [], "oracle": [], "level": [], "serial": []}
    for name, graph in graphs:
        cp = critical_path(graph)
        measured = {
            "toolweave": await toolweave_makespan(graph),
            "oracle": await oracle(graph),
            "level": await level_by_level(graph),
            "serial": await one_by_one(graph),
        }
        for key, seconds in measured.items():
            ratios[key].append(seconds / cp)
        rows.append([name, f"{cp * 1000:.0f}", *(f"{ratios[k][-1]:.3f}" for k in ratios)])
    rows.append(["mean", "", *(f"{statistics.mean(v):.3f}" for v in ratios.values())])
    return rows


# ---------------------------------------------------------------- overhead


@tool
async def noop(i: int) -> int:
    """Return at once: all time spent is the engine's."""
    return i


async def raw_taskgroup(n: int) -> None:
    async with asyncio.TaskGroup() as tg:
        for i in range(n):
            tg.create_task(noop.fn(i))


async def per_call(fn: Callable[[], Awaitable[Any]], n: int, budget: float) -> float:
    """Median microseconds per call over repeated runs of ``fn`` (n calls each)."""
    await fn()  # warm up
    reps = max(5, int(budget / max(n, 1)))
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / n * 1e6


def langgraph_runner(n: int) -> Callable[[], Awaitable[Any]] | None:
    try:
        from langchain_core.messages import AIMessage
        from langchain_core.tools import tool as lc_tool
        from langgraph.graph import END, START, MessagesState, StateGraph
        from langgraph.prebuilt import ToolNode
    except ImportError:
        return None

    @lc_tool
    async def lc_noop(i: int) -> int:
        """Return at once."""
        return i

    graph = StateGraph(MessagesState)
    graph.add_node("tools", ToolNode([lc_noop]))
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    app = graph.compile()
    message = AIMessage(
        content="",
        tool_calls=[{"id": f"c{i}", "name": "lc_noop", "args": {"i": i}} for i in range(n)],
    )
    return lambda: app.ainvoke({"messages": [message]})


async def overhead_rows(budget: float) -> list[list[str]]:
    orchestrator = Orchestrator([noop])
    rows = []
    for n in (1, 10, 100, 1000):
        calls = [ToolCall(f"c{i}", "noop", {"i": i}) for i in range(n)]
        ours = await per_call(lambda calls=calls: orchestrator.run(calls), n, budget)
        raw = await per_call(lambda n=n: raw_taskgroup(n), n, budget)
        runner = langgraph_runner(n)
        lg = await per_call(runner, n, budget / 10) if runner else None
        rows.append(
            [
                str(n),
                f"{ours:.1f}",
                f"{raw:.1f}",
                f"{ours - raw:.1f}",
                "-" if lg is None else f"{lg:.0f}",
            ]
        )
    return rows


# ---------------------------------------------------------------- planning


# 10,000 calls with 20,000 edges, beside graphlib sorting the same graph: see bench_plan.py.


# ---------------------------------------------------------------- report


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[k]) for r in rows)) for k, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if k else c.ljust(w) for k, (c, w) in pairs)

    out = [title, line(header), "  ".join("-" * w for w in widths)]
    return "\n".join(out + [line(r) for r in rows])


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer seeds and repetitions")
    args = parser.parse_args()
    seeds = 3 if args.quick else 8
    budget = 2_000 if args.quick else 20_000

    print(
        table(
            "Makespan / critical path (1.000 is ideal; 30-call random graphs, 10-200 ms latencies)",
            ["graph", "critical ms", "toolweave", "plain asyncio", "level-by-level", "one-by-one"],
            await makespan_rows(seeds),
        )
    )
    print()
    print(
        table(
            "Overhead per call, microseconds (trivial async tool, no tracing SDK)",
            ["calls", "toolweave", "raw TaskGroup", "toolweave - raw", "LangGraph ToolNode"],
            await overhead_rows(budget),
        )
    )
    print()
    rows, ratio = planning_rows(5 if args.quick else 15)
    print(table("Planning time against graphlib (median of paired runs)", PLANNING_HEADER, rows))
    print(budget_line(ratio))


if __name__ == "__main__":
    asyncio.run(main())
