"""The ``toolweave`` command line: plan, run and demo batches of tool calls.

Exit codes: 0 success, 1 a batch had failed or skipped calls, 2 bad input (file, module,
arguments), with a one-line message and no traceback. ``run`` on a terminal shows live
progress (``_progress``); off a terminal, or with ``--json``, it prints its summary only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import pathlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from toolweave.telemetry._values import safe_str, to_jsonable

from ._batch import check_batch_id
from ._decisions import Decider, RuleDecider, as_decider
from ._durable import CallLedger, LedgerError, PostgresLedger, SQLiteLedger
from ._errors import InvalidBatchError, UsageError
from ._models import BatchResult, DecisionRecord, ToolCall
from ._orchestrator import Orchestrator
from ._planner import coerce_batch, plan_batch
from ._render import format_plan, format_results, format_timeline
from ._tools import Tool, _converters, tool_table

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["main"]

_BATCH_EXAMPLE = (
    'write a JSON list of calls like [{"id": "1", "name": "search", "arguments": {"q": "..."}}]'
)
_BATCH_HELP = (
    "JSON file (- for standard input): a list of calls, an object with 'calls', or an OpenAI "
    "ChatCompletion, assistant message, tool_calls list or Responses output"
)
_DETAIL = 300  # characters of a foreign exception's message kept in a one-line error


_TRACE_HELP = (
    "export spans: otlp (OTEL_EXPORTER_OTLP_ENDPOINT, default http://localhost:4318; "
    "OTEL_EXPORTER_OTLP_PROTOCOL chooses the encoding), otlp-grpc, otlp-json, console, none, "
    "or jsonl:PATH"
)
_DECIDER_HELP = (
    "ask a decider between steps: MODULE:NAME (a rule function, a list of rules or a decider "
    "object, in a module or a .py file) or openai:MODEL (a model at OPENAI_BASE_URL, default "
    "api.openai.com, with OPENAI_API_KEY)"
)
_DECIDER_FORMS = (
    "write MODULE:NAME (a rule function, a list of rules or an object with 'async "
    "decide(context)', in a module or a .py file) or openai:MODEL"
)
_OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
_SERVE_PORT = 4318  # OTLP/HTTP's, so the SDKs' default endpoint reaches it
_loaded_files: dict[pathlib.Path, ModuleType] = {}  # this command's module files, by path


class CliError(Exception):
    """Bad input to the command line: reported in one line, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    _tolerant_output()
    _loaded_files.clear()
    parser = _parser()
    args = parser.parse_args(argv)
    tracing = None
    try:
        if getattr(args, "trace", None):
            tracing = _start_tracing(args.trace)
        code: int = args.handler(args)
        return code
    except CliError as exc:
        print(f"toolweave: error: {_one_line(safe_str(exc, 2000))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader left (`toolweave inspect t.jsonl | head`): not an error
        _quiet_stdout()
        return 0
    finally:
        if tracing is not None:
            tracing.shutdown()  # exports what is left


def _quiet_stdout() -> None:
    # Python flushes stdout again at exit, into the closed pipe; point it at /dev/null first.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _tolerant_output() -> None:
    # Tool outputs, ids and file contents may hold any character (lone surrogates included) and
    # the terminal may not be UTF-8: escape what cannot be encoded rather than fail on print.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            # A replaced or closed stream may refuse: leave it as it is.
            with contextlib.suppress(OSError, ValueError):
                reconfigure(errors="backslashreplace")


def _one_line(text: str, limit: int | None = None) -> str:
    text = " ".join(text.split())
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    """``Type: message`` of a foreign exception, on one bounded line."""
    detail = _one_line(safe_str(exc), _DETAIL)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _start_tracing(spec: str) -> Any:
    from toolweave.telemetry import configure_tracing

    try:
        return configure_tracing(spec)
    except (ImportError, ValueError) as exc:
        raise CliError(f"--trace {spec}: {exc}") from None
    except OSError as exc:  # jsonl:PATH in a folder that does not exist, say
        raise CliError(
            f"--trace {spec}: cannot write there ({exc.strerror or _describe(exc)}); "
            "pass jsonl:PATH with PATH a file in a folder that exists"
        ) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toolweave", description="Run an LLM's batch of tool calls as a dependency graph."
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"toolweave {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    plan = sub.add_parser("plan", help="print the strategy and groups of a batch")
    plan.add_argument("batch", help=_BATCH_HELP)
    plan.add_argument("--tools", metavar="MODULE", help="check tool names against this module")
    plan.add_argument("--json", action="store_true", help="print ExecutionPlan.to_dict()")
    plan.set_defaults(handler=_cmd_plan)

    run = sub.add_parser("run", help="run a batch with the tools of a Python module")
    run.add_argument("batch", help=_BATCH_HELP)
    run.add_argument(
        "--tools", metavar="MODULE", required=True, help="module name or .py file with @tool"
    )
    run.add_argument("--json", action="store_true", help="machine-readable output")
    run.add_argument("--max-concurrency", type=int, default=None, metavar="N")
    run.add_argument("--strategy", choices=["auto", "serial"], default="auto")
    run.add_argument("--trace", metavar="EXPORTER", help=_TRACE_HELP)
    run.add_argument("--decider", metavar="SPEC", help=_DECIDER_HELP)
    run.add_argument(
        "--ledger",
        metavar="DB",
        help="record each call in this call ledger (an SQLite file, or a postgresql:// DSN), so "
        "that running the same --batch-id again resumes the batch without repeating a call",
    )
    run.add_argument("--batch-id", metavar="ID", help="names the batch (needed with --ledger)")
    run.set_defaults(handler=_cmd_run)

    inspect = sub.add_parser(
        "inspect", help="show a trace file batch by batch, or receive spans live (--serve)"
    )
    inspect.add_argument(
        "file",
        metavar="TRACE",
        nargs="?",
        help="a file written with --trace jsonl:PATH, or OTLP JSON (- for standard input)",
    )
    inspect.add_argument(
        "--html",
        metavar="OUT",
        help="write one self-contained HTML page (timeline, graph, details) to OUT (- for "
        "standard output)",
    )
    inspect.add_argument(
        "--serve",
        action="store_true",
        help="receive spans over OTLP/HTTP (protobuf or JSON) and show their batches in the "
        "browser as they arrive",
    )
    inspect.add_argument(
        "--port",
        type=int,
        metavar="N",
        help=f"--serve's port (default {_SERVE_PORT}, OTLP/HTTP's; 0: any free port)",
    )
    inspect.add_argument(
        "--host", metavar="H", help="--serve's address (default 127.0.0.1: this machine only)"
    )
    inspect.set_defaults(handler=_cmd_inspect)

    demo = sub.add_parser("demo", help="run sample batches and measure the speed-up")
    demo.add_argument("--trace", metavar="EXPORTER", help=_TRACE_HELP)
    demo.add_argument(
        "--agent",
        action="store_true",
        help="run an OpenAI agent loop over the demo tools (offline unless OPENAI_API_KEY)",
    )
    demo.set_defaults(handler=_cmd_demo)
    return parser


def _cmd_plan(args: argparse.Namespace) -> int:
    calls = _load_batch(args.batch)
    tools = {t.name: t for t in _load_tools(args.tools)} if args.tools else None
    plan, _ = plan_batch(calls, tools)
    if args.json:
        print(json.dumps(to_jsonable(plan.to_dict()), indent=2))
    else:
        print(format_plan(plan))
    return 1 if tools is not None and plan.errors else 0  # checked against tools: a verdict


def _cmd_run(args: argparse.Namespace) -> int:
    calls = _load_batch(args.batch)
    tools = _load_tools(args.tools)
    chosen = _load_decider(args.decider) if args.decider is not None else None
    decider = chosen.decider if chosen is not None else None
    if args.ledger is not None and args.batch_id is None:
        raise CliError(
            "--ledger resumes a batch by its id: add --batch-id ID (the same ID on every run "
            "of this batch)"
        )
    ledger = _open_ledger(args.ledger) if args.ledger is not None else None
    try:
        try:
            orchestrator = Orchestrator(
                tools,
                max_concurrency=args.max_concurrency,
                strategy=args.strategy,
                decider=decider,
                ledger=ledger,
            )
            batch_id = check_batch_id(args.batch_id)
        except UsageError as exc:
            raise CliError(str(exc)) from None
        console = None if args.json or args.trace == "console" else _live_console()
        result = (
            orchestrator.run_sync(calls, batch_id=batch_id)
            if console is None
            else _run_with_progress(orchestrator, calls, console, batch_id)
        )
    finally:
        if ledger is not None:
            ledger.close()
    if args.json:
        print(json.dumps(to_jsonable(result.to_trace(include_content=True)), indent=2))
    else:
        print(format_plan(result.plan))
        print()
        print(format_results(result))
        if chosen is not None:
            print()
            print(_format_decisions(result, chosen))
    return 0 if result.ok else 1


def _live_console() -> Console | None:
    """A console for live progress when standard output is an interactive terminal, as
    ``rich`` judges it (``TERM=dumb`` is not; ``NO_COLOR`` draws without colour)."""
    try:
        if not sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):  # replaced or closed
        return None
    from rich.console import Console

    console = Console(file=sys.stdout)
    return console if console.is_interactive else None


