"""The public entry point: ``Orchestrator`` plans and runs batches of tool calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from types import TracebackType
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.trace import use_span

from toolweave.telemetry import TraceContent
from toolweave.telemetry._values import safe_type_name

from ._batch import Batch, Tracing, check_batch_id, read_only
from ._cache import Cache, MemoryCache
from ._decisions import DecideOn, Decider, DecisionGate, as_decider
from ._durable import CallLedger
from ._errors import UsageError
from ._hooks import Middleware, check_middleware
from ._models import BatchResult, DecisionContext, ExecutionPlan, ToolCall
from ._planner import coerce_batch, plan_batch
from ._run_loop import RunOptions
from ._stream import BatchStream
from ._tasks import run_to_end
from ._threads import WorkerThreads
from ._tools import Tool, tool_table

_VERSION = "0.1.0"

__all__ = ["Orchestrator"]

_STRATEGIES = ("auto", "serial")
_GLOBAL_TRACER = trace.get_tracer("toolweave", _VERSION)


class Orchestrator:
    """Plans a model's batch of tool calls as a dependency graph and runs it.

    ``tools`` are ``Tool``s (from ``@tool``) or plain functions, as a list or a name -> tool
    mapping. ``max_concurrency`` bounds how many calls of one batch run at once (None: no
    bound). ``strategy="auto"`` runs each call as soon as its dependencies succeeded;
    ``"serial"`` runs calls one by one in batch order, for tools with side effects.

    Blocking (sync) tools run in the orchestrator's worker threads, one per running call: a
    call never waits for a thread, even behind calls whose threads were abandoned on timeout.
    ``async with Orchestrator(...) as o:`` (or ``aclose()``/``close()``) releases them when you
    are done; idle threads also end by themselves, and they never keep a process alive.

    Side effects: ``ledger`` (``SQLiteLedger(path)``, ``PostgresLedger(dsn)``) records every
    call of a batch run with a ``batch_id``, so that running that batch again after a crash
    replays what finished and never repeats a side effect. ``cache`` keeps the results of
    tools declared ``@tool(idempotent=True, cache_ttl=...)``: a ``MemoryCache`` by default
    when a tool asks for one, or ``SQLiteCache``/``RedisCache``; ``cache=False`` turns it off.
    The orchestrator does not close a cache or ledger it was given.
    """

    def __init__(
        self,
        tools: Iterable[Tool | Any] | Mapping[str, Tool | Any],
        *,
        max_concurrency: int | None = None,
        strategy: Literal["auto", "serial"] = "auto",
        decider: Decider | Callable[[DecisionContext], Any] | None = None,
        decide_on: DecideOn = "steps",
        decider_timeout: float | None = 60.0,
        decision_output_chars: int = 1000,
        tracer_provider: trace.TracerProvider | None = None,
        workflow_name: str = "toolweave",
        trace_content: TraceContent | bool | None = None,
        middleware: Sequence[Middleware] = (),
        cache: Cache | bool | None = None,
        ledger: CallLedger | None = None,
    ) -> None:
        if strategy not in _STRATEGIES:
            raise UsageError(f"strategy must be 'auto' or 'serial', got {strategy!r}")
        if max_concurrency is not None and (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            raise UsageError(
                f"max_concurrency must be None or an int >= 1, got {max_concurrency!r}"
            )
        if decider_timeout is not None and (
            isinstance(decider_timeout, bool)
            or not isinstance(decider_timeout, int | float)
            or not decider_timeout > 0
        ):
            raise UsageError(
                f"decider_timeout must be None or a positive number of seconds, got "
                f"{decider_timeout!r}"
            )
        if decide_on not in ("steps", "failure") and not callable(decide_on):
            raise UsageError(
                f"decide_on must be 'steps', 'failure' or a predicate, got {decide_on!r}"
            )
        if not (cache is None or isinstance(cache, bool | Cache)):
            raise UsageError(
                "cache takes a MemoryCache, SQLiteCache or RedisCache (or True for a "
                f"MemoryCache, False for none), got {safe_type_name(cache)}"
            )
        if not (ledger is None or isinstance(ledger, CallLedger)):
            raise UsageError(
                f"ledger takes a SQLiteLedger or PostgresLedger, got {safe_type_name(ledger)}"
            )
        self.ledger: CallLedger | None = ledger
        """Where each call of a batch with a ``batch_id`` is recorded; None for nowhere."""
        self.cache: Cache | bool | None = cache
        """The result cache; None: a ``MemoryCache`` once a tool declares ``cache_ttl``."""
        self._default_cache: Cache | None = None
        self.middleware: tuple[Middleware, ...] = check_middleware(middleware, "Orchestrator")
        """Wraps every call's chain, outside each tool's own middleware (see ``policies``)."""
        self.decider: Decider | None = as_decider(decider) if decider is not None else None
        """Asked between steps (see ``decide_on``); None to never ask."""
        self.decide_on: DecideOn = decide_on
        self.decider_timeout = decider_timeout
        """Seconds one decision may take before the fallback applies (None: no bound)."""
        self.decision_output_chars = decision_output_chars
        """How much of each finished call's output a decider sees."""
        self.tools: dict[str, Tool] = tool_table(tools)
        """Name -> tool."""
        self.max_concurrency = max_concurrency
        self.strategy: Literal["auto", "serial"] = strategy
        self.tracer_provider = tracer_provider
        """Where spans go; None for the global provider (no SDK configured: next to no cost)."""
        self.workflow_name = workflow_name
        """Names the batch span ``invoke_workflow {workflow_name}``; your agent's name, say."""
        self.trace_content: TraceContent = (
            trace_content
            if isinstance(trace_content, TraceContent)
            else TraceContent(enabled=trace_content)
        )
        """Whether tool arguments and outputs go on spans (off unless opted in)."""
        self._own_tracer: trace.Tracer | None = None
        self._cached_options: tuple[tuple[Any, ...], RunOptions] | None = None
        self._cached_tracing: tuple[tuple[Any, ...], Tracing] | None = None
        self._threads: WorkerThreads | None = None
        self._closed = False

    async def __aenter__(self) -> Orchestrator:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the worker threads; ``run()`` raises ``UsageError`` afterwards. Threads
        still running an abandoned blocking call end when it returns; nothing waits for them."""
        self.close()

    def close(self) -> None:
        """``aclose()`` for synchronous code."""
        self._closed = True
        if self._threads is not None:
            self._threads.shutdown(wait=False)
            self._threads = None

    def plan(self, calls: Iterable[ToolCall | Mapping[str, Any]]) -> ExecutionPlan:
        """Plan ``calls`` without running anything. Raises ``InvalidBatchError`` for a batch
        that is not a list of calls or repeats an id; every other problem is in the plan."""
        return plan_batch(coerce_batch(calls), self.tools, self.strategy)[0]

    async def run(
        self,
        calls: Iterable[ToolCall | Mapping[str, Any]],
        *,
        goal: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        batch_id: str | None = None,
    ) -> BatchResult:
        """Run ``calls`` and return one result per call, in the order given. ``goal`` (the
        user's request) is shown to the decider; ``metadata`` (a user id, a session) reaches
        every middleware as ``CallRequest.metadata``. ``batch_id`` names the batch (the model
        response's id, say); with a ``ledger``, running a ``batch_id`` again resumes it.

        Raises only ``InvalidBatchError`` (before anything runs), ``UsageError`` for a mistake
        in the call itself (``metadata`` that is not a mapping, an orchestrator already
        closed), and, when the caller cancels it, ``CancelledError`` after every running call
        was cancelled. A tool's (or a middleware's) exception, timeout or bad arguments become
        that call's result.
        """
        self._check_open()
        batch = Batch(
            self._options(),
            self._tracing(),
            goal=goal,
            metadata=metadata,
            batch_id=check_batch_id(batch_id),
        )
        try:
            if batch.span is trace.INVALID_SPAN:  # no SDK: the caller's context stays current
                return await self._run(batch, calls)
            with use_span(batch.span, end_on_exit=False, record_exception=False):
                return await self._run(batch, calls)
        except BaseException as exc:
            batch.failed(exc)
            raise
        finally:
            batch.end()

    async def _run(
        self, batch: Batch, calls: Iterable[ToolCall | Mapping[str, Any]]
    ) -> BatchResult:
        plan, prepared = plan_batch(coerce_batch(calls), self.tools, self.strategy)
        await batch.start(prepared).execute()
        return batch.result(plan)

    def stream(
        self,
        *,
        goal: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        batch_id: str | None = None,
    ) -> BatchStream:
        """A batch whose calls arrive one by one, as a streamed model response writes them:
        ``async with orchestrator.stream() as batch: batch.add(call)``, then
        ``batch.result``. Each call starts as soon as it is added and its dependencies allow.
        ``batch_id`` is as for ``run()``."""
        self._check_open()
        read_only(metadata)  # a mistake is told here, not when the stream is entered
        checked = check_batch_id(batch_id)
        return BatchStream(
            lambda: Batch(
                self._options(), self._tracing(), goal=goal, metadata=metadata, batch_id=checked
            ),
            self.tools,
            self.strategy,
        )

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("this Orchestrator was closed; create a new one to run more batches")
        if self.ledger is not None and self.ledger.closed:
            raise UsageError(
                "this Orchestrator's ledger was closed; give it an open one (or ledger=None)"
            )

    def _options(self) -> RunOptions:
        """This orchestrator's settings, as one batch runs with them (made again only when a
        setting changed: they are public attributes)."""
        key = (
            self.strategy,
            self.max_concurrency,
            self.middleware,
            self.decider,
            self.decider_timeout,
            self.decide_on,
            self.decision_output_chars,
            self.cache,
            self.ledger,
            any(t.declares_resources for t in self.tools.values()),
            any(t.cache_ttl is not None for t in self.tools.values()),
        )
        cached = self._cached_options
        if cached is not None and cached[0] == key:
            return cached[1]
        decider, timeout = self.decider, self.decider_timeout
        options = RunOptions(
            serial=self.strategy == "serial",  # forced; a detected chain follows its edges
            max_concurrency=self.max_concurrency,
            executor=self._pool,
            middleware=self.middleware,
            gate=None if decider is None else lambda: DecisionGate(decider, timeout=timeout),
            decide_on=self.decide_on,
            output_chars=self.decision_output_chars,
            cache=self._cache_in_use(),
            ledger=self.ledger,
            resources=key[-2],
        )
        self._cached_options = (key, options)
        return options

    def _cache_in_use(self) -> Cache | None:
        cache = self.cache
        if isinstance(cache, Cache):
            return cache
        if cache is False:
            return None
        if cache is None and not any(t.cache_ttl is not None for t in self.tools.values()):
            return None
        if self._default_cache is None:
            self._default_cache = MemoryCache()
        return self._default_cache

    def _tracing(self) -> Tracing:
        key = (self._tracer(), self.workflow_name, self.trace_content)
        cached = self._cached_tracing
        if cached is None or cached[0] != key:
            self._cached_tracing = cached = (key, Tracing(*key))
        return cached[1]

    def _tracer(self) -> trace.Tracer | None:
        if self.tracer_provider is None:
            return _GLOBAL_TRACER if _sdk_configured() else None
        if self._own_tracer is None:
            self._own_tracer = self.tracer_provider.get_tracer("toolweave", _VERSION)
        return self._own_tracer

    def run_sync(
        self,
        calls: Iterable[ToolCall | Mapping[str, Any]],
        *,
        goal: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        batch_id: str | None = None,
    ) -> BatchResult:
        """``run()`` for code without an event loop. Inside a running loop, await ``run()``.

        A blocking tool may call ``run_sync`` (on this orchestrator or another): it runs in a
        worker thread, which has no event loop, and gets threads of its own."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return run_to_end(self.run(calls, goal=goal, metadata=metadata, batch_id=batch_id))
        raise UsageError(
            "run_sync() was called inside a running event loop; use 'await orchestrator.run(...)'"
        )

    def _pool(self) -> Executor:
        # Our own threads: the loop's default pool has only cpu_count + 4 of them, a fixed
        # number that abandoned calls would use up, and asyncio.run() waits for it at exit.
        if self._threads is None:
            self._threads = WorkerThreads("toolweave")
        return self._threads


_sdk_seen = False


def _sdk_configured() -> bool:
    """Whether a tracer provider was set globally (once set, it stays)."""
    global _sdk_seen
    if not _sdk_seen:
        _sdk_seen = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    return _sdk_seen
