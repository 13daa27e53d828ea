"""Every exception toolweave defines, in one place.

    ToolweaveError
    ├── UsageError                 the developer's code misuses the API (raised where it is built)
    ├── InvalidBatchError          the batch as a whole cannot be run (raised before anything runs)
    ├── CacheError                 a result cache's backend cannot be used (in _cache.py); the
    │                              engine logs it and runs the call as on a miss
    ├── LedgerError                the call ledger's database failed (in _durable.py); the
    │                              engine reports the call ``ledger_error`` without running it
    ├── DeciderError               a decider could not decide; the engine catches it and falls back
    │   ├── InvalidDecisionError   the answer is not a valid decision (bad JSON, shape, cut off)
    │   ├── DecisionRefusedError   the model refused to answer
    │   └── DeciderUnavailableError  no answer within the time bounds (timeouts, rate limits)
    └── CallError                  one call failed; never raised out of ``run()``, carried on its
        │                          ``CallResult`` (``exception``) with ``call_id`` and ``tool_name``
        ├── InvalidCallError       the call itself is malformed (a duplicate id, a kind of call
        │                          toolweave cannot run); an adapter found it while reading
        ├── InvalidArgumentsError  arguments are not a JSON object or fail the tool's schema
        ├── UnknownToolError       the call names a tool the orchestrator does not have
        ├── InvalidReferenceError  a reference is malformed, unknown, circular to itself, or
        │                          matches nothing
        ├── CircularDependencyError  the call is on a cycle of references / depends_on
        ├── ToolTimeoutError       the tool's last attempt ran past its timeout
        ├── ToolExecutionError     the tool raised; the original exception is ``__cause__``
        ├── UncertainCallError     an earlier run of the batch started it and died before
        │                          recording how it ended; not repeated (not idempotent)
        ├── LedgerConflictError    the ledger holds this call id with other arguments
        ├── LedgerCallError        the ledger could not be used for this call; it did not run
        └── RecordedError          a failure replayed from the ledger, its type as recorded

    SkipCall                       not an error: raised by a middleware, it makes its call
                                   ``skipped`` with the reason given

Messages are written for the model that made the call: they name the call, the field or
reference, and what to change.
"""

from __future__ import annotations

from typing import Literal

from toolweave.telemetry._values import safe_str, safe_type_name

__all__ = [
    "CallError",
    "CircularDependencyError",
    "DeciderError",
    "DeciderUnavailableError",
    "DecisionRefusedError",
    "ErrorType",
    "InvalidArgumentsError",
    "InvalidBatchError",
    "InvalidCallError",
    "InvalidDecisionError",
    "InvalidReferenceError",
    "LedgerCallError",
    "LedgerConflictError",
    "RecordedError",
    "SkipCall",
    "ToolExecutionError",
    "ToolTimeoutError",
    "ToolweaveError",
    "UncertainCallError",
    "UnknownToolError",
    "UsageError",
]

ErrorType = Literal[
    "invalid_call",
    "invalid_arguments",
    "unknown_tool",
    "invalid_reference",
    "circular_dependency",
    "timeout",
    "tool_error",
    "dependency_failed",
    "skipped_by_decider",
    "stopped_by_decider",
    "skipped_by_middleware",
    "uncertain",
    "ledger_conflict",
    "ledger_error",
]
"""Why a call did not succeed; ``CallResult.error_type`` carries it."""


class ToolweaveError(Exception):
    """Base class of every exception toolweave raises."""


class UsageError(ToolweaveError):
    """The developer's code misuses the API: an unknown option value, a tool that cannot be
    described, two tools with one name. Raised where the object is built, never mid-run."""


class InvalidBatchError(ToolweaveError):
    """The batch as a whole cannot be run: it is not a list of calls, an item is not a call,
    or two calls share an id. Raised by ``Orchestrator.run()`` and ``plan()`` before any call
    starts; every other problem is reported per call."""

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position
        """0-based position of the offending item in the batch, where one item is to blame."""


class DeciderError(ToolweaveError):
    """A decider could not reach a decision. Raised inside ``decide()``; the engine catches it,
    applies the fallback decision and records the message on the ``DecisionRecord``."""


class InvalidDecisionError(DeciderError):
    """The decider's answer is not a valid ``Decision``: not JSON, the wrong shape, or cut off."""


class DecisionRefusedError(DeciderError):
    """The model refused to answer (its ``refusal`` text is the message)."""


class DeciderUnavailableError(DeciderError):
    """No answer within the decider's bounds: attempts timed out, or the server asked to wait
    longer than ``max_wait`` leaves."""


class CallError(ToolweaveError):
    """One call of a batch failed. ``run()`` never raises it: it is the ``exception`` of that
    call's ``CallResult``, and ``str()`` of it is the ``error`` text shown to the model."""

    error_type: ErrorType = "tool_error"

    def __init__(self, detail: str, *, call_id: str, tool_name: str) -> None:
        self.call_id = call_id
        self.tool_name = tool_name
        self.detail = detail
        super().__init__(f"call '{call_id}' ({tool_name}): {detail}")


