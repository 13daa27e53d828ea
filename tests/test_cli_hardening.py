"""The command line never shows a traceback: bad input exits 2 with one line that names the file
or module and the fix, failed calls exit 1, and hostile tool outputs still print."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from test_cli import plain, run_in_terminal

from toolweave.cli import main
from toolweave.telemetry import attributes as A
from toolweave.telemetry.inspect import TraceSpan, format_batches

EXAMPLE = 'write a JSON list of calls like [{"id": "1", "name": "search"'

TOOLS = textwrap.dedent(
    """
    from toolweave import tool

    @tool
    async def search(q: str) -> str:
        return "found " + q
    """
)

HOSTILE_TOOLS = textwrap.dedent(
    """
    from toolweave import tool

    class Hostile:
        def __str__(self):
            raise RuntimeError("no str")

        def __repr__(self):
            raise RuntimeError("no repr")

    @tool
    def unshowable() -> object:
        return Hostile()

    @tool
    def big_int() -> int:
        return 10 ** 5000

    @tool
    def deep() -> list:
        out: list = []
        for _ in range(1000):
            out = [out]
        return out

    @tool
    def cyclic() -> list:
        out: list = [1]
        out.append(out)
        return out

    @tool
    def tuple_keys() -> dict:
        return {(1, 2): "pair"}

    @tool
    def surrogate() -> str:
        return "bad \\ud800 char"
    """
)
HOSTILE_NAMES = ["unshowable", "big_int", "deep", "cyclic", "tuple_keys", "surrogate"]


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m toolweave.cli ARGS`` in a subprocess, output decoded leniently."""
    return subprocess.run(
        [sys.executable, "-m", "toolweave.cli", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="backslashreplace",
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def one_error_line(err: str) -> str:
    """The single ``toolweave: error:`` line that makes up all of ``err``."""
    assert "Traceback" not in err
    assert err.startswith("toolweave: error: "), err
    assert err.count("\n") == 1, err
    return err


@pytest.fixture
def tools(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "mytools.py"
    path.write_text(TOOLS)
    return path


# --- batch files ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b"\xff\xfe\x00[", ["is not UTF-8 text (byte 0xff", EXAMPLE], id="binary"),
        pytest.param(b"", ["is empty: ", EXAMPLE], id="empty"),
        pytest.param(b"  \n\n", ["is empty: ", EXAMPLE], id="blank"),
        pytest.param(b"[{", ["is not valid JSON: ", "line 1 column 3", EXAMPLE], id="bad-json"),
        pytest.param(
            b"[" + b"7" * 5000 + b"]",
            ["has a number with more than", "write it as a JSON string"],
            id="5000-digit-number",
        ),
        pytest.param(
            b"[" * 100_000 + b"]" * 100_000,
            ["is nested too deeply to read", EXAMPLE],
            id="nested-100000-deep",
        ),
        pytest.param(
            b'{"tasks": []}', ['holds an object without a "calls" list', EXAMPLE], id="no-calls"
        ),
        pytest.param(
            b'{"calls": 3}', ['holds an object without a "calls" list', EXAMPLE], id="calls-number"
        ),
        pytest.param(b"42", ["holds a JSON number, not a list of calls", EXAMPLE], id="number"),
        pytest.param(b'"x"', ["holds a JSON string, not a list of calls"], id="string"),
        pytest.param(b"null", ["holds a JSON null, not a list of calls"], id="null"),
        pytest.param(
            b'[{"id": "1"}]', ["item 1 of the batch is not a tool call"], id="call-without-name"
        ),
    ],
)
def test_bad_batch_file_exits_2_naming_the_file_and_the_fix(
    tmp_path: pathlib.Path,
    tools: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    content: bytes,
    expected: list[str],
) -> None:
    batch = tmp_path / "batch.json"
    batch.write_bytes(content)
    argv = [command, str(batch)] + (["--tools", str(tools)] if command == "run" else [])
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = one_error_line(captured.err)
    assert str(batch) in err
    for text in expected:
        assert text in err
    assert captured.out == ""


BAD_REFERENCES = [
    {"id": "a", "name": "search", "arguments": {"q": "${zz.hits}"}},
    {"id": "b", "name": "search", "arguments": {"q": "ok"}},
]


def test_bad_references_are_errors_of_their_call_in_plan(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "refs.json"
    batch.write_text(json.dumps(BAD_REFERENCES))
    assert main(["plan", str(batch)]) == 0
    captured = capsys.readouterr()
    assert "errors found before running:" in captured.out
    assert "call 'a' (search):" in captured.out
    assert "'zz'" in captured.out
    assert captured.err == ""


def test_bad_references_fail_only_their_call_in_run(
    tmp_path: pathlib.Path, tools: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "refs.json"
    batch.write_text(json.dumps(BAD_REFERENCES))
    assert main(["run", str(batch), "--tools", str(tools)]) == 1
    captured = capsys.readouterr()
    assert "found ok" in captured.out
    assert "1 ok, 1 error, 0 skipped" in captured.out
    assert captured.err == ""


# --- --tools modules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(
            "raise ValueError('no config\\nfound')\n",
            "ValueError: no config found; fix the module so that it imports",
            id="raises-at-import",
        ),
        pytest.param(
            "import sys\nsys.exit(3)\n",
            "it called sys.exit(3) while being imported; "
            "put its script code under if __name__ == '__main__':",
            id="sys-exit-at-import",
        ),
        pytest.param(
            "class Abort(BaseException):\n    pass\n\nraise Abort('stop')\n",
            "Abort: stop; fix the module so that it imports",
            id="base-exception-at-import",
        ),
        pytest.param(
            "import no_such_dependency_xyz\n",
            "ModuleNotFoundError: No module named 'no_such_dependency_xyz'; fix the module",
            id="missing-dependency",
        ),
        pytest.param("def broken(:\n", "SyntaxError: invalid syntax", id="syntax-error"),
    ],
)
def test_bad_tools_module_exits_2_naming_the_module(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], source: str, expected: str
) -> None:
    module = tmp_path / "tw_bad_tools.py"
    module.write_text(source)
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps([{"id": "1", "name": "search", "arguments": {"q": "x"}}]))
    assert main(["run", str(batch), "--tools", str(module)]) == 2
    err = one_error_line(capsys.readouterr().err)
    assert expected in err
    assert str(module) in err
    assert "tw_bad_tools" not in sys.modules  # no half-imported module is left behind


