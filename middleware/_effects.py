"""Side effects and repeated work, around one call's chain: the call ledger (replay what an
earlier run of the batch finished, report what it left unfinished, record what ends now), the
result cache, and single flight (identical calls running at once in this process share one
execution).

The ledger is the outermost stage: a replayed call reaches neither the cache nor the chain.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from toolweave.telemetry._values import safe_str, safe_type_name, to_jsonable

from ._cache import Cache, CacheError, CacheHit
from ._durable import CallLedger, Claim, LedgerError, LedgerRecord
from ._errors import (
    CallError,
    LedgerCallError,
    LedgerConflictError,
    RecordedError,
    UncertainCallError,
    UsageError,
)
from ._hooks import CallRequest
from ._outcome import Outcome
from ._reuse import same_call

__all__ = ["Effects", "Ran"]

logger = logging.getLogger("toolweave")

Ran = Callable[[], Awaitable[Outcome]]
"""Runs the call's chain once and returns its ``Outcome``."""

# Single flight: per event loop (futures belong to one), per cache, per call signature.
_flights: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[int, str], asyncio.Future[Any]]
] = weakref.WeakKeyDictionary()
_FAILED: Any = object()
_NO_LIMIT = 1 << 62  # a replay gives back the whole output, not a preview


class Effects:
    """The ledger and cache stages for the calls of one batch."""

    def __init__(self, *, cache: Cache | None, ledger: CallLedger | None, batch_id: str) -> None:
        self._cache = cache
        self._ledger = ledger
        self._batch_id = batch_id

    def wanted(self, request: CallRequest) -> bool:
        """Whether this call goes through any stage here."""
        return self._ledger is not None or (
            self._cache is not None and request.tool.cache_ttl is not None
        )

    async def run(
        self,
        index: int,
        request: CallRequest,
        ran: Ran,
        started: float,
        order: int,
        *,
        fresh: bool = False,
    ) -> Outcome:
        """The call's ``Outcome``: replayed, reported, cached or run (``ran()``). ``fresh``:
        the call runs after a call of its batch that writes what it uses, so a cached answer
        may be stale: it runs (and its result is cached)."""
        ledger = self._ledger
        if ledger is None:
            return await self._cached(index, request, ran, started, order, fresh, None)
        call, tool = request.call, request.tool
        signature = same_call(tool.name, request.arguments)
        try:
            claim = await ledger.claim(self._batch_id, call.id, signature)
        except (LedgerError, UsageError) as exc:  # UsageError: closed while the batch ran
            failed = _ledger_failed(request, exc)
            failed.__cause__ = exc
            return self._failed(index, request, failed, started, order)
        if claim.state == "finished":
            assert claim.record is not None
            return self._replayed(index, request, claim.record, started, order)
        if claim.state == "conflict":
            error = LedgerConflictError(
                "not run: an earlier run of this batch recorded a call with this id and other "
                "arguments, so its result does not answer this call, and running it could "
                "repeat an action. (For the developer: give each batch its own batch_id.)",
                call_id=call.id,
                tool_name=call.name,
            )
            logger.warning(
                "toolweave: call %r of batch %r was recorded with other arguments "
                "(ledger_conflict): is a batch_id used for two batches?",
                call.id,
                self._batch_id,
            )
            return self._failed(index, request, error, started, order)
        if claim.state == "interrupted" and not tool.idempotent:
            uncertain = UncertainCallError(call_id=call.id, tool_name=call.name)
            outcome = self._failed(index, request, uncertain, started, order)
            await self._record(ledger, claim, outcome)
            return outcome
        called = False

        async def tracked() -> Any:
            nonlocal called
            called = True
            return await ran()

        try:
            outcome = await self._cached(index, request, tracked, started, order, fresh, signature)
        except BaseException:
            # Cancelled (or interrupted): if the tool may have run, the row stays "started"
            # and a resume reports it; if it never did, the claim is withdrawn.
            await asyncio.shield(self._let_go(ledger, claim, forget=not called))
            raise
        if outcome.status == "skipped":
            # A middleware skipped it (a policy, an interrupt): the tool never ran, so a
            # resume asks the middleware again rather than replaying the skip.
            await asyncio.shield(self._let_go(ledger, claim, forget=True))
        else:
            await self._record(ledger, claim, outcome)
        return outcome

    async def _cached(
        self,
        index: int,
        request: CallRequest,
        ran: Ran,
        started: float,
        order: int,
        fresh: bool,
        signature: str | None,
    ) -> Outcome:
        """``signature``: ``same_call`` of the request, when the ledger stage made it."""
        cache, ttl = self._cache, request.tool.cache_ttl
        if cache is None or ttl is None:
            return await ran()
        if signature is None:
            signature = same_call(request.tool.name, request.arguments)
        key = f"{request.tool.name}:{signature}"
        if fresh:
            return await self._store(cache, key, ttl, await ran())
        try:
            hit = await cache.get(key)
        except Exception as exc:  # a cache is an optimisation: never a reason to fail a call
            logger.warning("toolweave: cache lookup failed, running the call: %s", _said(exc))
            hit = None
        if hit is not None and not isinstance(hit, CacheHit):
            logger.warning(
                "toolweave: %s.get() returned %s, not a CacheHit; running the call",
                safe_type_name(cache),
                safe_type_name(hit),
            )
            hit = None
        if hit is not None:
            return Outcome(
                index, "ok", dict(request.arguments), started, order, 0, hit.value, cached=True
            )
        flights = _flights.setdefault(asyncio.get_running_loop(), {})
        slot = (id(cache), key)
        flight = flights.get(slot)
        if flight is not None:
            output = await asyncio.shield(flight)
            if output is not _FAILED:
                return Outcome(
                    index, "ok", dict(request.arguments), started, order, 0, output, cached=True
                )
            return await ran()  # the other call failed: errors are not shared
        flights[slot] = flight = asyncio.get_running_loop().create_future()
        try:
            outcome = await ran()
        except BaseException:
            flight.set_result(_FAILED)
            raise
        finally:
            del flights[slot]
        flight.set_result(outcome.output if outcome.status == "ok" else _FAILED)
        return await self._store(cache, key, ttl, outcome)

    @staticmethod
    async def _store(cache: Cache, key: str, ttl: float, outcome: Outcome) -> Outcome:
        if outcome.status == "ok":
            try:
                await cache.set(key, outcome.output, ttl)
            except Exception as exc:
                logger.warning("toolweave: storing a result in the cache failed: %s", _said(exc))
        return outcome

    def _replayed(
        self, index: int, request: CallRequest, record: LedgerRecord, started: float, order: int
    ) -> Outcome:
        call = request.call
        if record.status == "ok":
            return Outcome(
                index, "ok", dict(request.arguments), started, order, 0, record.output,
                replayed=True,
            )  # fmt: skip
        message = record.error or "(no message recorded)"
        if record.status == "skipped":
            return Outcome(index, "skipped", None, started, order, 0, reason=message, replayed=True)
        error = RecordedError(
            message,
            record.error_type or "tool_error",  # type: ignore[arg-type]
            call_id=call.id,
            tool_name=call.name,
        )
        return Outcome(index, "error", None, started, order, 0, error=error, replayed=True)

    def _failed(
        self, index: int, request: CallRequest, error: CallError, started: float, order: int
    ) -> Outcome:
        return Outcome(index, "error", None, started, order, 0, error=error)

    async def _record(self, ledger: CallLedger, claim: Claim, outcome: Outcome) -> None:
        """Write how the call ended. A failure here leaves the row "started" (a resume
        reports it uncertain, the truth), and is logged; the batch goes on."""
        error = outcome.error  # set for "error"; a skipped call is released, not recorded
        record = LedgerRecord(
            status=outcome.status,
            output=to_jsonable(outcome.output, max_items=_NO_LIMIT) if error is None else None,
            error=None if error is None else str(error),
            error_type=None if error is None else error.error_type,
            attempts=outcome.attempts,
        )
        try:
            await asyncio.shield(ledger.finish(claim, record))
        except Exception as exc:
            logger.warning(
                "toolweave: recording a call's result in the ledger failed: %s", _said(exc)
            )

    @staticmethod
    async def _let_go(ledger: CallLedger, claim: Claim, *, forget: bool) -> None:
        try:
            if forget:  # withdraws a new claim; an interrupted one stays "started"
                await ledger.release(claim)
            else:
                await ledger.abandon(claim)
        except Exception as exc:
            logger.warning("toolweave: the ledger could not let go of a call: %s", _said(exc))


def _said(exc: BaseException) -> str:
    """What a cache or ledger failure says: its own message for ours (they name the backend,
    never a key or a value), only its type for anything else."""
    if isinstance(exc, CacheError | LedgerError):
        return safe_str(exc)
    return safe_type_name(exc)


def _ledger_failed(request: CallRequest, exc: Exception) -> LedgerCallError:
    logger.warning("toolweave: the call ledger failed: %s", _said(exc))
    return LedgerCallError(
        "the call ledger could not be reached, so the call was not run (it would not be "
        "recorded, and could run twice on a resume). Try again later.",
        call_id=request.call.id,
        tool_name=request.call.name,
    )