class InvalidCallError(CallError):
    """The call itself cannot run as the model wrote it: an adapter found it malformed while
    reading the model's response (a repeated id, a custom tool call, a stream that broke off
    before the call was complete) and said why in ``ToolCall.error``."""

    error_type: ErrorType = "invalid_call"


class InvalidArgumentsError(CallError):
    """The arguments are not one JSON object, or do not validate against the tool's schema."""

    error_type: ErrorType = "invalid_arguments"


class UnknownToolError(CallError):
    """The call names a tool that the orchestrator was not given."""

    error_type: ErrorType = "unknown_tool"


class InvalidReferenceError(CallError):
    """A reference in the arguments (or a ``depends_on`` entry) is malformed, names no call of
    the batch, names the call itself, points forward under ``strategy="serial"``, or its path
    matches nothing in the target's output."""

    error_type: ErrorType = "invalid_reference"


class CircularDependencyError(CallError):
    """The call lies on a cycle of references and ``depends_on`` edges."""

    error_type: ErrorType = "circular_dependency"

    def __init__(
        self, cycle: list[str], *, call_id: str, tool_name: str, group_size: int | None = None
    ) -> None:
        self.cycle = cycle
        """Call ids around a cycle, first and last the same: this call's own shortest cycle,
        or, in a group of more than 64 calls, one example cycle of the group."""
        self.group_size = group_size
        """How many calls wait on each other in the group, when only an example is named."""
        shown = " -> ".join(cycle if len(cycle) <= 12 else [*cycle[:10], "...", cycle[-1]])
        where = (
            f"{shown}"
            if group_size is None
            else f"this call is one of {group_size} calls that wait on each other, e.g. {shown}"
        )
        super().__init__(
            f"circular dependency: {where}. Each call waits for the next one; "
            "remove one of these references or depends_on entries.",
            call_id=call_id,
            tool_name=tool_name,
        )


class ToolTimeoutError(CallError):
    """The tool's last attempt did not finish within its ``timeout``."""

    error_type: ErrorType = "timeout"

    def __init__(self, timeout: float, attempts: int, *, call_id: str, tool_name: str) -> None:
        self.timeout = timeout
        self.attempts = attempts
        tries = "" if attempts <= 1 else f" (on each of {attempts} attempts)"
        super().__init__(
            f"timed out after {timeout:.3g} s{tries}. Try a smaller request or another approach.",
            call_id=call_id,
            tool_name=tool_name,
        )


class ToolExecutionError(CallError):
    """The tool raised an exception on its last attempt; that exception is ``__cause__``."""

    error_type: ErrorType = "tool_error"

    def __init__(self, exc: BaseException, attempts: int, *, call_id: str, tool_name: str) -> None:
        self.attempts = attempts
        tries = "" if attempts <= 1 else f" after {attempts} attempts"
        text = safe_str(exc) or "(no message)"
        super().__init__(
            f"failed{tries}: {safe_type_name(exc)}: {text}",
            call_id=call_id,
            tool_name=tool_name,
        )


class UncertainCallError(CallError):
    """The call was started in an earlier run of its batch (``batch_id``) that ended before
    recording how it ended: its tool is not idempotent, so it is not run again, and whether
    its action took effect is unknown."""

    error_type: ErrorType = "uncertain"

    def __init__(self, *, call_id: str, tool_name: str) -> None:
        super().__init__(
            "uncertain: an earlier run of this batch started this call and stopped before its "
            "result was recorded, so its action may or may not have taken effect. It was not "
            "repeated. Check whether it took effect (look the result up with a read-only "
            "tool) before calling it again.",
            call_id=call_id,
            tool_name=tool_name,
        )


class LedgerConflictError(CallError):
    """The batch's ledger holds this call (same ``batch_id``, same call id) with other
    arguments: the batch being resumed is not the batch that ran."""

    error_type: ErrorType = "ledger_conflict"


class LedgerCallError(CallError):
    """The call ledger could not be read or written for this call (its database is down, say);
    the call was not run, so nothing happened twice."""

    error_type: ErrorType = "ledger_error"


class RecordedError(CallError):
    """A call's failure as the call ledger recorded it in an earlier run of its batch, given
    again on resume; ``error_type`` is the recorded one."""

    def __init__(
        self, message: str, error_type: ErrorType, *, call_id: str, tool_name: str
    ) -> None:
        self.call_id = call_id
        self.tool_name = tool_name
        self.detail = message
        self.error_type = error_type
        Exception.__init__(self, message)


class SkipCall(Exception):
    """Raise it in a middleware to skip the call: its result is ``skipped`` with ``reason``
    (``error_type="skipped_by_middleware"``), and calls that need its output are skipped too.

    >>> async def no_deletes(request, call_next):
    ...     if request.tool.name.startswith("delete_"):
    ...         raise SkipCall("deleting is not allowed in this session")
    ...     return await call_next(request)
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
