"""Side effects and repeated work, in one process: ordering by resource (``reads``/``writes``),
identical calls merged, the result cache and single flight, ``CallContext``, and the call ledger
replaying, reporting and refusing. Real processes killed mid-batch are in
test_ledger_resume.py; the backends themselves in test_caches.py and test_ledgers.py."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from toolweave import (
    CallContext,
    Decision,
    MemoryCache,
    Orchestrator,
    SQLiteLedger,
    Tool,
    ToolCall,
    UsageError,
    tool,
)
from toolweave._resources import Keys, ResourceGate, conflict
from toolweave._tracing import plan_json

pytestmark = pytest.mark.anyio


class Timeline:
    """Start and end events of calls, numbered in the order they happened (one event loop:
    the numbering is exact, no clock involved)."""

    def __init__(self) -> None:
        self.tick = itertools.count()
        self.spans: dict[str, tuple[int, int]] = {}
        self._starts: dict[str, int] = {}

    def start(self, name: str) -> None:
        self._starts[name] = next(self.tick)

    def end(self, name: str) -> None:
        self.spans[name] = (self._starts.pop(name), next(self.tick))

    def overlap(self, a: str, b: str) -> bool:
        (s1, e1), (s2, e2) = self.spans[a], self.spans[b]
        return s1 < e2 and s2 < e1

    def before(self, a: str, b: str) -> bool:
        return self.spans[a][1] < self.spans[b][0]


def keyed_tools(t: Timeline, pause: float = 0.05) -> list[Tool]:
    @tool(writes=lambda a: a["path"])
    async def write(id: str, path: str) -> str:
        """Write a file."""
        t.start(id)
        await asyncio.sleep(pause)
        t.end(id)
        return "written"

    @tool(reads=lambda a: a["path"])
    async def read(id: str, path: str) -> str:
        """Read a file."""
        t.start(id)
        await asyncio.sleep(pause)
        t.end(id)
        return "content"

    @tool
    async def other(id: str) -> str:
        """Touch nothing shared."""
        t.start(id)
        await asyncio.sleep(pause * 3)
        t.end(id)
        return "other"

    return [write, read, other]


# --------------------------------------------------------------------- ordering by resource


async def test_a_write_then_a_read_of_one_file_run_in_order_while_the_rest_overlaps() -> None:
    t = Timeline()
    o = Orchestrator(keyed_tools(t))
    result = await o.run(
        [
            ToolCall("w", "write", {"id": "w", "path": "notes.txt"}),
            ToolCall("r", "read", {"id": "r", "path": "notes.txt"}),
            ToolCall("x", "other", {"id": "x"}),
            ToolCall("r2", "read", {"id": "r2", "path": "other.txt"}),
        ]
    )
    assert result.ok
    assert t.before("w", "r")
    assert t.overlap("x", "w")
    assert t.overlap("x", "r")
    assert t.overlap("r2", "w")  # another file: not held back
    plan = result.plan
    assert plan.orderings == {"r": ["w"]}
    assert plan.groups == [["w", "x", "r2"], ["r"]]  # levels count resource edges
    entry = {e["tool_id"]: e for g in plan.to_dict()["execution_groups"] for e in g["tools"]}
    assert entry["r"]["ordered_after"] == ["w"]
    assert entry["x"]["ordered_after"] == []
    assert json.loads(plan_json(plan, capture=True)) == plan.to_dict()


async def test_readers_share_and_a_writer_waits_for_every_earlier_reader() -> None:
    t = Timeline()
    o = Orchestrator(keyed_tools(t))
    calls = [
        ToolCall("r1", "read", {"id": "r1", "path": "f"}),
        ToolCall("r2", "read", {"id": "r2", "path": "f"}),
        ToolCall("w", "write", {"id": "w", "path": "f"}),
        ToolCall("r3", "read", {"id": "r3", "path": "f"}),
    ]
    result = await o.run(calls)
    assert result.ok
    assert t.overlap("r1", "r2")
    assert t.before("r1", "w")
    assert t.before("r2", "w")
    assert t.before("w", "r3")
    assert result.plan.orderings == {"w": ["r2", "r1"], "r3": ["w"]}


async def test_a_later_call_waits_even_when_the_earlier_one_fails() -> None:
    t = Timeline()

    @tool(writes="db")
    async def migrate(id: str) -> str:
        t.start(id)
        await asyncio.sleep(0.05)
        t.end(id)
        raise RuntimeError("migration failed")

    @tool(reads="db")
    async def query(id: str) -> str:
        t.start(id)
        t.end(id)
        return "rows"

    result = await Orchestrator([migrate, query]).run(
        [ToolCall("m", "migrate", {"id": "m"}), ToolCall("q", "query", {"id": "q"})]
    )
    assert [r.status for r in result.results] == ["error", "ok"]  # ordered, not dependent
    assert t.before("m", "q")


async def test_keys_from_a_reference_are_known_once_bound_and_still_order_calls() -> None:
    t = Timeline()
    tools = keyed_tools(t)

    @tool
    async def pick() -> dict[str, str]:
        await asyncio.sleep(0.02)
        return {"path": "chosen.txt"}

    o = Orchestrator([*tools, pick])
    calls = [
        ToolCall("p", "pick", {}),
        ToolCall("w", "write", {"id": "w", "path": "${p.path}"}),  # keys unknown at planning
        ToolCall("r", "read", {"id": "r", "path": "chosen.txt"}),
        ToolCall("u", "read", {"id": "u", "path": "unrelated.txt"}),
    ]
    plan = o.plan(calls)
    assert plan.orderings == {}  # w's key depends on p's output
    result = await o.run(calls)
    assert result.ok
    assert t.before("w", "r")  # r waited for w, whose key turned out to be its file
    # An unrelated read waits only until w's key is known (it might have been its file),
    # never for w to end.
    assert t.overlap("u", "w")


async def test_a_key_function_that_raises_orders_its_call_against_every_keyed_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t = Timeline()

    def broken(arguments: dict[str, Any]) -> str:
        raise KeyError("no such argument; secret=hunter2")

    @tool(writes=broken)
    async def risky(id: str) -> str:
        t.start(id)
        await asyncio.sleep(0.05)
        t.end(id)
        return "done"

    tools = [*keyed_tools(t), risky]
    calls = [
        ToolCall("r", "read", {"id": "r", "path": "a"}),
        ToolCall("k", "risky", {"id": "k"}),
        ToolCall("w", "write", {"id": "w", "path": "b"}),
        ToolCall("x", "other", {"id": "x"}),
    ]
    with caplog.at_level(logging.WARNING, logger="toolweave"):
        result = await Orchestrator(tools).run(calls)
    assert result.ok
    assert t.before("r", "k")
    assert t.before("k", "w")
    assert t.overlap("x", "k")  # declares no keys: never held back
    warning = next(r.getMessage() for r in caplog.records if "reads/writes" in r.getMessage())
    assert "'k'" in warning
    assert "KeyError" in warning
    assert "hunter2" not in warning  # the exception's text may quote arguments


async def test_ordering_never_deadlocks_against_a_reference_pointing_forward() -> None:
    """Call a (first) needs c's output, c writes what b writes, b writes what a writes: in
    batch order b would wait for a, which waits for c, which would wait for b. Ranks follow
    the data edges first, so this runs."""
    t = Timeline()

    @tool(writes=lambda a: a["keys"])
    async def put(id: str, keys: list[str], after: str = "") -> dict[str, str]:
        t.start(id)
        await asyncio.sleep(0.02)
        t.end(id)
        return {"v": id}

    calls = [
        ToolCall("a", "put", {"id": "a", "keys": ["r1"], "after": "${c.v}"}),
        ToolCall("b", "put", {"id": "b", "keys": ["r1", "r2"]}),
        ToolCall("c", "put", {"id": "c", "keys": ["r2"]}),
    ]
    result = await asyncio.wait_for(Orchestrator([put]).run(calls), 30)
    assert result.ok
    assert not t.overlap("a", "b")
    assert not t.overlap("b", "c")
    assert t.before("c", "a")


async def test_a_streamed_batch_orders_calls_as_they_arrive() -> None:
    t = Timeline()
    o = Orchestrator(keyed_tools(t))
    async with o.stream() as batch:
        batch.add(ToolCall("w", "write", {"id": "w", "path": "f"}))
        await asyncio.sleep(0.01)
        batch.add(ToolCall("x", "other", {"id": "x"}))
        batch.add(ToolCall("r", "read", {"id": "r", "path": "f"}))
    assert batch.result.ok
    assert t.before("w", "r")
    assert t.overlap("x", "r")


async def test_a_stop_skips_calls_still_waiting_for_a_resource() -> None:
    t = Timeline()

    def stop(context: Any) -> Decision:
        return Decision(action="stop", reason="enough")

    @tool
    async def first() -> str:
        return "x"

    @tool
    async def second(x: str) -> str:
        return x

    o = Orchestrator([*keyed_tools(t, pause=0.3), first, second], decider=stop)
    calls = [
        ToolCall("w", "write", {"id": "w", "path": "f"}),
        ToolCall("r", "read", {"id": "r", "path": "f"}),  # waits for w's resource
        ToolCall("a", "first", {}),
        ToolCall("b", "second", {"x": "${a}"}),  # the decider is asked here, and stops
    ]
    result = await o.run(calls)
    assert result.stopped == "enough"
    assert result.get("w").ok
    assert result.get("r").status == "skipped"
    assert result.get("r").error_type == "stopped_by_decider"
    assert "r" not in t.spans  # it never started


async def test_strategy_serial_ignores_resources_and_keeps_batch_order() -> None:
    t = Timeline()
    o = Orchestrator(keyed_tools(t), strategy="serial")
    calls = [
        ToolCall("r", "read", {"id": "r", "path": "f"}),
        ToolCall("w", "write", {"id": "w", "path": "f"}),
    ]
    result = await o.run(calls)
    assert result.ok
    assert result.plan.orderings == {}
    assert t.before("r", "w")


def test_reads_and_writes_take_keys_or_a_function_of_the_arguments() -> None:
    with pytest.raises(UsageError, match=r"tool 'bad': writes takes a key .* got int"):

        @tool(name="bad", writes=3)  # type: ignore[arg-type]
        def bad() -> None: ...

    @tool(reads=["a", "b"], writes="c")
    def fixed() -> None: ...

    assert fixed.reads == frozenset({"a", "b"})
    assert fixed.writes == frozenset({"c"})
    assert fixed.declares_resources

    spec = Tool.from_schema(
        "put",
        "Put a value.",
        {"type": "object", "properties": {"key": {"type": "string"}}},
        lambda a: a,
        writes=lambda a: a["key"],
    )
    plan = Orchestrator([spec]).plan(
        [ToolCall("1", "put", {"key": "k"}), ToolCall("2", "put", {"key": "k"})]
    )
    assert plan.orderings == {"2": ["1"]}


# Property tests: random keys, random batches.

_KEYS = st.frozensets(st.sampled_from("abcd"), max_size=2)
_CALL = st.tuples(_KEYS, _KEYS, st.integers(0, 3))  # reads, writes, yields while running


def _conflicting(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return conflict(Keys(a[0], a[1]), Keys(b[0], b[1]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_CALL, min_size=1, max_size=8), st.sampled_from([64, 0]))
def test_property_conflicting_calls_never_overlap_and_keep_batch_order(
    spec: list[tuple[frozenset[str], frozenset[str], int]], heavy: int
) -> None:
    from toolweave import _resources

    saved, _resources._HEAVY = _resources._HEAVY, heavy
    try:
        _check_run(spec)
    finally:
        _resources._HEAVY = saved


def _check_run(spec: list[tuple[frozenset[str], frozenset[str], int]]) -> None:
    t = Timeline()

    @tool(reads=lambda a: a["reads"], writes=lambda a: a["writes"])
    async def op(id: str, reads: list[str], writes: list[str], yields: int) -> str:
        t.start(id)
        for _ in range(yields):
            await asyncio.sleep(0)
        t.end(id)
        return id

    calls = [
        ToolCall(str(i), "op", {"id": str(i), "reads": sorted(r), "writes": sorted(w), "yields": y})
        for i, (r, w, y) in enumerate(spec)
    ]
    result = asyncio.run(Orchestrator([op]).run(calls))
    assert result.ok
    for i, j in itertools.combinations(range(len(spec)), 2):
        if _conflicting(spec[i], spec[j]):
            assert t.before(str(i), str(j)), (i, j)
    # The plan's orderings relate conflicting calls only, and order every conflicting pair
    # (through other calls, possibly).
    plan = result.plan
    reach: dict[int, set[int]] = {}
    for j in range(len(spec)):
        reach[j] = set()
        for i in map(int, plan.orderings.get(str(j), [])):
            assert i < j
            assert _conflicting(spec[i], spec[j])
            reach[j] |= {i, *reach[i]}
    for i, j in itertools.combinations(range(len(spec)), 2):
        if _conflicting(spec[i], spec[j]):
            assert i in reach[j]


@settings(max_examples=200, deadline=None)
@given(st.lists(_KEYS.flatmap(lambda r: _KEYS.map(lambda w: (r, w))), min_size=1, max_size=10),
       st.data())  # fmt: skip
def test_property_a_call_waits_exactly_when_an_unfinished_earlier_call_conflicts(
    keys: list[tuple[frozenset[str], frozenset[str]]], data: st.DataObject
) -> None:
    from toolweave import _resources
    from toolweave._planner import plan_batch

    # Calls with many keys are compared call by call instead of key by key: both ways.
    heavy = data.draw(st.sampled_from([_resources._HEAVY, 0, 1]))
    saved, _resources._HEAVY = _resources._HEAVY, heavy
    try:
        _check_gate(keys, data, plan_batch)
    finally:
        _resources._HEAVY = saved


def _check_gate(
    keys: list[tuple[frozenset[str], frozenset[str]]], data: st.DataObject, plan_batch: Any
) -> None:

    @tool(reads=lambda a: a["r"], writes=lambda a: a["w"])
    def op(r: list[str], w: list[str]) -> None: ...

    calls = [
        ToolCall(str(i), "op", {"r": sorted(r), "w": sorted(w)}) for i, (r, w) in enumerate(keys)
    ]
    _, prepared = plan_batch(calls, {"op": op})
    finished = data.draw(st.sets(st.integers(0, len(keys) - 1)))
    gate = ResourceGate(prepared, finished.__contains__)
    for j in range(len(keys)):
        expected = any(
            i not in finished and conflict(Keys(*keys[i]), Keys(*keys[j])) for i in range(j)
        )
        assert gate.blocked(j) == expected, (j, finished)


# --------------------------------------------------------------------- identical calls


def counting_tools() -> tuple[list[Tool], dict[str, int]]:
    runs: dict[str, int] = {}

    @tool(idempotent=True)
    async def search(q: str) -> dict[str, Any]:
        runs[q] = runs.get(q, 0) + 1
        await asyncio.sleep(0.02)
        if q == "boom":
            raise RuntimeError("search backend down")
        return {"q": q, "hits": [1, 2]}

    @tool
    async def send(to: str) -> str:
        runs["send:" + to] = runs.get("send:" + to, 0) + 1
        return "sent"

    return [search, send], runs


async def test_identical_calls_to_an_idempotent_tool_run_once() -> None:
    tools, runs = counting_tools()
    result = await Orchestrator(tools).run(
        [
            ToolCall("a", "search", {"q": "x"}),
            ToolCall("b", "search", {"q": "x"}),
            ToolCall("c", "search", {"q": "y"}),
            ToolCall("d", "send", {"to": "bob"}),
            ToolCall("e", "send", {"to": "bob"}),  # not idempotent: both run
            ToolCall("f", "search", {"q": "x"}),
        ]
    )
    assert result.ok
    assert runs == {"x": 1, "y": 1, "send:bob": 2}
    b = result.get("b")
    assert b.deduplicated_from == "a"
    assert b.output == result.get("a").output
    assert b.execution_order is None  # it never ran
    assert result.get("f").deduplicated_from == "a"
    assert result.get("a").deduplicated_from is None
    assert result.get("c").deduplicated_from is None


async def test_an_identical_call_shares_the_failure_too_and_its_dependents_are_skipped() -> None:
    tools, runs = counting_tools()
    result = await Orchestrator(tools).run(
        [
            ToolCall("a", "search", {"q": "boom"}),
            ToolCall("b", "search", {"q": "boom"}),
            ToolCall("c", "send", {"to": "${b.q}"}),
        ]
    )
    assert runs["boom"] == 1
    assert [r.status for r in result.results] == ["error", "error", "skipped"]
    assert result.get("b").deduplicated_from == "a"
    assert "search backend down" in (result.get("b").error or "")


async def test_a_call_identical_to_a_finished_one_takes_its_result_at_once() -> None:
    tools, runs = counting_tools()
    result = await Orchestrator(tools).run(
        [
            ToolCall("a", "search", {"q": "x"}),
            ToolCall("s", "send", {"to": "${a.q}"}),
            ToolCall("b", "search", {"q": "${s}"}, depends_on=["s"]),  # "sent": another query
            ToolCall("c", "search", {"q": "${a.q}"}, depends_on=["s"]),  # "x" again, later
        ]
    )
    assert result.ok
    assert runs["x"] == 1
    assert result.get("c").deduplicated_from == "a"


# --------------------------------------------------------------------- the cache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_cached_results_are_reused_until_their_ttl_runs_out() -> None:
    clock = FakeClock()
    runs = []

    @tool(idempotent=True, cache_ttl=60)
    async def price(sku: str) -> dict[str, Any]:
        runs.append(sku)
        return {"sku": sku, "eur": 9.5}

    o = Orchestrator([price], cache=MemoryCache(clock=clock))
    first = await o.run([ToolCall("1", "price", {"sku": "a"})])
    again = await o.run([ToolCall("1", "price", {"sku": "a"})])
    assert runs == ["a"]
    assert not first.results[0].cached
    assert again.results[0].cached
    assert again.results[0].output == {"sku": "a", "eur": 9.5}
    assert again.results[0].attempts == 0
    clock.now += 61
    late = await o.run([ToolCall("1", "price", {"sku": "a"})])
    assert runs == ["a", "a"]
    assert not late.results[0].cached


async def test_a_tool_asking_for_a_cache_gets_a_memory_cache_unless_turned_off() -> None:
    runs = []

    @tool(idempotent=True, cache_ttl=60)
    async def price(sku: str) -> str:
        runs.append(sku)
        return sku

    o = Orchestrator([price])
    await o.run([ToolCall("1", "price", {"sku": "a"})])
    assert (await o.run([ToolCall("1", "price", {"sku": "a"})])).results[0].cached
    off = Orchestrator([price], cache=False)
    await off.run([ToolCall("1", "price", {"sku": "a"})])
    await off.run([ToolCall("1", "price", {"sku": "a"})])
    assert runs == ["a", "a", "a"]


async def test_identical_calls_of_concurrent_batches_share_one_execution() -> None:
    runs = []
    release = asyncio.Event()

    @tool(idempotent=True, cache_ttl=60)
    async def slow(q: str) -> str:
        runs.append(q)
        await release.wait()
        return q.upper()

    o = Orchestrator([slow])
    one = asyncio.create_task(o.run([ToolCall("1", "slow", {"q": "x"})]))
    two = asyncio.create_task(o.run([ToolCall("9", "slow", {"q": "x"})]))
    for _ in range(20):
        await asyncio.sleep(0)
    release.set()
    first, second = await one, await two
    assert runs == ["x"]
    assert first.results[0].output == second.results[0].output == "X"
    assert sorted([first.results[0].cached, second.results[0].cached]) == [False, True]


def test_cache_ttl_needs_an_idempotent_tool() -> None:
    with pytest.raises(UsageError, match="declare idempotent=True"):

        @tool(cache_ttl=5)
        def f() -> None: ...

    with pytest.raises(UsageError, match="cache_ttl must be a positive number"):

        @tool(idempotent=True, cache_ttl=float("inf"))
        def g() -> None: ...

    with pytest.raises(UsageError, match="cache takes a MemoryCache"):
        Orchestrator([], cache="memory")  # type: ignore[arg-type]


# --------------------------------------------------------------------- CallContext


async def test_a_tool_receives_its_call_context_outside_its_schema() -> None:
    seen: list[CallContext] = []

    @tool(retries=1, retry_wait=__import__("tenacity").wait_none())
    async def charge(amount: int, ctx: CallContext) -> str:
        seen.append(ctx)
        if ctx.attempt == 1:
            raise ConnectionError("flaky")
        return ctx.idempotency_key

    assert "ctx" not in json.dumps(charge.parameters)
    assert charge.context_parameter == "ctx"
    result = await Orchestrator([charge]).run(
        [ToolCall("c1", "charge", {"amount": 5})], batch_id="order-42"
    )
    assert result.ok
    assert [c.attempt for c in seen] == [1, 2]
    assert {c.call_id for c in seen} == {"c1"}
    assert {c.batch_id for c in seen} == {"order-42"}
    key = result.results[0].output
    assert key.startswith("tw-")
    assert len(key) == 43
    assert seen[0].idempotency_key == seen[1].idempotency_key == key
    # Stable across runs of the same batch id, different for another batch or call.
    again = await Orchestrator([charge]).run(
        [ToolCall("c1", "charge", {"amount": 5})], batch_id="order-42"
    )
    assert again.results[0].output == key
    other = await Orchestrator([charge]).run(
        [ToolCall("c2", "charge", {"amount": 5})], batch_id="order-42"
    )
    assert other.results[0].output != key


async def test_a_schema_tool_may_take_the_call_context_as_a_second_parameter() -> None:
    def run(arguments: dict[str, Any], context: CallContext) -> str:
        return f"{arguments['x']}:{context.call_id}"

    t = Tool.from_schema(
        "t", "T.", {"type": "object", "properties": {"x": {"type": "string"}}}, run
    )
    assert t.context_parameter == "context"
    result = await Orchestrator([t]).run([ToolCall("id7", "t", {"x": "v"})])
    assert result.results[0].output == "v:id7"


async def test_middleware_sees_the_idempotency_key() -> None:
    keys = []

    async def spy(request: Any, call_next: Callable[..., Any]) -> Any:
        keys.append(request.idempotency_key)
        return await call_next(request)

    @tool
    def noop() -> None: ...

    await Orchestrator([noop], middleware=[spy]).run([ToolCall("a", "noop", {})], batch_id="b")
    await Orchestrator([noop], middleware=[spy]).run([ToolCall("a", "noop", {})], batch_id="b")
    assert len(set(keys)) == 1
    assert keys[0].startswith("tw-")


def test_batch_id_must_be_text() -> None:
    o = Orchestrator([])
    for bad in ("", 5, "x" * 1001):
        with pytest.raises(UsageError, match="batch_id must be a non-empty string"):
            o.run_sync([], batch_id=bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------- the ledger in-process


def ledger_tools() -> tuple[list[Tool], list[str]]:
    effects: list[str] = []

    @tool
    async def send_email(to: str) -> dict[str, str]:
        effects.append("email:" + to)
        return {"sent_to": to}

    @tool(idempotent=True)
    async def lookup(id: int) -> dict[str, int]:
        effects.append(f"lookup:{id}")
        return {"id": id}

    @tool
    async def fail() -> None:
        effects.append("fail")
        raise ValueError("no")

    return [send_email, lookup, fail], effects


async def test_running_a_known_batch_again_replays_it_without_calling_tools(tmp_path: Any) -> None:
    tools, effects = ledger_tools()
    calls = [
        ToolCall("1", "send_email", {"to": "ann@example.org"}),
        ToolCall("2", "lookup", {"id": 3}),
        ToolCall("3", "fail", {}),
    ]
    async with SQLiteLedger(tmp_path / "calls.db") as ledger:
        o = Orchestrator(tools, ledger=ledger)
        first = await o.run(calls, batch_id="resp_1")
        again = await o.run(calls, batch_id="resp_1")
        other = await o.run(calls, batch_id="resp_2")
    assert effects == ["email:ann@example.org", "lookup:3", "fail"] * 2  # resp_2 is new
    assert [r.replayed for r in first.results] == [False] * 3
    assert [r.replayed for r in again.results] == [True] * 3
    assert [r.status for r in again.results] == ["ok", "ok", "error"]
    assert again.get("1").output == {"sent_to": "ann@example.org"}
    assert again.get("3").error == first.get("3").error
    assert again.get("3").error_type == "tool_error"
    assert not any(r.replayed for r in other.results)


async def test_other_arguments_under_a_recorded_call_id_are_a_ledger_conflict(
    tmp_path: Any,
) -> None:
    tools, effects = ledger_tools()
    async with SQLiteLedger(tmp_path / "calls.db") as ledger:
        o = Orchestrator(tools, ledger=ledger)
        await o.run([ToolCall("1", "send_email", {"to": "ann"})], batch_id="b")
        result = await o.run([ToolCall("1", "send_email", {"to": "bob"})], batch_id="b")
    assert effects == ["email:ann"]
    r = result.results[0]
    assert r.status == "error"
    assert r.error_type == "ledger_conflict"
    assert "give each batch its own batch_id" in (r.error or "")
    assert (r.error or "").startswith("call '1' (send_email): not run: ")


async def test_a_call_left_started_is_uncertain_unless_its_tool_is_idempotent(
    tmp_path: Any,
) -> None:
    from toolweave._reuse import same_call

    tools, effects = ledger_tools()
    async with SQLiteLedger(tmp_path / "calls.db") as ledger:
        # What a process killed inside its tools leaves behind: rows "started", no result.
        for call_id, name, args in [("1", "send_email", {"to": "ann"}), ("2", "lookup", {"id": 3})]:
            claim = await ledger.claim("b", call_id, same_call(name, args))
            await ledger.abandon(claim)
        o = Orchestrator(tools, ledger=ledger)
        calls = [ToolCall("1", "send_email", {"to": "ann"}), ToolCall("2", "lookup", {"id": 3})]
        result = await o.run(calls, batch_id="b")
        again = await o.run(calls, batch_id="b")
    assert effects == ["lookup:3"]  # the email is not sent again
    email = result.get("1")
    assert email.status == "error"
    assert email.error_type == "uncertain"
    assert "may or may not have taken effect" in (email.error or "")
    assert result.get("2").ok
    assert not result.get("2").replayed
    # The verdict is recorded: the next resume says the same, and runs nothing.
    assert again.get("1").error_type == "uncertain"
    assert again.get("1").replayed
    assert again.get("2").replayed


async def test_a_ledger_that_cannot_be_reached_runs_nothing(tmp_path: Any) -> None:
    tools, effects = ledger_tools()
    (tmp_path / "gone").mkdir()
    ledger = SQLiteLedger(tmp_path / "gone" / "calls.db")
    (tmp_path / "gone").rmdir()  # the database cannot be opened when the batch runs
    try:
        result = await Orchestrator(tools, ledger=ledger).run(
            [ToolCall("1", "send_email", {"to": "ann"})], batch_id="b"
        )
    finally:
        await ledger.aclose()
    assert effects == []
    assert result.results[0].error_type == "ledger_error"
    assert "not run" in (result.results[0].error or "")


# --------------------------------------------------------------------- spans


async def test_spans_link_each_kind_of_edge_and_mark_replays_caches_and_merges(
    tmp_path: Any,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    t = Timeline()

    @tool(idempotent=True)
    async def search(q: str) -> dict[str, str]:
        return {"path": q}

    tools = [*keyed_tools(t, pause=0.01), search]
    calls = [
        ToolCall("s", "search", {"q": "f"}),
        ToolCall("w", "write", {"id": "w", "path": "${s.path}"}),
        ToolCall("r", "read", {"id": "r", "path": "f"}, depends_on=["s"]),
        ToolCall("s2", "search", {"q": "f"}),
    ]
    async with SQLiteLedger(tmp_path / "calls.db") as ledger:
        o = Orchestrator(tools, tracer_provider=provider, ledger=ledger)
        await o.run(calls, batch_id="b")
        exporter.clear()
        await o.run(calls, batch_id="b")
    spans = {s.attributes.get("gen_ai.tool.call.id"): s for s in exporter.get_finished_spans()}
    assert spans["w"].attributes["toolweave.replayed"] is True
    assert spans["s2"].attributes["toolweave.deduplicated_from"] == "s"
    kinds = {
        (name, str(link.attributes["toolweave.link.kind"]))
        for name in ("w", "r")
        for link in spans[name].links
    }
    assert kinds == {("w", "data"), ("r", "order"), ("r", "resource")}
    assert list(spans["r"].attributes["toolweave.ordered_after"]) == ["w"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_call_skipped_by_middleware_is_not_recorded_and_runs_on_resume(
    tmp_path: Any,
) -> None:
    from toolweave import SkipCall

    tools, effects = ledger_tools()
    closed = True

    async def maintenance(request: Any, call_next: Callable[..., Any]) -> Any:
        if closed:
            raise SkipCall("the mail server is in maintenance; try later")
        return await call_next(request)

    calls = [ToolCall("1", "send_email", {"to": "ann"})]
    async with SQLiteLedger(tmp_path / "calls.db") as ledger:
        o = Orchestrator(tools, ledger=ledger, middleware=[maintenance])
        first = await o.run(calls, batch_id="b")
        assert await ledger.records("b") == {}
        closed = False
        second = await o.run(calls, batch_id="b")
        third = await o.run(calls, batch_id="b")
    assert first.results[0].status == "skipped"
    assert second.results[0].ok
    assert not second.results[0].replayed
    assert third.results[0].replayed
    assert effects == ["email:ann"]


async def test_identical_calls_are_not_merged_across_a_write_between_them() -> None:
    state = {"a.txt": "old"}
    runs: list[str] = []

    @tool(idempotent=True, reads=lambda a: a["path"])
    async def read(path: str) -> str:
        runs.append("read")
        await asyncio.sleep(0.01)
        return state[path]

    @tool(writes=lambda a: a["path"])
    async def write(path: str, text: str) -> None:
        await asyncio.sleep(0.01)
        state[path] = text

    result = await asyncio.wait_for(
        Orchestrator([read, write]).run(
            [
                ToolCall("r1", "read", {"path": "a.txt"}),
                ToolCall("w", "write", {"path": "a.txt", "text": "new"}),
                ToolCall("r2", "read", {"path": "a.txt"}),
                ToolCall("r3", "read", {"path": "a.txt"}),  # merges into r2: nothing between
            ]
        ),
        30,
    )
    assert [r.output for r in result.results] == ["old", None, "new", "new"]
    assert result.get("r2").deduplicated_from is None
    assert result.get("r3").deduplicated_from == "r2"
    assert runs == ["read", "read"]


async def test_a_later_identical_call_never_makes_an_earlier_one_wait_for_it() -> None:
    @tool
    async def slow() -> dict[str, str]:
        await asyncio.sleep(0.05)
        return {"v": "1"}

    @tool(idempotent=True, writes="k")
    async def put(v: str) -> str:
        return v

    calls = [
        ToolCall("s", "slow", {}),
        ToolCall("a", "put", {"v": "${s.v}"}),  # bound late: the next one is admitted first
        ToolCall("b", "put", {"v": "1"}),
    ]
    result = await asyncio.wait_for(Orchestrator([slow, put]).run(calls), 30)
    assert result.ok
    assert [r.deduplicated_from for r in result.results] == [None, None, None]


async def test_a_merged_call_s_error_names_that_call() -> None:
    tools, _ = counting_tools()
    result = await Orchestrator(tools).run(
        [ToolCall("a", "search", {"q": "boom"}), ToolCall("b", "search", {"q": "boom"})]
    )
    error = result.get("b").error or ""
    assert error.startswith("call 'b' (search): ")
    assert "search backend down" in error
    assert result.get("b").error_type == "tool_error"


async def test_a_streamed_call_naming_a_later_one_keeps_its_resource_keys() -> None:
    t = Timeline()

    @tool
    async def pick() -> dict[str, str]:
        return {"path": "f"}

    o = Orchestrator([*keyed_tools(t), pick])
    async with o.stream() as batch:
        batch.add(ToolCall("w", "write", {"id": "w", "path": "f"}))
        batch.add(ToolCall("r", "read", {"id": "r", "path": "${p.path}"}))  # p comes later
        batch.add(ToolCall("p", "pick", {}))
    assert batch.result.ok
    assert t.before("w", "r")


async def test_a_cache_that_breaks_in_any_way_is_a_miss(caplog: pytest.LogCaptureFixture) -> None:
    from toolweave import Cache

    class Broken(Cache):
        async def get(self, key: str) -> Any:
            raise RuntimeError(f"boom {key}")

        async def set(self, key: str, value: Any, ttl: float) -> bool:
            raise RuntimeError("boom")

        async def aclose(self) -> None: ...

        def close(self) -> None: ...

    class Odd(Broken):
        async def get(self, key: str) -> Any:
            return "not a hit"

    runs = []

    @tool(idempotent=True, cache_ttl=60)
    async def price(sku: str) -> str:
        runs.append(sku)
        return sku

    for cache in (Broken(), Odd()):
        with caplog.at_level(logging.WARNING, logger="toolweave"):
            result = await Orchestrator([price], cache=cache).run(
                [ToolCall("1", "price", {"sku": "a"})]
            )
        assert result.ok
    assert runs == ["a", "a"]
    assert all("boom" not in r.getMessage() for r in caplog.records)  # the key stays out


async def test_only_named_batches_are_recorded_and_a_closed_ledger_is_refused(
    tmp_path: Any,
) -> None:
    tools, _ = ledger_tools()
    ledger = SQLiteLedger(tmp_path / "calls.db")
    o = Orchestrator(tools, ledger=ledger)
    result = await o.run([ToolCall("1", "lookup", {"id": 1})])
    assert result.ok
    assert await ledger.records(result.batch_id) == {}
    await ledger.aclose()
    with pytest.raises(UsageError, match="ledger was closed"):
        await o.run([ToolCall("1", "lookup", {"id": 1})], batch_id="b")


def test_arguments_holding_sets_hash_the_same_in_every_process() -> None:
    import subprocess
    import sys

    code = (
        "from pydantic import BaseModel\n"
        "from toolweave._reuse import same_call\n"
        "class F(BaseModel):\n    tags: set[str]\n"
        "print(same_call('t', {'f': F(tags={'a','b','c','d','e'}), 's': {'x','y','z'}}))\n"
    )
    seen = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": str(seed), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in (1, 2, 3, 4)
    }
    assert len(seen) == 1


async def test_a_cached_read_after_a_write_in_its_batch_reads_again() -> None:
    files = {"a.txt": "old"}

    @tool(idempotent=True, cache_ttl=60, reads=lambda a: a["path"])
    async def read(path: str) -> str:
        return files[path]

    @tool(writes=lambda a: a["path"])
    async def write(path: str, text: str) -> None:
        files[path] = text

    o = Orchestrator([read, write])
    result = await o.run(
        [
            ToolCall("r1", "read", {"path": "a.txt"}),
            ToolCall("w", "write", {"path": "a.txt", "text": "new"}),
            ToolCall("r2", "read", {"path": "a.txt"}),
        ]
    )
    assert [r.output for r in result.results] == ["old", None, "new"]
    assert not result.get("r2").cached
    assert result.get("r2").ordered_after == ["w"]
    # The fresh answer is what the cache holds now.
    again = await o.run([ToolCall("r", "read", {"path": "a.txt"})])
    assert (again.results[0].output, again.results[0].cached) == ("new", True)


async def test_keys_known_only_as_the_batch_runs_are_on_the_result_and_its_page() -> None:
    t = Timeline()

    @tool
    async def pick() -> dict[str, str]:
        return {"path": "f"}

    result = await Orchestrator([*keyed_tools(t), pick]).run(
        [
            ToolCall("p", "pick", {}),
            ToolCall("w", "write", {"id": "w", "path": "${p.path}"}),
            ToolCall("r", "read", {"id": "r", "path": "f"}),
        ]
    )
    assert result.plan.orderings == {}
    assert result.get("r").ordered_after == ["w"]
    assert result.to_trace()["calls"][2]["ordered_after"] == ["w"]
    assert 'data-edge="w-&gt;r"' in result.to_html() or 'data-edge="w->r"' in result.to_html()


async def test_a_key_function_returning_none_means_no_key() -> None:
    t = Timeline()

    @tool(writes=lambda a: a.get("path"))
    async def maybe(id: str, path: str | None = None) -> None:
        t.start(id)
        await asyncio.sleep(0.03)
        t.end(id)

    result = await Orchestrator([maybe]).run(
        [
            ToolCall("a", "maybe", {"id": "a"}),
            ToolCall("b", "maybe", {"id": "b"}),
            ToolCall("c", "maybe", {"id": "c", "path": "f"}),
        ]
    )
    assert result.ok
    assert t.overlap("a", "b")  # no key: nothing to wait for
    assert t.overlap("a", "c")


async def test_a_call_behind_an_uncertain_one_is_told_to_check_it(tmp_path: Any) -> None:
    from toolweave._reuse import same_call

    tools, effects = ledger_tools()
    async with SQLiteLedger(tmp_path / "calls.db") as ledger:
        claim = await ledger.claim("b", "1", same_call("send_email", {"to": "ann"}))
        await ledger.abandon(claim)
        result = await Orchestrator(tools, ledger=ledger).run(
            [
                ToolCall("1", "send_email", {"to": "ann"}),
                ToolCall("2", "lookup", {"id": 1}, depends_on=["1"]),
            ],
            batch_id="b",
        )
    assert result.get("1").error_type == "uncertain"
    assert result.get("2").error == (
        "skipped: it depends on call '1' (send_email), which may or may not have taken "
        "effect. Check that first."
    )
    assert effects == []


async def test_a_key_function_runs_once_per_call() -> None:
    seen: list[str] = []

    def key(arguments: dict[str, Any]) -> str:
        seen.append(arguments["path"])
        return str(arguments["path"])

    @tool(writes=key)
    async def put(path: str) -> str:
        return path

    await Orchestrator([put]).run(
        [ToolCall("a", "put", {"path": "x"}), ToolCall("b", "put", {"path": "${a}"})]
    )
    assert seen == ["x", "x"]  # a's when planned, b's once its reference was resolved
