"""Planning benchmark: 10,000 calls with 20,000 edges, against graphlib on the same graph.

    python bench/bench_plan.py              # 15 paired repetitions
    python bench/bench_plan.py --quick      # 5
    python bench/bench_plan.py --profile    # and a cProfile of Orchestrator.plan

Budget (issue 9): ``Orchestrator.plan(calls)`` takes at most 2x what
``graphlib.TopologicalSorter(graph).static_order()``, fully consumed, takes on the same graph in
the same run. The two are timed in pairs, one right after the other (which one goes first
alternates), and the ratio reported is the median of the pairs' ratios, so that a machine
slowing down during the run moves both sides of a pair alike. ``run()`` plans with the same two
functions as ``plan()`` (``coerce_batch`` then ``plan_batch``), so one figure serves both.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import graphlib
import pstats
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from toolweave import Orchestrator, ToolCall, tool

BUDGET = 2.0
"""Planning may take at most this many times graphlib's time on the same graph."""
CALLS, EDGES = 10_000, 20_000


@tool
async def work(ms: int, inputs: list[Any] | None = None) -> int:
    """Sleep for ``ms`` milliseconds (never run here: planning only)."""
    await asyncio.sleep(ms / 1000)
    return ms


def random_dag(n: int = CALLS, edges: int = EDGES, seed: int = 7) -> list[list[int]]:
    """Per call, the sorted indexes of the earlier calls it waits for: ``edges`` in all."""
    rng = random.Random(seed)
    deps: list[set[int]] = [set() for _ in range(n)]
    added = 0
    while added < edges:
        a, b = sorted(rng.sample(range(n), 2))
        if a not in deps[b]:
            deps[b].add(a)
            added += 1
    return [sorted(ds) for ds in deps]


def to_calls(deps: list[list[int]]) -> list[ToolCall]:
    """Half of each call's edges as string references into the output, half as depends_on."""
    return [
        ToolCall(
            f"c{i}",
            "work",
            {"ms": 1, "inputs": [f"${{c{d}.value}}" for d in ds[::2]]},
            [f"c{d}" for d in ds[1::2]],
        )
        for i, ds in enumerate(deps)
    ]


def to_graphlib(deps: list[list[int]]) -> dict[int, set[int]]:
    """The same graph as graphlib takes it: node -> the nodes it waits for. Nodes are ints, as
    in bench_budget.py: graphlib sorts them faster than the ids, so the budget is stricter."""
    return {i: set(ds) for i, ds in enumerate(deps)}


@dataclass
class Pairs:
    ours: list[float]
    graphlib: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(o / g for o, g in zip(self.ours, self.graphlib, strict=True))


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired(ours: Callable[[], object], graph: dict[int, set[int]], repeats: int) -> Pairs:
    def sort() -> object:
        return list(graphlib.TopologicalSorter(graph).static_order())

    ours(), sort()  # warm up
    pairs = Pairs([], [])
    for k in range(repeats):
        if k % 2:
            pairs.graphlib.append(timed(sort))
            pairs.ours.append(timed(ours))
        else:
            pairs.ours.append(timed(ours))
            pairs.graphlib.append(timed(sort))
    return pairs


def planning_rows(repeats: int) -> tuple[list[list[str]], float]:
    """Rows for the planning table, and the ratio the budget is about (the batch in order)."""
    deps = random_dag()
    in_order = to_calls(deps)
    shuffled = list(in_order)
    random.Random(8).shuffle(shuffled)  # most references now point at later calls
    graph = to_graphlib(deps)
    orchestrator = Orchestrator([work])
    rows, ratios = [], []
    for name, calls in (("in batch order", in_order), ("shuffled", shuffled)):
        plan = orchestrator.plan(calls)
        assert sum(len(v) for v in plan.dependencies.values()) == EDGES
        assert not plan.errors
        pairs = paired(lambda calls=calls: orchestrator.plan(calls), graph, repeats)
        ratios.append(pairs.ratio)
        rows.append(
            [
                f"{CALLS} calls, {EDGES} edges, {name}",
                f"{statistics.median(pairs.ours) * 1000:.1f}",
                f"{statistics.median(pairs.graphlib) * 1000:.1f}",
                f"{pairs.ratio:.2f}",
                str(len(plan.groups)),
            ]
        )
    return rows, ratios[0]


HEADER = ["batch", "plan() median ms", "graphlib median ms", "ratio", "groups"]


def budget_line(ratio: float) -> str:
    """The verdict for the batch in order (the graph of issue 9)."""
    verdict = "met" if ratio <= BUDGET else "NOT met"
    return (
        f"budget: plan() of the batch in order at most {BUDGET:.1f}x graphlib on the same "
        f"graph: {ratio:.2f}x, {verdict}"
    )


def profile(top: int = 25) -> None:
    calls = to_calls(random_dag())
    orchestrator = Orchestrator([work])
    orchestrator.plan(calls)
    profiler = cProfile.Profile()
    profiler.runcall(orchestrator.plan, calls)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    from bench_engine import table  # one table format for every benchmark

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="5 paired repetitions, not 15")
    parser.add_argument("--profile", action="store_true", help="profile Orchestrator.plan")
    args = parser.parse_args()
    rows, ratio = planning_rows(5 if args.quick else 15)
    print(table("Planning time against graphlib (median of paired runs)", HEADER, rows))
    print(budget_line(ratio))
    if args.profile:
        profile()


if __name__ == "__main__":
    main()
