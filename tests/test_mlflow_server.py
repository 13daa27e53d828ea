"""A real trace server: export a batch over OTLP/HTTP to an MLflow tracking server and read
the trace back through its REST API.

Jaeger ships as a container or a Go binary, which a Python test suite cannot install; MLflow is
on PyPI, accepts OTLP/HTTP at ``/v1/traces`` (with the ``x-mlflow-experiment-id`` header) and
keeps span links. It is large, so it lives in its own virtual environment, made on first use
(``TOOLWEAVE_MLFLOW_VENV``, default ``~/.cache/toolweave/mlflow-venv``), not in the dev extra.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from toolweave import Orchestrator, ToolCall, tool
from toolweave.telemetry import attributes as A
from toolweave.telemetry import configure_tracing

MLFLOW = "mlflow>=3.6,<4"  # 3.6 added the OTLP endpoint
VENV = pathlib.Path(
    os.environ.get("TOOLWEAVE_MLFLOW_VENV", pathlib.Path.home() / ".cache/toolweave/mlflow-venv")
)


def mlflow_executable() -> pathlib.Path:
    exe = VENV / "bin" / "mlflow"
    if exe.exists():
        return exe
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    install = subprocess.run(
        [str(VENV / "bin" / "pip"), "install", "-q", MLFLOW],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if install.returncode != 0:
        pytest.fail(f"could not install {MLFLOW} into {VENV}:\n{install.stderr[-2000:]}")
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(base: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        base + path, method=method, data=data, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = mlflow_executable()
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = open(folder / "server.log", "w")  # noqa: SIM115 - closed at teardown
    server = subprocess.Popen(
        [
            str(exe), "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--default-artifact-root", str(folder / "artifacts"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its workers share a process group we can stop as one
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(
                        "mlflow server did not start:\n"
                        + (folder / "server.log").read_text()[-3000:]
                    )
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


@tool
async def search(q: str) -> dict[str, Any]:
    """Search."""
    return {"hits": [{"url": "https://x/" + q}]}


@tool
async def fetch(url: str) -> str:
    """Fetch."""
    return "page " + url


def test_a_batch_arrives_in_mlflow_with_levels_order_and_links(mlflow_server: str) -> None:
    experiment = request(
        mlflow_server, "POST", "/api/2.0/mlflow/experiments/create", {"name": "toolweave"}
    )
    experiment_id = experiment["experiment_id"]
    tracing = configure_tracing(
        "otlp",
        mlflow_server,
        "toolweave-e2e",
        headers={"x-mlflow-experiment-id": experiment_id},
        set_global=False,
    )
    calls = [
        ToolCall("a", "search", {"q": "cats"}),
        ToolCall("b", "search", {"q": "dogs"}),
        ToolCall("c", "fetch", {"url": "${a.hits[0].url}"}, ["b"]),
        ToolCall("d", "fetch", {"url": "${c}"}),
    ]
    result = asyncio.run(Orchestrator([search, fetch], tracer_provider=tracing.provider).run(calls))
    tracing.shutdown()

    location = {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}
    found = request(
        mlflow_server, "POST", "/api/3.0/mlflow/traces/search", {"locations": [location]}
    )
    [info] = found["traces"]
    trace = request(mlflow_server, "GET", f"/api/3.0/mlflow/traces/get?trace_id={info['trace_id']}")
    spans = trace["trace"]["spans"]

    def attributes(span: dict[str, Any]) -> dict[str, Any]:
        return {a["key"]: next(iter(a["value"].values()), None) for a in span["attributes"]}

    by_call = {attributes(s).get(A.GEN_AI_TOOL_CALL_ID): s for s in spans}
    batch = by_call.pop(None)
    assert batch["name"] == "invoke_workflow toolweave"
    assert set(by_call) == {"a", "b", "c", "d"}, "every call's span arrived"
    span_call = {s["span_id"]: call_id for call_id, s in by_call.items()}
    for r in result.results:
        span = by_call[r.call_id]
        attrs = attributes(span)
        assert span["name"] == f"execute_tool {r.name}"
        assert span["parent_span_id"] == batch["span_id"]
        assert int(attrs[A.TW_GROUP_INDEX]) == r.group_index
        assert int(attrs[A.TW_EXECUTION_ORDER]) == r.execution_order
        linked = sorted(span_call[link["span_id"]] for link in span.get("links") or [])
        assert linked == sorted(r.depends_on)
    assert base64.b64decode(batch["span_id"])  # ids travel as base64, as OTLP/JSON has them
