"""Deciding between steps: what a decider sees, what it answers, and how its answers are kept.

The engine asks a decider before calls that depend on other calls start. ``DecisionGate`` is
the one place that calls a decider: it bounds its time, validates its answer, opens a circuit
breaker after repeated failures, and falls back, so a decider can never take a batch down.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, TypeAlias, cast, runtime_checkable

from pydantic import ValidationError

from toolweave.telemetry._values import safe_str, safe_type_name

from ._errors import UsageError
from ._log import log_event
from ._models import Decision, DecisionContext, DecisionRecord
from ._threads import Escaped, shared_threads
from ._tools import is_async

__all__ = [
    "DecideOn",
    "Decider",
    "DecisionGate",
    "RuleDecider",
    "as_decider",
    "should_ask",
]

DEFAULT_FALLBACK_REASON = "the decider could not decide; continuing as planned"


@runtime_checkable
class Decider(Protocol):
    """Anything with ``async decide(context) -> Decision``.

    Optional attributes the engine honours: ``fallback`` (the ``Decision`` to use when this
    decider fails; default continue) and ``breaker`` (after that many consecutive failed
    decisions in one batch, stop asking; default 3).
    """

    async def decide(self, context: DecisionContext) -> Decision:
        """Decide whether the waiting calls run."""
        ...


Rule: TypeAlias = Callable[[DecisionContext], "Decision | Awaitable[Decision | None] | None"]
DecideOn: TypeAlias = Literal["steps", "failure"] | Callable[[DecisionContext], bool]
"""When to ask: ``steps`` (before calls that depend on others), ``failure`` (only when an
upstream call failed), or a predicate over the would-be context."""


class RuleDecider:
    """A decider made of plain functions, each ``rule(context) -> Decision | None`` (sync or
    async). Every rule is consulted: a ``stop`` wins, else the ``skip`` lists are merged, else
    the batch continues.

    Plain (sync) rules run in a worker thread, so one that blocks cannot stall the batch and
    the decider timeout still applies; ``async def`` rules run on the event loop and must not
    block it.

    >>> def empty_urls(ctx):
    ...     ids = [c.id for c in ctx.waiting if c.name == "fetch" and not c.arguments["url"]]
    ...     return Decision(action="skip", skip=ids, reason="empty url") if ids else None
    >>> decider = RuleDecider(empty_urls)
    """

    def __init__(self, *rules: Rule) -> None:
        if not rules:
            raise UsageError("RuleDecider needs at least one rule")
        self.rules = rules

    async def decide(self, context: DecisionContext) -> Decision:
        """Apply every rule; combine their answers."""
        skips: list[str] = []
        reasons: list[str] = []
        for rule in self.rules:
            if is_async(rule):
                answer = rule(context)
            else:
                answer = await asyncio.wrap_future(shared_threads().submit(rule, context))
            if inspect.isawaitable(answer):
                answer = await answer
            if answer is None:
                continue
            answer = _valid(answer)
            if answer.action == "stop":
                return answer
            if answer.effective == "skip":
                skips += [i for i in answer.skip if i not in skips]
                reasons.append(answer.reason)
        if skips:
            return Decision(action="skip", skip=skips, reason="; ".join(r for r in reasons if r))
        return Decision(action="continue", reason="no rule objected")


def _valid(answer: Any) -> Decision:
    """A ``Decision`` checked field by field: one built with ``model_construct`` (or mutated)
    may hold anything, so it is validated again like any other answer."""
    if isinstance(answer, Decision):
        answer = dict(answer.__dict__)
    return Decision.model_validate(answer)


def as_decider(obj: Any) -> Decider:
    """A ``Decider`` for ``obj``: an object with ``decide`` as it is, a function as a rule."""
    if hasattr(obj, "decide"):
        if not inspect.iscoroutinefunction(obj.decide):
            raise UsageError(f"{obj!r}.decide must be an async method")
        return cast(Decider, obj)
    if callable(obj):
        return RuleDecider(obj)
    raise UsageError(
        f"{obj!r} is not a decider: pass an object with 'async decide(context)' or a function"
    )


class DecisionGate:
    """Asks one batch's decider, safely. One gate per batch: the breaker counts per batch."""

    def __init__(self, decider: Decider, *, timeout: float | None) -> None:
        self.decider = decider
        self.timeout = timeout
        fallback = getattr(decider, "fallback", None)
        self.fallback: Decision = (
            fallback
            if isinstance(fallback, Decision)
            else Decision(action="continue", reason=DEFAULT_FALLBACK_REASON)
        )
        breaker = getattr(decider, "breaker", 3)
        self.breaker: int | None = breaker if isinstance(breaker, int) and breaker > 0 else None
        self.failures = 0

    async def ask(self, context: DecisionContext, started_at: float) -> DecisionRecord:
        """Ask the decider; always return a record, with the fallback if anything went wrong.

        Only ``KeyboardInterrupt`` and cancellation leave this method. The time bound is the
        caller's: it cancels the asking task, and calls ``expired()`` for the record, so that
        even a decider that swallows cancellation cannot hold a batch up.
        """
        start = time.perf_counter()
        ids = context.waiting_ids
        if self.breaker is not None and self.failures >= self.breaker:
            message = f"not asked: the decider failed {self.failures} times in a row in this batch"
            return self._record(context, start, started_at, None, "circuit_open", message)
        try:
            decision = _valid(await self.decider.decide(context))
            unknown = (
                [i for i in decision.skip if i not in ids] if decision.effective == "skip" else []
            )
            if unknown:
                raise _InvalidDecision(
                    f"skip names {', '.join(map(repr, unknown))}, not among the waiting calls "
                    f"({', '.join(ids)})"
                )
        except ValidationError as exc:
            message = f"the decider's answer is not a valid Decision: {_first(exc)}"
            return self._failed(context, start, started_at, "invalid_decision", message)
        except _InvalidDecision as exc:
            return self._failed(context, start, started_at, "invalid_decision", str(exc))
        except (KeyboardInterrupt, asyncio.CancelledError):
            raise
        except BaseException as exc:  # any failure of the decider means fallback, never a crash
            if isinstance(exc, Escaped):  # a sync rule raised SystemExit or the like
                exc = exc.exc
                if isinstance(exc, KeyboardInterrupt):
                    raise exc from None
            kind = safe_type_name(exc)
            return self._failed(context, start, started_at, kind, f"{kind}: {safe_str(exc)}")
        self.failures = 0
        return self._record(context, start, started_at, decision, None, None)

    def expired(self, context: DecisionContext, started_at: float, start: float) -> DecisionRecord:
        """The record of a decision that ran past ``timeout``: the fallback applies."""
        message = f"the decider did not answer within {self.timeout:g} s"
        return self._failed(context, start, started_at, "timeout", message)

    def cancelled(
        self, context: DecisionContext, started_at: float, start: float
    ) -> DecisionRecord:
        """The record of a decider that cancelled its own task: the fallback applies."""
        message = "the decider cancelled its own task"
        return self._failed(context, start, started_at, "cancelled", message)

    def _failed(
        self, context: DecisionContext, start: float, at: float, kind: str, message: str
    ) -> DecisionRecord:
        self.failures += 1
        log_event(logging.WARNING, "orchestration.decision_failed", error_type=kind, error=message)
        return self._record(context, start, at, None, kind, message)

    def _record(
        self,
        context: DecisionContext,
        start: float,
        at: float,
        decision: Decision | None,
        error_type: str | None,
        error: str | None,
    ) -> DecisionRecord:
        return DecisionRecord(
            call_ids=context.waiting_ids,
            decision=decision if decision is not None else self.fallback,
            fallback=decision is None,
            error=error,
            error_type=error_type,
            elapsed=time.perf_counter() - start,
            started_at=at,
            usage=dict(context._usage) if context._usage else None,
            model=context._model,
            trigger=context.trigger,
        )


class _InvalidDecision(Exception):
    """A well-formed decision that cannot apply (it names calls it was not asked about)."""


def _first(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "decision"
    return f"'{where}': {err['msg']}"


def should_ask(decide_on: DecideOn, context: DecisionContext) -> bool:
    """Whether this decision point asks the decider under ``decide_on``."""
    if decide_on == "steps":
        return context.trigger == "step"
    if decide_on == "failure":
        return context.trigger == "failure"
    return context.trigger == "step" and bool(decide_on(context))
