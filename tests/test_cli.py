"""The command line: plan, run, demo; exit codes and one-line errors."""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import re
import select
import struct
import subprocess
import sys
import termios
import textwrap
import time

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


# --- --decider -----------------------------------------------------------------------------

SLOW_TOOLS = textwrap.dedent(
    """
    import asyncio
    import time
    from toolweave import tool

    @tool
    async def search(q: str) -> dict:
        await asyncio.sleep(0.3)
        return {"hits": [{"url": "https://x/" + q}]}

    @tool
    def fetch(url: str) -> str:
        time.sleep(0.3)
        return "page at " + url

    @tool
    async def explode() -> None:
        await asyncio.sleep(0.2)
        raise RuntimeError("kaboom")
    """
)

RULES = textwrap.dedent(
    """
    from toolweave import Decision

    def skip_fetch(ctx):
        ids = [c.id for c in ctx.waiting if c.name == "fetch"]
        return Decision(action="skip", skip=ids, reason="no fetching today") if ids else None

    def stop_all(ctx):
        return Decision(action="stop", reason="the plan no longer fits")

    def allow(ctx):
        return None

    RULES = [allow, skip_fetch]

    class Veto:
        async def decide(self, ctx):
            return Decision(action="skip", skip=ctx.waiting_ids, reason="vetoed")

    veto = Veto()
    """
)


@pytest.fixture
def slow(tmp_path: pathlib.Path) -> pathlib.Path:
    """A folder with slow tools, rules, a search -> fetch chain and a batch with a failure."""
    (tmp_path / "slowtools.py").write_text(SLOW_TOOLS)
    (tmp_path / "rules.py").write_text(RULES)
    chain = [
        {"id": "s", "name": "search", "arguments": {"q": "cats"}},
        {"id": "f", "name": "fetch", "arguments": {"url": "${s.hits[0].url}"}},
    ]
    (tmp_path / "chain.json").write_text(json.dumps(chain))
    failing = [*chain, {"id": "x", "name": "explode", "arguments": {}}]
    (tmp_path / "failing.json").write_text(json.dumps(failing))
    return tmp_path


def rows(out: str) -> dict[str, list[str]]:
    """The results table's rows, by call id: each row's cells."""
    table = out.split("output / error\n", 1)[1].split("\n\n", 1)[0]
    return {r.split()[0]: r.split(None, 7) for r in table.splitlines()[1:-1]}


@pytest.mark.parametrize(
    ("name", "status", "decision", "error"),
    [
        pytest.param(
            "skip_fetch", "skipped", "before f: skip f (no fetching today)",
            "skipped by decider: no fetching today", id="rule-skips",
        ),
        pytest.param(
            "stop_all", "skipped", "before f: stop (the plan no longer fits)",
            "stopped by decider: the plan no longer fits", id="rule-stops",
        ),
        pytest.param(
            "RULES", "skipped", "before f: skip f (no fetching today)",
            "skipped by decider: no fetching today", id="list-of-rules",
        ),
        pytest.param(
            "veto", "skipped", "before f: skip f (vetoed)", "skipped by decider: vetoed",
            id="decider-object",
        ),
        pytest.param(
            "allow", "ok", "before f: continue (no rule objected)", "page at", id="rule-allows"
        ),
    ],
)  # fmt: skip
def test_run_decider_rule_from_a_file_decides_between_steps(
    slow: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    status: str,
    decision: str,
    error: str,
) -> None:
    argv = ["run", str(slow / "chain.json"), "--tools", str(slow / "slowtools.py")]
    code = main([*argv, "--decider", f"{slow / 'rules.py'}:{name}"])
    captured = capsys.readouterr()
    assert code == (0 if status == "ok" else 1), captured.err
    table = rows(captured.out)
    assert table["s"][2] == "ok"
    assert table["f"][2] == status
    assert table["f"][-1].startswith(error)
    assert f"decider: {slow / 'rules.py'}:{name}, 1 decision\n  {decision}\n" in captured.out
    assert ("stopped by the decider: the plan no longer fits" in captured.out) == (
        name == "stop_all"
    )
    assert captured.err == ""


