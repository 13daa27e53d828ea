"""Decision cost per step: chains of 500 to 4,000 steps, with a rule decider asked before every
step beside the same chains without one, measured in this run.

    python bench/bench_decisions.py            # best of 3 per size
    python bench/bench_decisions.py --quick    # best of 1

A decision must cost the same at step 4,000 as at step 2: the decider's context is built from
views that cost nothing until read, so a chain with a decider must grow linearly. The check at
the end fails (exit 1) when 4,000 steps cost more than 2.5x 2,000 steps.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from typing import Any

from toolweave import Decision, DecisionContext, Orchestrator, RuleDecider, ToolCall, tool

SIZES = (500, 1000, 2000, 4000)
LIMIT = 2.5  # 4,000 steps against 2,000: linear growth is 2.0


@tool
async def step(value: Any = None) -> int:
    """One link of the chain."""
    return 1


def last_finished_ok(ctx: DecisionContext) -> Decision | None:
    """A realistic rule: look at what just finished, object only to a failure."""
    latest = ctx.finished[-1]
    if latest.status != "ok":
        return Decision(action="stop", reason=f"{latest.call_id} failed")
    return None


def chain(n: int) -> list[ToolCall]:
    calls = [ToolCall("s0", "step")]
    calls += [ToolCall(f"s{i}", "step", {"value": f"${{s{i - 1}}}"}) for i in range(1, n)]
    return calls


def best_of(orchestrator: Orchestrator, calls: list[ToolCall], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = asyncio.run(orchestrator.run(calls))
        times.append(time.perf_counter() - start)
        assert result.ok, "every step must run"
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run per size")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    plain = Orchestrator([step])
    ruled = Orchestrator([step], decider=RuleDecider(last_finished_ok))
    rows = []
    with_rule: dict[int, float] = {}
    for n in SIZES:
        calls = chain(n)
        base = best_of(plain, calls, repeats)
        decided = best_of(ruled, calls, repeats)
        with_rule[n] = decided
        per_step = (decided - base) / (n - 1) * 1e6
        rows.append((n, base, decided, per_step))
    print(f"decision cost per step, chains with a rule decider (best of {repeats})")
    print(f"{'steps':>6}  {'no decider':>11}  {'rule decider':>13}  {'decision/step':>14}")
    for n, base, decided, per_step in rows:
        print(f"{n:>6}  {base * 1000:>8.0f} ms  {decided * 1000:>10.0f} ms  {per_step:>11.0f} us")
    growth = with_rule[4000] / with_rule[2000]
    verdict = "linear" if growth <= LIMIT else "NOT linear"
    print(f"4,000 steps cost {growth:.2f}x 2,000 steps with the decider ({verdict}; limit {LIMIT})")
    return 0 if growth <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