def test_tools_module_without_tools_exits_2(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = tmp_path / "tw_no_tools.py"
    module.write_text("x = 1\n")
    batch = tmp_path / "batch.json"
    batch.write_text("[]")
    assert main(["plan", str(batch), "--tools", str(module)]) == 2
    err = one_error_line(capsys.readouterr().err)
    assert f"no tools in {module}: decorate its functions with @toolweave.tool" in err


def test_module_name_that_is_not_importable_says_what_to_pass(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "batch.json"
    batch.write_text("[]")
    assert main(["plan", str(batch), "--tools", "no_such_pkg_xyz.tools"]) == 2
    err = one_error_line(capsys.readouterr().err)
    assert "cannot import tools from no_such_pkg_xyz.tools: ModuleNotFoundError" in err
    assert "pass a module name that Python can import from here, or the path of a .py" in err


def test_keyboard_interrupt_while_importing_tools_exits_130(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = tmp_path / "tw_interrupted.py"
    module.write_text("raise KeyboardInterrupt\n")
    batch = tmp_path / "batch.json"
    batch.write_text("[]")
    assert main(["run", str(batch), "--tools", str(module)]) == 130
    assert "Traceback" not in capsys.readouterr().err


def test_sys_exit_in_a_tools_module_exits_2_from_a_real_process(tmp_path: pathlib.Path) -> None:
    module = tmp_path / "exits.py"
    module.write_text("import sys\nsys.exit(3)\n")
    batch = tmp_path / "batch.json"
    batch.write_text("[]")
    proc = cli("run", str(batch), "--tools", str(module))
    assert proc.returncode == 2
    assert "it called sys.exit(3) while being imported" in one_error_line(proc.stderr)


# --- inspect -------------------------------------------------------------------------------


def span(**changes: Any) -> dict[str, Any]:
    """A valid call span as the jsonl exporter writes it, with ``changes`` applied."""
    raw: dict[str, Any] = {
        "name": "execute_tool search",
        "context": {"trace_id": "0x1", "span_id": "0x2"},
        "parent_id": None,
        "start_time": "2026-01-01T00:00:00.000000Z",
        "end_time": "2026-01-01T00:00:00.005000Z",
        "status": {"status_code": "UNSET"},
        "attributes": {A.GEN_AI_TOOL_CALL_ID: "s", A.TW_STATUS: "ok"},
    }
    for key, value in changes.items():
        if value is _DROP:
            raw.pop(key)
        else:
            raw[key] = value
    return raw


_DROP = object()


def line(**changes: Any) -> bytes:
    return json.dumps(span(**changes)).encode()


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        pytest.param(b"{nope", "not JSON (Expecting property name", id="not-json"),
        pytest.param(b"[1, 2]", "it is a JSON list, not an object", id="list"),
        pytest.param(b"7", "it is a JSON number, not an object", id="number"),
        pytest.param(line(name=_DROP), "it has no 'name'", id="missing-name"),
        pytest.param(
            line(context={"trace_id": "0x1"}), "it has no 'context.span_id'", id="missing-span-id"
        ),
        pytest.param(line(name=5), "'name' is a number, not a string", id="name-number"),
        pytest.param(
            line(attributes=[1]), "'attributes' is a list, not an object", id="attributes-list"
        ),
        pytest.param(
            line(attributes={A.GEN_AI_TOOL_CALL_ID: "s", A.TW_DEPENDS_ON: 3}),
            f"attribute '{A.TW_DEPENDS_ON}' is a number, not a list of strings",
            id="depends-on-number",
        ),
        pytest.param(
            line(attributes={A.TW_EXECUTION_ORDER: "first"}),
            f"attribute '{A.TW_EXECUTION_ORDER}' is a string, not an integer",
            id="order-string",
        ),
        pytest.param(line(status="OK"), "'status' is a string, not an object", id="status-string"),
        pytest.param(
            line(status={"status_code": 1}),
            "'status.status_code' is a number, not a string",
            id="status-code-number",
        ),
        pytest.param(line(parent_id=[1]), "'parent_id' is a list", id="parent-id-list"),
        pytest.param(
            line(start_time=5), "'start_time' is a number, not a string", id="time-number"
        ),
        pytest.param(
            line(end_time="yesterday"),
            "'end_time' 'yesterday' is not an ISO 8601 time",
            id="bad-time",
        ),
        pytest.param(
            b'{"name": ' + b"9" * 5000 + b"}", "a number with too many digits", id="huge-number"
        ),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply", id="deep"),
        pytest.param(b'{"name": "\xff"}', "byte 0xff at column 11 is not UTF-8", id="non-utf8"),
    ],
)
def test_inspect_exits_2_naming_the_bad_line_and_the_file(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], bad_line: bytes, expected: str
) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_bytes(line() + b"\n\n" + bad_line + b"\n" + line() + b"\n")
    assert main(["inspect", str(trace)]) == 2
    captured = capsys.readouterr()
    err = one_error_line(captured.err)
    assert f"line 3 of {trace} is not a span: {expected}" in err
    assert "each line must be one span object, as --trace jsonl:PATH writes them" in err
    assert captured.out == ""


