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
