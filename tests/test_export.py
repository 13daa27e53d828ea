"""Spans over the wire: OTLP/HTTP and OTLP/gRPC to receivers in this process, JSON lines,
the memory exporter, and ``--trace`` on the command line."""

from __future__ import annotations

import asyncio
import json
import pathlib
import subprocess
import sys
from typing import Any

import pytest
from otlp_receivers import GrpcReceiver, HttpReceiver

from toolweave import Orchestrator, ToolCall, tool
from toolweave.telemetry import Tracing, configure_tracing
from toolweave.telemetry import attributes as A


@tool
async def search(q: str) -> dict[str, Any]:
    """Search."""
    return {"hits": [{"url": "https://x/" + q}]}


@tool
async def fetch(url: str) -> str:
    """Fetch."""
    return "page " + url


CALLS = [
    ToolCall("a", "search", {"q": "cats"}),
    ToolCall("b", "search", {"q": "dogs"}),
    ToolCall("c", "fetch", {"url": "${a.hits[0].url}"}, ["b"]),
]


def export_batch(tracing: Tracing) -> Any:
    orchestrator = Orchestrator([search, fetch], tracer_provider=tracing.provider)
    result = asyncio.run(orchestrator.run(CALLS))
    tracing.shutdown()
    return result


def check_wire_spans(spans: list[dict[str, Any]], result: Any) -> None:
    by_call = {s["attributes"].get(A.GEN_AI_TOOL_CALL_ID): s for s in spans}
    batch = by_call[None]
    assert batch["name"] == "invoke_workflow toolweave"
    assert batch["resource"]["service.name"] == "wire-test"
    assert batch["attributes"][A.TW_STRATEGY] == "dag"
    assert "toolweave.plan" in batch["events"]
    for r in result.results:
        span = by_call[r.call_id]
        assert span["name"] == f"execute_tool {r.name}"
        assert span["parent_id"] == batch["span_id"]
        assert span["trace_id"] == batch["trace_id"]
        assert span["attributes"][A.TW_GROUP_INDEX] == r.group_index
        assert span["attributes"][A.TW_EXECUTION_ORDER] == r.execution_order
        assert span["attributes"][A.TW_DEPENDS_ON] == tuple(r.depends_on)
        assert sorted(span["links"]) == sorted(by_call[d]["span_id"] for d in r.depends_on)


def test_otlp_http_export_reaches_a_receiver() -> None:
    with HttpReceiver() as receiver:
        tracing = configure_tracing("otlp", receiver.endpoint, "wire-test", set_global=False)
        result = export_batch(tracing)
    assert set(receiver.paths) == {"/v1/traces"}
    assert len(receiver.spans) == 4
    check_wire_spans(receiver.spans, result)


def test_otlp_http_honours_the_standard_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with HttpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-mlflow-experiment-id=7")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
        tracing = configure_tracing("otlp", set_global=False)
        export_batch(tracing)
    assert receiver.paths[0] == "/v1/traces"
    assert receiver.headers[0]["x-mlflow-experiment-id"] == "7"
    assert receiver.spans[0]["resource"]["service.name"] == "from-env"


def test_otlp_grpc_export_reaches_a_receiver() -> None:
    with GrpcReceiver() as receiver:
        tracing = configure_tracing("otlp-grpc", receiver.endpoint, "wire-test", set_global=False)
        result = export_batch(tracing)
    assert len(receiver.spans) == 4
    check_wire_spans(receiver.spans, result)


def test_jsonl_writes_one_span_per_line(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "trace.jsonl"
    result = export_batch(configure_tracing(f"jsonl:{path}", set_global=False))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 1 + len(result.results)
    names = sorted(line["name"] for line in lines)
    assert names == sorted(
        ["invoke_workflow toolweave", *(f"execute_tool {r.name}" for r in result.results)]
    )


def test_memory_exporter_keeps_spans_for_tests() -> None:
    tracing = configure_tracing("memory", set_global=False)
    asyncio.run(Orchestrator([search, fetch], tracer_provider=tracing.provider).run(CALLS))
    assert len(tracing.spans()) == 4


def test_unknown_exporters_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown exporter 'zipkin'"):
        configure_tracing("zipkin", set_global=False)


def test_the_cli_exports_with_trace(tmp_path: pathlib.Path) -> None:
    # A subprocess: --trace sets the global tracer provider, which must not leak into this one.
    (tmp_path / "t.py").write_text(
        "from toolweave import tool\n@tool\nasync def ping() -> str:\n    return 'pong'\n"
    )
    (tmp_path / "b.json").write_text(json.dumps([{"id": "p", "name": "ping"}]))
    out = tmp_path / "spans.jsonl"
    argv = ["run", str(tmp_path / "b.json"), "--tools", str(tmp_path / "t.py")]
    proc = cli(*argv, "--trace", f"jsonl:{out}")
    assert proc.returncode == 0, proc.stderr
    assert sorted(json.loads(line)["name"] for line in out.read_text().splitlines()) == [
        "execute_tool ping",
        "invoke_workflow toolweave",
    ]
    bad = cli("demo", "--trace", "bogus")
    assert bad.returncode == 2
    assert "--trace bogus: unknown exporter 'bogus'" in bad.stderr


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toolweave.cli", *argv], capture_output=True, text=True, timeout=120
    )


def test_the_inspector_shows_each_batch_from_a_jsonl_trace(tmp_path: pathlib.Path) -> None:
    from toolweave import Decision, DecisionContext
    from toolweave.telemetry.inspect import format_batches, load_spans

    @tool
    async def broken() -> None:
        """Fail."""
        raise RuntimeError("down")

    def stop_after_fetch(ctx: DecisionContext) -> Decision | None:
        return Decision(action="stop", reason="seen enough") if ctx.waiting_ids == ["d"] else None

    path = tmp_path / "trace.jsonl"
    tracing = configure_tracing(f"jsonl:{path}", set_global=False)
    orchestrator = Orchestrator(
        [search, fetch, broken], tracer_provider=tracing.provider, workflow_name="agent",
        decider=stop_after_fetch,
    )  # fmt: skip
    asyncio.run(
        orchestrator.run(
            [*CALLS, ToolCall("x", "broken"), ToolCall("y", "fetch", {"url": "${x}"}),
             ToolCall("d", "fetch", {"url": "${c}"})]
        )
    )  # fmt: skip
    tracing.shutdown()
    text = format_batches(load_spans(path))
    lines = text.splitlines()
    assert lines[0].startswith("invoke_workflow agent  dag, 6 calls in 3 groups")
    assert lines[0].endswith("STOPPED: seen enough")
    assert any(" c [fetch] ok  group 1 " in line and "waited for a, b" in line for line in lines)
    assert any(" x [broken] error " in line and "(tool_error)" in line for line in lines)
    assert any("   -  y [fetch] skipped " in line for line in lines)
    assert any(line.startswith("  decide [d]: stop ") for line in lines)


def test_inspect_on_the_command_line(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.jsonl"
    export_batch(configure_tracing(f"jsonl:{path}", "wire-test", set_global=False))
    ok = cli("inspect", str(path))
    assert ok.returncode == 0, ok.stderr
    assert "invoke_workflow toolweave  dag, 3 calls in 2 groups" in ok.stdout
    (tmp_path / "bad.jsonl").write_text('{"name": 1}\n')
    bad = cli("inspect", str(tmp_path / "bad.jsonl"))
    assert bad.returncode == 2
    assert "line 1 of" in bad.stderr
    assert "is not a span" in bad.stderr
