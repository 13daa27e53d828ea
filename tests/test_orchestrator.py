"""Running batches: data flow, start-as-soon-as-ready, failures, timeouts, retries, limits."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from typing import Any

import pytest
from tenacity import wait_none

from toolweave import (
    CallResult,
    Orchestrator,
    ToolCall,
    ToolExecutionError,
    ToolTimeoutError,
    UsageError,
    tool,
)

GUARD = 10.0  # seconds; only reached when the behaviour under test is broken


def run(orchestrator: Orchestrator, calls: list[Any]) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(orchestrator.run(calls), GUARD)

    return asyncio.run(main())


def statuses(results: list[CallResult]) -> dict[str, str]:
    return {r.call_id: r.status for r in results}


@tool
async def echo(value: Any = None) -> Any:
    """Return the value."""
    return value


@tool
async def boom(message: str = "bad input") -> None:
    """Always fail."""
    raise ValueError(message)


def test_outputs_flow_into_later_calls_with_their_types() -> None:
    @tool
    async def search(q: str) -> dict[str, Any]:
        return {"hits": [{"url": f"https://x/{q}", "rank": 1}], "total": 1}

    @tool
    async def fetch(url: str, rank: int, label: str) -> str:
        return f"{label}:{url}:{rank}"

    result = run(
        Orchestrator([search, fetch]),
        [
            ToolCall("s", "search", {"q": "cats"}),
            ToolCall(
                "f",
                "fetch",
                {
                    "url": "${s.hits[0].url}",
                    "rank": {"$ref": 1, "path": "$.hits[0].rank"},
                    "label": "n=${1.total}",
                },
            ),
        ],
    )
    assert result.ok
    assert result.get("f").output == "n=1:https://x/cats:1"
    assert result.get("f").arguments == {"url": "https://x/cats", "rank": 1, "label": "n=1"}


def test_a_call_never_waits_for_an_unrelated_call_of_a_lower_level() -> None:
    # A (level 0) only finishes once C (level 1, needing only B) has run: a level-by-level
    # scheduler would wait for A before starting C and deadlock until the guard fires.
    c_ran = asyncio.Event()

    @tool
    async def slow_a() -> str:
        await c_ran.wait()
        return "a"

    @tool
    async def fast_b() -> str:
        return "b"

    @tool
    async def needs_b(x: str) -> str:
        c_ran.set()
        return x + "c"

    result = run(
        Orchestrator([slow_a, fast_b, needs_b]),
        [ToolCall("A", "slow_a"), ToolCall("B", "fast_b"), ToolCall("C", "needs_b", {"x": "${B}"})],
    )
    assert statuses(result.results) == {"A": "ok", "B": "ok", "C": "ok"}
    assert result.get("C").ended_at < result.get("A").ended_at
    assert [r.group_index for r in result.results] == [0, 0, 1]


def test_independent_calls_run_concurrently() -> None:
    barrier = asyncio.Barrier(3)  # passes only when all three are inside at once

    @tool
    async def meet(i: int) -> int:
        await barrier.wait()
        return i

    result = run(Orchestrator([meet]), [ToolCall(str(i), "meet", {"i": i}) for i in range(3)])
    assert result.ok
    assert [r.output for r in result.results] == [0, 1, 2]
    assert result.plan.strategy == "parallel"


def test_sync_tools_run_in_worker_threads_concurrently_and_keep_context() -> None:
    barrier = threading.Barrier(2, timeout=GUARD)
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller")

    @tool
    def blocking(i: int) -> tuple[str, str]:
        barrier.wait()
        return threading.current_thread().name, var.get()

    result = run(Orchestrator([blocking]), [ToolCall(str(i), "blocking", {"i": i}) for i in (0, 1)])
    assert result.ok
    for r in result.results:
        thread, value = r.output
        assert thread.startswith("toolweave")
        assert value == "caller"


def test_results_are_in_batch_order_one_per_call_and_execution_order_counts_starts() -> None:
    second = asyncio.Event()

    @tool
    async def first() -> str:
        await second.wait()
        return "1"

    @tool
    async def then(x: str = "") -> str:
        second.set()
        return x

    calls = [
        ToolCall("late", "then", {"x": "${early}"}),
        ToolCall("early", "first"),
        ToolCall("solo", "then"),
        ToolCall("bad", "nope"),
    ]
    result = run(Orchestrator([first, then]), calls)
    assert [r.call_id for r in result.results] == ["late", "early", "solo", "bad"]
    orders = {r.call_id: r.execution_order for r in result.results}
    assert orders == {"early": 0, "solo": 1, "late": 2, "bad": None}
    assert result.get("bad").started_at is None
    assert result.get("bad").attempts == 0


def test_a_failure_skips_exactly_its_descendants_and_names_the_failed_call() -> None:
    result = run(
        Orchestrator([echo, boom]),
        [
            ToolCall("a", "boom"),
            ToolCall("b", "echo", {"value": "${a}"}),
            ToolCall("c", "echo", {"value": "${b}"}),
            ToolCall("d", "echo", {"value": 1}),
            ToolCall("e", "echo", {"value": "${d}"}),
            ToolCall("f", "echo", {}, ["c"]),
        ],
    )
    assert statuses(result.results) == {
        "a": "error",
        "b": "skipped",
        "c": "skipped",
        "d": "ok",
        "e": "ok",
        "f": "skipped",
    }
    a = result.get("a")
    assert a.error == "call 'a' (boom): failed: ValueError: bad input"
    assert a.error_type == "tool_error"
    assert isinstance(a.exception, ToolExecutionError)
    assert isinstance(a.exception.__cause__, ValueError)
    for skipped in ("b", "c", "f"):
        r = result.get(skipped)
        assert r.error == (
            "skipped: it depends on call 'a' (boom), which failed. Fix that call first."
        )
        assert (r.error_type, r.execution_order, r.started_at) == ("dependency_failed", None, None)
    assert not result.ok


def test_invalid_arguments_after_resolution_name_the_field() -> None:
    @tool
    async def count(n: int) -> int:
        return n

    result = run(
        Orchestrator([echo, count]),
        [
            ToolCall("a", "echo", {"value": {"n": "many"}}),
            ToolCall("b", "count", {"n": "${a.n}"}),
            ToolCall("c", "count", {"n": "${b}"}),
        ],
    )
    b = result.get("b")
    assert b.status == "error"
    assert b.error_type == "invalid_arguments"
    assert "'n': Input should be a valid integer" in (b.error or "")
    assert "(got 'many')" in (b.error or "")
    assert result.get("c").status == "skipped"


def test_a_reference_that_matches_nothing_shows_the_output() -> None:
    result = run(
        Orchestrator([echo]),
        [
            ToolCall("a", "echo", {"value": {"hits": []}}),
            ToolCall("b", "echo", {"value": "${a.hits[0].url}"}),
            ToolCall("c", "echo", {"value": "${a.hits[*].url}"}),
        ],
    )
    b = result.get("b")
    assert b.status == "error"
    assert b.error_type == "invalid_reference"
    assert b.error == (
        "call 'b' (echo): reference '${a.hits[0].url}' found no value: nothing in the output "
        "matches $.hits[0].url; the output of call 'a' (echo) was: {\"hits\": []}. "
        "Change the path to match that output."
    )
    assert result.get("c").output == [], "a wildcard path gives a list, possibly empty"


def test_plan_time_errors_fail_only_their_calls() -> None:
    result = run(
        Orchestrator([echo]),
        [
            ToolCall("json", "echo", '{"value": '),
            ToolCall("cyc1", "echo", {"value": "${cyc2}"}),
            ToolCall("cyc2", "echo", {"value": "${cyc1}"}),
            ToolCall("behind", "echo", {"value": "${cyc1}"}),
            ToolCall("fine", "echo", '{"value": 5}'),
        ],
    )
    assert statuses(result.results) == {
        "json": "error",
        "cyc1": "error",
        "cyc2": "error",
        "behind": "skipped",
        "fine": "ok",
    }
    assert result.get("cyc1").error_type == "circular_dependency"
    assert result.get("json").error_type == "invalid_arguments"
    assert result.get("fine").output == 5


def test_a_timed_out_attempt_is_retried_and_the_last_timeout_is_reported() -> None:
    attempts = 0

    @tool(timeout=0.05, retries=2, retry_wait=wait_none())
    async def hangs() -> None:
        nonlocal attempts
        attempts += 1
        await asyncio.Event().wait()

    result = run(Orchestrator([hangs]), [ToolCall("h", "hangs")])
    h = result.get("h")
    assert (h.status, h.error_type, h.attempts, attempts) == ("error", "timeout", 3, 3)
    assert h.error == "call 'h' (hangs): timed out after 0.05 s (on each of 3 attempts). " + (
        "Try a smaller request or another approach."
    )
    assert isinstance(h.exception, ToolTimeoutError)


def test_retries_recover_from_exceptions() -> None:
    calls = 0

    @tool(retries=3, retry_wait=wait_none())
    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("try again")
        return "ok"

    result = run(Orchestrator([flaky]), [ToolCall("f", "flaky")])
    assert (result.get("f").output, result.get("f").attempts) == ("ok", 3)


def test_retry_on_limits_which_exceptions_are_retried() -> None:
    calls = 0

    @tool(retries=3, retry_wait=wait_none(), retry_on=ConnectionError)
    async def strict() -> None:
        nonlocal calls
        calls += 1
        raise KeyError("missing")

    result = run(Orchestrator([strict]), [ToolCall("s", "strict")])
    assert (result.get("s").attempts, calls) == (1, 1)
    assert result.get("s").error == "call 's' (strict): failed: KeyError: 'missing'"


def test_a_tools_own_timeout_error_is_an_exception_not_our_timeout() -> None:
    @tool(timeout=GUARD)
    async def raises_timeout() -> None:
        raise TimeoutError("upstream timed out")

    result = run(Orchestrator([raises_timeout]), [ToolCall("t", "raises_timeout")])
    assert result.get("t").error_type == "tool_error"
    assert "TimeoutError: upstream timed out" in (result.get("t").error or "")


def test_a_sync_tool_that_times_out_is_abandoned_and_its_result_discarded() -> None:
    release = threading.Event()

    @tool(timeout=0.05)
    def stuck() -> str:
        release.wait(GUARD)
        return "late"

    try:
        result = run(Orchestrator([stuck]), [ToolCall("s", "stuck")])
    finally:
        release.set()
    assert (result.get("s").error_type, result.get("s").output) == ("timeout", None)


def test_waiting_for_a_concurrency_slot_does_not_count_against_the_timeout() -> None:
    @tool
    async def hog() -> str:
        await asyncio.sleep(0.5)
        return "done"

    @tool(timeout=0.1)
    async def quick() -> str:
        return "quick"

    result = run(
        Orchestrator([hog, quick], max_concurrency=1),
        [ToolCall("h", "hog"), ToolCall("q", "quick")],
    )
    assert statuses(result.results) == {"h": "ok", "q": "ok"}


def test_max_concurrency_bounds_calls_running_at_once() -> None:
    running = peak = 0

    @tool
    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for _ in range(5):
            await asyncio.sleep(0)
        running -= 1

    result = run(
        Orchestrator([work], max_concurrency=2), [ToolCall(str(i), "work") for i in range(7)]
    )
    assert result.ok
    assert peak == 2


def test_serial_strategy_never_overlaps_and_skips_only_dependents() -> None:
    running = peak = 0
    order: list[str] = []

    @tool
    async def step(name: str, fail: bool = False) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        order.append(name)
        await asyncio.sleep(0)
        running -= 1
        if fail:
            raise RuntimeError("no")
        return name

    calls = [
        ToolCall("a", "step", {"name": "a"}),
        ToolCall("b", "step", {"name": "b", "fail": True}),
        ToolCall("c", "step", {"name": "${b}"}),
        ToolCall("d", "step", {"name": "${a}"}),
    ]
    result = run(Orchestrator([step], strategy="serial"), calls)
    assert peak == 1
    assert order == ["a", "b", "a"]
    assert statuses(result.results) == {"a": "ok", "b": "error", "c": "skipped", "d": "ok"}
    assert result.plan.groups == [["a"], ["b"], ["c"], ["d"]]


def test_cancelling_run_cancels_every_call_and_leaves_no_task_behind() -> None:
    started = 0
    cancelled = 0
    all_in = asyncio.Event()

    @tool
    async def forever() -> None:
        nonlocal started, cancelled
        started += 1
        if started == 3:
            all_in.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled += 1
            raise

    async def main() -> set[asyncio.Task[Any]]:
        orchestrator = Orchestrator([forever])
        task = asyncio.create_task(
            orchestrator.run([ToolCall(str(i), "forever") for i in range(3)])
        )
        await asyncio.wait_for(all_in.wait(), GUARD)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]

    leftover = asyncio.run(main())
    assert leftover == set()
    assert cancelled == 3


def test_run_sync_and_its_misuse_inside_a_loop() -> None:
    orchestrator = Orchestrator([echo])
    assert orchestrator.run_sync([ToolCall("a", "echo", {"value": 1})]).get("a").output == 1

    async def inside() -> None:
        with pytest.raises(UsageError, match=r"use 'await orchestrator.run\(...\)'"):
            orchestrator.run_sync([])

    asyncio.run(inside())


def test_batch_result_helpers() -> None:
    result = run(Orchestrator([echo, boom]), [ToolCall("a", "echo"), ToolCall("b", "boom")])
    assert [r.call_id for r in result.by_status("error")] == ["b"]
    assert result.elapsed >= 0
    assert result.started_at > 0
    with pytest.raises(KeyError, match="no call with id 'zz'"):
        result.get("zz")
    trace = result.to_trace()
    assert trace["plan"] == result.plan.to_dict()
    assert trace["calls"][1]["error_type"] == "tool_error"
    assert "output" not in trace["calls"][0]
    assert result.to_trace(include_content=True)["calls"][0]["arguments"] == {"value": None}


def test_the_engine_logs_its_events(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="toolweave")
    run(Orchestrator([echo, boom]), [ToolCall("a", "echo"), ToolCall("b", "boom")])
    events = [r.toolweave["event"] for r in caplog.records if hasattr(r, "toolweave")]
    for name in (
        "orchestration.dependencies_extracted",
        "orchestration.strategy_determined",
        "orchestration.call_started",
        "orchestration.call_finished",
        "orchestration.execution_failed",
    ):
        assert name in events
    caplog.clear()
    run(Orchestrator([echo]), [ToolCall("a", "echo")])
    assert "orchestration.execution_completed" in caplog.text


def test_a_tool_that_cancels_itself_still_gets_a_result_and_its_dependents_settle() -> None:
    @tool
    async def quits() -> None:
        raise asyncio.CancelledError

    result = run(
        Orchestrator([quits, echo]),
        [ToolCall("q", "quits"), ToolCall("d", "echo", {"value": "${q}"}), ToolCall("e", "echo")],
    )
    assert statuses(result.results) == {"q": "error", "d": "skipped", "e": "ok"}
    assert result.get("q").error == "call 'q' (quits): failed: CancelledError: (no message)"


def test_a_schema_validator_raising_another_exception_is_invalid_arguments() -> None:
    from typing import Annotated

    from pydantic import BeforeValidator

    def picky(value: Any) -> Any:
        raise TypeError("cannot take that")

    @tool
    async def fussy(x: Annotated[int, BeforeValidator(picky)]) -> int:
        return x

    result = run(Orchestrator([fussy]), [ToolCall("f", "fussy", {"x": 1})])
    assert result.get("f").error_type == "invalid_arguments"
    assert "TypeError: cannot take that" in (result.get("f").error or "")


def test_a_path_whose_evaluation_raises_is_a_reference_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from toolweave import _references

    class Exploding:
        def find(self, data: Any) -> Any:
            raise TypeError("'>' not supported")

    monkeypatch.setattr(_references, "_compile_path", lambda path: (Exploding(), False))
    result = run(
        Orchestrator([echo]),
        [ToolCall("a", "echo", {"value": [1]}), ToolCall("b", "echo", {"value": "${a[0]}"})],
    )
    b = result.get("b")
    assert b.error_type == "invalid_reference"
    assert "evaluating $[0] failed: TypeError: '>' not supported" in (b.error or "")
