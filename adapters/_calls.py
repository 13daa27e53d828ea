"""What every adapter does with the tool calls a model wrote: one ``ToolCall`` each, with a
unique id and a usable name, and an ``error`` for a call that cannot run as written (a
repeated id, a missing name, a kind of call toolweave does not run)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from toolweave import ToolCall
from toolweave.telemetry._values import safe_str, to_text

__all__ = ["NO_NAME", "CallIds", "Written", "one_call", "unique_calls", "usable_id"]

logger = logging.getLogger("toolweave")

NO_NAME = "(no name)"
"""The name a call runs under when the model wrote none; such a call carries an error."""


@dataclass(frozen=True, slots=True)
class Written:
    """One tool call as the response wrote it, before its id and name are checked."""

    id: Any
    name: Any
    arguments: Any
    problem: str | None = None
    """Why it cannot run, when its kind already says so (a custom tool call, say)."""
    kind: str = "function"
    """How to echo it in an assistant message: ``function``, ``custom`` or another type."""


class CallIds:
    """The ids the calls of one response run under, each unique: the id the model wrote, a
    generated ``call_{i}`` (0-based position) when it wrote none, ``{id}#{k}`` when it repeats
    an earlier call's id. Generated ids avoid every id the model wrote."""

    def __init__(self, written: Iterable[str] = ()) -> None:
        self._written = set(written)
        self._holder: dict[str, tuple[int, bool]] = {}  # id -> (1-based position, generated)

    def note(self, written: str) -> None:
        """An id the model wrote, seen in a stream: generated ids must not take it."""
        self._written.add(written)

    def assign(self, written: Any, position: int) -> tuple[str, str | None]:
        """The id for the call at ``position`` and, for a repeated id, why it cannot run."""
        if not (isinstance(written, str) and written):
            base = f"call_{position}"
            free = base not in self._holder and base not in self._written
            return self._take(base if free else self._suffixed(base), position, True), None
        holder = self._holder.get(written)
        if holder is None:
            return self._take(written, position, False), None
        call_id = self._take(self._suffixed(written), position, False)
        if holder[1]:
            # Taken by an id generated for an earlier call (in a stream, where later ids are
            # not known in advance): the model did not repeat itself, so the call runs.
            return call_id, None
        return call_id, (
            f"its id '{to_text(written, 80)}' repeats the id of call {holder[0]} of the same "
            "response, so it was not run. Give every call its own id."
        )

    def _suffixed(self, base: str) -> str:
        k = 1
        while f"{base}#{k}" in self._holder or f"{base}#{k}" in self._written:
            k += 1
        return f"{base}#{k}"

    def _take(self, call_id: str, position: int, generated: bool) -> str:
        self._holder[call_id] = (position + 1, generated)
        return call_id


def unique_calls(written: Sequence[Written]) -> list[ToolCall]:
    """One ``ToolCall`` per written call, in order, with unique ids and usable names."""
    ids = CallIds(w.id for w in written if isinstance(w.id, str) and w.id)
    return [one_call(w, i, ids) for i, w in enumerate(written)]


def one_call(w: Written, position: int, ids: CallIds) -> ToolCall:
    call_id, id_problem = ids.assign(w.id, position)
    name, name_problem = _name(w.name)
    problems = [p for p in (w.problem or name_problem, id_problem) if p]
    error = " ".join([*problems[:1], *(p[0].upper() + p[1:] for p in problems[1:])]) or None
    # ToolCall turns None into {} and any other non-object into JSON text that the planner
    # reports as this call's error ("arguments must be a JSON object").
    arguments = w.arguments if w.kind == "function" else {}  # others never run
    return ToolCall(id=call_id, name=name, arguments=arguments, error=error)


def _name(written: Any) -> tuple[str, str | None]:
    if isinstance(written, str) and written:
        return written, None
    if written is None or isinstance(written, str):
        return NO_NAME, "the call names no tool, so it was not run. Name one of the tools."
    return NO_NAME, (
        f"the call's tool name is {to_text(written, 80)}, not text, so it was not run. "
        "Name one of the tools."
    )


def usable_id(value: Any, taken: Collection[str] = ()) -> str | None:
    """A model response's id as a batch id: text of 1 to 1,000 characters not ``taken``;
    else None (the engine names the batch)."""
    if not isinstance(value, str) or not value or len(value) > _MAX_BATCH_ID:
        if value is not None:
            logger.debug("toolweave: the response id is not a usable batch id; ignored")
        return None
    if value in taken:
        logger.warning(
            "toolweave: the model's response id %r was already used by a batch of this run; "
            "this batch gets an id of its own",
            safe_str(value, 100),
        )
        return None
    return value


_MAX_BATCH_ID = 1000
"""The longest batch id the engine accepts (``Orchestrator.run``)."""
