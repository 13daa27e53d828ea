"""The README stays truthful: its example runs and prints what its comments say."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re
from typing import Any

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_example_runs_as_written() -> None:
    code = re.search(r"## Example\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert code is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.group(1), "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[0] == "dag [['call_1'], ['call_2', 'call_3']]"
    assert lines[2] == "call_2 ok <html>https://example.org/graphs/0</html>"
    assert lines[3] == "call_3 ok <html>https://example.org/graphs/1</html>"


def test_the_reliability_example_prints_what_the_readme_says() -> None:
    text = README.read_text()
    code = re.search(r"## Reliability.*?```python\n(.*?)```\n\nprints\n\n```\n(.*?)```", text, re.S)
    assert code is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.group(1), "README.md", "exec"), {})
    assert out.getvalue() == code.group(2)


def test_ci_runs_the_readme_test_command() -> None:
    text = README.read_text()
    command = next(line for line in text.splitlines() if line.endswith("-m pytest"))
    ci = (README.parent / ".ci" / "run").read_text()
    assert command in ci.splitlines()


def test_the_langgraph_adoption_lines_work_as_written() -> None:
    """The three one-line adoptions in "Adopting it", run against a scripted model whose first
    turn refers from one call to another."""
    import asyncio
    import warnings

    from langchain.agents import create_agent
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import tools_condition

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent

    text = README.read_text()
    code = re.search(r"adopting toolweave is one line:\n\n```python\n(.*?)```", text, re.S)
    assert code is not None

    class Model(GenericFakeChatModel):
        def bind_tools(self, tools: Any, **_: Any) -> Model:
            return self

    def model() -> Model:
        turn = AIMessage(
            content="",
            tool_calls=[
                {"id": "a", "name": "lookup", "args": {"city": "Lisbon"}},
                {"id": "b", "name": "forecast", "args": {"station": "${a.station}"}},
            ],
        )
        return Model(messages=iter([turn, AIMessage(content="done")]))

    @tool
    def lookup(city: str) -> dict[str, str]:
        """The weather station of a city."""
        return {"station": f"{city}-01"}

    @tool
    def forecast(station: str) -> str:
        """The forecast at a station."""
        return f"sunny at {station}"

    graph = StateGraph(MessagesState)
    scope: dict[str, Any] = {
        "graph": graph,
        "tools": [lookup, forecast],
        "create_react_agent": create_react_agent,
        "create_agent": create_agent,
    }
    built = []
    for paragraph in code.group(1).split("\n\n"):  # imports, then one way to adopt each
        scope["model"] = model()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            exec(compile(paragraph, "README.md", "exec"), scope)
        if "agent" in scope:
            built.append(scope.pop("agent"))
    scripted = model()
    graph.add_node("agent", lambda state: {"messages": [scripted.invoke(state["messages"])]})
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "agent")
    assert len(built) == 2
    for agent in [graph.compile(), *built]:
        final = asyncio.run(agent.ainvoke({"messages": [HumanMessage("Lisbon weather?")]}))
        answers = {
            m.tool_call_id: m.content for m in final["messages"] if isinstance(m, ToolMessage)
        }
        assert answers == {"a": '{"station": "Lisbon-01"}', "b": "sunny at Lisbon-01"}


def test_the_openai_adoption_snippets_work_as_written() -> None:
    """The whole-answer and the streamed snippets of "Adopting it", against a scripted model
    whose batch refers from one call to another; each ends with the conversation extended."""
    import ast
    import asyncio

    from toolweave import Orchestrator, tool
    from toolweave.testing import ScriptedOpenAIServer

    section = README.read_text().split("**OpenAI**", 1)[1].split("**LangChain", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2

    @tool
    def lookup(city: str) -> dict[str, str]:
        """The weather station of a city."""
        return {"station": f"{city}-01"}

    @tool
    def forecast(station: str) -> str:
        """The forecast at a station."""
        return f"sunny at {station}"

    def script(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "tool_calls": [
                ("a", "lookup", {"city": "Lisbon"}),
                ("b", "forecast", {"station": "${a.station}"}),
            ]
        }

    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    for block in blocks:
        with ScriptedOpenAIServer(script=script) as server:
            messages: list[Any] = [{"role": "user", "content": "Lisbon weather?"}]
            scope: dict[str, Any] = {
                "client": server.client(max_retries=0),
                "model": "scripted",
                "messages": messages,
                "orchestrator": Orchestrator([lookup, forecast]),
            }
            exec("from toolweave.adapters.openai import *", scope)
            asyncio.run(eval(compile(block, "README.md", "exec", flags=flags), scope))
            server.assert_done()
        answers = [m for m in scope["messages"] if isinstance(m, dict) and m.get("role") == "tool"]
        assert [m["content"] for m in answers] == ['{"station": "Lisbon-01"}', "sunny at Lisbon-01"]


def test_the_command_line_decider_example_prints_what_the_readme_says(
    tmp_path: pathlib.Path,
) -> None:
    """The rules file of "Deciding from the command line", used as the README's command line
    uses it, ends the summary with the lines the README shows."""
    import json
    import os
    import subprocess
    import sys

    section = README.read_text().split("**Deciding from the command line.**", 1)[1]
    rules = re.search(r"```python\n(.*?)```", section, re.S)
    shown = re.search(r"```\n(decider: .*?)```", section, re.S)
    assert rules is not None
    assert shown is not None
    (tmp_path / "rules.py").write_text(rules.group(1))
    (tmp_path / "mytools.py").write_text(
        "from toolweave import tool\n\n\n"
        "@tool\ndef search(q: str) -> dict:\n    'Search.'\n    return {'url': ''}\n\n\n"
        "@tool\ndef fetch(url: str) -> str:\n    'Fetch.'\n    return 'page'\n"
    )
    batch = [
        {"id": "search_1", "name": "search", "arguments": {"q": "x"}},
        {"id": "fetch_1", "name": "fetch", "arguments": {"url": ""}, "depends_on": ["search_1"]},
    ]
    (tmp_path / "batch.json").write_text(json.dumps(batch))
    command = next(
        line.split("#")[0].split()
        for line in README.read_text().splitlines()
        if "--decider rules.py:" in line
    )
    assert command[:2] == ["toolweave", "run"]
    proc = subprocess.run(
        [sys.executable, "-m", "toolweave.cli", *command[1:]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert "Traceback" not in proc.stderr
    assert proc.stdout.rstrip().endswith(shown.group(1).rstrip())


def test_the_agents_sdk_adoption_runs_as_written(monkeypatch: Any) -> None:
    """The Agents SDK snippet, against a scripted model (through ``OPENAI_BASE_URL``) whose
    first turn fetches the second search hit by reference."""
    import agents

    from toolweave.testing import ScriptedOpenAIServer

    section = README.read_text().split("### OpenAI Agents SDK", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None

    def script(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        answers = [m["content"] for m in messages if m["role"] == "tool"]
        if answers:
            return {"content": " | ".join(answers)}
        return {
            "tool_calls": [
                ("c1", "search", {"query": "graphs", "limit": 2}),
                ("c2", "fetch", {"url": "${1.hits[1].url}"}),
            ]
        }

    agents.set_tracing_disabled(True)
    with ScriptedOpenAIServer(script=script) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "scripted")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code.group(1), "README.md", "exec"), {})
        server.assert_done()
    assert "<html>https://example.org/graphs/1</html>" in out.getvalue()


def _side_effect_snippets() -> list[str]:
    text = README.read_text()
    section = text.split("## Side effects:", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_ledger_example_replays_on_a_second_run_as_the_readme_says(
    tmp_path: pathlib.Path,
) -> None:
    import subprocess
    import sys

    code = _side_effect_snippets()[0]
    assert 'ledger=SQLiteLedger("calls.db")' in code
    assert len([line for line in code.splitlines() if line.strip()]) <= 12

    def run() -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    assert run() == ["sending to ann@example.org", "ok False"]
    assert run() == ["ok True"]  # no second email
    assert (tmp_path / "calls.db").exists()


def test_the_side_effect_snippets_run_as_written() -> None:
    import asyncio

    from toolweave import Orchestrator, ToolCall

    context_code, resources_code = _side_effect_snippets()[1:3]
    scope: dict[str, Any] = {}
    exec(compile(context_code, "README.md", "exec"), scope)
    charge = scope["charge"]
    assert "ctx" not in str(charge.parameters)
    result = asyncio.run(
        Orchestrator([charge]).run([ToolCall("p", "charge", {"amount_cents": 500})], batch_id="b")
    )
    assert result.results[0].output["charged"] == 500
    assert result.results[0].output["key"].startswith("tw-")

    scope = {"tool": __import__("toolweave").tool}
    exec(compile(resources_code, "README.md", "exec"), scope)
    o = Orchestrator([scope["write_file"], scope["read_file"], scope["create_ticket"]])
    plan = o.plan(
        [
            ToolCall("w", "write_file", {"path": "a.txt", "text": "x"}),
            ToolCall("r", "read_file", {"path": "a.txt"}),
            ToolCall("o", "read_file", {"path": "b.txt"}),
            ToolCall("t1", "create_ticket", {"title": "x"}),
            ToolCall("t2", "create_ticket", {"title": "y"}),
        ]
    )
    assert plan.orderings == {"r": ["w"], "t2": ["t1"]}