def _open_ledger(where: str) -> CallLedger:
    """``--ledger``: a PostgreSQL DSN or an SQLite file, opened now, so that a ledger that
    cannot be used is one error line rather than a failed call each."""
    scheme, sep, _ = where.partition("://")
    try:
        if where.startswith(("postgresql://", "postgres://")):
            ledger: CallLedger = PostgresLedger(where)
        elif sep and scheme.isalnum():
            raise CliError(
                f"--ledger takes an SQLite file or a postgresql:// DSN, not a {scheme}:// address"
            )
        else:
            ledger = SQLiteLedger(where)
    except UsageError as exc:
        raise CliError(f"--ledger: {exc}") from None
    try:
        asyncio.run(ledger.records(""))  # connects, and creates the table on first use
    except (LedgerError, UsageError) as exc:
        ledger.close()
        raise CliError(f"--ledger: {exc}") from None
    return ledger


def _run_with_progress(
    orchestrator: Orchestrator,
    calls: list[ToolCall],
    console: Console,
    batch_id: str | None = None,
) -> BatchResult:
    from ._progress import RunProgress, live_progress

    plan = orchestrator.plan(calls)
    progress = RunProgress(calls, errors=plan.errors, rows=max(3, console.height - 6))
    orchestrator.middleware = (progress.middleware, *orchestrator.middleware)
    if orchestrator.decider is not None:
        orchestrator.decider = progress.watch(orchestrator.decider)
    with live_progress(progress, console):
        result = orchestrator.run_sync(calls, batch_id=batch_id)
        progress.finish(result)
    return result


