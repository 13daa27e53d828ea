"""IntermediateLLMDecider against the real ``openai`` client with a scripted HTTP transport.

``openai`` 3.x speaks ``httpx2``, which respx cannot intercept, so the client gets an
``http_client`` on ``httpx2.MockTransport``; the script fails the test on any request it did
not expect, and on any step left unused.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from scripted_openai import ScriptedServer, answer, completion, httpx2
from tenacity import wait_none

from toolweave import (
    BatchResult,
    Decision,
    IntermediateLLMDecider,
    Orchestrator,
    ToolCall,
    tool,
)
from toolweave._llm_decider import decision_schema, retry_after

GUARD = 20.0


@tool
async def echo(value: Any = None) -> Any:
    """Return the value."""
    return value


def chain(n: int) -> list[ToolCall]:
    calls = [ToolCall("c0", "echo", {"value": {"hits": []}})]
    calls += [ToolCall(f"c{i}", "echo", {"value": f"${{c{i - 1}}}"}) for i in range(1, n)]
    return calls


def decider_for(server: ScriptedServer, **kwargs: Any) -> IntermediateLLMDecider:
    client_options = kwargs.pop("client_options", {})
    decider = IntermediateLLMDecider(server.client(**client_options), "decider-model", **kwargs)
    decider.backoff = wait_none()  # keep tests fast; Retry-After is still honoured
    return decider


def run(decider: IntermediateLLMDecider, calls: list[ToolCall], **kwargs: Any) -> BatchResult:
    async def main() -> BatchResult:
        orchestrator = Orchestrator([echo], decider=decider)
        return await asyncio.wait_for(orchestrator.run(calls, **kwargs), GUARD)

    return asyncio.run(main())


def test_continue_sends_a_strict_schema_and_records_usage() -> None:
    server = ScriptedServer(answer("continue", reason="looks fine"))
    result = run(decider_for(server), chain(2), goal="find cats")
    server.assert_done()
    assert result.ok
    record = result.decisions[0]
    assert record.fallback is False
    assert record.decision == Decision(action="continue", reason="looks fine")
    assert record.usage == {"input_tokens": 120, "output_tokens": 9}
    assert record.model == "decider-model"
    body = server.requests[0]
    assert body["model"] == "decider-model"
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "decision", "strict": True, "schema": decision_schema(["c1"])},
    }
    prompt = json.loads(body["messages"][1]["content"])
    assert prompt["goal"] == "find cats"
    assert prompt["waiting"] == [
        {"id": "c1", "tool": "echo", "arguments": '{"value": {"hits": []}}'}
    ]
    assert prompt["finished"] == [
        {"id": "c0", "tool": "echo", "status": "ok", "output": '{"hits": []}'}
    ]


def test_the_schema_is_strict_and_limits_skip_to_the_waiting_ids() -> None:
    schema = decision_schema(["a", "b"])
    assert schema["additionalProperties"] is False
    assert schema["required"] == list(schema["properties"])
    assert schema["properties"]["skip"]["items"] == {"type": "string", "enum": ["a", "b"]}


def test_skip_and_stop_from_the_model() -> None:
    server = ScriptedServer(answer("skip", ["c1"], "search came back empty"))
    result = run(decider_for(server), chain(3))
    server.assert_done()
    assert [r.status for r in result.results] == ["ok", "skipped", "skipped"]
    assert result.get("c1").error == "skipped by decider: search came back empty"

    server = ScriptedServer(answer("stop", reason="wrong plan"))
    result = run(decider_for(server), chain(3))
    server.assert_done()
    assert result.stopped == "wrong plan"


def test_a_500_is_retried_then_succeeds() -> None:
    server = ScriptedServer((500, {}), answer("continue"))
    result = run(decider_for(server), chain(2))
    server.assert_done()
    assert result.decisions[0].fallback is False
    assert len(server.requests) == 2


def test_the_clients_own_retries_are_not_stacked_on_ours() -> None:
    server = ScriptedServer((503, {}), (503, {}))
    decider = decider_for(server, retries=1, client_options={"max_retries": 5})
    result = run(decider, chain(2))
    server.assert_done()
    assert len(server.requests) == 2, "1 + retries, whatever the client's max_retries"
    assert result.decisions[0].fallback is True
    assert result.decisions[0].error_type == "InternalServerError"


def test_an_attempt_that_hangs_times_out_and_falls_back() -> None:
    server = ScriptedServer("hang", "hang")
    result = run(decider_for(server, timeout=0.05, retries=1), chain(2))
    server.assert_done()
    record = result.decisions[0]
    assert result.ok
    assert record.fallback is True
    assert record.error_type == "DeciderUnavailableError"
    assert record.error == "DeciderUnavailableError: no answer within 0.05 s on attempt 2 of 2"


def test_429_with_a_short_retry_after_is_honoured() -> None:
    server = ScriptedServer((429, {"retry-after-ms": "20"}), answer("continue"))
    result = run(decider_for(server), chain(2))
    server.assert_done()
    assert result.decisions[0].fallback is False
    assert result.decisions[0].elapsed >= 0.02


def test_429_asking_for_longer_than_max_wait_falls_back_at_once() -> None:
    server = ScriptedServer((429, {"retry-after": "60"}))
    result = run(decider_for(server, max_wait=5.0), chain(2))
    server.assert_done()
    record = result.decisions[0]
    assert record.fallback is True
    assert len(server.requests) == 1
    assert record.elapsed < 5.0
    assert "rate limited (429): the server asked to wait 60 s, more than the" in (
        record.error or ""
    )


def test_connection_errors_are_retried_then_fall_back() -> None:
    server = ScriptedServer("connect-error", "connect-error", "connect-error")
    result = run(decider_for(server), chain(2))
    server.assert_done()
    assert result.decisions[0].error_type == "APIConnectionError"
    assert result.ok


@pytest.mark.parametrize(
    ("response", "error_type", "message"),
    [
        pytest.param(completion("{not json"), "InvalidDecisionError",
                     "the answer is not a valid decision", id="invalid-json"),
        pytest.param(completion('{"action": "maybe", "skip": [], "reason": ""}'),
                     "InvalidDecisionError", "'action': Input should be", id="schema-mismatch"),
        pytest.param(completion(None, refusal="I can't help with that."), "DecisionRefusedError",
                     "the model refused: I can't help with that.", id="refusal"),
        pytest.param(completion('{"action": "con', finish="length"), "InvalidDecisionError",
                     "cut off", id="truncated"),
        pytest.param(answer("skip", ["c9"]), "invalid_decision",
                     "skip names 'c9', not among the waiting calls (c1)", id="unknown-ids"),
    ],
)  # fmt: skip
def test_answers_that_cannot_be_used_fall_back(
    response: dict[str, Any], error_type: str, message: str
) -> None:
    server = ScriptedServer(response)
    result = run(decider_for(server), chain(2))
    server.assert_done()
    record = result.decisions[0]
    assert result.ok
    assert record.fallback is True
    assert record.error_type == error_type
    assert message in (record.error or "")
    assert record.usage == {"input_tokens": 120, "output_tokens": 9}, "the model did answer"


def test_the_circuit_breaker_opens_after_n_failed_decisions() -> None:
    server = ScriptedServer((500, {}), (500, {}))
    result = run(decider_for(server, retries=0, breaker=2), chain(5))
    server.assert_done()
    assert len(server.requests) == 2
    assert [d.error_type for d in result.decisions] == [
        "InternalServerError",
        "InternalServerError",
        "circuit_open",
        "circuit_open",
    ]
    assert result.ok


def test_a_configured_fallback_applies() -> None:
    server = ScriptedServer((400, {}))
    stop = Decision(action="stop", reason="no checker, stop")
    result = run(decider_for(server, fallback=stop), chain(3))
    assert len(server.requests) == 1, "a 400 is not retried"
    assert result.stopped == "no checker, stop"


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        pytest.param({"retry-after-ms": "1500"}, 1.5, id="ms"),
        pytest.param({"retry-after": "3"}, 3.0, id="seconds"),
        pytest.param({}, None, id="none"),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], seconds: float | None) -> None:
    class Exc(Exception):
        response = httpx2.Response(429, headers=headers)

    assert retry_after(Exc()) == seconds


def test_the_failure_prompt_says_what_is_at_stake() -> None:
    server = ScriptedServer(answer("continue"))
    decider = decider_for(server)

    @tool
    async def boom() -> None:
        raise RuntimeError("down")

    async def main() -> BatchResult:
        orchestrator = Orchestrator([echo, boom], decider=decider, decide_on="failure")
        return await orchestrator.run(
            [ToolCall("a", "boom"), ToolCall("b", "echo", {"value": "${a}"})]
        )

    result = asyncio.run(main())
    server.assert_done()
    system = server.requests[0]["messages"][0]["content"]
    assert "A call failed" in system
    assert result.decisions[0].trigger == "failure"
