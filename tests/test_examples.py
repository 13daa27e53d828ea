"""The examples and ``toolweave demo --agent`` run offline, against a scripted model."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def offline(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=180, env=env, cwd=ROOT
    )


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param(
            "examples/openai_agent.py",
            ["batch dag [['call_search', 'call_weather'], ['call_fetch'], ['call_sum']]",
             "call_sum ok Summary: A page about dependency-graphs.",
             "final: Here is what the tools found:"],
            id="openai",
        ),
        pytest.param(
            "examples/langgraph_agent.py",
            ["ToolMessage: Summary: A page about dependency-graphs.",
             "AIMessage: Here is what the tools found:"],
            id="langgraph",
        ),
        pytest.param(
            "examples/create_agent.py",
            ["ToolMessage: Summary: A page about dependency-graphs.",
             "AIMessage: Here is what the tools found:",
             "batch dag [['call_search', 'call_weather'], ['call_fetch'], ['call_sum']]"],
            id="create-agent",
        ),
        pytest.param(
            "examples/openai_streaming.py",
            ["started call_search", "the model's stream ended",
             "call_sum ok Summary: A page about dependency-graphs.",
             "final: Here is what the tools found:"],
            id="openai-streaming-chat",
        ),
        pytest.param(
            "examples/openai_streaming.py responses",
            ["started call_search", "the model's stream ended",
             "call_sum ok Summary: A page about dependency-graphs.",
             "final: Here is what the tools found:"],
            id="openai-streaming-responses",
        ),
    ],
)  # fmt: skip
def test_examples_run_offline(script: str, expected: list[str]) -> None:
    proc = offline(*script.split())
    assert proc.returncode == 0, proc.stderr[-3000:]
    for line in expected:
        assert line in proc.stdout


def test_demo_agent_runs_the_openai_loop() -> None:
    proc = offline("-m", "toolweave.cli", "demo", "--agent")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "agent demo offline, against a scripted model" in proc.stdout
    assert "call_sum summarize: ok Summary: Text of https://example.org/dependency-graphs/0." in (
        proc.stdout
    )
    assert "(2 model turns, 1 batches)" in proc.stdout


@pytest.mark.parametrize("where", ["charge", "email"])
def test_the_durable_agent_resumes_without_repeating_a_side_effect(
    where: str, tmp_path: pathlib.Path
) -> None:
    """Killed inside a tool (os._exit, nothing cleaned up), then started again: the card is
    charged once, the email sent once, and what cannot be known is said."""
    state = str(tmp_path / "state")
    crashed = offline("examples/durable_agent.py", "--dir", state, "--crash", where)
    assert crashed.returncode == 9, crashed.stderr[-3000:]
    resumed = offline("examples/durable_agent.py", "--dir", state)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out = resumed.stdout
    assert "c1 lookup_customer: ok (replayed)" in out
    if where == "charge":  # idempotent: run again, and the payment API dedupes on its key
        assert "c2 charge: ok (ran)" in out
        assert "c3 send_email: ok (ran)" in out
    else:  # not idempotent: not sent again, and reported uncertain
        assert "c2 charge: ok (replayed)" in out
        assert "c3 send_email: error (not run) uncertain" in out
    world = (tmp_path / "state" / "world.txt").read_text().splitlines()
    assert [line.split()[0] for line in world] == ["charged", "emailed"]
    again = offline("examples/durable_agent.py", "--dir", state)
    assert (tmp_path / "state" / "world.txt").read_text().splitlines() == world
    assert "(ran)" not in again.stdout  # a third run replays everything
    assert "(not run)" not in again.stdout
