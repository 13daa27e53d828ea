"""The one hook shape around every call: ``async def mw(request, call_next) -> output``.

A middleware gets a ``CallRequest`` (the call, its tool, its validated arguments, the attempt)
and ``call_next``, the rest of the chain. It returns the call's output, from ``call_next`` or
its own (a cache hit), or raises: any exception becomes that call's error, except ``SkipCall``,
which skips the call. The innermost ``call_next`` runs the tool.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias

from toolweave.telemetry._values import safe_str

from ._errors import UsageError
from ._tasks import escaping

if TYPE_CHECKING:
    from ._models import ToolCall
    from ._tools import Tool

__all__ = ["CallContext", "CallNext", "CallRequest", "Middleware", "compose"]

_NO_METADATA: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class CallRequest:
    """One call on its way to its tool, as a middleware sees it.

    Frozen: change it with ``override(...)``, which returns a new request, and pass that to
    ``call_next``; the tool runs with the request that reaches it. ``override(tool=...)``
    changes the function the innermost ``call_next`` calls, not the chain already on the way
    (the other tool's own middleware and policies do not apply). Requests compare and hash
    by identity.
    """

    call: ToolCall
    """The call as the model wrote it."""
    tool: Tool
    """The tool that runs it."""
    arguments: Mapping[str, Any]
    """The arguments after references were resolved and the tool's schema validated them."""
    attempt: int = 1
    """1-based; the ``retry`` policy counts up for each attempt it passes on."""
    batch_id: str = ""
    """Names the batch: the same for every call of one ``run()`` or ``stream()``."""
    metadata: Mapping[str, Any] = field(default_factory=lambda: _NO_METADATA)
    """What the caller passed to ``run(..., metadata=...)``; read-only."""
    _idempotency_key: str | None = field(default=None, repr=False)

    @property
    def idempotency_key(self) -> str:
        """The same for this call whenever its batch runs again under the same ``batch_id`` (a
        resume): pass it to an API that accepts one (``Idempotency-Key``) so a repeat is a
        no-op. Derived from ``batch_id`` and the call's id (see ``CallContext``)."""
        key = self._idempotency_key
        if key is None:  # made when first read: most calls never need it
            from ._reuse import same_call

            key = idempotency_key(
                self.batch_id, self.call.id, same_call(self.tool.name, self.arguments)
            )
            object.__setattr__(self, "_idempotency_key", key)
        return key

    def override(self, **changes: Any) -> CallRequest:
        """A copy with ``changes`` applied: ``request.override(arguments={...})``."""
        unknown = sorted(set(changes) - _FIELDS)
        if unknown:
            raise UsageError(
                f"CallRequest.override() got unknown field(s) {', '.join(unknown)}; "
                f"it has {', '.join(sorted(_FIELDS))}"
            )
        for name, value in changes.items():
            _check_field(name, value)
        if "idempotency_key" in changes:
            changes["_idempotency_key"] = changes.pop("idempotency_key")
        elif "batch_id" in changes or "call" in changes:
            changes["_idempotency_key"] = None  # derived again from the new ones
        if "metadata" in changes:
            changes["metadata"] = MappingProxyType(dict(changes["metadata"]))
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        # Arguments are the model's data: a repr that lands in a log should not carry them.
        return (
            f"CallRequest(call_id={self.call.id!r}, tool={self.tool.name!r}, "
            f"attempt={self.attempt}, batch_id={self.batch_id!r})"
        )


_FIELDS = frozenset(
    ["idempotency_key", *(f.name for f in dataclasses.fields(CallRequest) if f.init and f.repr)]
)


def _check_field(name: str, value: Any) -> None:
    from ._models import ToolCall
    from ._tools import Tool

    expected: tuple[type, ...] = {
        "call": (ToolCall,),
        "tool": (Tool,),
        "arguments": (Mapping,),
        "metadata": (Mapping,),
        "batch_id": (str,),
        "idempotency_key": (str,),
        "attempt": (int,),
    }[name]
    bad_attempt = name == "attempt" and (isinstance(value, bool) or not value >= 1)
    if not isinstance(value, expected) or bad_attempt:
        want = "an int >= 1" if name == "attempt" else f"a {expected[0].__name__}"
        raise UsageError(
            f"CallRequest.override({name}=...) takes {want}, got {type(value).__name__}"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class CallContext:
    """What a tool may know about the call it serves: declare a parameter annotated
    ``CallContext`` (``def send(to: str, ctx: CallContext)``) and the engine passes it. The
    parameter never appears in the tool's schema; the model cannot set it.

    Fields: ``call_id`` (the call's id, as the model wrote it), ``batch_id`` (the batch's),
    ``idempotency_key`` (stable across resumes of the batch: send it with a side effect so
    that the service recognises a repeat) and ``attempt`` (1-based; 2 and up on retries).
    """

    call_id: str
    """The call's id, as the model wrote it."""
    batch_id: str
    """The batch's id (``run(..., batch_id=...)``, or one the engine made)."""
    idempotency_key: str
    """Stable across resumes of one ``batch_id``: send it with a side effect so that a repeat
    of the same call is recognised by the service (see ``CallRequest.idempotency_key``)."""
    attempt: int
    """1-based: 2 and up when a ``retry`` policy calls the tool again."""


def idempotency_key(batch_id: str, call_id: str, arguments: str = "") -> str:
    """The idempotency key of call ``call_id`` of batch ``batch_id`` with arguments whose
    hash is ``arguments``: ``tw-`` and 40 hex digits, the same in every process and every
    resume (which sends the same arguments), safe in any header. The arguments count so that
    a batch id a server repeats never gives a new request an old request's key."""
    batch = batch_id.encode("utf-8", "surrogatepass")
    call = call_id.encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(
        b"%d:%s%d:%s%s" % (len(batch), batch, len(call), call, arguments.encode())
    )
    return "tw-" + digest.hexdigest()[:40]


def check_middleware(middleware: Any, where: str) -> tuple[Middleware, ...]:
    """``middleware`` as a tuple, after checking it is a list of ``mw(request, call_next)``;
    ``UsageError`` naming ``where`` (an orchestrator, a tool) otherwise."""
    if isinstance(middleware, str | bytes | Mapping) or not isinstance(middleware, list | tuple):
        raise UsageError(
            f"{where}: middleware must be a list of 'async def mw(request, call_next)', got "
            f"{type(middleware).__name__}"
        )
    for mw in middleware:
        if not callable(mw):
            raise UsageError(
                f"{where}: middleware item {safe_str(mw, 80)!r} is not callable; each one is "
                "'async def mw(request, call_next)'"
            )
        try:
            inspect.signature(mw).bind(None, None)
        except TypeError:
            name = getattr(mw, "__qualname__", repr(mw))
            raise UsageError(
                f"{where}: middleware {name} cannot be called as mw(request, call_next); "
                "a policy is built first: policies.timeout(5), not policies.timeout"
            ) from None
        except ValueError:  # no signature to read (a builtin): it will tell when called
            pass
        if inspect.isasyncgenfunction(mw) or inspect.isgeneratorfunction(mw):
            raise UsageError(
                f"{where}: middleware {safe_str(mw, 80)} is a generator; write "
                "'async def mw(request, call_next): return await call_next(request)'"
            )
    return tuple(middleware)


CallNext: TypeAlias = Callable[[CallRequest], Awaitable[Any]]
"""The rest of the chain: ``await call_next(request)`` runs it and returns the output."""

Middleware: TypeAlias = Callable[[CallRequest, CallNext], Awaitable[Any]]
"""``async def mw(request: CallRequest, call_next: CallNext) -> Any``."""


def compose(middleware: Sequence[Middleware], endpoint: CallNext) -> CallNext:
    """One ``CallNext`` for the whole chain: the first middleware is the outermost. Each link
    carries ``SystemExit`` and the like out as ``Escaped``: a middleware may run the rest of
    the chain in a task of its own (``asyncio.wait_for``), where asyncio would re-raise them
    out of the event loop."""
    call_next = endpoint
    for mw in reversed(middleware):
        call_next = _Link(mw, call_next)
    return call_next


class _Link:
    """``call_next`` for one middleware: calls it with the rest of the chain."""

    __slots__ = ("_mw", "_next")

    def __init__(self, mw: Middleware, call_next: CallNext) -> None:
        self._mw = mw
        self._next = call_next

    def __call__(self, request: CallRequest) -> Awaitable[Any]:
        return escaping(self._mw(request, self._next))

    def __repr__(self) -> str:
        return f"<call_next: {getattr(self._mw, '__qualname__', self._mw)!r}>"


class CallState:
    """What the engine keeps about the call running in the current task: how many times its
    tool was reached and with what arguments, and the threads blocking work runs in."""

    __slots__ = ("arguments", "attempts", "executor")

    def __init__(self, executor: Callable[[], Executor]) -> None:
        self.attempts = 0
        self.arguments: dict[str, Any] | None = None
        self.executor = executor


current_call: ContextVar[CallState | None] = ContextVar("toolweave_call", default=None)
"""Set in each call's task; tasks and threads started from it inherit it."""

tool_in_thread: ContextVar[bool] = ContextVar("toolweave_tool_in_thread", default=False)
"""True inside ``policies.in_thread()``: an ``async def`` tool runs in a worker thread too."""
