"""Deciding between steps: when the decider is asked, how answers apply, and every fallback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from toolweave import (
    BatchResult,
    Decision,
    DecisionContext,
    Orchestrator,
    RuleDecider,
    ToolCall,
    UsageError,
    tool,
)
from toolweave.testing import ScriptedDecider

GUARD = 10.0
Step = Decision | dict[str, Any] | BaseException | Callable[[DecisionContext], Any]


@tool
async def echo(value: Any = None) -> Any:
    """Return the value."""
    return value


@tool
async def boom() -> None:
    """Fail."""
    raise RuntimeError("down")


def run(orchestrator: Orchestrator, calls: list[ToolCall], **kwargs: Any) -> BatchResult:
    async def main() -> BatchResult:
        return await asyncio.wait_for(orchestrator.run(calls, **kwargs), GUARD)

    return asyncio.run(main())


def chain(n: int) -> list[ToolCall]:
    calls = [ToolCall("c0", "echo", {"value": 0})]
    calls += [ToolCall(f"c{i}", "echo", {"value": f"${{c{i - 1}}}"}) for i in range(1, n)]
    return calls


CONTINUE = Decision(action="continue", reason="fine")


def test_a_parallel_batch_never_asks() -> None:
    decider = ScriptedDecider()
    result = run(
        Orchestrator([echo], decider=decider), [ToolCall(str(i), "echo") for i in range(4)]
    )
    assert result.ok
    assert result.decisions == []


def test_a_chain_of_n_calls_asks_n_minus_1_times() -> None:
    decider = ScriptedDecider(*[([f"c{i}"], CONTINUE) for i in range(1, 5)])
    result = run(Orchestrator([echo], decider=decider), chain(5))
    decider.assert_done()
    assert result.ok
    assert [d.call_ids for d in result.decisions] == [[f"c{i}"] for i in range(1, 5)]
    assert all(not d.fallback and d.decision == CONTINUE for d in result.decisions)


def test_calls_ready_together_are_decided_in_one_request() -> None:
    decider = ScriptedDecider((["b", "c"], CONTINUE), (["d"], CONTINUE))
    calls = [
        ToolCall("a", "echo", {"value": 1}),
        ToolCall("b", "echo", {"value": "${a}"}),
        ToolCall("c", "echo", {"value": "${a}"}),
        ToolCall("d", "echo", {"value": "${b} ${c}"}),
    ]
    result = run(Orchestrator([echo], decider=decider), calls)
    decider.assert_done()
    assert result.get("d").output == "1 1"


def test_skip_skips_the_named_calls_and_their_dependents_with_the_reason() -> None:
    decider = ScriptedDecider(
        (["b", "c"], Decision(action="skip", skip=["b"], reason="search was empty")),
        (["e"], CONTINUE),
    )
    calls = [
        ToolCall("a", "echo", {"value": []}),
        ToolCall("b", "echo", {"value": "${a}"}),
        ToolCall("c", "echo", {"value": "${a}"}),
        ToolCall("d", "echo", {"value": "${b}"}),
        ToolCall("e", "echo", {"value": "${c}"}),
    ]
    result = run(Orchestrator([echo], decider=decider), calls)
    decider.assert_done()
    assert {r.call_id: r.status for r in result.results} == {
        "a": "ok",
        "b": "skipped",
        "c": "ok",
        "d": "skipped",
        "e": "ok",
    }
    for call_id in ("b", "d"):
        assert result.get(call_id).error == "skipped by decider: search was empty"
        assert result.get(call_id).error_type == "skipped_by_decider"
    assert result.stopped is None


def test_stop_skips_everything_not_started_and_lets_running_calls_finish() -> None:
    release = asyncio.Event()
    finished: list[str] = []

    @tool
    async def slow() -> str:
        await release.wait()
        finished.append("slow")
        return "slow done"

    def stop(ctx: DecisionContext) -> Decision:
        release.set()  # the running call may now finish; it must not be cut off
        return Decision(action="stop", reason="the lookup failed, re-plan")

    decider = ScriptedDecider((["c1"], stop))
    calls = [*chain(3), ToolCall("s", "slow")]
    result = run(Orchestrator([echo, slow], decider=decider), calls)
    decider.assert_done()
    assert result.stopped == "the lookup failed, re-plan"
    assert {r.call_id: r.status for r in result.results} == {
        "c0": "ok",
        "c1": "skipped",
        "c2": "skipped",
        "s": "ok",
    }
    assert result.get("c2").error == "stopped by decider: the lookup failed, re-plan"
    assert result.get("c2").error_type == "stopped_by_decider"
    assert finished == ["slow"]


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(Decision(action="skip", skip=[], reason="nothing"), id="skip-empty"),
        pytest.param(Decision(action="continue", skip=["c1"], reason="go"), id="continue-ignores"),
    ],
)
def test_answers_that_act_as_continue(answer: Decision) -> None:
    decider = ScriptedDecider((["c1"], answer))
    result = run(Orchestrator([echo], decider=decider), chain(2))
    assert result.ok
    assert result.decisions[0].fallback is False


@pytest.mark.parametrize(
    ("answer", "error_type", "message"),
    [
        pytest.param(
            Decision(action="skip", skip=["nope"], reason="x"),
            "invalid_decision",
            "skip names 'nope', not among the waiting calls (c1)",
            id="unknown-id",
        ),
        pytest.param(
            {"action": "maybe"},
            "invalid_decision",
            "the decider's answer is not a valid Decision: 'action': Input should be",
            id="schema-mismatch",
        ),
        pytest.param(
            ConnectionError("refused"), "ConnectionError", "ConnectionError: refused", id="raises"
        ),
    ],
)
def test_a_failed_decision_falls_back_and_says_why(
    answer: Step, error_type: str, message: str
) -> None:
    decider = ScriptedDecider((["c1"], answer))
    result = run(Orchestrator([echo], decider=decider), chain(2))
    decider.assert_done()
    assert result.ok, "the default fallback continues"
    record = result.decisions[0]
    assert record.fallback is True
    assert record.error_type == error_type
    assert message in (record.error or "")
    assert record.decision.action == "continue"


def test_a_decider_that_hangs_is_bounded_by_decider_timeout() -> None:
    async def hang(ctx: DecisionContext) -> None:
        await asyncio.Event().wait()

    decider = ScriptedDecider((["c1"], hang))
    result = run(Orchestrator([echo], decider=decider, decider_timeout=0.05), chain(2))
    assert result.ok
    assert result.decisions[0].error_type == "timeout"
    assert result.decisions[0].error == "the decider did not answer within 0.05 s"


def test_the_circuit_breaker_stops_asking_after_consecutive_failures() -> None:
    decider = ScriptedDecider(*[([f"c{i}"], RuntimeError("503")) for i in (1, 2)], breaker=2)
    result = run(Orchestrator([echo], decider=decider), chain(5))
    decider.assert_done()
    assert result.ok
    assert [d.error_type for d in result.decisions] == [
        "RuntimeError",
        "RuntimeError",
        "circuit_open",
        "circuit_open",
    ]
    assert result.decisions[2].error == (
        "not asked: the decider failed 2 times in a row in this batch"
    )


def test_a_success_resets_the_breaker() -> None:
    decider = ScriptedDecider(
        (["c1"], RuntimeError("x")), (["c2"], CONTINUE), (["c3"], RuntimeError("y")), breaker=2
    )
    result = run(Orchestrator([echo], decider=decider), chain(4))
    decider.assert_done()
    assert [d.fallback for d in result.decisions] == [True, False, True]


def test_the_deciders_own_fallback_applies() -> None:
    decider = ScriptedDecider(
        (["c1"], RuntimeError("down")),
        fallback=Decision(action="stop", reason="cannot check; stop to be safe"),
    )
    result = run(Orchestrator([echo], decider=decider), chain(3))
    assert result.stopped == "cannot check; stop to be safe"
    assert result.decisions[0].fallback is True


def test_a_slow_decision_gates_only_its_own_calls() -> None:
    y_ran = asyncio.Event()

    @tool
    async def mark(value: Any = None) -> Any:
        y_ran.set()
        return value

    async def wait_for_other_chain(ctx: DecisionContext) -> Decision:
        await y_ran.wait()  # deadlocks (until the guard) if b's decision held back y
        return CONTINUE

    decider = ScriptedDecider((["b", "y"], CONTINUE))
    decider.steps = []  # replaced below: decisions arrive in either order

    async def decide(ctx: DecisionContext) -> Decision:
        decider.contexts.append(ctx)
        if ctx.waiting_ids == ["b"]:
            return await wait_for_other_chain(ctx)
        return CONTINUE

    decider.decide = decide  # type: ignore[method-assign]
    calls = [
        ToolCall("a", "echo", {"value": 1}),
        ToolCall("b", "echo", {"value": "${a}"}),
        ToolCall("x", "slow_x"),
        ToolCall("y", "mark", {"value": "${x}"}),
    ]

    @tool
    async def slow_x() -> int:
        for _ in range(20):
            await asyncio.sleep(0)
        return 2

    result = run(Orchestrator([echo, mark, slow_x], decider=decider), calls)
    assert result.ok
    assert result.get("y").ended_at < result.get("b").started_at  # type: ignore[operator]
    assert sorted(len(c.waiting) for c in decider.contexts) == [1, 1]


def test_the_context_shows_finished_waiting_pending_and_goal() -> None:
    decider = ScriptedDecider((["b"], CONTINUE), (["c"], CONTINUE))
    calls = [
        ToolCall("a", "echo", {"value": {"text": "x" * 50}}),
        ToolCall("b", "echo", {"value": "${a.text}"}),
        ToolCall("c", "echo", {"value": "${b}"}),
    ]
    orchestrator = Orchestrator([echo], decider=decider, decision_output_chars=20)
    run(orchestrator, calls, goal="summarise the page")
    first = decider.contexts[0]
    assert first.goal == "summarise the page"
    assert first.trigger == "step"
    assert [(f.call_id, f.status) for f in first.finished] == [("a", "ok")]
    assert first.finished[0].output == '{"text": "xxxxxxx...'
    assert len(first.finished[0].output) == 20
    assert first.waiting[0].arguments == {"value": "x" * 50}, "arguments arrive resolved"
    assert [c.id for c in first.pending] == ["c"]
    assert first.pending[0].arguments == {"value": "${b}"}


def test_decide_on_failure_asks_only_when_an_upstream_call_failed() -> None:
    release = asyncio.Event()

    def stop(ctx: DecisionContext) -> Decision:
        # Let the running call finish: a stop must not cut it off, only what has not started.
        release.set()
        return Decision(action="stop", reason="the source is down; re-plan")

    decider = ScriptedDecider((["b"], stop))

    @tool
    async def later() -> str:
        await release.wait()
        return "ran"

    calls = [
        ToolCall("a", "boom"),
        ToolCall("b", "echo", {"value": "${a}"}),
        ToolCall("ok1", "echo", {"value": 1}),
        ToolCall("ok2", "echo", {"value": "${ok1}"}),
        ToolCall("w", "later"),
        ToolCall("after", "echo", {"value": "${w}"}),
    ]
    orchestrator = Orchestrator([echo, boom, later], decider=decider, decide_on="failure")
    result = run(orchestrator, calls)
    decider.assert_done()
    assert decider.contexts[0].trigger == "failure"
    assert result.get("b").error_type == "dependency_failed"
    assert result.get("ok2").status == "ok", "no decision gates steps under decide_on='failure'"
    assert result.stopped == "the source is down; re-plan"
    assert result.get("w").status == "ok"
    assert result.get("after").error == "stopped by decider: the source is down; re-plan"


def test_decide_on_a_predicate() -> None:
    decider = ScriptedDecider((["c2"], Decision(action="skip", skip=["c2"], reason="no")))
    result = run(
        Orchestrator([echo], decider=decider, decide_on=lambda ctx: ctx.waiting_ids == ["c2"]),
        chain(3),
    )
    decider.assert_done()
    assert [r.status for r in result.results] == ["ok", "ok", "skipped"]


def test_plain_functions_and_rule_deciders() -> None:
    def empty_urls(ctx: DecisionContext) -> Decision | None:
        ids = [c.id for c in ctx.waiting if not c.arguments.get("value")]
        return Decision(action="skip", skip=ids, reason="empty value") if ids else None

    async def never_stop(ctx: DecisionContext) -> None:
        return None

    calls = [
        ToolCall("a", "echo", {"value": {"u": "", "v": "x"}}),
        ToolCall("b", "echo", {"value": "${a.u}"}),
        ToolCall("c", "echo", {"value": "${a.v}"}),
    ]
    for decider in (empty_urls, RuleDecider(empty_urls, never_stop)):
        result = run(Orchestrator([echo], decider=decider), calls)
        assert [r.status for r in result.results] == ["ok", "skipped", "ok"]
        assert result.get("b").error == "skipped by decider: empty value"


def test_rule_decider_stop_wins_and_skips_merge() -> None:
    async def main() -> None:
        ctx = DecisionContext(
            finished=[],
            waiting=[ToolCall("x", "echo"), ToolCall("y", "echo")],
            pending=[],
        )
        skip_x = lambda c: Decision(action="skip", skip=["x"], reason="rx")  # noqa: E731
        skip_y = lambda c: Decision(action="skip", skip=["y"], reason="ry")  # noqa: E731
        stop = lambda c: Decision(action="stop", reason="halt")  # noqa: E731
        merged = await RuleDecider(skip_x, skip_y).decide(ctx)
        assert (merged.action, merged.skip, merged.reason) == ("skip", ["x", "y"], "rx; ry")
        assert (await RuleDecider(skip_x, stop).decide(ctx)).action == "stop"
        assert (await RuleDecider(lambda c: None).decide(ctx)).action == "continue"

    asyncio.run(main())


def test_usage_reported_by_a_decider_is_recorded() -> None:
    def with_usage(ctx: DecisionContext) -> Decision:
        ctx.report_usage(120, 9, model="tiny")
        return CONTINUE

    result = run(Orchestrator([echo], decider=ScriptedDecider((["c1"], with_usage))), chain(2))
    assert result.decisions[0].usage == {"input_tokens": 120, "output_tokens": 9}
    assert result.decisions[0].model == "tiny"


def test_a_stop_cancels_other_decisions_in_flight_and_records_them() -> None:
    b_deciding = asyncio.Event()

    @tool
    async def gated_x() -> int:
        await b_deciding.wait()  # x ends only once b's decision is in flight
        return 2

    async def decide(ctx: DecisionContext) -> Decision:
        if ctx.waiting_ids == ["b"]:
            b_deciding.set()
            await asyncio.Event().wait()  # never answers; only a cancel ends it
        assert ctx.waiting_ids == ["y"]
        return Decision(action="stop", reason="enough")

    decider = ScriptedDecider()
    decider.decide = decide  # type: ignore[method-assign]
    calls = [
        ToolCall("a", "echo", {"value": 1}),
        ToolCall("b", "echo", {"value": "${a}"}),
        ToolCall("x", "gated_x"),
        ToolCall("y", "echo", {"value": "${x}"}),
    ]
    orchestrator = Orchestrator([echo, gated_x], decider=decider, decider_timeout=None)
    result = run(orchestrator, calls)
    assert result.stopped == "enough"
    assert {r.call_id: r.status for r in result.results} == {
        "a": "ok",
        "b": "skipped",
        "x": "ok",
        "y": "skipped",
    }
    by_calls = {tuple(d.call_ids): d for d in result.decisions}
    assert by_calls[("y",)].fallback is False
    assert by_calls[("b",)].error_type == "cancelled"
    assert by_calls[("b",)].error == "not needed: another decision stopped the batch"


def test_bad_decider_options_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="decide_on must be 'steps', 'failure' or a predicate"):
        Orchestrator([echo], decider=lambda c: None, decide_on="always")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="is not a decider"):
        Orchestrator([echo], decider=42)

    class SyncDecide:
        def decide(self, context: DecisionContext) -> Decision:
            return CONTINUE

    with pytest.raises(UsageError, match="decide must be an async method"):
        Orchestrator([echo], decider=SyncDecide())