def _format_decisions(result: BatchResult, chosen: _ChosenDecider) -> str:
    """One line per decision the decider was asked for (or fell back on), then whether it
    stopped the batch, and what to check when it failed."""
    count = len(result.decisions)
    lines = [f"decider: {chosen.name}, {count} decision{'' if count == 1 else 's'}"]
    lines += [f"  {_decision_line(record)}" for record in result.decisions]
    if result.stopped is not None:
        lines.append(f"stopped by the decider: {_one_line(safe_str(result.stopped), 300)}")
    if any(record.fallback and record.error for record in result.decisions):
        lines.append(f"the decider failed, and the run went on as planned: {chosen.fix}")
    return "\n".join(lines)


def _decision_line(record: DecisionRecord) -> str:
    decision = record.decision
    about = _one_line(", ".join(record.call_ids), 120)
    action = decision.effective
    line = f"before {about}: {action}"
    if action == "skip":
        line += " " + _one_line(", ".join(decision.skip), 120)
    if record.fallback:
        why = _one_line(safe_str(record.error or "no answer"), 300)
        return f"{line} (fallback: {why})"
    reason = _one_line(safe_str(decision.reason), 200)
    return f"{line} ({reason})" if reason else line


def _cmd_inspect(args: argparse.Namespace) -> int:
    from toolweave.telemetry.inspect import format_batches, format_html, load_trace, parse_trace

    if args.serve:
        return _cmd_serve(args)
    if args.file is None:
        raise CliError(
            "inspect needs a TRACE file (- for standard input), or --serve to receive spans live"
        )
    if args.port is not None or args.host is not None:
        raise CliError("--port and --host go with --serve: add --serve, or leave them out")
    source = "standard input" if args.file == "-" else args.file
    try:
        if args.file == "-":
            trace = parse_trace(sys.stdin.buffer.read(), source)
        else:
            trace = load_trace(args.file)
    except FileNotFoundError:
        raise CliError(f"no such file: {args.file}") from None
    except OSError as exc:
        raise CliError(f"cannot read {source}: {exc.strerror or _describe(exc)}") from None
    except ValueError as exc:  # names the line and the file
        raise CliError(str(exc)) from None
    for note in trace.notes:  # spans of an OTLP file that could not be read
        print(f"toolweave: {_one_line(note, 600)}", file=sys.stderr)
    if args.html is None:
        print(format_batches(trace.spans))
        return 0
    title = "standard input" if args.file == "-" else pathlib.Path(args.file).name
    html = format_html(trace.spans, title=title, notes=trace.notes)
    if args.html == "-":
        sys.stdout.write(html)
        return 0
    try:
        pathlib.Path(args.html).write_text(html, encoding="utf-8")
    except OSError as exc:
        raise CliError(
            f"--html {args.html}: cannot write there ({exc.strerror or _describe(exc)}); "
            "pass a file in a folder that exists"
        ) from None
    print(f"wrote {args.html}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from toolweave.telemetry._serve import InspectorServer, serve

    if args.file is not None or args.html is not None:
        raise CliError(
            "inspect --serve shows the spans it receives: leave out TRACE and --html "
            "(download them from the page's /spans.jsonl to inspect them later)"
        )
    port = _SERVE_PORT if args.port is None else args.port
    host = "127.0.0.1" if args.host is None else args.host
    if not 0 <= port <= 65535:
        raise CliError(f"--port {port}: pass a port from 1 to 65535, or 0 for any free one")

    def ready(server: InspectorServer) -> None:
        print(
            f"toolweave inspect: open {server.url}/ and export with "
            f"OTEL_EXPORTER_OTLP_ENDPOINT={server.url} (Ctrl-C to stop)",
            flush=True,
        )

    try:
        serve(host, port, ready=ready)
    except OSError as exc:
        raise CliError(
            f"--serve cannot listen on {host} port {port} ({exc.strerror or _describe(exc)}): "
            "pass another --port (0 for any free one) or --host"
        ) from None
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.agent:
        return _plugin_demo("agent")
    from ._demo import DEMO_BATCHES, DEMO_TOOLS

    fast = Orchestrator(DEMO_TOOLS)
    one_by_one = Orchestrator(DEMO_TOOLS, strategy="serial", workflow_name="one-by-one")
    print("toolweave demo: sample tools with real latencies (asyncio.sleep and time.sleep).")
    print("Each batch runs twice: as a dependency graph, and one call at a time.\n")
    totals = [0.0, 0.0]
    for name, calls in DEMO_BATCHES.items():
        result = fast.run_sync(calls)
        baseline = one_by_one.run_sync(calls)
        _check(result, baseline)
        totals[0] += result.elapsed
        totals[1] += baseline.elapsed
        print(f"=== {name} batch ===")
        print(format_plan(result.plan))
        print()
        print(format_timeline(result))
        print(
            f"dependency graph {result.elapsed * 1000:.0f} ms, one by one "
            f"{baseline.elapsed * 1000:.0f} ms: {baseline.elapsed / result.elapsed:.2f}x\n"
        )
    print(
        f"all batches: {totals[0] * 1000:.0f} ms against {totals[1] * 1000:.0f} ms one by one, "
        f"a {totals[1] / totals[0]:.2f}x speed-up (measured now, on this machine)"
    )
    return 0


def _plugin_demo(name: str) -> int:
    # Demos that need an adapter register under an entry point: the engine never imports one.
    found = importlib.metadata.entry_points(group="toolweave.demos", name=name)
    if not found:
        raise CliError(f"no '{name}' demo is installed; reinstall toolweave")
    try:
        run = next(iter(found)).load()
        code: int = run()
    except CliError:
        raise
    except ImportError as exc:
        raise CliError(
            f"the {name} demo needs the openai extra: pip install 'toolweave[openai]' "
            f"({_describe(exc)})"
        ) from None
    except Exception as exc:  # the demo says what failed (an endpoint it cannot reach, ...)
        raise CliError(f"the {name} demo failed: {_one_line(safe_str(exc), 600)}") from None
    return code


def _check(result: BatchResult, baseline: BatchResult) -> None:
    if not (result.ok and baseline.ok):
        failed = [r.error for r in (*result.results, *baseline.results) if r.error]
        raise CliError(f"demo batch failed: {failed[0]}")
    if [r.output for r in result.results] != [r.output for r in baseline.results]:
        raise CliError("demo batch gave different outputs when run one by one")


def _load_batch(path: str) -> list[ToolCall]:
    """The calls in a batch file (``-``: standard input); ``CliError`` names the file and says
    what to write instead."""
    if path == "-":
        return _read_batch("standard input", sys.stdin.buffer.read())
    try:
        raw = pathlib.Path(path).read_bytes()
    except FileNotFoundError:
        raise CliError(f"no such file: {path}") from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or _describe(exc)}") from None
    return _read_batch(path, raw)


