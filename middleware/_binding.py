"""Argument binding: a call's references resolved against finished outputs, then its
arguments validated against its tool's schema."""

from __future__ import annotations

import functools
from typing import Any

from toolweave.telemetry._values import safe_str, to_jsonable

from ._errors import InvalidArgumentsError, InvalidReferenceError
from ._planner import Prepared
from ._references import (
    PathError,
    Reference,
    extract,
    plain,
    preview,
    resolve_arguments,
    searches,
    shorten,
)
from ._tools import VALIDATION_ERRORS, describe_validation_error

__all__ = ["Binder"]

_UNSET: Any = object()
_SEARCHED = 100_000  # values of an output a searching path (.., *, filters) may visit


class Binder:
    """Binds the calls of one batch; ``outputs`` is the result book's list, read as calls finish."""

    def __init__(self, prepared: list[Prepared], outputs: list[Any]) -> None:
        self._prepared = prepared
        self._outputs = outputs
        self._plain: dict[tuple[int, bool], Any] = {}  # outputs as paths walk them, built once

    def bind(self, p: Prepared) -> dict[str, Any]:
        """The arguments call ``p`` runs with. Raises ``InvalidReferenceError`` or
        ``InvalidArgumentsError``, worded for the model."""
        arguments = p.arguments
        if p.has_references:
            arguments = resolve_arguments(arguments, functools.partial(self._value_of, p))
        tool = p.tool
        assert tool is not None  # calls without a tool failed at planning
        try:
            return tool.validate_arguments(arguments)
        except VALIDATION_ERRORS as exc:
            raise InvalidArgumentsError(
                describe_validation_error(exc, tool), call_id=p.call.id, tool_name=p.call.name
            ) from None
        except Exception as exc:  # a validator of the schema's own types raised something else
            raise InvalidArgumentsError(
                f"invalid arguments: {type(exc).__name__}: {safe_str(exc, 300)}. "
                "Fix them and call again.",
                call_id=p.call.id,
                tool_name=p.call.name,
            ) from exc

    def _value_of(self, p: Prepared, ref: Reference) -> Any:
        target = p.targets.get(ref.target)
        if target is None:  # the planner rejects such calls; never a KeyError here
            raise InvalidReferenceError(
                f"reference {shorten(ref.text)!r} names no call of this batch",
                call_id=p.call.id,
                tool_name=p.call.name,
            )
        output = self._outputs[target]
        if ref.path == "$":
            return output
        searching = searches(ref.path)
        key = (target, searching)
        walked = self._plain.get(key, _UNSET)
        if walked is _UNSET:
            # A path that searches (.., *, filters) walks bounded JSON-safe data: on a cyclic
            # or heavily shared output it would otherwise never end.
            walked = to_jsonable(output, max_items=_SEARCHED) if searching else plain(output)
            self._plain[key] = walked
        try:
            return extract(walked, ref)
        except PathError as exc:
            problem = str(exc)
        except Exception as exc:  # an output that breaks the path walker: this call's error
            problem = f"the lookup failed: {type(exc).__name__}: {safe_str(exc, 200)}"
        source = self._prepared[target].call
        raise InvalidReferenceError(
            f"reference {shorten(ref.text)!r} found no value: {problem}; the output of call "
            f"'{source.id}' ({source.name}) was: {preview(output)}. "
            "Change the path to match that output.",
            call_id=p.call.id,
            tool_name=p.call.name,
        )
