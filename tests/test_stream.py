"""Streamed batches: calls added while the batch runs start as soon as they can."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from toolweave import BatchResult, InvalidBatchError, Orchestrator, ToolCall, tool

GUARD = 10.0
started: dict[str, asyncio.Event] = {}


@tool
async def step(name: str, value: Any = None) -> Any:
    """Record that it started, then return its value."""
    started.setdefault(name, asyncio.Event()).set()
    await asyncio.sleep(0)
    return value if value is not None else name


@tool
async def boom() -> None:
    """Fail."""
    raise RuntimeError("down")


def stream_run(body: Any, orchestrator: Orchestrator | None = None) -> BatchResult:
    async def main() -> BatchResult:
        started.clear()
        o = orchestrator or Orchestrator([step, boom])
        async with o.stream(goal="g") as batch:
            await asyncio.wait_for(body(batch), GUARD)
        return batch.result

    return asyncio.run(main())


def test_a_call_starts_before_the_stream_closes() -> None:
    async def body(batch: Any) -> None:
        batch.add(ToolCall("a", "step", {"name": "a", "value": {"url": "u"}}))
        await started.setdefault("a", asyncio.Event()).wait()  # deadlocks if a waits for close
        batch.add(ToolCall("b", "step", {"name": "b", "value": "${a.url}"}))
        await started.setdefault("b", asyncio.Event()).wait()

    result = stream_run(body)
    assert [(r.call_id, r.status, r.output) for r in result.results] == [
        ("a", "ok", {"url": "u"}),
        ("b", "ok", "u"),
    ]
    assert result.plan.dependencies == {"a": [], "b": ["a"]}
    assert [r.group_index for r in result.results] == [0, 1]


def test_the_result_matches_what_run_returns() -> None:
    calls = [
        ToolCall("a", "step", {"name": "a"}),
        ToolCall("b", "step", {"name": "b", "value": "${1}"}),
        ToolCall("c", "boom"),
        ToolCall("d", "step", {"name": "d", "value": "${c}"}),
    ]

    async def body(batch: Any) -> None:
        for call in calls:
            batch.add(call)

    streamed = stream_run(body)
    ran = Orchestrator([step, boom]).run_sync(calls)
    assert streamed.plan.to_dict() == ran.plan.to_dict()
    for s, r in zip(streamed.results, ran.results, strict=True):
        assert (s.call_id, s.status, s.output, s.error, s.group_index, s.depends_on) == (
            r.call_id, r.status, r.output, r.error, r.group_index, r.depends_on,
        )  # fmt: skip


def test_a_reference_to_a_call_still_to_come_waits_for_the_close() -> None:
    async def body(batch: Any) -> None:
        batch.add(ToolCall("first", "step", {"name": "first", "value": "${later}"}))
        batch.add(ToolCall("later", "step", {"name": "later", "value": "L"}))

    result = stream_run(body)
    assert result.get("first").output == "L"
    assert result.get("first").group_index == 1


def test_a_cycle_closed_by_a_forward_reference_is_reported_as_one() -> None:
    async def body(batch: Any) -> None:
        batch.add(ToolCall("x", "step", {"name": "x", "value": "${y}"}))
        batch.add(ToolCall("y", "step", {"name": "y", "value": "${x}"}))
        batch.add(ToolCall("z", "step", {"name": "z"}))

    result = stream_run(body)
    assert [r.error_type for r in result.results] == [
        "circular_dependency",
        "circular_dependency",
        None,
    ]


def test_a_call_added_behind_a_failed_one_is_skipped_at_once() -> None:
    async def body(batch: Any) -> None:
        batch.add(ToolCall("bad", "nope"))  # an unknown tool fails as it is added
        batch.add(ToolCall("after", "step", {"name": "after", "value": "${bad}"}))
        assert batch._run.results[1].status == "skipped", "skipped as it arrives, not at close"

    result = stream_run(body)
    assert result.get("after").error == (
        "skipped: it depends on call 'bad' (nope), which failed. Fix that call first."
    )


def test_duplicate_ids_are_refused_as_they_arrive() -> None:
    async def body(batch: Any) -> None:
        batch.add(ToolCall("a", "step", {"name": "a"}))
        with pytest.raises(InvalidBatchError, match="calls 1 and 2 share the id 'a'"):
            batch.add(ToolCall("a", "step", {"name": "again"}))

    assert len(stream_run(body).results) == 1


def test_an_error_inside_the_block_cancels_the_batch_and_leaves_no_task() -> None:
    @tool
    async def forever() -> None:
        await asyncio.Event().wait()

    async def consumer() -> None:
        async with Orchestrator([forever]).stream() as batch:
            batch.add(ToolCall("f", "forever"))
            await asyncio.sleep(0)
            raise KeyError("consumer failed")

    async def main() -> set[asyncio.Task[Any]]:
        with pytest.raises(KeyError):
            await consumer()
        return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]

    assert asyncio.run(main()) == set()


def test_a_call_arriving_after_a_stop_behind_a_stopped_call_gets_its_result() -> None:
    """A streamed call whose dependency the decider's stop already skipped is skipped as it
    arrives, and still gets its one result (it used to end without one)."""
    from toolweave import Decision

    @tool
    async def step(n: int) -> int:
        return n

    def stop(context: Any) -> Decision:
        return Decision(action="stop", reason="enough")

    async def main() -> BatchResult:
        o = Orchestrator([step], decider=stop)
        async with o.stream() as batch:
            batch.add(ToolCall("a", "step", {"n": 1}))
            batch.add(ToolCall("b", "step", {"n": "${a}"}))  # the decider stops here
            await asyncio.sleep(0.05)
            batch.add(ToolCall("c", "step", {"n": 3}, depends_on=["b"]))
        return batch.result

    result = asyncio.run(main())
    assert [r.status for r in result.results] == ["ok", "skipped", "skipped"]
    assert result.get("c").error_type == "stopped_by_decider"
