"""The command line: plan, run, demo; exit codes and one-line errors."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

from toolweave.cli import main

TOOLS = textwrap.dedent(
    """
    from toolweave import tool

    @tool
    async def search(q: str) -> dict:
        return {"hits": [{"url": "https://x/" + q}]}

    @tool
    def fetch(url: str) -> str:
        return "page at " + url

    @tool
    async def explode() -> None:
        raise RuntimeError("kaboom")
    """
)


@pytest.fixture
def files(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "mytools.py").write_text(TOOLS)
    good = [
        {"id": "s", "name": "search", "arguments": {"q": "cats"}},
        {"id": "f", "name": "fetch", "arguments": '{"url": "${s.hits[0].url}"}'},
    ]
    (tmp_path / "good.json").write_text(json.dumps(good))
    bad = [*good, {"id": "x", "name": "explode", "arguments": {}}]
    (tmp_path / "bad.json").write_text(json.dumps({"calls": bad}))
    (tmp_path / "broken.json").write_text("[{")
    return tmp_path


def test_plan_prints_strategy_and_groups(
    files: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", str(files / "good.json")]) == 0
    out = capsys.readouterr().out
    assert "strategy: serial  (2 calls in 2 groups)" in out
    assert "f [fetch]  waits for s  (url=${s.hits[0].url})" in out


def test_plan_json_is_the_plan_dict(
    files: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", str(files / "good.json"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tool_ids"] == ["s", "f"]
    assert data["execution_groups"][1]["tools"][0]["output_mapping"] == {"url": "${s.hits[0].url}"}


def test_run_prints_a_results_table(
    files: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(files / "good.json"), "--tools", str(files / "mytools.py")]) == 0
    out = capsys.readouterr().out
    assert "page at https://x/cats" in out
    assert "2 ok, 0 error, 0 skipped" in out


def test_run_json_and_exit_code_one_on_failed_calls(
    files: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", str(files / "bad.json"), "--tools", str(files / "mytools.py"), "--json"])
    assert code == 1
    data = json.loads(capsys.readouterr().out)
    assert [c["status"] for c in data["calls"]] == ["ok", "ok", "error"]
    assert data["calls"][1]["output"] == "page at https://x/cats"
    assert "RuntimeError: kaboom" in data["calls"][2]["error"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["plan", "missing.json"], "no such file: missing.json", id="no-file"),
        pytest.param(["plan", "{d}/broken.json"], "is not valid JSON", id="bad-json"),
        pytest.param(
            ["run", "{d}/good.json", "--tools", "no_such_module_xyz"],
            "cannot import tools from no_such_module_xyz: ModuleNotFoundError",
            id="bad-module",
        ),
        pytest.param(
            ["run", "{d}/good.json", "--tools", "json"],
            "no tools in json: decorate its functions with @toolweave.tool",
            id="no-tools",
        ),
        pytest.param(
            ["run", "{d}/good.json", "--tools", "{d}/mytools.py", "--max-concurrency", "0"],
            "max_concurrency must be None or an int >= 1",
            id="bad-option",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(
    files: pathlib.Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main([a.replace("{d}", str(files)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("toolweave: error: ")
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_duplicate_ids_in_a_file_exit_2(
    files: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (files / "dup.json").write_text(
        json.dumps([{"id": "a", "name": "x"}, {"id": "a", "name": "y"}])
    )
    assert main(["plan", str(files / "dup.json")]) == 2
    assert "calls 1 and 2 share the id 'a'" in capsys.readouterr().err


def test_demo_runs_end_to_end_from_the_installed_console_script() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "toolweave.cli", "demo"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("parallel", "serial", "dag"):
        assert f"=== {name} batch ===" in proc.stdout
    assert "x speed-up (measured now, on this machine)" in proc.stdout
    assert proc.stderr == ""


def toolweave(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toolweave.cli", *argv],
        input=stdin, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_run_and_plan_read_the_batch_from_standard_input(files: pathlib.Path) -> None:
    batch = (files / "good.json").read_text()
    ran = toolweave("run", "-", "--tools", str(files / "mytools.py"), "--json", stdin=batch)
    assert ran.returncode == 0, ran.stderr
    by_id = {c["call_id"]: c for c in json.loads(ran.stdout)["calls"]}
    assert by_id["f"]["output"] == "page at https://x/cats"
    planned = toolweave("plan", "-", stdin=batch)
    assert (planned.returncode, planned.stderr) == (0, "")
    assert "f [fetch]  waits for s" in planned.stdout
    empty = toolweave("plan", "-", stdin="  ")
    assert empty.returncode == 2
    assert empty.stderr.startswith("toolweave: error: standard input is empty: write a JSON list")
    assert "Traceback" not in empty.stderr


def test_plan_checked_against_tools_exits_1_when_the_plan_has_errors(
    files: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tools = str(files / "mytools.py")
    assert main(["plan", str(files / "good.json"), "--tools", tools]) == 0
    unknown = files / "unknown.json"
    unknown.write_text(json.dumps([{"id": "a", "name": "nope", "arguments": {}}]))
    assert main(["plan", str(unknown), "--tools", tools]) == 1
    assert "unknown tool 'nope'" in capsys.readouterr().out
    assert main(["plan", str(unknown)]) == 0  # not checked against tools: no verdict


CHAT_CALLS = [
    {"id": "s", "type": "function", "function": {"name": "search", "arguments": '{"q": "owls"}'}},
    {
        "id": "f",
        "type": "function",
        "function": {"name": "fetch", "arguments": '{"url": "${s.hits[0].url}"}'},
    },
]
MESSAGE = {"role": "assistant", "content": None, "tool_calls": CHAT_CALLS}
RESPONSES_OUTPUT = [
    {"type": "reasoning", "id": "r", "summary": []},
    {"type": "function_call", "call_id": "s", "name": "search", "arguments": '{"q": "owls"}'},
    {
        "type": "function_call",
        "call_id": "f",
        "name": "fetch",
        "arguments": '{"url": "${s.hits[0].url}"}',
    },
]


@pytest.mark.parametrize(
    "batch",
    [
        pytest.param(CHAT_CALLS, id="tool-calls-list"),
        pytest.param(MESSAGE, id="assistant-message"),
        pytest.param({"id": "x", "choices": [{"index": 0, "message": MESSAGE}]}, id="completion"),
        pytest.param(RESPONSES_OUTPUT, id="responses-output"),
        pytest.param({"id": "resp", "output": RESPONSES_OUTPUT}, id="responses-response"),
    ],
)
def test_run_reads_a_models_response_as_it_came(files: pathlib.Path, batch: object) -> None:
    ran = toolweave(
        "run", "-", "--tools", str(files / "mytools.py"), "--json", stdin=json.dumps(batch)
    )
    assert ran.returncode == 0, ran.stderr
    by_id = {c["call_id"]: c for c in json.loads(ran.stdout)["calls"]}
    assert by_id["f"]["output"] == "page at https://x/owls"


def test_a_response_without_tool_calls_is_named_in_the_error(files: pathlib.Path) -> None:
    answer = {"role": "assistant", "content": "Hello!", "tool_calls": []}
    ran = toolweave("plan", "-", stdin=json.dumps(answer))
    assert ran.returncode == 2
    assert ran.stderr == (
        "toolweave: error: standard input holds a Chat Completions message without tool "
        "calls: nothing to run\n"
    )


def test_tools_may_be_langchain_tools_or_named_functions(files: pathlib.Path) -> None:
    (files / "lctools.py").write_text(
        textwrap.dedent(
            """
            from langchain_core.tools import tool

            @tool
            def search(q: str) -> dict:
                \"\"\"Search.\"\"\"
                return {"hits": [{"url": "https://lc/" + q}]}

            def fetch(url: str) -> str:
                return "plain page at " + url

            def helper() -> None:
                raise AssertionError("a plain function is a tool only when named")

            TOOLS = [search, fetch]
            """
        )
    )
    batch = (files / "good.json").read_text()
    module = str(files / "lctools.py")
    ran = toolweave("run", "-", "--tools", f"{module}:TOOLS", "--json", stdin=batch)
    assert ran.returncode == 0, ran.stderr
    by_id = {c["call_id"]: c for c in json.loads(ran.stdout)["calls"]}
    assert by_id["f"]["output"] == "plain page at https://lc/cats"
    found = toolweave("plan", "-", "--tools", module, stdin=batch)  # search only: no fetch
    assert found.returncode == 1
    assert "unknown tool 'fetch'" in found.stdout
    missing = toolweave("plan", "-", "--tools", f"{module}:NOPE", stdin=batch)
    assert missing.returncode == 2
    assert "has no attribute 'NOPE'" in missing.stderr
