"""Every call settles, whatever the model sends or a tool returns, raises or does to its task.

One regression test per way the promise used to break: the error type and the message are
checked, and the rest of the batch must run as if nothing happened.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from hostile import HOSTILE, Unshowable
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from toolweave import (
    Decision,
    DecisionContext,
    Orchestrator,
    RuleDecider,
    ToolCall,
    UsageError,
    tool,
)
from toolweave.telemetry import TraceContent
from toolweave.telemetry._values import to_jsonable, to_text

GUARD = 20.0  # seconds; only reached when the behaviour under test is broken


def recording() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A tracer provider whose finished spans can be read back."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def ignore_cancellation(seconds: float) -> None:
    """Run for ``seconds``, swallowing every cancellation meanwhile."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            continue


def run(orchestrator: Orchestrator, calls: list[Any], **options: Any) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(orchestrator.run(calls, **options), GUARD)

    return asyncio.run(main())


@tool
async def echo(value: Any = None) -> Any:
    """Return the value."""
    return value


# ---------------------------------------------------------------- 1. what the model writes


def _deep_dict(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    current = root
    for _ in range(depth):
        current["a"] = {}
        current = current["a"]
    return root


ARGUMENT_CASES = [
    pytest.param(
        '{"value": ' + "9" * 5000 + "}",
        "invalid_arguments",
        "a number with more than 4300 digits",
        id="json-number-5000-digits",
    ),
    pytest.param(
        '{"value": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "invalid_arguments",
        "nested too deeply",
        id="json-nested-100000",
    ),
    pytest.param(
        {"value": _deep_dict(1000)},
        "invalid_arguments",
        "is nested more than 64 levels deep",
        id="dict-nested-1000",
    ),
    pytest.param(
        {"value": "${²}"}, "invalid_reference", "no call with id '²'", id="superscript-position"
    ),
    pytest.param(
        {"value": "${١}"}, "invalid_reference", "no call with id '١'", id="arabic-indic-position"
    ),
    pytest.param(
        {"value": "${" + "1" * 5000 + "}"},
        "invalid_reference",
        "but the batch has no call with id '1111",
        id="position-5000-digits",
    ),
    pytest.param(
        {"value": "${1" + ".a" * 500 + "}"},
        "invalid_reference",
        "a path may have at most 64 steps",
        id="path-500-segments",
    ),
    pytest.param(
        {"value": {"$ref": 10**5000}},
        "invalid_reference",
        "<int of about 5001 digits>",
        id="object-ref-huge-int",
    ),
    pytest.param(
        [1, 2], "invalid_arguments", "arguments must be a JSON object, got list", id="list"
    ),
]


@pytest.mark.parametrize(("arguments", "error_type", "message"), ARGUMENT_CASES)
def test_what_the_model_writes_fails_only_its_own_call(
    arguments: Any, error_type: str, message: str
) -> None:
    calls = [
        ToolCall("first", "echo", {"value": {"items": [{"x": 1}]}}),
        {"id": "bad", "name": "echo", "arguments": arguments},
        ToolCall("after", "echo", {"value": "${first.items[0].x}"}),
    ]
    orchestrator = Orchestrator([echo])
    plan = orchestrator.plan(calls)  # planning never raises either
    assert [c.call_id for c in plan.calls] == ["first", "bad", "after"]
    result = run(orchestrator, calls)
    bad = result.get("bad")
    assert (bad.status, bad.error_type) == ("error", error_type)
    assert message in (bad.error or "")
    assert bad.error.startswith("call 'bad' (echo): ")
    assert len(bad.error) < 1000, "model-written text is cut in messages"
    assert [r.status for r in result.results] == ["ok", "error", "ok"]
    assert result.get("after").output == 1


def test_depends_on_that_is_not_text_is_the_calls_error() -> None:
    calls = [
        ToolCall("a", "echo", {"value": 1}),
        {"id": "b", "name": "echo", "depends_on": [10**5000, None]},
    ]
    result = run(Orchestrator([echo]), calls)
    assert result.get("a").ok
    assert result.get("b").error_type == "invalid_reference"
    assert "depends_on names '<int of about 5001 digits>'" in (result.get("b").error or "")


def test_output_mapping_shows_references_not_the_text_around_them() -> None:
    calls = [
        ToolCall("login", "echo", {"value": {"token": "t"}}),
        ToolCall("use", "echo", {"value": "Bearer ${login.token} secret-suffix"}),
    ]
    plan = Orchestrator([echo]).plan(calls)
    assert plan.get("use").output_mapping == {"value": "${login.token}"}


# ---------------------------------------------------------------- 2. what a tool returns


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_any_output_is_previewed_passed_on_and_shown_to_the_decider(kind: str) -> None:
    seen: list[str | None] = []

    @tool
    async def produce() -> Any:
        return HOSTILE[kind]()

    def look(ctx: DecisionContext) -> None:
        seen.extend(f.output for f in ctx.finished if f.call_id == "p")

    calls = [
        ToolCall("p", "produce"),
        ToolCall("whole", "echo", {"value": "${p}"}),
        ToolCall("part", "echo", {"value": "${p.x}"}),
        ToolCall("text", "echo", {"value": "got: ${p}"}),
    ]
    result = run(Orchestrator([produce, echo], decider=look), calls)
    assert result.get("p").ok
    assert result.get("whole").ok, "the whole output passes on as it is"
    assert result.get("text").ok
    assert isinstance(result.get("text").output, str)
    part = result.get("part")
    assert part.status == "error"
    assert part.error_type == "invalid_reference"
    assert "the output of call 'p' (produce) was:" in (part.error or "")
    assert seen
    assert all(isinstance(s, str) for s in seen)
    json.dumps(to_jsonable(result.to_trace(include_content=True)))
    to_text(result.get("p").output, 100).encode("utf-8")


def test_a_generator_output_is_not_consumed() -> None:
    @tool
    async def produce() -> Any:
        return HOSTILE["generator"]()

    result = run(Orchestrator([produce, echo]), [ToolCall("p", "produce")])
    output = result.get("p").output
    assert "generator" in to_text(output)
    assert list(output) == [1, 2]


def test_a_path_into_a_dataclass_with_a_lock_and_an_opaque_model() -> None:
    @tool
    async def produce() -> Any:
        return {"d": HOSTILE["dataclass-with-lock"](), "m": HOSTILE["model-with-opaque-field"]()}

    calls = [
        ToolCall("p", "produce"),
        ToolCall("name", "echo", {"value": "${p.d.name}"}),
    ]
    # Nested inside a dict, a dataclass is not walked by the path (only a top-level one is):
    result = run(Orchestrator([produce, echo]), calls)
    assert result.get("name").error_type == "invalid_reference"

    @tool
    async def top() -> Any:
        return HOSTILE["dataclass-with-lock"]()

    result = run(
        Orchestrator([top, echo]),
        [ToolCall("t", "top"), ToolCall("n", "echo", {"value": "${t.name}"})],
    )
    assert result.get("n").output == "x"


# ---------------------------------------------------------------- 3. what a tool raises


class StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


def _raiser(exc: BaseException) -> Any:
    def raise_it() -> None:
        raise exc

    return raise_it


RAISED = [
    pytest.param(StrRaises(), "failed: StrRaises: StrRaises()", id="str-raises"),
    pytest.param(SystemExit(2), "SystemExit: 2", id="system-exit"),
    pytest.param(GeneratorExit(), "GeneratorExit", id="generator-exit"),
    pytest.param(StopIteration(), "StopIteration", id="stop-iteration"),
    pytest.param(StopAsyncIteration(), "StopAsyncIteration", id="stop-async-iteration"),
]


@pytest.mark.parametrize("blocking", [True, False], ids=["sync", "async"])
@pytest.mark.parametrize(("exc", "shown"), RAISED)
def test_whatever_a_tool_raises_is_that_calls_error(
    exc: BaseException, shown: str, blocking: bool
) -> None:
    raise_it = _raiser(exc)
    if blocking:

        @tool
        def fail() -> None:
            raise_it()
    else:

        @tool
        async def fail() -> None:
            raise_it()

    calls = [ToolCall("f", "fail"), ToolCall("e", "echo", {"value": 1})]
    for batch in (calls, calls[:1]):  # with siblings, and alone (the one-call path)
        result = run(Orchestrator([fail, echo]), batch)
        failed = result.get("f")
        assert (failed.status, failed.error_type) == ("error", "tool_error")
        if blocking or not isinstance(exc, StopIteration):
            assert shown in (failed.error or "")
        else:  # PEP 479: a coroutine raising StopIteration raises RuntimeError instead
            assert "RuntimeError: coroutine raised StopIteration" in (failed.error or "")
        if len(batch) == 2:
            assert result.get("e").ok


def test_a_tool_that_cancels_its_own_task_gets_an_error() -> None:
    @tool
    async def quit_myself() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)

    for calls in (
        [ToolCall("q", "quit_myself")],
        [ToolCall("q", "quit_myself"), ToolCall("e", "echo", {"value": 1})],
    ):
        result = run(Orchestrator([quit_myself, echo]), calls)
        assert result.get("q").error_type == "tool_error"
        assert "CancelledError" in (result.get("q").error or "")
        assert all(r.ok for r in result.results if r.call_id != "q")


