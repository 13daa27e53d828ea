"""Observers: what the run loop tells at fixed points (a call started or ended, a decision
started or ended, the batch finished). Logging and OpenTelemetry are two observers; an
observer that fails is logged and skipped, never a reason for a run to fail."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from ._log import log_event, logger

if TYPE_CHECKING:
    from ._models import BatchResult, CallResult, DecisionContext, DecisionRecord, ExecutionPlan
    from ._planner import Prepared

__all__ = ["LogObserver", "Observer", "Observers"]


class Observer(Protocol):
    """The points the run loop reports. ``call_started`` and ``decision_started`` run inside
    the call's (decision's) own task, so an observer may set context for what runs there. An
    optional ``observes_calls`` attribute, read as a batch starts, set false, spares the
    observer the call events of that batch."""

    def call_started(self, p: Prepared, order: int) -> None:
        """Call ``p`` starts (its middleware and tool run next), ``order``-th of the batch."""

    def call_ended(self, p: Prepared, result: CallResult) -> None:
        """Call ``p`` has its final result (it may never have started)."""

    def decision_started(self, key: object, context: DecisionContext) -> None:
        """The decider is asked; ``key`` names this decision in ``decision_ended``."""

    def decision_ended(self, key: object, record: DecisionRecord) -> None:
        """A decision was applied (possibly the fallback, possibly never started)."""

    def batch_finished(self, plan: ExecutionPlan, result: BatchResult) -> None:
        """Every call has its result."""


class Observers:
    """Tells every observer, in order; one that raises is logged and the others still hear."""

    __slots__ = ("_all", "_calls")

    def __init__(self, *observers: Observer) -> None:
        self._all = observers
        # Calls are the hot path: an observer may say, as the batch starts, that it skips them.
        self._calls = tuple(o for o in observers if getattr(o, "observes_calls", True))

    def call_started(self, p: Prepared, order: int) -> None:
        for o in self._calls:
            try:
                o.call_started(p, order)
            except Exception:
                _failed(o, "call_started")

    def call_ended(self, p: Prepared, result: CallResult) -> None:
        for o in self._calls:
            try:
                o.call_ended(p, result)
            except Exception:
                _failed(o, "call_ended")

    def decision_started(self, key: object, context: DecisionContext) -> None:
        for o in self._all:
            try:
                o.decision_started(key, context)
            except Exception:
                _failed(o, "decision_started")

    def decision_ended(self, key: object, record: DecisionRecord) -> None:
        for o in self._all:
            try:
                o.decision_ended(key, record)
            except Exception:
                _failed(o, "decision_ended")

    def batch_finished(self, plan: ExecutionPlan, result: BatchResult) -> None:
        for o in self._all:
            try:
                o.batch_finished(plan, result)
            except Exception:
                _failed(o, "batch_finished")


def _failed(observer: Observer, point: str) -> None:
    logger.warning(
        "toolweave: observer %s failed in %s", type(observer).__name__, point, exc_info=True
    )


class LogObserver:
    """Structured events on the ``toolweave`` logger: calls and decisions at DEBUG, the
    batch's outcome at INFO (all succeeded) or WARNING."""

    @property
    def observes_calls(self) -> bool:
        """Whether call events are logged at all (DEBUG is on as the batch starts)."""
        return logger.isEnabledFor(logging.DEBUG)

    def call_started(self, p: Prepared, order: int) -> None:
        """``orchestration.call_started``."""
        log_event(
            logging.DEBUG,
            "orchestration.call_started",
            call_id=p.call.id,
            tool=p.call.name,
            execution_order=order,
        )

    def call_ended(self, p: Prepared, result: CallResult) -> None:
        """``orchestration.call_finished``."""
        log_event(
            logging.DEBUG,
            "orchestration.call_finished",
            call_id=p.call.id,
            tool=p.call.name,
            status=result.status,
            attempts=result.attempts,
        )

    def decision_started(self, key: object, context: DecisionContext) -> None:
        """Nothing: the decision is logged when it is made."""

    def decision_ended(self, key: object, record: DecisionRecord) -> None:
        """``orchestration.decision_made``."""
        log_event(
            logging.DEBUG,
            "orchestration.decision_made",
            call_ids=",".join(record.call_ids),
            action=record.decision.effective,
            fallback=record.fallback,
        )

    def batch_finished(self, plan: ExecutionPlan, result: BatchResult) -> None:
        """``orchestration.execution_completed`` or ``orchestration.execution_failed``."""
        ok = result.ok
        level = logging.INFO if ok else logging.WARNING
        if not logger.isEnabledFor(level):
            return
        counts = {s: len(result.by_status(s)) for s in ("ok", "error", "skipped")}
        log_event(
            level,
            "orchestration.execution_completed" if ok else "orchestration.execution_failed",
            strategy=result.plan.strategy,
            elapsed=f"{result.elapsed:.4f}",
            **counts,
        )