def test_run_decider_from_an_importable_module(
    slow: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(slow)  # module names are imported from the current folder, as --tools
    (slow / "tw_cli_rules_mod.py").write_text(RULES)
    code = main(
        ["run", "chain.json", "--tools", "slowtools.py", "--decider", "tw_cli_rules_mod:skip_fetch"]
    )
    assert code == 1
    assert rows(capsys.readouterr().out)["f"][2] == "skipped"


def test_run_decider_json_output_holds_the_decisions(
    slow: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", str(slow / "chain.json"), "--tools", str(slow / "slowtools.py"), "--json"]
    assert main([*argv, "--decider", f"{slow / 'rules.py'}:skip_fetch"]) == 1
    trace = json.loads(capsys.readouterr().out)
    [decision] = trace["decisions"]
    assert decision["decision"] == {"action": "skip", "skip": ["f"], "reason": "no fetching today"}
    assert [c["status"] for c in trace["calls"]] == ["ok", "skipped"]


def test_a_file_named_by_tools_and_decider_is_imported_once(
    slow: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    both = slow / "both.py"
    both.write_text(
        SLOW_TOOLS + RULES + "\nimport builtins\nbuiltins.tw_imports = getattr("
        "builtins, 'tw_imports', 0) + 1\n"
    )
    import builtins

    builtins.tw_imports = 0  # type: ignore[attr-defined]
    try:
        argv = ["run", str(slow / "chain.json"), "--tools", str(both)]
        assert main([*argv, "--decider", f"{both}:skip_fetch"]) == 1
        assert builtins.tw_imports == 1  # type: ignore[attr-defined]
    finally:
        del builtins.tw_imports  # type: ignore[attr-defined]
    assert rows(capsys.readouterr().out)["f"][2] == "skipped"


def decision_body(decision: dict[str, object]) -> dict[str, object]:
    from toolweave.testing import completion

    return completion(json.dumps(decision), usage=(20, 5))


def test_run_decider_openai_model_over_a_scripted_server(
    slow: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolweave.testing import ScriptedOpenAIServer

    answer = {"action": "skip", "skip": ["f"], "reason": "the search said enough"}
    with ScriptedOpenAIServer(decision_body(answer)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "dummy")
        argv = ["run", str(slow / "chain.json"), "--tools", str(slow / "slowtools.py")]
        code = main([*argv, "--decider", "openai:tw-decider-model"])
        server.assert_done()
    captured = capsys.readouterr()
    assert code == 1, captured.err
    [request] = server.requests
    assert request["model"] == "tw-decider-model"
    assert '"waiting": [{"id": "f", "tool": "fetch"' in request["messages"][1]["content"]
    assert rows(captured.out)["f"][-1] == "skipped by decider: the search said enough"
    assert (
        f"decider: model tw-decider-model at {server.base_url}, 1 decision\n"
        "  before f: skip f (the search said enough)\n"
    ) in captured.out


def closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there now


@pytest.mark.parametrize("failure", ["server-500", "server-down"])
def test_run_decider_openai_that_fails_falls_back_and_says_so(
    slow: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    from toolweave.testing import ScriptedOpenAIServer

    # The model decider tries three times (two retries) before the fallback applies.
    server = ScriptedOpenAIServer(*[(500, {})] * 3).start()
    try:
        url = server.base_url if failure == "server-500" else closed_port_url()
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        monkeypatch.setenv("OPENAI_API_KEY", "dummy")
        argv = ["run", str(slow / "chain.json"), "--tools", str(slow / "slowtools.py")]
        code = main([*argv, "--decider", "openai:tw-model"])
        if failure == "server-500":
            server.assert_done()
            assert [r["model"] for r in server.requests] == ["tw-model"] * 3
    finally:
        server.stop()
    captured = capsys.readouterr()
    assert code == 0, captured.err  # the fallback continues: every call ran
    assert rows(captured.out)["f"][-1] == "page at https://x/cats"
    expected = (
        "InternalServerError: Error code: 500"
        if failure == "server-500"
        else "APIConnectionError: Connection error."
    )
    assert f"  before f: continue (fallback: {expected}" in captured.out
    assert (
        "the decider failed, and the run went on as planned: check OPENAI_BASE_URL, "
        "OPENAI_API_KEY and the model name"
    ) in captured.out
    assert "Traceback" not in captured.out + captured.err


def test_run_decider_openai_without_base_url_names_openais_endpoint(
    slow: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the openai client does, no OPENAI_BASE_URL means api.openai.com. A batch without
    # dependent calls never asks the decider, so nothing leaves this machine.
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "dummy")
    batch = slow / "one.json"
    batch.write_text(json.dumps([{"id": "s", "name": "search", "arguments": {"q": "a"}}]))
    argv = ["run", str(batch), "--tools", str(slow / "slowtools.py"), "--decider", "openai:m"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (
        "decider: model m at https://api.openai.com/v1 (OPENAI_BASE_URL is not set), 0 decisions"
    ) in out


# --- live progress on a terminal -------------------------------------------------------------

ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-Za-z]|[=>78])")


def run_in_terminal(
    *argv: str, env: dict[str, str] | None = None, timeout: float = 90
) -> tuple[int, str]:
    """``python -m toolweave.cli ARGV`` with a pseudo-terminal (120x40) as its standard input,
    output and error; the exit code and everything it wrote (CRLF as LF)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    environ.update({"TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40", **(env or {})})
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolweave.cli", *argv],
        stdin=slave, stdout=slave, stderr=slave, env=environ, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"toolweave {' '.join(argv)} ran past {timeout} s")
            ready, _, _ = select.select([master], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "backslashreplace").replace("\r\n", "\n")


def plain(text: str) -> str:
    """``text`` without terminal escape sequences."""
    return ANSI.sub("", text)


def test_run_on_a_terminal_shows_live_progress_then_the_summary(slow: pathlib.Path) -> None:
    code, raw = run_in_terminal(
        "run", str(slow / "failing.json"), "--tools", str(slow / "slowtools.py")
    )
    assert code == 1, raw
    text = plain(raw)
    assert "Traceback" not in text
    lines = text.splitlines()
    # A call's line in the live view: its id, its tool, its state and how long it has run.
    elapsed = r"\d+(?: ms|\.\d s)"
    progress = [line for line in lines if re.match(rf"^\w\s+\w+\s+\w+\s+{elapsed}\b", line)]
    assert any(re.match(rf"^x\s+explode\s+failed\s+{elapsed}\s+RuntimeError: kaboom", p)
               for p in progress), text  # fmt: skip
    assert any(re.match(rf"^s\s+search\s+done\s+{elapsed}", p) for p in progress), text
    assert any(re.match(rf"^f\s+fetch\s+done\s+{elapsed}", p) for p in progress), text
    assert re.search(r"^toolweave run  " + elapsed, text, re.M), "the header with the run's time"
    assert "\x1b[" in raw, "drawn with terminal escapes"
    # Then the summary, exactly as off a terminal: the plan, the table, the counts.
    summary = text[text.index("strategy: dag") :]
    assert summary.startswith("strategy: dag  (3 calls in 2 groups)\n")
    assert re.search(r"\n2 ok, 1 error, 0 skipped in \d+ ms\n$", summary)
    assert "running" not in summary
    assert "waiting" not in summary


def test_run_on_a_terminal_shows_the_deciders_answer(slow: pathlib.Path) -> None:
    code, raw = run_in_terminal(
        "run", str(slow / "chain.json"), "--tools", str(slow / "slowtools.py"),
        "--decider", f"{slow / 'rules.py'}:skip_fetch",
    )  # fmt: skip
    assert code == 1, raw
    text = plain(raw)
    assert "decider: skip f (no fetching today)\n" in text  # the live view's last frame
    assert re.search(r"^f\s+fetch\s+skipped\s+skipped by decider: no fetching today", text, re.M)
    assert "  before f: skip f (no fetching today)\n" in text  # the summary


def test_run_piped_prints_todays_output_without_escapes(slow: pathlib.Path) -> None:
    proc = toolweave("run", str(slow / "failing.json"), "--tools", str(slow / "slowtools.py"))
    assert proc.returncode == 1
    assert "\x1b" not in proc.stdout + proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[:8] == [
        "strategy: dag  (3 calls in 2 groups)",
        "group 0 (parallel):",
        "  s [search]",
        "  x [explode]",
        "group 1 (single):",
        "  f [fetch]  waits for s  (url=${s.hits[0].url})",
        "",
        "id  tool     status  group  order  tries  ms   output / error",
    ]
    assert re.fullmatch(r"2 ok, 1 error, 0 skipped in \d+ ms", lines[-1])
    assert len(lines) == 13  # the table's rule and three rows, nothing else


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"TERM": "dumb"}, id="TERM=dumb"),
        pytest.param({"TTY_INTERACTIVE": "0"}, id="TTY_INTERACTIVE=0"),
    ],
)
def test_run_on_a_terminal_rich_does_not_animate_prints_plain_output(
    slow: pathlib.Path, env: dict[str, str]
) -> None:
    code, raw = run_in_terminal(
        "run", str(slow / "failing.json"), "--tools", str(slow / "slowtools.py"), env=env
    )
    assert code == 1, raw
    assert "\x1b" not in raw
    assert raw.startswith("strategy: dag  (3 calls in 2 groups)\n")
    assert "running" not in raw


def test_run_on_a_terminal_with_no_color_draws_progress_without_colour(
    slow: pathlib.Path,
) -> None:
    code, raw = run_in_terminal(
        "run", str(slow / "failing.json"), "--tools", str(slow / "slowtools.py"),
        env={"NO_COLOR": "1"},
    )  # fmt: skip
    assert code == 1, raw
    assert re.search(r"^x\s+explode\s+failed\s+\d", plain(raw), re.M)
    colours = [
        m for m in re.findall(r"\x1b\[([0-9;]*)m", raw)
        if any(p in {"31", "32", "33", "35", "38", "91", "92", "93"} for p in m.split(";"))
    ]  # fmt: skip
    assert colours == []


def test_run_json_on_a_terminal_is_plain_json(slow: pathlib.Path) -> None:
    code, raw = run_in_terminal(
        "run", str(slow / "failing.json"), "--tools", str(slow / "slowtools.py"), "--json"
    )
    assert code == 1, raw
    assert "\x1b" not in raw
    assert [c["status"] for c in json.loads(raw)["calls"]] == ["ok", "ok", "error"]


def test_run_with_a_ledger_resumes_the_batch_by_its_id(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "effects.py").write_text(
        textwrap.dedent(
            """
            import pathlib
            from toolweave import tool

            @tool(writes="outbox")
            def send(to: str) -> str:
                with open(pathlib.Path(__file__).with_name("sent.txt"), "a") as f:
                    f.write(to + "\\n")
                return "sent"
            """
        )
    )
    calls = [
        {"id": "a", "name": "send", "arguments": {"to": "ann"}},
        {"id": "b", "name": "send", "arguments": {"to": "bob"}},
    ]
    (tmp_path / "batch.json").write_text(json.dumps(calls))
    argv = ["run", str(tmp_path / "batch.json"), "--tools", str(tmp_path / "effects.py")]
    ledger = ["--ledger", str(tmp_path / "calls.db"), "--batch-id", "order-7"]
    assert main([*argv, *ledger]) == 0
    first = capsys.readouterr().out
    assert "b [send]  after a (shared resource)" in first
    assert main([*argv, *ledger]) == 0
    again = capsys.readouterr().out
    assert again.count("ok (replayed)") == 2
    assert (tmp_path / "sent.txt").read_text() == "ann\nbob\n"  # nothing sent twice
    assert main([*argv, "--ledger", str(tmp_path / "calls.db")]) == 2
    assert "add --batch-id ID" in capsys.readouterr().err
    # A ledger that cannot be used is one line, before any call runs.
    for where, said in [
        (str(tmp_path), f"--ledger: SQLiteLedger('{tmp_path}') is a directory"),
        ("/dev/null", "--ledger: sqlite ledger at /dev/null: "),
        ("mysql://db/calls", "--ledger takes an SQLite file or a postgresql:// DSN"),
    ]:
        assert main([*argv, "--ledger", where, "--batch-id", "x"]) == 2
        err = capsys.readouterr().err
        assert said in err
        assert "Traceback" not in err
    assert (tmp_path / "sent.txt").read_text() == "ann\nbob\n"
