"""What toolweave costs inside LangGraph's prebuilt agents, against ToolNode in the same run.

    python bench/bench_langgraph.py            # about a minute
    python bench/bench_langgraph.py --quick

Each agent turn is ``graph.ainvoke`` of a create_react_agent (or a create_agent) whose model
(a fake, answering at once) asks for n calls of a tool that sleeps 20 ms, then answers. The
same graph shape runs with ToolNode and with ToolweaveNode (or without and with
ToolweaveMiddleware), in alternating rounds; medians are compared. For create_agent a third
runner has a middleware that only passes each call on: what LangChain charges for any
middleware with these hooks, so "extra" there is toolweave's own part. A second table shows the
point of it: a chain of n calls, each taking the previous one's output, which toolweave runs
in one turn where ToolNode needs a model turn per step (here: the model's round trip is
simulated as free, so the gain shown is only the tool-node side).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.prebuilt import ToolNode

from toolweave.adapters.langchain import ToolweaveMiddleware, ToolweaveNode

warnings.filterwarnings("ignore", message="create_react_agent has been moved")
from langgraph.prebuilt import create_react_agent  # noqa: E402

SLEEP = 0.02


@tool
async def step(x: int) -> int:
    """Wait a little, add one."""
    await asyncio.sleep(SLEEP)
    return x + 1


class Model(GenericFakeChatModel):
    """Answers from a script, at once."""

    def bind_tools(self, tools: Sequence[Any], **_: Any) -> Model:
        return self


def turn(n: int, chained: bool) -> AIMessage:
    calls = [
        {"id": f"c{i}", "name": "step", "args": {"x": f"${{c{i - 1}}}" if chained and i else 0}}
        for i in range(n)
    ]
    return AIMessage(content="", tool_calls=calls)


def agents(kind: str) -> dict[str, Callable[[list[AIMessage]], Any]]:
    def build(engine: str, script: list[AIMessage]) -> Any:
        model = Model(messages=iter([*script, AIMessage(content="done")]))
        if kind == "react":
            node = ToolNode([step]) if engine == "ToolNode" else ToolweaveNode([step])
            return create_react_agent(model, node)
        middleware = {"toolweave": [ToolweaveMiddleware()], "pass-through": [PassThrough()]}
        return create_agent(model, [step], middleware=middleware.get(engine, []))

    engines = ["ToolNode", "toolweave"] + (["pass-through"] if kind == "create_agent" else [])
    return {engine: functools.partial(build, engine) for engine in engines}


class PassThrough(AgentMiddleware[Any, Any]):
    """The hooks ToolweaveMiddleware has, doing nothing."""

    async def awrap_tool_call(self, request: Any, handler: Any) -> Any:
        return await handler(request)

    async def awrap_model_call(self, request: Any, handler: Any) -> Any:
        return await handler(request)


async def timed(graph: Any) -> float:
    started = time.perf_counter()
    await graph.ainvoke({"messages": [HumanMessage("go")]})
    return time.perf_counter() - started


async def compare(kind: str, n: int, rounds: int) -> tuple[float, float, float | None]:
    builders = agents(kind)
    times: dict[str, list[float]] = {name: [] for name in builders}
    for _ in range(rounds):
        for name, build in builders.items():
            times[name].append(await timed(build([turn(n, chained=False)])))
    medians = {name: statistics.median(t) for name, t in times.items()}
    return medians["ToolNode"], medians["toolweave"], medians.get("pass-through")


async def chain(n: int, rounds: int) -> tuple[float, float]:
    """A chain of n dependent calls: n turns with ToolNode, one with toolweave."""
    toolnode, toolweave = [], []
    for _ in range(rounds):
        script = [turn(1, chained=False) for _ in range(n)]
        toolnode.append(await timed(agents("react")["ToolNode"](script)))
        toolweave.append(await timed(agents("react")["toolweave"]([turn(n, chained=True)])))
    return statistics.median(toolnode), statistics.median(toolweave)


async def main(quick: bool) -> None:
    rounds = 5 if quick else 15
    print(f"independent calls, each sleeping {SLEEP * 1000:.0f} ms; median of {rounds} turns")
    print(
        f"{'agent':<14}{'calls':>6}{'ToolNode':>12}{'pass-through':>14}{'toolweave':>12}"
        f"{'extra':>10}{'ratio':>8}"
    )
    for kind in ("react", "create_agent"):
        for n in (1, 4, 16):
            toolnode, ours, passing = await compare(kind, n, rounds)
            base = passing if passing is not None else toolnode
            shown = f"{passing * 1000:>12.1f}ms" if passing is not None else f"{'-':>14}"
            print(
                f"{kind:<14}{n:>6}{toolnode * 1000:>10.1f}ms{shown}{ours * 1000:>10.1f}ms"
                f"{(ours - base) * 1000:>8.2f}ms{ours / base:>8.2f}"
            )
    print()
    print("a chain of n calls, each using the previous one's output (react agent)")
    print(f"{'calls':>6}{'ToolNode: n turns':>20}{'toolweave: 1 turn':>20}{'ratio':>8}")
    for n in (2, 4, 8):
        base, ours = await chain(n, rounds)
        print(f"{n:>6}{base * 1000:>18.1f}ms{ours * 1000:>18.1f}ms{ours / base:>8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