def test_a_decider_that_cancels_its_own_task_falls_back() -> None:
    class Quitter:
        async def decide(self, context: DecisionContext) -> Decision:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)
            raise AssertionError("unreachable")

    calls = [ToolCall("a", "echo", {"value": 1}), ToolCall("b", "echo", {"value": "${a}"})]
    result = run(Orchestrator([echo], decider=Quitter()), calls)
    assert result.ok
    [record] = result.decisions
    assert (record.fallback, record.error_type) == (True, "cancelled")
    assert record.error == "the decider cancelled its own task"


@pytest.mark.parametrize("exc", [SystemExit(1), GeneratorExit()], ids=["system-exit", "gen-exit"])
def test_a_decider_raising_a_base_exception_falls_back(exc: BaseException) -> None:
    class Raiser:
        async def decide(self, context: DecisionContext) -> Decision:
            raise exc

    calls = [ToolCall("a", "echo", {"value": 1}), ToolCall("b", "echo", {"value": "${a}"})]
    result = run(Orchestrator([echo], decider=Raiser()), calls)
    assert result.ok
    assert result.decisions[0].error_type == type(exc).__name__


@pytest.mark.parametrize("size", [1, 3])
def test_keyboard_interrupt_leaves_run_after_every_call_was_cancelled(
    size: int, tmp_path: Any
) -> None:
    # In a process of its own: an interrupt unwinding through an event loop leaves CPython
    # 3.11's parser unusable afterwards (pytest then fails to report), whoever raised it.
    script = tmp_path / "interrupt.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio
            from toolweave import Orchestrator, ToolCall, tool

            cancelled = []
            started = asyncio.Event()

            @tool
            async def wait_forever(name: str) -> None:
                started.set()
                try:
                    await asyncio.sleep(60)
                except asyncio.CancelledError:
                    cancelled.append(name)
                    raise

            @tool
            async def interrupt() -> None:
                await started.wait()
                raise KeyboardInterrupt

            calls = [ToolCall("i", "interrupt")]
            calls += [
                ToolCall(f"w{{k}}", "wait_forever", {{"name": f"w{{k}}"}})
                for k in range({size} - 1)
            ]
            if len(calls) == 1:
                started.set()
            try:
                Orchestrator([interrupt, wait_forever]).run_sync(calls)
            except KeyboardInterrupt:
                print("interrupted", sorted(cancelled))
            """
        )
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    expected = [f"w{k}" for k in range(size - 1)]
    assert done.stdout.strip() == f"interrupted {expected}", done.stderr


@pytest.mark.parametrize("size", [1, 2])
def test_cancelling_run_cancels_every_call_and_propagates(size: int) -> None:
    cancelled: list[str] = []

    @tool
    async def wait_forever(name: str) -> None:
        try:
            await asyncio.sleep(GUARD)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    async def main() -> None:
        orchestrator = Orchestrator([wait_forever])
        calls = [ToolCall(f"w{k}", "wait_forever", {"name": f"w{k}"}) for k in range(size)]
        task = asyncio.create_task(orchestrator.run(calls))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

    asyncio.run(main())
    assert sorted(cancelled) == [f"w{k}" for k in range(size)]


# ---------------------------------------------------------------- 4. blocking tools, threads


def test_a_later_call_never_waits_behind_an_abandoned_thread() -> None:
    release = threading.Event()

    @tool(timeout=0.1)
    def stuck() -> None:
        release.wait(GUARD)

    @tool(timeout=5.0)
    def quick() -> str:
        return "done"

    orchestrator = Orchestrator([stuck, quick], max_concurrency=1)
    try:
        first = run(orchestrator, [ToolCall("s", "stuck"), ToolCall("s2", "stuck")])
        assert [r.error_type for r in first.results] == ["timeout", "timeout"]
        second = run(orchestrator, [ToolCall("q", "quick")])
        assert second.get("q").output == "done"
        assert second.get("q").attempts == 1
    finally:
        release.set()
        orchestrator.close()


def test_waiting_for_a_slot_does_not_count_toward_the_timeout() -> None:
    release = threading.Event()

    @tool
    def holder() -> str:
        release.wait(GUARD)
        return "held"

    @tool(timeout=0.5)
    def quick() -> str:
        return "quick"

    async def main() -> Any:
        orchestrator = Orchestrator([holder, quick], max_concurrency=1)
        task = asyncio.create_task(
            orchestrator.run([ToolCall("h", "holder"), ToolCall("q", "quick")])
        )
        await asyncio.sleep(1.5)  # quick waits for the slot three times its timeout
        release.set()
        return await asyncio.wait_for(task, GUARD)

    result = asyncio.run(main())
    assert result.ok, [r.error for r in result.results]


def test_two_concurrent_batches_never_share_a_slot_budget() -> None:
    both = threading.Barrier(2, timeout=GUARD / 2)

    @tool
    def meet() -> str:
        both.wait()  # passes only if the two batches run their calls at the same time
        return "met"

    orchestrator = Orchestrator([meet], max_concurrency=1)

    async def main() -> list[Any]:
        return list(
            await asyncio.gather(
                orchestrator.run([ToolCall("a", "meet")]), orchestrator.run([ToolCall("b", "meet")])
            )
        )

    results = asyncio.run(main())
    assert [r.results[0].output for r in results] == ["met", "met"]


def test_a_blocking_tool_may_call_run_sync_on_its_own_orchestrator() -> None:
    @tool
    def inner() -> str:
        return "inner"

    holder: dict[str, Orchestrator] = {}

    @tool(timeout=GUARD / 2)
    def outer() -> Any:
        return holder["o"].run_sync([ToolCall("i", "inner")]).results[0].output

    holder["o"] = orchestrator = Orchestrator([inner, outer], max_concurrency=1)
    result = run(orchestrator, [ToolCall("o", "outer")])
    assert result.get("o").output == "inner"


def test_the_orchestrator_closes_as_an_async_context_manager() -> None:
    @tool
    def blocking() -> int:
        return 1

    async def main() -> Orchestrator:
        async with Orchestrator([blocking]) as orchestrator:
            result = await orchestrator.run([ToolCall("b", "blocking")])
            assert result.ok
            threads = orchestrator._threads
            assert threads is not None
            assert threads.threads >= 1
        for _ in range(100):
            if threads.threads == 0:
                break
            await asyncio.sleep(0.02)
        assert threads.threads == 0, "idle threads end at close"
        return orchestrator

    orchestrator = asyncio.run(main())
    with pytest.raises(UsageError, match="was closed"):
        orchestrator.run_sync([ToolCall("b", "blocking")])


def test_a_process_exits_while_an_abandoned_thread_still_sleeps(tmp_path: Any) -> None:
    script = tmp_path / "main.py"
    script.write_text(
        textwrap.dedent(
            """
            import time
            from toolweave import Orchestrator, ToolCall, tool

            @tool(timeout=0.2)
            def sleepy() -> None:
                time.sleep(120)

            result = Orchestrator([sleepy]).run_sync([ToolCall("s", "sleepy")])
            print(result.results[0].error_type)
            """
        )
    )
    start = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "timeout", done.stderr
    assert time.monotonic() - start < 30


# ---------------------------------------------------------------- 5. streams


def test_cancelling_while_entering_a_stream_leaves_nothing_behind() -> None:
    provider, exporter = recording()
    orchestrator = Orchestrator([echo], tracer_provider=provider)

    async def enter() -> None:
        async with orchestrator.stream() as batch:
            batch.add(ToolCall("a", "echo", {"value": 1}))

    async def main() -> None:
        for delay in range(4):  # cancel at each of the first few steps of entering
            task = asyncio.create_task(enter())
            for _ in range(delay):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
            assert not trace.get_current_span().get_span_context().is_valid

    asyncio.run(main())
    assert all(s.end_time is not None for s in exporter.get_finished_spans())


# ---------------------------------------------------------------- 7. telemetry content

SECRET = "hunter2-secret"


def test_with_content_off_no_value_reaches_a_span() -> None:
    provider, exporter = recording()

    @tool
    async def leak(value: str) -> None:
        raise ValueError(f"bad value {value}")

    @tool
    async def number(n: int) -> int:
        return n

    def fail_decider(ctx: DecisionContext) -> Decision:
        raise RuntimeError(f"decider saw {ctx.finished[-1].output}")

    calls = [
        ToolCall("src", "echo", {"value": {"token": SECRET}}),
        ToolCall("boom", "leak", {"value": SECRET}),
        ToolCall("typed", "number", {"n": SECRET}),
        ToolCall("path", "echo", {"value": "${src.missing}"}),
        ToolCall("tpl", "echo", {"value": f"Bearer ${{src.token}} {SECRET}"}),
    ]
    orchestrator = Orchestrator(
        [echo, leak, number], tracer_provider=provider, decider=fail_decider, trace_content=False
    )
    result = run(orchestrator, calls)
    assert SECRET in (result.get("boom").error or ""), "the model still sees the whole error"
    text = _everything_on(exporter.get_finished_spans())
    assert SECRET not in text
    assert "tool_error: ValueError" in text
    assert "invalid_arguments" in text


def test_with_content_on_errors_go_through_redact_and_a_failing_redact_ends_spans() -> None:

    @tool
    async def leak(value: str) -> None:
        raise ValueError(f"bad value {value}")

    for redact, expect in (
        (lambda kind, value: str(value).replace(SECRET, "***"), "bad value ***"),
        (lambda kind, value: 1 / 0, "[redaction failed]"),
    ):
        provider, exporter = recording()
        content = TraceContent(enabled=True, redact=redact)
        orchestrator = Orchestrator([echo, leak], tracer_provider=provider, trace_content=content)
        calls = [ToolCall("e", "echo", {"value": 1}), ToolCall("boom", "leak", {"value": SECRET})]
        run(orchestrator, calls)
        finished = exporter.get_finished_spans()
        assert len(finished) == 3, "batch and both calls ended"
        text = _everything_on(finished)
        assert SECRET not in text
        assert expect in text


def _everything_on(spans: Any) -> str:
    parts = []
    for s in spans:
        parts.append(s.name)
        parts.append(json.dumps(dict(s.attributes or {}), default=str))
        parts.append(str(s.status.description))
        for event in s.events:
            parts.append(event.name)
            parts.append(json.dumps(dict(event.attributes or {}), default=str))
    return "\n".join(parts)


# ---------------------------------------------------------------- 8. deciders


def test_a_decider_that_swallows_cancellation_is_still_bounded() -> None:
    class Stubborn:
        async def decide(self, context: DecisionContext) -> Decision:
            await ignore_cancellation(4.0)
            return Decision(action="stop", reason="too late")

    calls = [ToolCall("a", "echo", {"value": 1}), ToolCall("b", "echo", {"value": "${a}"})]
    orchestrator = Orchestrator([echo], decider=Stubborn(), decider_timeout=0.2)

    async def main() -> tuple[Any, float]:
        start = time.monotonic()
        result = await orchestrator.run(calls)
        return result, time.monotonic() - start

    result, took = asyncio.run(main())
    assert took < 3.0, "timeout plus a grace second, not the decider's 4 s"
    assert result.ok
    [record] = result.decisions
    assert (record.fallback, record.error_type) == (True, "timeout")


def test_a_blocking_sync_rule_is_bounded_by_the_decider_timeout() -> None:
    release = threading.Event()

    def slow_rule(ctx: DecisionContext) -> None:
        release.wait(GUARD)

    calls = [ToolCall("a", "echo", {"value": 1}), ToolCall("b", "echo", {"value": "${a}"})]
    try:
        result = run(Orchestrator([echo], decider=slow_rule, decider_timeout=0.2), calls)
    finally:
        release.set()
    assert result.ok
    assert result.decisions[0].error_type == "timeout"


def test_a_rule_runs_in_a_worker_thread_and_may_block_briefly() -> None:
    threads: list[str] = []

    def rule(ctx: DecisionContext) -> None:
        threads.append(threading.current_thread().name)

    calls = [ToolCall("a", "echo", {"value": 1}), ToolCall("b", "echo", {"value": "${a}"})]
    result = run(Orchestrator([echo], decider=RuleDecider(rule)), calls)
    assert result.ok
    assert threads
    assert threads[0] != threading.main_thread().name


def test_a_decision_built_with_model_construct_and_wrong_types_falls_back() -> None:
    class Sloppy:
        async def decide(self, context: DecisionContext) -> Decision:
            return Decision.model_construct(action="explode", skip=None, reason=3)

    calls = [ToolCall("a", "echo", {"value": 1}), ToolCall("b", "echo", {"value": "${a}"})]
    result = run(Orchestrator([echo], decider=Sloppy()), calls)
    assert result.ok
    assert result.decisions[0].error_type == "invalid_decision"
    assert "'action'" in (result.decisions[0].error or "")


@pytest.mark.parametrize(
    "header",
    ["Wed, 99 Foo 2020 25:61:00 GMT", "soon", "", "nan", "inf", "-5", "1e999"],
)
def test_a_malformed_retry_after_means_no_wait(header: str) -> None:
    from toolweave._llm_decider import retry_after

    class Response:
        def __init__(self) -> None:
            self.headers = {"retry-after": header}

    class Failure(Exception):
        response = Response()

    assert retry_after(Failure()) in (None, 0.0)


def test_the_decider_context_is_a_view_that_dumps_like_a_list() -> None:
    contexts: list[DecisionContext] = []

    def keep(ctx: DecisionContext) -> None:
        contexts.append(ctx)

    calls = [ToolCall("a", "echo", {"value": Unshowable()})]
    calls += [ToolCall(f"s{k}", "echo", {"value": f"${{{k + 1}}}"}) for k in range(5)]
    result = run(Orchestrator([echo], decider=keep), calls)
    assert result.ok
    first, last = contexts[0], contexts[-1]
    assert [f.call_id for f in first.finished] == ["a"]
    assert [c.id for c in first.pending] == ["s1", "s2", "s3", "s4"], "as of that decision"
    assert len(last.finished) == 5
    assert last.finished[-1].call_id == "s3"
    assert [f.call_id for f in last.finished[1:3]] == ["s0", "s1"]
    dumped = json.loads(first.model_dump_json())
    assert [f["call_id"] for f in dumped["finished"]] == ["a"]
    assert [c["id"] for c in dumped["pending"]] == ["s1", "s2", "s3", "s4"]


# ---------------------------------------------------------------- found by trying to break it


def test_a_decide_on_predicate_that_raises_asks_the_decider() -> None:
    asked: list[list[str]] = []

    def rule(ctx: DecisionContext) -> None:
        asked.append(ctx.waiting_ids)

    def predicate(ctx: DecisionContext) -> bool:
        return bool(ctx.waiting[0].arguments["nokey"])

    calls = [ToolCall("a", "echo", {"value": 1}), ToolCall("b", "echo", {"value": "${a}"})]
    result = run(Orchestrator([echo], decider=rule, decide_on=predicate), calls)
    assert result.ok
    assert asked == [["b"]]


@pytest.mark.parametrize("target", ["later", "nope"], ids=["forward", "unknown"])
def test_a_serial_stream_with_a_forward_or_unknown_reference(target: str) -> None:
    async def main() -> Any:
        orchestrator = Orchestrator([echo], strategy="serial")
        async with orchestrator.stream() as batch:
            batch.add(ToolCall("first", "echo", {"value": f"${{{target}}}"}))
            batch.add(ToolCall("later", "echo", {"value": 1}))
        return batch.result

    result = asyncio.run(asyncio.wait_for(main(), GUARD))
    assert [r.call_id for r in result.results] == ["first", "later"]
    assert result.get("first").error_type == "invalid_reference"
    assert result.get("later").ok


def test_a_stop_in_a_stream_skips_parked_calls_once_and_calls_added_later() -> None:
    def stop(ctx: DecisionContext) -> Decision:
        return Decision(action="stop", reason="enough")

    async def main() -> Any:
        orchestrator = Orchestrator([echo], decider=stop)
        async with orchestrator.stream() as batch:
            batch.add(ToolCall("a", "echo", {"value": {"v": 1}}))
            batch.add(ToolCall("p", "echo", {"value": "${q.v}"}))  # parked: q comes later
            batch.add(ToolCall("b", "echo", {"value": "${a.v}"}))
            await asyncio.sleep(0.1)  # the decision about b stops the batch
            batch.add(ToolCall("q", "echo", {"value": {"v": 3}}))
        return batch.result

    result = asyncio.run(asyncio.wait_for(main(), GUARD))
    assert result.stopped == "enough"
    assert {r.call_id: r.status for r in result.results} == {
        "a": "ok",
        "p": "skipped",
        "b": "skipped",
        "q": "skipped",
    }
    assert result.get("q").error == "stopped by decider: enough"


def _parent_pointers() -> Any:
    root: dict[str, Any] = {"id": 1, "children": []}
    root["children"].append({"id": 2, "parent": root})
    return root


def _shared(depth: int) -> Any:
    node: Any = {"id": 0}
    for _ in range(depth):
        node = {"l": node, "r": node}
    return node


@pytest.mark.parametrize(
    ("output", "path"),
    [
        pytest.param(_parent_pointers, "${a..id}", id="cyclic-recursive-descent"),
        pytest.param(lambda: _shared(40), "${a..id}", id="shared-subtrees-descent"),
        pytest.param(lambda: _shared(40), "${a.l.l.l.r.id}", id="shared-subtrees-plain-path"),
    ],
)
def test_a_searching_path_on_a_cyclic_or_shared_output_ends(output: Any, path: str) -> None:
    @tool
    async def produce() -> Any:
        return output()

    calls = [ToolCall("a", "produce"), ToolCall("b", "echo", {"value": path})]
    start = time.monotonic()
    result = run(Orchestrator([produce, echo]), calls)
    assert time.monotonic() - start < GUARD / 2
    assert result.get("a").ok
    assert result.get("b").status in ("ok", "error")
    assert to_text(result.get("b").output, 50) or result.get("b").error


def test_a_regex_filter_in_a_reference_is_refused() -> None:
    @tool
    async def produce() -> Any:
        return [{"title": "a" * 40 + "!"}]

    calls = [
        ToolCall("a", "produce"),
        ToolCall("b", "echo", {"value": "${a[?(@.title =~ '(a+)+$')]}"}),
    ]
    result = run(Orchestrator([produce, echo]), calls)
    assert result.get("b").error_type == "invalid_reference"
    assert "regular-expression filter (=~)" in (result.get("b").error or "")


def test_an_async_tool_that_ignores_cancellation_still_times_out() -> None:
    @tool(timeout=0.2)
    async def stubborn() -> None:
        await ignore_cancellation(3.0)

    async def main() -> tuple[Any, float]:
        start = time.monotonic()
        result = await Orchestrator([stubborn, echo]).run(
            [ToolCall("s", "stubborn"), ToolCall("e", "echo", {"value": 1})]
        )
        return result, time.monotonic() - start

    result, took = asyncio.run(main())
    assert took < 2.0
    assert result.get("s").error_type == "timeout"
    assert result.get("e").ok


def test_a_decider_that_ignores_cancellation_does_not_hold_the_batch_past_its_timeout() -> None:
    class Stubborn:
        async def decide(self, context: DecisionContext) -> Decision:
            await ignore_cancellation(3.0)
            return Decision(action="continue")

    calls = [ToolCall("a", "echo", {"value": 1}), ToolCall("b", "echo", {"value": "${a}"})]

    async def main() -> float:
        start = time.monotonic()
        await Orchestrator([echo], decider=Stubborn(), decider_timeout=0.1).run(calls)
        return time.monotonic() - start

    assert asyncio.run(main()) < 0.9, "no grace period on top of decider_timeout"


def test_an_exception_whose_class_name_cannot_be_read_is_still_an_error() -> None:
    class Meta(type):
        def __getattribute__(cls, name: str) -> Any:
            if name == "__name__":
                raise RuntimeError("no name")
            return super().__getattribute__(name)

    class Nameless(Exception, metaclass=Meta):
        pass

    @tool
    async def fail() -> None:
        raise Nameless("x")

    result = run(Orchestrator([fail]), [ToolCall("f", "fail")])
    assert result.get("f").error_type == "tool_error"
    assert "failed: object: x" in (result.get("f").error or "")


def test_arguments_whose_iteration_raises_are_the_calls_error() -> None:
    class Broken(dict):  # type: ignore[type-arg]
        def __iter__(self) -> Any:
            raise RuntimeError("no iteration")

    calls = [{"id": "x", "name": "echo", "arguments": Broken(a=1)}, ToolCall("e", "echo")]
    result = run(Orchestrator([echo]), calls)
    assert result.get("x").error_type == "invalid_arguments"
    assert result.get("e").ok


def test_keys_inside_an_argument_stay_off_the_plan_event_without_capture() -> None:
    provider, exporter = recording()
    calls = [
        ToolCall("a", "echo", {"value": 1}),
        ToolCall("b", "echo", {"value": {"alice@corp.com": "${a}"}}),
    ]
    run(Orchestrator([echo], tracer_provider=provider), calls)
    finished = exporter.get_finished_spans()
    assert "alice@corp.com" not in _everything_on(finished)
    [event] = [e for s in finished for e in s.events if e.name == "toolweave.plan"]
    plan = json.loads(str((event.attributes or {})["toolweave.plan.json"]))
    mapping = {
        t["tool_id"]: t["output_mapping"] for g in plan["execution_groups"] for t in g["tools"]
    }
    assert mapping == {"a": {}, "b": {"value": "${a}"}}


# ---------------------------------------------------------------- found by a second pass


def test_run_sync_returns_though_a_tool_was_left_running() -> None:
    @tool(timeout=0.2)
    async def stubborn() -> None:
        await ignore_cancellation(3.0)

    start = time.monotonic()
    result = Orchestrator([stubborn]).run_sync([ToolCall("s", "stubborn")])
    assert time.monotonic() - start < 2.5, "asyncio.run would wait for the stubborn task"
    assert result.get("s").error_type == "timeout"


@pytest.mark.parametrize("count", [1.5, 1e300, None, -3], ids=["fraction", "huge", "none", "neg"])
def test_odd_token_counts_from_a_decider_count_as_zero(count: Any) -> None:
    class Counting:
        async def decide(self, context: DecisionContext) -> Decision:
            context.report_usage(count, 2, model="m")
            return Decision(action="continue")

    calls = [ToolCall("a", "echo", {"value": 1}), ToolCall("b", "echo", {"value": "${a}"})]
    result = run(Orchestrator([echo], decider=Counting(), decider_timeout=3), calls)
    assert result.ok
    assert result.decisions[0].usage == {"input_tokens": 0, "output_tokens": 2}


def test_a_serial_gated_call_whose_arguments_fail_frees_the_next_one() -> None:
    calls = [
        ToolCall("a", "echo", {"value": {"v": 1}}),
        ToolCall("b", "echo", {"value": "${a.missing}"}),
        ToolCall("c", "echo", {"value": 3}),
    ]
    result = run(Orchestrator([echo], strategy="serial", decider=lambda ctx: None), calls)
    assert [r.status for r in result.results] == ["ok", "error", "ok"]


def test_a_parked_call_skipped_at_the_close_skips_what_waits_on_it() -> None:
    async def main() -> Any:
        async with Orchestrator([echo]).stream() as batch:
            batch.add(ToolCall("a", "nosuch"))
            batch.add(ToolCall("b", "echo", depends_on=["c"]))  # c comes later
            batch.add(ToolCall("c", "echo", {"value": "${a}"}))
            batch.add(ToolCall("d", "echo", {"value": "${b}"}))
        return batch.result

    result = asyncio.run(asyncio.wait_for(main(), GUARD))
    assert {r.call_id: (r.status, r.error_type) for r in result.results} == {
        "a": ("error", "unknown_tool"),
        "b": ("skipped", "dependency_failed"),
        "c": ("skipped", "dependency_failed"),
        "d": ("skipped", "dependency_failed"),
    }


@pytest.mark.parametrize(
    "exc", [SystemExit(1), asyncio.CancelledError(), GeneratorExit()], ids=["exit", "cancel", "gen"]
)
def test_a_redact_hook_raising_anything_is_its_own_failure(exc: BaseException) -> None:

    def redact(kind: str, value: Any) -> Any:
        raise exc

    provider, exporter = recording()
    content = TraceContent(enabled=True, redact=redact)
    orchestrator = Orchestrator([echo], tracer_provider=provider, trace_content=content)
    result = run(orchestrator, [ToolCall("e", "echo", {"value": 1})])
    assert result.ok
    assert "[redaction failed]" in _everything_on(exporter.get_finished_spans())


def test_redact_gets_a_copy_it_may_scrub_in_place() -> None:

    def scrub(kind: str, value: Any) -> Any:
        if isinstance(value, dict):
            value.clear()
        return value

    content = TraceContent(enabled=True, redact=scrub)
    calls = [ToolCall("a", "echo", {"value": {"k": 1}}), ToolCall("b", "echo", {"value": "${a.k}"})]

    result = run(
        Orchestrator([echo], tracer_provider=TracerProvider(), trace_content=content), calls
    )
    assert result.get("a").output == {"k": 1}
    assert result.get("b").output == 1


def test_reference_text_that_names_no_call_stays_off_the_plan_event() -> None:
    provider, exporter = recording()
    calls = [ToolCall("a", "echo", {"value": "PIN ${4921-7730-SECRET} and ${1}"})]
    run(Orchestrator([echo], tracer_provider=provider), calls)
    assert "4921-7730-SECRET" not in _everything_on(exporter.get_finished_spans())


@pytest.mark.parametrize("value", ["5", 0, -1.0, True], ids=["text", "zero", "negative", "bool"])
def test_a_bad_decider_timeout_is_a_usage_error(value: Any) -> None:
    with pytest.raises(UsageError, match="decider_timeout must be None or a positive number"):
        Orchestrator([echo], decider=lambda ctx: None, decider_timeout=value)


def test_misusing_a_stream_is_a_usage_error() -> None:
    async def main() -> None:
        orchestrator = Orchestrator([echo])
        early = orchestrator.stream()
        with pytest.raises(UsageError, match="add\\(\\) before the stream was entered"):
            early.add(ToolCall("a", "echo"))
        async with orchestrator.stream() as batch:
            batch.add(ToolCall("a", "echo", {"value": 1}))
            with pytest.raises(UsageError, match="still open"):
                _ = batch.result
            with pytest.raises(UsageError, match="entered already"):
                await batch.__aenter__()
        assert batch.result.get("a").output == 1

    asyncio.run(asyncio.wait_for(main(), GUARD))