def test_inspect_of_a_directory_exits_2(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(tmp_path)]) == 2
    assert f"cannot read {tmp_path}: " in one_error_line(capsys.readouterr().err)


def test_format_batches_shows_attributes_of_any_type() -> None:
    def at(ms: int) -> float:
        return 1_000.0 + ms / 1000

    deep: list[Any] = []
    for _ in range(1000):
        deep = [deep]
    batch = TraceSpan(
        name="invoke_workflow toolweave",
        span_id="b",
        parent_id=None,
        trace_id="t",
        start=at(0),
        end=at(9),
        attributes={
            A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_WORKFLOW,
            A.TW_STRATEGY: ["dag"],
            A.TW_TOTAL_TOOLS: 10**5000,
            A.TW_TOTAL_GROUPS: None,
            A.TW_STOPPED: True,
            A.TW_STOP_REASON: {"why": ("tuple",)},
        },
    )
    odd = TraceSpan(
        name="execute_tool odd",
        span_id="c1",
        parent_id="b",
        trace_id="t",
        start=at(1),
        end=at(2),
        attributes={
            A.GEN_AI_TOOL_CALL_ID: deep,
            A.GEN_AI_TOOL_NAME: "bad \ud800 name",
            A.TW_EXECUTION_ORDER: "first",
            A.TW_DEPENDS_ON: 5,
            A.TW_STATUS: ["error"],
            A.TW_GROUP_INDEX: {"level": 1},
        },
    )
    huge = TraceSpan(
        name="execute_tool huge",
        span_id="c2",
        parent_id="b",
        trace_id="t",
        start=at(2),
        end=at(3),
        attributes={
            A.GEN_AI_TOOL_CALL_ID: "c2",
            A.TW_EXECUTION_ORDER: 10**5000,
            A.TW_DEPENDS_ON: [1, None, "c1"],
            A.TW_STATUS: "error",
            A.TW_ERROR_TYPE: 7,
        },
    )
    decision = TraceSpan(
        name=A.DECISION_SPAN,
        span_id="d",
        parent_id="b",
        trace_id="t",
        start=at(4),
        end=at(5),
        attributes={A.TW_DECISION_CALL_IDS: 7, A.TW_DECISION_REASON: 10**5000},
    )
    text = format_batches([batch, odd, huge, decision])
    assert text.startswith('invoke_workflow toolweave  ["dag"], <int of about')
    assert 'STOPPED: {"why": ["tuple"]}' in text
    assert "waited for 5" in text
    assert "waited for 1, null, c1  (7)" in text
    assert "decide [7]" in text
    assert "[bad \ufffd name] " in text  # the lone surrogate is replaced


