"""The result book: one ``CallResult`` per call, the outputs later calls read, and the
order in which calls finished; at the end, the ``BatchResult``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._errors import CallError, ErrorType
from ._models import (
    BatchResult,
    CallResult,
    CallStatus,
    DecisionRecord,
    ExecutionPlan,
    FinishedCall,
    trusted,
)
from ._outcome import Outcome
from ._planner import Prepared
from ._references import preview

__all__ = ["ResultBook"]


class ResultBook:
    """What each call of one batch ended as. Written by the run loop only."""

    def __init__(self, prepared: list[Prepared], now: Callable[[], float]) -> None:
        self._prepared = prepared
        self._now = now
        self.results: list[CallResult | None] = [None] * len(prepared)
        self.outputs: list[Any] = [None] * len(prepared)
        """Each call's output (None until it succeeded), as references read it."""
        self.finished: list[int] = []
        """Indexes in the order their results were recorded."""
        self._seen: dict[int, FinishedCall] = {}  # what deciders saw of each, built once

    def grow(self) -> None:
        """Room for one more call (a streamed batch)."""
        self.results.append(None)
        self.outputs.append(None)

    def succeeded(self, p: Prepared, ran: Outcome) -> CallResult:
        """Call ``p`` returned ``ran.output``."""
        self.outputs[p.index] = ran.output
        return self._record(p, "ok", ran.output, None, None, None, ran)

    def failed(self, p: Prepared, error: CallError, ran: Outcome | None = None) -> CallResult:
        """Call ``p`` failed with ``error``; ``ran`` is None if it never started."""
        return self._record(p, "error", None, str(error), error.error_type, error, ran)

    def skipped(
        self, p: Prepared, reason: str, error_type: ErrorType, ran: Outcome | None = None
    ) -> CallResult:
        """Call ``p`` was skipped, for ``reason``; ``ran`` is None if it never started."""
        return self._record(p, "skipped", None, reason, error_type, None, ran)

    def _record(
        self,
        p: Prepared,
        status: CallStatus,
        output: Any,
        message: str | None,
        error_type: ErrorType | None,
        exception: BaseException | None,
        ran: Outcome | None,
    ) -> CallResult:
        self.finished.append(p.index)
        prepared = self._prepared
        self.results[p.index] = result = trusted(
            CallResult,
            {
                "call_id": p.call.id,
                "name": p.call.name,
                "status": status,
                "output": output,
                "error": message,
                "error_type": error_type,
                "arguments": None if ran is None else ran.arguments,
                "group_index": p.level,
                "execution_order": None if ran is None else ran.order,
                "depends_on": [prepared[d].call.id for d in p.deps],
                "attempts": 0 if ran is None else ran.attempts,
                "started_at": None if ran is None else ran.started,
                "ended_at": self._now(),
                "exception": exception,
                "replayed": False if ran is None else ran.replayed,
                "cached": False if ran is None else ran.cached,
                "deduplicated_from": None if ran is None else ran.deduplicated_from,
                "ordered_after": (
                    [prepared[j].call.id for j in p.ordered_after] if p.ordered_after else []
                ),
            },
        )
        return result

    def finished_call(self, position: int, output_chars: int) -> FinishedCall:
        """The ``position``-th call to finish, as deciders see it (built once per call)."""
        i = self.finished[position]
        seen = self._seen.get(i)
        if seen is None:
            r = self.results[i]
            assert r is not None
            self._seen[i] = seen = FinishedCall(
                call_id=r.call_id,
                name=r.name,
                status=r.status,
                output=None if r.status != "ok" else preview(r.output, output_chars),
                error=r.error,
            )
        return seen

    def batch_result(
        self,
        plan: ExecutionPlan,
        *,
        started_at: float,
        decisions: list[DecisionRecord],
        stopped: str | None,
        batch_id: str,
    ) -> BatchResult:
        """The ``BatchResult``, once every call has its result."""
        results = [r for r in self.results if r is not None]
        if len(results) != len(self.results):  # every call must settle; anything else is a bug
            raise RuntimeError("toolweave: a call of the batch ended without a result")
        return trusted(
            BatchResult,
            {
                "plan": plan,
                "results": results,
                "elapsed": self._now(),
                "started_at": started_at,
                "decisions": decisions,
                "stopped": stopped,
                "batch_id": batch_id,
            },
        )