def _read_batch(path: str, raw: bytes) -> list[ToolCall]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CliError(
            f"{path} is not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}): "
            f"save it as UTF-8 and {_BATCH_EXAMPLE}"
        ) from None
    if not text.strip():
        raise CliError(f"{path} is empty: {_BATCH_EXAMPLE}")
    data = _parse_json(path, text)
    foreign = _foreign_batch(path, data)
    if foreign is not None:
        return foreign
    if isinstance(data, dict):
        if not isinstance(data.get("calls"), list):
            raise CliError(
                f'{path} holds an object without a "calls" list: {_BATCH_EXAMPLE}, '
                'or an object {"calls": [...]}'
            )
        data = data["calls"]
    elif not isinstance(data, list):
        raise CliError(
            f"{path} holds a JSON {_json_kind(data)}, not a list of calls: {_BATCH_EXAMPLE}"
        )
    try:
        return coerce_batch(data)
    except InvalidBatchError as exc:
        raise CliError(f"{path}: {exc}") from None


def _foreign_batch(path: str, data: Any) -> list[ToolCall] | None:
    """The calls of a batch file in another format (a model's response, say), read by the
    readers adapters register (group ``toolweave.batch_formats``; the engine imports none)."""
    for entry in importlib.metadata.entry_points(group="toolweave.batch_formats"):
        try:
            found = entry.load()(data)
        except Exception as exc:  # a reader that fails says so; the file is not taken for it
            raise CliError(
                f"{path}: the {entry.name} reader failed: {_one_line(safe_str(exc), 300)}"
            ) from None
        if found is None:
            continue
        kind, calls = found
        if not calls:
            raise CliError(f"{path} holds {kind} without tool calls: nothing to run")
        return list(calls)
    return None


