"""The hook shape around every call: middleware, SkipCall, the policies, metadata."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import pathlib
import re
import threading
import time
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from toolweave import (
    CallNext,
    CallRequest,
    InvalidArgumentsError,
    Middleware,
    Orchestrator,
    SkipCall,
    Tool,
    ToolCall,
    UsageError,
    policies,
    tool,
)
from toolweave._tracing import plan_json

GUARD = 20.0  # seconds no test here should ever come near


def run(o: Orchestrator, calls: list[ToolCall], **kw: Any) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(o.run(calls, **kw), GUARD)

    return asyncio.run(main())


def recorder(log: list[str], name: str) -> Middleware:
    async def mw(request: CallRequest, call_next: CallNext) -> Any:
        log.append(f"{name}>{request.call.id}")
        try:
            return await call_next(request)
        finally:
            log.append(f"{name}<{request.call.id}")

    return mw


@tool
async def echo(text: str) -> str:
    """Return the text."""
    return text


# ---------------------------------------------------------------- the chain


def test_orchestrator_middleware_wraps_the_tools_and_the_first_is_outermost() -> None:
    log: list[str] = []

    async def shout(text: str) -> str:
        log.append("tool")
        return text.upper()

    loud = Tool.from_function(
        shout, middleware=[recorder(log, "t1"), recorder(log, "t2")], namespace={}
    )
    o = Orchestrator([loud], middleware=[recorder(log, "o1"), recorder(log, "o2")])
    result = run(o, [ToolCall("a", "shout", {"text": "hi"})])
    assert result.get("a").output == "HI"
    assert log == ["o1>a", "o2>a", "t1>a", "t2>a", "tool", "t2<a", "t1<a", "o2<a", "o1<a"]


def test_a_cache_answers_without_the_tool() -> None:
    ran: list[str] = []
    cache: dict[tuple[str, str], Any] = {("lookup", "x"): "cached"}

    @tool
    async def lookup(key: str) -> str:
        """Look a key up."""
        ran.append(key)
        return f"fresh {key}"

    async def cached(request: CallRequest, call_next: CallNext) -> Any:
        key = (request.tool.name, request.arguments["key"])
        if key not in cache:
            cache[key] = await call_next(request)
        return cache[key]

    o = Orchestrator([lookup], middleware=[cached])
    result = run(o, [ToolCall("a", "lookup", {"key": "x"}), ToolCall("b", "lookup", {"key": "y"})])
    assert [r.output for r in result.results] == ["cached", "fresh y"]
    assert ran == ["y"]
    hit, miss = result.results
    assert (hit.status, hit.attempts) == ("ok", 0), "the tool never ran for the hit"
    assert (miss.status, miss.attempts) == ("ok", 1)
    assert (hit.arguments, miss.arguments) == (None, {"key": "y"}), "None: it never ran"
    assert hit.execution_order is not None
    assert hit.started_at is not None


def test_override_rewrites_what_the_tool_gets_and_the_result_says_what_it_got() -> None:
    async def lower(request: CallRequest, call_next: CallNext) -> Any:
        return await call_next(request.override(arguments={"text": request.arguments["text"][:3]}))

    o = Orchestrator([echo], middleware=[lower])
    result = run(o, [ToolCall("a", "echo", {"text": "abcdef"})])
    assert result.get("a").output == "abc"
    assert result.get("a").arguments == {"text": "abc"}


def test_a_reference_reads_the_output_a_middleware_returned() -> None:
    async def wrap(request: CallRequest, call_next: CallNext) -> Any:
        return {"wrapped": await call_next(request)}

    o = Orchestrator([echo], middleware=[wrap])
    result = run(
        o,
        [ToolCall("a", "echo", {"text": "x"}), ToolCall("b", "echo", {"text": "${a.wrapped}"})],
    )
    assert result.get("b").output == {"wrapped": "x"}


def test_override_refuses_unknown_fields_by_name() -> None:
    seen: list[str] = []

    async def bad(request: CallRequest, call_next: CallNext) -> Any:
        try:
            request.override(argumnets={})
        except UsageError as exc:
            seen.append(str(exc))
        return await call_next(request)

    run(Orchestrator([echo], middleware=[bad]), [ToolCall("a", "echo", {"text": "x"})])
    assert "unknown field(s) argumnets" in seen[0]
    assert "it has arguments, attempt" in seen[0]


@pytest.mark.parametrize(
    "given",
    [
        pytest.param("not a list", id="a-string"),
        pytest.param([1], id="not-callable"),
        pytest.param(None, id="none"),
    ],
)
def test_middleware_that_is_not_a_list_of_callables_is_a_usage_error(given: Any) -> None:
    with pytest.raises(UsageError, match="middleware"):
        Orchestrator([echo], middleware=given)


def test_the_request_repr_never_carries_arguments() -> None:
    reprs: list[str] = []

    async def show(request: CallRequest, call_next: CallNext) -> Any:
        reprs.append(repr(request))
        return await call_next(request)

    run(Orchestrator([echo], middleware=[show]), [ToolCall("a", "echo", {"text": "secret"})])
    assert "secret" not in reprs[0]
    assert "call_id='a'" in reprs[0]


# ---------------------------------------------------------------- outcomes


def test_skip_call_skips_the_call_with_its_reason_and_what_needs_it() -> None:
    async def approve(request: CallRequest, call_next: CallNext) -> Any:
        if request.arguments.get("text") == "rm -rf":
            raise SkipCall("the user declined")
        return await call_next(request)

    o = Orchestrator([echo], middleware=[approve])
    result = run(
        o,
        [
            ToolCall("a", "echo", {"text": "rm -rf"}),
            ToolCall("b", "echo", {"text": "${a}"}),
            ToolCall("c", "echo", {"text": "ls"}),
        ],
    )
    a, b, c = result.results
    assert (a.status, a.error, a.error_type) == (
        "skipped",
        "the user declined",
        "skipped_by_middleware",
    )
    assert (b.status, b.error_type) == ("skipped", "dependency_failed")
    assert b.error == "skipped: it depends on call 'a' (echo), which was skipped."
    assert c.status == "ok"


def test_a_middleware_exception_is_that_calls_error_and_nothing_else_is_lost() -> None:
    async def deny(request: CallRequest, call_next: CallNext) -> Any:
        if request.call.id == "a":
            raise PermissionError("not allowed here")
        return await call_next(request)

    o = Orchestrator([echo], middleware=[deny])
    result = run(o, [ToolCall("a", "echo", {"text": "x"}), ToolCall("b", "echo", {"text": "y"})])
    a, b = result.results
    assert (a.status, a.error_type, a.attempts) == ("error", "tool_error", 0)
    assert a.error == "call 'a' (echo): failed: PermissionError: not allowed here"
    assert isinstance(a.exception.__cause__, PermissionError)  # type: ignore[union-attr]
    assert b.output == "y"


def test_a_call_error_a_middleware_raises_for_its_call_keeps_its_kind() -> None:
    async def check(request: CallRequest, call_next: CallNext) -> Any:
        if len(request.arguments["text"]) > 3:
            raise InvalidArgumentsError(
                "'text': at most 3 characters. Shorten it and call again.",
                call_id=request.call.id,
                tool_name=request.tool.name,
            )
        return await call_next(request)

    result = run(
        Orchestrator([echo], middleware=[check]), [ToolCall("a", "echo", {"text": "long"})]
    )
    a = result.get("a")
    assert (a.status, a.error_type) == ("error", "invalid_arguments")
    assert a.error == "call 'a' (echo): 'text': at most 3 characters. Shorten it and call again."


def test_a_middleware_that_raises_system_exit_fails_only_its_call() -> None:
    async def leave(request: CallRequest, call_next: CallNext) -> Any:
        raise SystemExit(3)

    result = run(Orchestrator([echo], middleware=[leave]), [ToolCall("a", "echo", {"text": "x"})])
    assert result.get("a").error_type == "tool_error"
    assert "SystemExit" in (result.get("a").error or "")


def test_metadata_and_batch_id_reach_every_middleware() -> None:
    seen: list[tuple[str, Any, str]] = []

    async def look(request: CallRequest, call_next: CallNext) -> Any:
        seen.append((request.call.id, request.metadata["user"], request.batch_id))
        with pytest.raises(TypeError):
            request.metadata["user"] = "mallory"  # type: ignore[index]
        return await call_next(request)

    o = Orchestrator([echo], middleware=[look])
    metadata = {"user": "alice"}
    first = run(
        o,
        [ToolCall("a", "echo", {"text": "x"}), ToolCall("b", "echo", {"text": "y"})],
        metadata=metadata,
    )
    metadata["user"] = "changed after the run started"
    second = run(o, [ToolCall("a", "echo", {"text": "x"})], metadata={"user": "bob"})
    assert {(i, u) for i, u, _ in seen} == {("a", "alice"), ("b", "alice"), ("a", "bob")}
    ids = [b for _, _, b in seen]
    assert ids[0] == ids[1] == first.batch_id != second.batch_id == ids[2]


def test_without_metadata_a_middleware_sees_an_empty_read_only_mapping() -> None:
    seen: list[Any] = []

    async def look(request: CallRequest, call_next: CallNext) -> Any:
        seen.append(request.metadata)
        return await call_next(request)

    run(Orchestrator([echo], middleware=[look]), [ToolCall("a", "echo", {"text": "x"})])
    assert seen == [MappingProxyType({})]


@pytest.mark.parametrize(
    "metadata", [pytest.param(["user"], id="list"), pytest.param("u", id="str")]
)
def test_metadata_that_is_not_a_mapping_is_a_usage_error(metadata: Any) -> None:
    with pytest.raises(UsageError, match="metadata must be a mapping"):
        run(Orchestrator([echo]), [ToolCall("a", "echo", {"text": "x"})], metadata=metadata)
    with pytest.raises(UsageError, match="metadata must be a mapping"):
        Orchestrator([echo]).stream(metadata=metadata)


def test_streamed_calls_go_through_the_middleware_too() -> None:
    log: list[str] = []
    o = Orchestrator([echo], middleware=[recorder(log, "m")])

    async def main() -> Any:
        async with o.stream(metadata={"k": 1}) as batch:
            batch.add(ToolCall("a", "echo", {"text": "x"}))
            batch.add(ToolCall("b", "echo", {"text": "${a}"}))
        return batch.result

    result = asyncio.run(main())
    assert [r.output for r in result.results] == ["x", "x"]
    assert log == ["m>a", "m<a", "m>b", "m<b"]


def test_a_middlewares_spans_nest_under_the_calls_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    async def audited(request: CallRequest, call_next: CallNext) -> Any:
        with tracer.start_as_current_span("audit"):
            return await call_next(request)

    o = Orchestrator([echo], middleware=[audited], tracer_provider=provider)
    run(o, [ToolCall("a", "echo", {"text": "x"}), ToolCall("b", "echo", {"text": "y"})])
    finished = exporter.get_finished_spans()
    audits = [s for s in finished if s.name == "audit"]
    call_span_ids = {s.context.span_id for s in finished if s.name.startswith("execute_tool")}
    assert len(audits) == 2
    assert {a.parent.span_id for a in audits if a.parent is not None} == call_span_ids


# ---------------------------------------------------------------- policies


def test_retry_makes_each_attempt_and_counts_them() -> None:
    attempts: list[int] = []
    outside: list[str] = []
    inside: list[str] = []

    @tool(
        middleware=[recorder(outside, "outside"), policies.retry(3, wait=0), recorder(inside, "in")]
    )
    async def flaky(text: str) -> str:
        """Fail twice, then work."""
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return text

    result = run(Orchestrator([flaky]), [ToolCall("a", "flaky", {"text": "x"})])
    assert (result.get("a").output, result.get("a").attempts) == ("x", 3)
    assert outside == ["outside>a", "outside<a"], "outside retry: the call is seen once"
    assert inside == ["in>a", "in<a"] * 3, "inside retry: every attempt"


def test_retry_numbers_the_attempts_it_passes_on() -> None:
    numbers: list[int] = []

    async def note(request: CallRequest, call_next: CallNext) -> Any:
        numbers.append(request.attempt)
        raise ConnectionError("down")

    @tool(middleware=[policies.retry(3, wait=0), note])
    async def down(text: str) -> str:
        """Never reached."""
        return text

    result = run(Orchestrator([down]), [ToolCall("a", "down", {"text": "x"})])
    assert numbers == [1, 2, 3]
    assert result.get("a").error == "call 'a' (down): failed: ConnectionError: down"


def test_retry_only_retries_what_it_is_told_and_never_a_skip() -> None:
    tries: list[str] = []

    async def once(request: CallRequest, call_next: CallNext) -> Any:
        tries.append(request.call.id)
        if request.call.id == "a":
            raise ValueError("not retried")
        raise SkipCall("not now")

    o = Orchestrator([echo], middleware=[policies.retry(5, wait=0, on=ConnectionError), once])
    result = run(o, [ToolCall("a", "echo", {"text": "x"}), ToolCall("b", "echo", {"text": "y"})])
    assert sorted(tries) == ["a", "b"]
    assert result.get("a").error_type == "tool_error"
    assert result.get("b").status == "skipped"


def test_timeout_fails_the_call_with_a_timeout_error() -> None:
    @tool(middleware=[policies.timeout(0.2)])
    async def stuck(text: str) -> str:
        """Ignore cancellation for a while."""
        for _ in range(3):
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue
        return text

    result = run(Orchestrator([stuck]), [ToolCall("a", "stuck", {"text": "x"})])
    a = result.get("a")
    assert (a.status, a.error_type) == ("error", "timeout")
    assert a.error == (
        "call 'a' (stuck): timed out after 0.2 s. Try a smaller request or another approach."
    )
    assert result.elapsed < GUARD / 2


def test_the_tool_shorthand_is_the_standard_chain() -> None:
    chain = policies.standard(timeout=5, retries=2)
    assert [getattr(mw, "__qualname__", "") for mw in chain] == ["retry(3)", "timeout(5)"]
    assert policies.standard() == []


def test_limit_bounds_calls_in_flight_per_batch() -> None:
    running = 0
    most = 0

    @tool(middleware=[policies.limit(2)])
    async def busy(i: int) -> int:
        """Hold a slot for a moment."""
        nonlocal running, most
        running += 1
        most = max(most, running)
        for _ in range(5):
            await asyncio.sleep(0)
        running -= 1
        return i

    result = run(Orchestrator([busy]), [ToolCall(f"c{i}", "busy", {"i": i}) for i in range(8)])
    assert result.ok
    assert most == 2


def test_a_keyed_limit_holds_across_batches() -> None:
    running = 0
    most = 0
    shared = policies.limit(1, key="db")

    @tool(middleware=[shared])
    async def query(i: int) -> int:
        """Hold the one slot for a moment."""
        nonlocal running, most
        running += 1
        most = max(most, running)
        for _ in range(5):
            await asyncio.sleep(0)
        running -= 1
        return i

    async def main() -> None:
        a, b = Orchestrator([query]), Orchestrator([query])
        calls = [ToolCall(f"c{i}", "query", {"i": i}) for i in range(3)]
        first, second = await asyncio.wait_for(asyncio.gather(a.run(calls), b.run(calls)), GUARD)
        assert first.ok
        assert second.ok

    asyncio.run(main())
    assert most == 1


def test_a_limit_keyed_by_the_request_gives_each_key_its_own_slots() -> None:
    running: dict[str, int] = {"alice": 0, "bob": 0}
    most: dict[str, int] = {"alice": 0, "bob": 0}

    async def track(request: CallRequest, call_next: CallNext) -> Any:
        user = request.metadata["user"]
        running[user] += 1
        most[user] = max(most[user], running[user])
        try:
            for _ in range(5):
                await asyncio.sleep(0)
            return await call_next(request)
        finally:
            running[user] -= 1

    @tool(middleware=[policies.limit(1, key=lambda r: r.metadata["user"]), track])
    async def work(i: int) -> int:
        """Hold a slot for a moment."""
        return i

    o = Orchestrator([work])

    async def main() -> None:
        calls = [ToolCall(f"c{i}", "work", {"i": i}) for i in range(3)]
        await asyncio.wait_for(
            asyncio.gather(
                o.run(calls, metadata={"user": "alice"}), o.run(calls, metadata={"user": "bob"})
            ),
            GUARD,
        )

    asyncio.run(main())
    assert most == {"alice": 1, "bob": 1}


def test_in_thread_keeps_a_blocking_async_tool_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()
    started = threading.Event()
    threads: list[int] = []

    @tool(middleware=[policies.in_thread()])
    async def blocking(wait: float) -> str:
        """Block its thread until the other call ran."""
        threads.append(threading.get_ident())
        started.set()
        return "released" if released.wait(wait) else "never released"

    released = threading.Event()

    @tool
    async def release() -> str:
        """Runs on the loop while the other call blocks."""
        await asyncio.to_thread(started.wait, GUARD / 2)
        released.set()
        return "done"

    o = Orchestrator([blocking, release])
    result = run(o, [ToolCall("a", "blocking", {"wait": GUARD / 2}), ToolCall("b", "release")])
    assert [r.output for r in result.results] == ["released", "done"]
    assert threads
    assert threads[0] != loop_thread


def test_in_thread_calls_a_blocking_tool_in_its_own_thread() -> None:
    @tool(middleware=[policies.in_thread()])
    def where() -> str:
        """Say which thread ran it."""
        return threading.current_thread().name

    result = run(Orchestrator([where]), [ToolCall("a", "where")])
    assert result.get("a").output.startswith("toolweave")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda: policies.timeout(0), "positive number", id="timeout-zero"),
        pytest.param(lambda: policies.timeout(True), "positive number", id="timeout-bool"),
        pytest.param(lambda: policies.retry(0), "attempts >= 1", id="retry-zero"),
        pytest.param(lambda: policies.retry(2, on=(ValueError, 3)), "exception types", id="on"),
        pytest.param(lambda: policies.retry(2, wait=-1), "seconds >= 0", id="wait-negative"),
        pytest.param(lambda: policies.limit(0), ">= 1", id="limit-zero"),
    ],
)
def test_a_policy_given_a_bad_setting_says_which(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        make()


# ---------------------------------------------------------------- invariants

Step = tuple[str, int]  # (what a layer does, on which call index)


@st.composite
def chains(draw: st.DrawFn) -> tuple[list[Step], int]:
    n = draw(st.integers(1, 6))
    kinds = st.sampled_from(["pass", "skip", "raise", "answer", "base"])
    steps = draw(st.lists(st.tuples(kinds, st.integers(0, n - 1)), max_size=4))
    return steps, n


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains())
def test_any_chain_gives_every_call_exactly_one_result(spec: tuple[list[Step], int]) -> None:
    steps, n = spec

    def layer(kind: str, target: int) -> Middleware:
        async def mw(request: CallRequest, call_next: CallNext) -> Any:
            if request.call.id == f"c{target}":
                if kind == "skip":
                    raise SkipCall("skipped here")
                if kind == "raise":
                    raise RuntimeError("broken layer")
                if kind == "answer":
                    return "from the layer"
                if kind == "base":
                    raise GeneratorExit
            return await call_next(request)

        return mw

    o = Orchestrator([echo], middleware=[layer(k, t) for k, t in steps])
    calls = [
        ToolCall(f"c{i}", "echo", {"text": f"${{c{i - 1}}}" if i and i % 2 else "x"})
        for i in range(n)
    ]
    result = run(o, calls)
    assert [r.call_id for r in result.results] == [c.id for c in calls]
    for r in result.results:
        assert r.status in ("ok", "error", "skipped")
        assert (r.status == "ok") == (r.error is None)


def test_the_readme_middleware_example_prints_what_it_says() -> None:
    text = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    found = re.search(r"## Middleware.*?```python\n(.*?)```\n\nprints\n\n```\n(.*?)```", text, re.S)
    assert found is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(found.group(1), "README.md", "exec"), {})
    assert out.getvalue() == found.group(2)


# ---------------------------------------------------------------- found by a hostile review


def test_a_tools_system_exit_inside_a_middlewares_own_task_fails_only_that_call() -> None:
    @tool
    async def leaves(text: str) -> str:
        """Exit, as argparse does."""
        raise SystemExit(2)

    async def deadline(request: CallRequest, call_next: CallNext) -> Any:
        return await asyncio.wait_for(call_next(request), 5)  # a task of its own

    o = Orchestrator([leaves, echo], middleware=[deadline])
    result = run(o, [ToolCall("a", "leaves", {"text": "x"}), ToolCall("b", "echo", {"text": "y"})])
    assert (result.get("a").error_type, result.get("b").output) == ("tool_error", "y")
    assert "SystemExit: 2" in (result.get("a").error or "")


def test_retry_on_base_exception_never_retries_cancellation() -> None:
    started: list[int] = []
    running = asyncio.Event()

    @tool(middleware=[policies.retry(5, wait=0.05, on=BaseException)])
    async def slow(text: str) -> str:
        """Wait."""
        started.append(1)
        running.set()
        await asyncio.sleep(GUARD)
        return text

    async def main() -> None:
        task = asyncio.create_task(Orchestrator([slow]).run([ToolCall("a", "slow", {"text": "x"})]))
        await asyncio.wait_for(running.wait(), GUARD)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, GUARD)

    asyncio.run(main())
    assert len(started) == 1


def test_cancelling_a_one_call_batch_is_not_lost_when_a_middleware_swallows_it() -> None:
    async def fallback(request: CallRequest, call_next: CallNext) -> Any:
        try:
            return await call_next(request)
        except BaseException:
            return "fallback"

    @tool
    async def slow(text: str) -> str:
        """Wait."""
        await asyncio.sleep(GUARD)
        return text

    async def main() -> None:
        o = Orchestrator([slow], middleware=[fallback])
        task = asyncio.create_task(o.run([ToolCall("a", "slow", {"text": "x"})]))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, GUARD)

    asyncio.run(main())


def test_in_thread_leaves_the_tools_timeout_on_the_event_loop() -> None:
    @tool(timeout=0.2, middleware=[policies.in_thread()])
    async def legacy(text: str) -> str:
        """Block the thread it runs in."""
        time.sleep(1.0)  # noqa: ASYNC251 - the point: an async tool that blocks
        return text

    result = run(Orchestrator([legacy]), [ToolCall("a", "legacy", {"text": "x"})])
    assert result.get("a").error_type == "timeout"


def test_a_keyed_limit_holds_across_threads_and_event_loops() -> None:
    shared = policies.limit(1, key="api")
    lock = threading.Lock()
    running = 0
    most = 0

    @tool(middleware=[shared])
    def call_api(i: int) -> int:
        """Hold the one slot for a moment."""
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return i

    o = Orchestrator([call_api])
    results: list[bool] = []

    def one(k: int) -> None:
        calls = [ToolCall(f"c{i}", "call_api", {"i": i}) for i in range(2)]
        results.append(o.run_sync(calls).ok)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(GUARD)
    assert results == [True] * 4
    assert most == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda: policies.limit(1, key=["a"]), "hashable", id="unhashable-key"),
        pytest.param(lambda: policies.limit(1, key=_async_key), "not async def", id="async-key"),
        pytest.param(lambda: tool(retries=2.0)(_plain), "whole number", id="float-retries"),
        pytest.param(lambda: tool(timeout=True)(_plain), "positive number", id="bool-timeout"),
        pytest.param(lambda: tool(retry_on=ValueError())(_plain), "exception types", id="on"),
        pytest.param(
            lambda: tool(middleware=[policies.timeout])(_plain), "built first", id="factory"
        ),
        pytest.param(lambda: tool(middleware={_mw})(_plain), "must be a list", id="a-set"),
        pytest.param(
            lambda: Tool.from_schema("t", "", {"type": "object"}, _keyword_fn), "one dict", id="fn"
        ),
    ],
)
def test_developer_mistakes_are_caught_when_the_tool_is_built(
    make: Callable[[], Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        make()


async def _async_key(request: CallRequest) -> str:
    return "k"


def _plain(text: str) -> str:
    return text


async def _mw(request: CallRequest, call_next: CallNext) -> Any:
    return await call_next(request)


def _keyword_fn(*, to: str) -> str:
    return to


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited")
def test_a_middleware_that_forgets_to_await_fails_its_call_with_the_fix() -> None:
    def forgetful(request: CallRequest, call_next: CallNext) -> Any:
        async def inner() -> Any:
            return call_next(request)  # the coroutine, not its result

        return inner()

    result = run(
        Orchestrator([echo], middleware=[forgetful]), [ToolCall("a", "echo", {"text": "x"})]
    )
    a = result.get("a")
    assert a.status == "error"
    assert "without awaiting it; write 'return await call_next(request)'" in (a.error or "")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"tool": "echo"}, "takes a Tool, got str", id="tool-name"),
        pytest.param({"arguments": ["x"]}, "takes a Mapping, got list", id="arguments-list"),
        pytest.param({"attempt": 0}, "takes an int >= 1", id="attempt-zero"),
    ],
)
def test_override_refuses_values_of_the_wrong_kind(change: dict[str, Any], message: str) -> None:
    seen: list[str] = []

    async def bad(request: CallRequest, call_next: CallNext) -> Any:
        try:
            request.override(**change)
        except UsageError as exc:
            seen.append(str(exc))
        return await call_next(request)

    run(Orchestrator([echo], middleware=[bad]), [ToolCall("a", "echo", {"text": "x"})])
    assert message in seen[0]


@pytest.mark.parametrize(
    ("reason", "shown"),
    [
        pytest.param(404, "404", id="int"),
        pytest.param(None, "skipped by middleware", id="none"),
        pytest.param("", "skipped by middleware", id="empty"),
    ],
)
def test_a_skip_reason_is_shown_as_text(reason: Any, shown: str) -> None:
    async def skip(request: CallRequest, call_next: CallNext) -> Any:
        raise SkipCall(reason)

    result = run(Orchestrator([echo], middleware=[skip]), [ToolCall("a", "echo", {"text": "x"})])
    assert result.get("a").error == shown


def test_a_huge_skip_reason_is_cut() -> None:
    async def skip(request: CallRequest, call_next: CallNext) -> Any:
        raise SkipCall("x" * 5_000_000)

    result = run(Orchestrator([echo], middleware=[skip]), [ToolCall("a", "echo", {"text": "x"})])
    assert len(result.get("a").error or "") <= 2100


def test_requests_hash_by_identity() -> None:
    seen: list[CallRequest] = []

    async def keep(request: CallRequest, call_next: CallNext) -> Any:
        seen.append(request)
        return await call_next(request)

    run(Orchestrator([echo], middleware=[keep]), [ToolCall("a", "echo", {"text": "x"})])
    assert {seen[0]: 1}[seen[0]] == 1


def test_results_the_engine_builds_equal_validated_ones() -> None:
    from toolweave import BatchResult, CallResult

    async def skip_b(request: CallRequest, call_next: CallNext) -> Any:
        if request.call.id == "b":
            raise SkipCall("no")
        return await call_next(request)

    calls = [
        ToolCall("a", "echo", {"text": "x"}),
        ToolCall("b", "echo", {"text": "y"}),
        ToolCall("c", "echo", {"text": "${b}"}),
        ToolCall("d", "nope"),
    ]
    result = run(Orchestrator([echo], middleware=[skip_b]), calls)
    fields = {name: getattr(result, name) for name in BatchResult.model_fields}
    assert BatchResult(**fields) == result
    for r in result.results:
        again = CallResult(**{name: getattr(r, name) for name in CallResult.model_fields})
        assert again == r
        assert r.model_fields_set == again.model_fields_set
        assert r.model_dump() == again.model_dump()


@pytest.mark.parametrize(("capture", "shown"), [(False, "skipped by middleware"), (True, "alice")])
def test_a_skip_reason_goes_on_the_span_only_with_content_capture(
    capture: bool, shown: str
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    async def deny(request: CallRequest, call_next: CallNext) -> Any:
        raise SkipCall("alice may not send to bob")

    o = Orchestrator([echo], middleware=[deny], tracer_provider=provider, trace_content=capture)
    run(o, [ToolCall("a", "echo", {"text": "x"})])
    [span] = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool")]
    assert span.attributes is not None
    assert shown in str(span.attributes["toolweave.skip_reason"])


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=8),
            st.sampled_from(["echo", "nope"]),
            st.sampled_from(["x", "${1}", "${2.a}", "${zz}", "${1", "é\\ud800"]),
        ),
        min_size=1,
        max_size=6,
        unique_by=lambda c: c[0],
    )
)
def test_the_plan_event_is_the_plans_json(spec: list[tuple[str, str, str]]) -> None:
    calls = [ToolCall(i, name, {"text": text}) for i, name, text in spec]
    plan = Orchestrator([echo]).plan(calls)
    assert plan_json(plan, capture=True) == json.dumps(plan.to_dict())


def test_a_limit_slot_granted_just_before_a_cancellation_is_passed_on() -> None:
    from toolweave.policies import _Slots

    async def main() -> None:
        slots = _Slots(1)
        await slots.acquire()  # held
        waiting = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)  # it waits in line
        slots.release()  # the grant is on its way to the waiter
        await asyncio.sleep(0)  # the grant lands: the slot is the waiter's
        waiting.cancel()  # ... and it is cancelled before it resumes
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.wait_for(slots.acquire(), GUARD)  # the slot was passed on, not lost

    asyncio.run(main())


def test_a_tool_left_behind_that_fails_later_is_not_reported_by_asyncio(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @tool(timeout=0.05)
    async def stubborn(text: str) -> str:
        """Ignore the first cancellation, then fail."""
        try:
            await asyncio.sleep(GUARD)
        except asyncio.CancelledError:
            await asyncio.sleep(0.2)
        raise ValueError("late failure")

    async def main() -> Any:
        result = await Orchestrator([stubborn]).run([ToolCall("a", "stubborn", {"text": "x"})])
        await asyncio.sleep(0.5)  # it ends, failing, long after its call was settled
        return result

    with caplog.at_level(logging.DEBUG):
        result = asyncio.run(main())
    assert result.get("a").error_type == "timeout"
    assert "never retrieved" not in caplog.text
    assert "orchestration.left_behind_failed error=ValueError" in caplog.text
