"""One batch from its span's start to its ``BatchResult``: the part ``run()`` and
``stream()`` share (the batch span, the observers, the run loop, the result)."""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span

from toolweave.telemetry import TraceContent
from toolweave.telemetry._values import safe_str

from ._errors import UsageError
from ._log import log_event
from ._models import BatchResult, ExecutionPlan
from ._observe import LogObserver, Observers
from ._planner import Prepared
from ._run_loop import BatchRun, RunOptions
from ._tracing import BatchTrace, end_span, mark_failed, start_batch_span

__all__ = ["Batch", "Tracing", "check_batch_id", "read_only"]

_NO_METADATA: Mapping[str, Any] = MappingProxyType({})
_LOG = LogObserver()
_PROCESS = os.urandom(6).hex() + "-"  # batch ids: unique across processes, cheap within one
_batches = itertools.count(1)
_quiet: Observers | None = None  # logging only, DEBUG off: the same for every batch


def _logging_only() -> Observers:
    global _quiet
    if _LOG.observes_calls:
        return Observers(_LOG)
    if _quiet is None:
        _quiet = Observers(_LOG)  # DEBUG is off now: it skips call events
    return _quiet


def check_batch_id(batch_id: Any) -> str | None:
    """``batch_id`` as given to ``run()``/``stream()``: None, or text of 1 to 1,000
    characters; ``UsageError`` otherwise."""
    if batch_id is None:
        return None
    if not isinstance(batch_id, str) or not batch_id or len(batch_id) > 1000:
        raise UsageError(
            "batch_id must be a non-empty string of at most 1,000 characters (the model "
            f"response's id, say), got {safe_str(batch_id, 60)!r}"
        )
    return batch_id


def read_only(metadata: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The caller's ``metadata`` as middleware see it: a read-only copy."""
    if metadata is not None and not isinstance(metadata, Mapping):
        raise UsageError(f"metadata must be a mapping (a dict), got {type(metadata).__name__}")
    return _NO_METADATA if not metadata else MappingProxyType(dict(metadata))


class Tracing:
    """Where an orchestrator's spans go (``tracer`` None: no SDK is configured, so there are
    no spans to make), and what they may carry."""

    __slots__ = ("content", "tracer", "workflow_name")

    def __init__(
        self, tracer: trace.Tracer | None, workflow_name: str, content: TraceContent
    ) -> None:
        self.tracer = tracer
        self.workflow_name = workflow_name
        self.content = content


class Batch:
    """Opens the batch span at once; ``start()`` makes the run, ``result()`` ends it well,
    ``failed()`` ends it badly, ``end()`` always closes the span."""

    run: BatchRun
    """The run loop, once ``start()`` made it."""

    def __init__(
        self,
        options: RunOptions,
        tracing: Tracing,
        *,
        goal: str | None,
        metadata: Mapping[str, Any] | None,
        batch_id: str | None = None,
    ) -> None:
        self.options = options
        self.tracing = tracing
        self.goal = goal
        self.metadata = read_only(metadata)
        self.named = batch_id is not None
        """Whether the caller named the batch (only such a batch is recorded in a ledger)."""
        self.batch_id = f"{_PROCESS}{next(_batches):x}" if batch_id is None else batch_id
        self.started_at = time.time()
        self.trace: BatchTrace | None = None
        if tracing.tracer is None:
            self.span: Span = trace.INVALID_SPAN
        else:
            self.span = start_batch_span(tracing.tracer, tracing.workflow_name)
            if self.span.is_recording():
                self.trace = BatchTrace(tracing.tracer, self.span, tracing.content)
        self.observers = _logging_only() if self.trace is None else Observers(_LOG, self.trace)

    def start(self, prepared: list[Prepared], *, open: bool = False) -> BatchRun:
        """The run loop for these calls (and, with ``open``, calls still to come)."""
        self.run = BatchRun(
            self.options,
            prepared,
            open=open,
            goal=self.goal,
            metadata=self.metadata,
            batch_id=self.batch_id,
            observers=self.observers,
            named=self.named,
        )
        return self.run

    def result(self, plan: ExecutionPlan) -> BatchResult:
        """The batch's result, once its run ended; observers hear of it."""
        run = self.run
        result = run.book.batch_result(
            plan,
            started_at=self.started_at,
            decisions=run.decisions,
            stopped=run.stopped,
            batch_id=self.batch_id,
        )
        self.observers.batch_finished(plan, result)
        return result

    def failed(self, exc: BaseException) -> None:
        """The batch raised: it was invalid, or its run was cancelled or interrupted."""
        run = getattr(self, "run", None)
        if run is not None:
            log_event(
                logging.WARNING,
                "orchestration.execution_failed",
                reason=type(exc).__name__,
                calls=len(run.prepared),
            )
        mark_failed(self.span, exc, self.tracing.content)

    def end(self) -> None:
        """Close the batch span."""
        if self.span is not trace.INVALID_SPAN:
            end_span(self.span)