def _parse_json(path: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}; "
            f"{_BATCH_EXAMPLE}"
        ) from None
    except RecursionError:
        raise CliError(f"{path} is nested too deeply to read: {_BATCH_EXAMPLE}") from None
    except ValueError:  # json gives up on ints past sys.get_int_max_str_digits()
        raise CliError(
            f"{path} has a number with more than {sys.get_int_max_str_digits()} digits, too "
            'long to read: write it as a JSON string ("123...") instead'
        ) from None


def _json_kind(data: Any) -> str:
    if data is None:
        return "null"
    if isinstance(data, bool):
        return "boolean"
    if isinstance(data, str):
        return "string"
    return "number"


class _ChosenDecider(NamedTuple):
    """The decider `--decider` named, with what the summary says about it."""

    decider: Decider
    name: str
    """What the summary calls it: ``rules.py:skip_empty`` or ``model M at URL``."""
    fix: str
    """What to check when it fails."""


def _load_decider(spec: str) -> _ChosenDecider:
    """The decider ``--decider`` names; ``CliError`` naming the option and the fix."""
    if spec.startswith("openai:"):
        return _openai_decider(spec, spec.removeprefix("openai:"))
    where, _, attribute = spec.rpartition(":")
    if not where or not attribute:
        raise CliError(f"--decider {spec}: {_DECIDER_FORMS}")
    if not all(part.isidentifier() for part in attribute.split(".")):
        raise CliError(f"--decider {spec}: '{attribute}' is not a Python name; {_DECIDER_FORMS}")
    try:
        module = _import(where, "the decider")
    except CliError as exc:
        raise CliError(f"--decider {spec}: {exc}") from None
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise CliError(
                f"--decider {spec}: {where} has no attribute '{attribute}'; name a rule "
                "function, a list of rules or a decider object defined there"
            )
        obj = getattr(obj, part)
    fix = f"fix {spec} (its error is above)"
    return _ChosenDecider(_as_cli_decider(spec, attribute, obj), spec, fix)