# --- demo --agent --------------------------------------------------------------------------


def test_demo_agent_with_an_unreachable_endpoint_exits_2_in_one_line() -> None:
    started = time.monotonic()
    proc = cli(
        "demo",
        "--agent",
        env={"OPENAI_API_KEY": "x", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"},
        timeout=30,
    )
    assert time.monotonic() - started < 15
    assert proc.returncode == 2
    err = one_error_line(proc.stderr)
    assert "the model endpoint http://127.0.0.1:9/v1/ could not be reached" in err
    assert "OPENAI_BASE_URL" in err
    assert "OPENAI_API_KEY" in err


# --- output --------------------------------------------------------------------------------


@pytest.fixture
def hostile(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    module = tmp_path / "hostile_tools.py"
    module.write_text(HOSTILE_TOOLS)
    batch = tmp_path / "hostile.json"
    batch.write_text(json.dumps([{"id": n, "name": n, "arguments": {}} for n in HOSTILE_NAMES]))
    return batch, module


def test_run_table_shows_hostile_outputs(
    hostile: tuple[pathlib.Path, pathlib.Path], capsys: pytest.CaptureFixture[str]
) -> None:
    batch, module = hostile
    assert main(["run", str(batch), "--tools", str(module)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    rows = {r.split()[0]: r for r in captured.out.splitlines() if r.split()[:1] != []}
    assert "<Hostile object (cannot be shown)>" in rows["unshowable"]
    assert "<int of about 5001 digits>" in rows["big_int"]
    assert rows["deep"].endswith("[[[...")
    assert '[1, "<cycle>"]' in rows["cyclic"]
    assert '{"(1, 2)": "pair"}' in rows["tuple_keys"]
    assert "6 ok, 0 error, 0 skipped" in captured.out


def test_run_json_holds_hostile_outputs(
    hostile: tuple[pathlib.Path, pathlib.Path], capsys: pytest.CaptureFixture[str]
) -> None:
    batch, module = hostile
    assert main(["run", str(batch), "--tools", str(module), "--json"]) == 0
    outputs = {c["call_id"]: c["output"] for c in json.loads(capsys.readouterr().out)["calls"]}
    assert outputs["unshowable"] == "<Hostile object (cannot be shown)>"
    assert outputs["big_int"] == "<int of about 5001 digits>"
    assert outputs["cyclic"] == [1, "<cycle>"]
    assert outputs["tuple_keys"] == {"(1, 2)": "pair"}
    assert outputs["surrogate"] == "bad \ufffd char", "lone surrogates are replaced"
    assert "<nested too deep>" in json.dumps(outputs["deep"])


@pytest.mark.parametrize(
    "as_json", [pytest.param([], id="table"), pytest.param(["--json"], id="json")]
)
def test_run_prints_hostile_outputs_to_an_ascii_terminal(
    hostile: tuple[pathlib.Path, pathlib.Path], as_json: list[str]
) -> None:
    batch, module = hostile
    proc = cli(
        "run", str(batch), "--tools", str(module), *as_json, env={"PYTHONIOENCODING": "ascii"}
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "<Hostile object (cannot be shown)>" in proc.stdout
    assert "bad " in proc.stdout


def test_ids_with_odd_unicode_print_to_an_ascii_terminal(tmp_path: pathlib.Path) -> None:
    batch = tmp_path / "unicode.json"
    batch.write_text(json.dumps([{"id": "caf\u00e9", "name": "s\u00f8k\U0001f600"}]))
    proc = cli("plan", str(batch), env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stderr
    assert "caf\\xe9 [s\\xf8k\\U0001f600]" in proc.stdout


# --- exiting promptly ----------------------------------------------------------------------


def test_run_exits_promptly_when_a_blocking_tool_timed_out(tmp_path: pathlib.Path) -> None:
    module = tmp_path / "sleepy.py"
    module.write_text(
        textwrap.dedent(
            """
            import time
            from toolweave import tool

            @tool(timeout=0.2)
            def sleepy() -> str:
                time.sleep(30)
                return "woke"
            """
        )
    )
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps([{"id": "z", "name": "sleepy", "arguments": {}}]))
    started = time.monotonic()
    proc = cli("run", str(batch), "--tools", str(module), timeout=25)
    took = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert "timed out" in proc.stdout
    assert "0 ok, 1 error, 0 skipped" in proc.stdout
    assert took < 10, f"the process stayed {took:.1f} s after the batch ended"


@pytest.mark.parametrize("where", ["missing-folder", "a-folder"])
def test_a_trace_file_that_cannot_be_written_exits_2(
    where: str, tools: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    batch = tmp_path / "batch.json"
    batch.write_text('[{"id": "1", "name": "search", "arguments": {"q": "x"}}]')
    target = tmp_path / "nowhere" / "x.jsonl" if where == "missing-folder" else tmp_path
    done = cli("run", str(batch), "--tools", str(tools), "--trace", f"jsonl:{target}")
    assert done.returncode == 2, done.stderr
    line = one_error_line(done.stderr)
    assert "cannot write there" in line
    assert "a folder that exists" in line


def test_a_tools_file_named_like_a_stdlib_module_does_not_replace_it(
    tmp_path: pathlib.Path,
) -> None:
    module = tmp_path / "json.py"
    module.write_text(
        "from toolweave import tool\n\n@tool\ndef info() -> dict:\n    return {'a': [1, 2]}\n"
    )
    batch = tmp_path / "batch.json"
    batch.write_text('[{"id": "1", "name": "info", "arguments": {}}]')
    done = cli("run", str(batch), "--tools", str(module), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["calls"][0]["output"] == {"a": [1, 2]}


# --- --decider -----------------------------------------------------------------------------

DECIDERS = textwrap.dedent(
    """
    from toolweave import Decision

    NOT_A_RULE = 42

    def two_args(ctx, extra):
        return None

    class SyncDecide:
        def decide(self, ctx):
            return Decision(action="continue")

    sync_decide = SyncDecide()

    class AsyncDecide:
        async def decide(self, ctx):
            return Decision(action="continue")

    EMPTY = []

    def raises(ctx):
        raise RuntimeError("rule [red]broke[/]")
    """
)


@pytest.mark.parametrize(
    ("spec", "env", "expected"),
    [
        pytest.param(
            "rules", {}, "--decider rules: write MODULE:NAME (a rule function, a list of rules",
            id="no-colon",
        ),
        pytest.param(
            ":rule", {}, "--decider :rule: write MODULE:NAME", id="no-module",
        ),
        pytest.param(
            "{d}/deciders.py:", {}, "--decider {d}/deciders.py:: write MODULE:NAME",
            id="no-name",
        ),
        pytest.param(
            "{d}/deciders.py:not-a-name", {},
            "'not-a-name' is not a Python name; write MODULE:NAME", id="bad-name",
        ),
        pytest.param(
            "tw_no_such_rules_xyz:rule", {},
            "--decider tw_no_such_rules_xyz:rule: cannot import the decider from "
            "tw_no_such_rules_xyz: ModuleNotFoundError: No module named 'tw_no_such_rules_xyz'; "
            "pass a module name that Python can import from here, or the path of a .py file",
            id="module-not-found",
        ),
        pytest.param(
            "{d}/missing.py:rule", {}, "--decider {d}/missing.py:rule: no such file: "
            "{d}/missing.py", id="file-not-found",
        ),
        pytest.param(
            "{d}/deciders.py:nope", {},
            "{d}/deciders.py has no attribute 'nope'; name a rule function, a list of rules or "
            "a decider object defined there", id="attribute-missing",
        ),
        pytest.param(
            "{d}/deciders.py:NOT_A_RULE", {},
            "42 (int) is not a rule or a decider; write MODULE:NAME", id="not-callable",
        ),
        pytest.param(
            "{d}/deciders.py:two_args", {},
            "two_args cannot be called as rule(context); a rule takes the DecisionContext and "
            "returns a Decision or None", id="wrong-signature",
        ),
        pytest.param(
            "{d}/deciders.py:AsyncDecide", {},
            "AsyncDecide is a class; name an instance of it (decider = AsyncDecide(...) in the "
            "module) or a rule function", id="a-class",
        ),
        pytest.param(
            "{d}/deciders.py:sync_decide", {}, ".decide must be an async method", id="sync-decide",
        ),
        pytest.param(
            "{d}/deciders.py:EMPTY", {}, "RuleDecider needs at least one rule", id="empty-list",
        ),
        pytest.param(
            "openai:", {"OPENAI_API_KEY": "k"},
            "--decider openai:: no model named; write openai:MODEL, openai:gpt-4.1-mini say",
            id="openai-no-model",
        ),
        pytest.param(
            "openai:   ", {"OPENAI_API_KEY": "k"}, "no model named", id="openai-blank-model",
        ),
        pytest.param(
            "openai:m", {"OPENAI_API_KEY": ""},
            "--decider openai:m: OPENAI_API_KEY is not set; export it (any value for a server "
            "that takes none), and OPENAI_BASE_URL for a server other than api.openai.com",
            id="openai-no-key",
        ),
        pytest.param(
            "openai:m", {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "localhost:8000/v1"},
            "--decider openai:m: OPENAI_BASE_URL='localhost:8000/v1' is not an http(s) URL; "
            "set it like http://localhost:8000/v1, or unset it for api.openai.com",
            id="openai-base-url-not-a-url",
        ),
    ],
)  # fmt: skip
def test_bad_decider_exits_2_naming_the_option_and_the_fix(
    tmp_path: pathlib.Path,
    tools: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    env: dict[str, str],
    expected: str,
) -> None:
    (tmp_path / "deciders.py").write_text(DECIDERS)
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps([{"id": "1", "name": "search", "arguments": {"q": "x"}}]))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    d = str(tmp_path)
    code = main(["run", str(batch), "--tools", str(tools), "--decider", spec.replace("{d}", d)])
    captured = capsys.readouterr()
    assert code == 2
    err = one_error_line(captured.err)
    assert err.startswith("toolweave: error: --decider ")
    assert expected.replace("{d}", d) in err
    assert captured.out == ""


def test_decider_is_only_an_option_of_run(tmp_path: pathlib.Path) -> None:
    batch = tmp_path / "batch.json"
    batch.write_text("[]")
    proc = cli("plan", str(batch), "--decider", "openai:m")
    assert proc.returncode == 2
    assert "unrecognized arguments: --decider openai:m" in proc.stderr


def test_a_rule_that_raises_falls_back_and_the_summary_says_so(
    tmp_path: pathlib.Path, tools: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "deciders.py").write_text(DECIDERS)
    batch = tmp_path / "batch.json"
    batch.write_text(
        json.dumps(
            [
                {"id": "a", "name": "search", "arguments": {"q": "x"}},
                {"id": "b", "name": "search", "arguments": {"q": "${a}"}},
            ]
        )
    )
    spec = f"{tmp_path / 'deciders.py'}:raises"
    assert main(["run", str(batch), "--tools", str(tools), "--decider", spec]) == 0
    captured = capsys.readouterr()
    assert "found found x" in captured.out
    assert (
        "  before b: continue (fallback: RuntimeError: rule [red]broke[/])\n"
        f"the decider failed, and the run went on as planned: fix {spec} (its error is above)\n"
    ) in captured.out
    assert captured.err == ""


# --- live progress -------------------------------------------------------------------------

MARKUP_TOOLS = textwrap.dedent(
    """
    import asyncio
    from toolweave import tool

    @tool(name="[bold]x[/]")
    async def bold() -> str:
        await asyncio.sleep(0.2)
        return "out [/] [link=https://evil]y[/link]"

    @tool(name="[red]boom")
    async def boom() -> None:
        await asyncio.sleep(0.2)
        raise RuntimeError("bad [/] markup [bold red]here")

    @tool
    async def talk() -> str:
        print("a line the tool printed [/]", flush=True)
        await asyncio.sleep(0.2)
        return "talked"
    """
)


def test_progress_prints_markup_in_tool_names_and_errors_literally(
    tmp_path: pathlib.Path,
) -> None:
    module = tmp_path / "markup_tools.py"
    module.write_text(MARKUP_TOOLS)
    batch = tmp_path / "batch.json"
    batch.write_text(
        json.dumps(
            [
                {"id": "[i]1[/i]", "name": "[bold]x[/]", "arguments": {}},
                {"id": "2", "name": "[red]boom", "arguments": {}},
                {"id": "3", "name": "talk", "arguments": {}},
            ]
        )
    )
    code, raw = run_in_terminal("run", str(batch), "--tools", str(module))
    assert code == 1, raw
    text = plain(raw)
    assert "Traceback" not in text
    assert re.search(r"^\[i\]1\[/i\]\s+\[bold\]x\[/\]\s+done\s+\d", text, re.M), text
    assert re.search(
        r"^2\s+\[red\]boom\s+failed\s+\d+ ms\s+RuntimeError: bad \[/\] markup \[bold red\]here",
        text,
        re.M,
    ), text
    assert "a line the tool printed [/]\n" in text  # shown above the live view, not lost
    summary = text[text.index("strategy: parallel") :]
    assert "out [/] [link=https://evil]y[/link]" in summary
    assert "2 ok, 1 error, 0 skipped" in summary


def render(progress: Any, width: int = 120) -> str:
    """What a ``RunProgress`` draws on a colour terminal ``width`` columns wide."""
    import io

    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=width, color_system="truecolor")
    console.print(progress)
    return out.getvalue()


def test_progress_shows_control_and_bidi_characters_as_escapes() -> None:
    from toolweave import ToolCall
    from toolweave._progress import RunProgress

    calls = [
        ToolCall("c\x1b[2J\x1b]0;t\x07", "tool\u202egnp.exe"),
        ToolCall("nul\x00bell\x07", "ok"),
    ]
    progress = RunProgress(calls, errors={"nul\x00bell\x07": "bad \x1b[31mred\x1b[0m \ud800"})
    shown = render(progress)
    assert "\x1b[2J" not in shown
    assert "\x1b]0;" not in shown
    assert "\u202e" not in shown
    assert "\x00" not in shown
    assert "\x07" not in shown
    assert "\x1b[31mred" not in shown
    text = plain(shown)
    assert "\ud800" not in shown
    assert "c\\x1b[2J\\x1b]0;t\\x07" in text
    assert "tool\\u202egnp.exe" in text
    assert "bad \\x1b[31mred\\x1b[0m \ufffd" in text  # a lone surrogate is replaced


def test_progress_of_a_huge_batch_shows_a_bounded_window() -> None:
    from toolweave import ToolCall
    from toolweave._progress import RunProgress

    calls = [ToolCall(f"c{i}", "t" * 500) for i in range(5000)]
    progress = RunProgress(calls, rows=10)
    shown = plain(render(progress, width=80)).splitlines()
    assert len(shown) == 12  # the header, ten calls, the rest counted
    assert shown[0].startswith("toolweave run  ")
    assert "0 running  0 done  5000 waiting" in shown[0]
    assert shown[-1] == "... and 4990 more calls"
    assert all(len(line) <= 80 for line in shown)


def test_on_a_terminal_a_failing_decider_keeps_its_own_fallback(tmp_path: pathlib.Path) -> None:
    # The live view watches the decider through a wrapper: the engine must still see the
    # decider's own fallback (here: stop) and breaker through it.
    (tmp_path / "deciders.py").write_text(
        textwrap.dedent(
            """
            from toolweave import Decision

            class Failing:
                fallback = Decision(action="stop", reason="custom fallback")
                breaker = 1

                async def decide(self, ctx):
                    raise RuntimeError("the decider is down")

            failing = Failing()
            """
        )
    )
    (tmp_path / "mytools.py").write_text(TOOLS)
    batch = tmp_path / "batch.json"
    batch.write_text(
        json.dumps(
            [
                {"id": "a", "name": "search", "arguments": {"q": "x"}},
                {"id": "b", "name": "search", "arguments": {"q": "${a}"}},
                {"id": "c", "name": "search", "arguments": {"q": "${a}"}, "depends_on": ["b"]},
            ]
        )
    )
    code, raw = run_in_terminal(
        "run", str(batch), "--tools", str(tmp_path / "mytools.py"),
        "--decider", f"{tmp_path / 'deciders.py'}:failing",
    )  # fmt: skip
    assert code == 1, raw
    text = plain(raw)
    assert "decider: failed (RuntimeError: the decider is down): the fallback applies" in text
    assert "  before b: stop (fallback: RuntimeError: the decider is down)\n" in text
    assert "stopped by the decider: custom fallback\n" in text


def test_plain_output_escapes_control_characters_in_ids_and_names(
    tools: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """An id like ESC[2J would clear the reader's screen; a bidi override would reorder the
    line. Piped output shows them as escapes, in the plan, the results and the errors."""
    batch = tmp_path / "batch.json"
    batch.write_text(
        json.dumps(
            [
                {"id": "\x1b[2Jwipe", "name": "surrogate", "arguments": {}},
                {"id": "rtl\u202e", "name": "no\x07such", "arguments": {}},
            ]
        )
    )
    for command in (["plan", str(batch)], ["run", str(batch), "--tools", str(tools)]):
        proc = cli(*command)
        assert "Traceback" not in proc.stderr
        assert "\x1b" not in proc.stdout
        assert "\u202e" not in proc.stdout
        assert "\x07" not in proc.stdout
        assert "\\x1b[2Jwipe" in proc.stdout
        assert "rtl\\u202e" in proc.stdout