def _as_cli_decider(spec: str, attribute: str, obj: Any) -> Decider:
    if isinstance(obj, type):
        raise CliError(
            f"--decider {spec}: {attribute} is a class; name an instance of it (decider = "
            f"{attribute}(...) in the module) or a rule function"
        )
    try:
        if isinstance(obj, list | tuple):  # rules, combined as the library combines them
            for rule in obj:
                _check_rule(spec, rule)
            return RuleDecider(*obj)
        if not hasattr(obj, "decide"):
            _check_rule(spec, obj)
        return as_decider(obj)
    except UsageError as exc:
        raise CliError(f"--decider {spec}: {exc}") from None


def _check_rule(spec: str, rule: Any) -> None:
    shown = getattr(rule, "__qualname__", None) or safe_str(rule, 60)
    if isinstance(rule, ModuleType | type) or not callable(rule):
        raise CliError(
            f"--decider {spec}: {shown} ({type(rule).__name__}) is not a rule or a decider; "
            f"{_DECIDER_FORMS}"
        )
    try:
        inspect.signature(rule).bind(None)
    except TypeError:
        raise CliError(
            f"--decider {spec}: {shown} cannot be called as rule(context); a rule takes the "
            "DecisionContext and returns a Decision or None"
        ) from None
    except ValueError:  # no signature to read (a builtin): it will tell when called
        pass


def _openai_decider(spec: str, model: str) -> _ChosenDecider:
    if not model.strip():
        raise CliError(
            f"--decider {spec}: no model named; write openai:MODEL, openai:gpt-4.1-mini say"
        )
    key = os.environ.get("OPENAI_API_KEY", "")
    base_url = os.environ.get("OPENAI_BASE_URL", "")
    if not key:
        raise CliError(
            f"--decider {spec}: OPENAI_API_KEY is not set; export it (any value for a server "
            "that takes none), and OPENAI_BASE_URL for a server other than api.openai.com"
        )
    if base_url:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CliError(
                f"--decider {spec}: OPENAI_BASE_URL={_one_line(base_url, 120)!r} is not an "
                "http(s) URL; set it like http://localhost:8000/v1, or unset it for "
                "api.openai.com"
            )
    try:
        from openai import AsyncOpenAI
    except ImportError as exc:
        raise CliError(
            f"--decider {spec} needs the openai package: pip install 'toolweave[openai]' "
            f"({_describe(exc)})"
        ) from None
    from ._llm_decider import IntermediateLLMDecider

    client = AsyncOpenAI(api_key=key, base_url=base_url or None)
    where = base_url or f"{_OPENAI_DEFAULT_URL} (OPENAI_BASE_URL is not set)"
    return _ChosenDecider(
        IntermediateLLMDecider(client, model),
        f"model {_one_line(model, 80)} at {where}",
        "check OPENAI_BASE_URL, OPENAI_API_KEY and the model name",
    )


def _load_tools(spec: str) -> list[Tool]:
    """The tools ``--tools`` names: a module or a file (its toolweave tools and any tool an
    adapter converts, LangChain's say), or ``module:attribute`` (that tool, plain function or
    list of them)."""
    where, _, attribute = spec.rpartition(":")
    if not (where and attribute and all(p.isidentifier() for p in attribute.split("."))):
        where, attribute = spec, ""
    module = _import(where, "tools")
    if attribute:
        obj: Any = module
        for part in attribute.split("."):
            if not hasattr(obj, part):
                raise CliError(f"{where} has no attribute '{attribute}': name a tool or a list")
            obj = getattr(obj, part)
        items = list(obj.values()) if isinstance(obj, dict) else obj
        try:
            return list(tool_table(items if isinstance(items, list | tuple) else [items]).values())
        except UsageError as exc:
            raise CliError(f"{spec}: {exc}") from None
    tools = []
    for value in vars(module).values():
        if isinstance(value, Tool):
            tools.append(value)
        elif not (callable(value) and (inspect.isroutine(value) or isinstance(value, type))):
            tools.extend(t for convert in _converters() if (t := _converted(convert, value)))
    tools = list({id(t): t for t in tools}.values())  # one tool imported under two names
    if not tools:
        raise CliError(
            f"no tools in {spec}: decorate its functions with @toolweave.tool, or name them "
            f"as {spec}:function or {spec}:LIST"
        )
    return tools


def _converted(convert: Any, value: Any) -> Tool | None:
    try:
        found = convert(value)
    except Exception:  # not this converter's kind of object
        return None
    return found if isinstance(found, Tool) else None


def _import(spec: str, what: str) -> ModuleType:
    """The module ``spec`` names (a module name or a ``.py`` file) that ``what`` come from;
    a file named twice in one command (``--tools`` and ``--decider``) is run once."""
    name: str | None = None  # set once a module file is registered in sys.modules
    module: ModuleType | None = None
    try:
        if spec.endswith(".py") or "/" in spec:
            path = pathlib.Path(spec)
            if not path.is_file():
                raise CliError(f"no such file: {spec}")
            known = _loaded_files.get(path.resolve())
            if known is not None:
                return known
            # A file named like an imported module (json.py) must not take its place.
            name = path.stem if path.stem not in sys.modules else f"toolweave_tools_{path.stem}"
            loaded = importlib.util.spec_from_file_location(name, path)
            if loaded is None or loaded.loader is None:
                raise CliError(f"cannot load {spec} as a module: pass a .py file")
            module = importlib.util.module_from_spec(loaded)
            sys.modules[name] = module
            loaded.loader.exec_module(module)
            _loaded_files[path.resolve()] = module
            return module
        if "." not in sys.path:
            sys.path.insert(0, ".")
        importlib.invalidate_caches()  # a module written since the last import is found too
        return importlib.import_module(spec)
    except (CliError, KeyboardInterrupt):
        raise
    except SystemExit as exc:  # the module runs a script when imported
        _forget(name, module)
        code = "" if exc.code is None else _one_line(safe_str(exc.code), 80)
        raise CliError(
            f"cannot import {what} from {spec}: it called sys.exit({code}) while being "
            "imported; put its script code under if __name__ == '__main__':"
        ) from None
    except BaseException as exc:  # the user's module failed to import: report it in one line
        _forget(name, module)
        raise CliError(
            f"cannot import {what} from {spec}: {_describe(exc)}; {_import_fix(spec, exc)}"
        ) from None


def _import_fix(spec: str, exc: BaseException) -> str:
    missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
    if missing is not None and (spec == missing or spec.startswith(missing + ".")):
        return "pass a module name that Python can import from here, or the path of a .py file"
    return "fix the module so that it imports"


def _forget(name: str | None, module: ModuleType | None) -> None:
    # A module file that failed to import leaves no half-run module behind.
    if name is not None and sys.modules.get(name) is module:
        del sys.modules[name]


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
