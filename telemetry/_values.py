"""Any Python value to JSON-safe data or to bounded text, without ever raising.

Tools return whatever they like: dataclasses holding locks, objects whose ``__repr__`` or
``__str__`` raise, ints too long for ``str()``, structures nested 1,000 deep or cyclic, dicts
with tuple keys, pydantic models with opaque fields, generators. Every place that shows such a
value (previews, decider contexts, error messages, tool messages, spans, the command line) goes
through the two functions here, so none of them can break on it.

This module lives in ``toolweave.telemetry`` because telemetry imports nothing from the engine,
while the engine and the adapters may import telemetry.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
import sys
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "a_json_kind",
    "json_kind",
    "safe_str",
    "safe_type_name",
    "to_jsonable",
    "to_text",
]

MAX_DEPTH = 64
"""Containers nested deeper than this are shown as a marker, not walked."""

_OPAQUE_CHARS = 2000  # str() of an object we know nothing about is cut to this
MAX_NODES = 1_000_000
"""At most this many values are emitted when no ``max_items`` is given: an output whose parts
are shared many times over would otherwise expand without end."""
_DIGITS_PER_BIT = math.log10(2)
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Budget:
    """How many more nodes a bounded walk may emit; ``None`` for no bound."""

    __slots__ = ("left",)

    def __init__(self, left: int | None) -> None:
        self.left = left

    def spend(self) -> bool:
        if self.left is None:
            return True
        self.left -= 1
        return self.left >= 0


def to_jsonable(value: Any, *, max_items: int | None = None) -> Any:
    """``value`` as data ``json.dumps`` always accepts: dicts with string keys, lists, strings
    that encode as UTF-8 (lone surrogates replaced), finite floats, ints that fit the
    int-to-string limit, bools and None. Never raises.

    Pydantic models become their JSON dump (or their fields, when the dump fails), dataclasses
    their fields (no deep copy), mappings dicts (keys as text), lists, tuples and sets lists,
    bytes text. A cycle becomes ``"<cycle>"``, nesting past ``MAX_DEPTH`` ``"<nested too deep>"``,
    an int past the limit ``"<int of N digits>"``, NaN and infinities their names, and anything
    else its ``str()`` (cut to 2,000 characters; a generator is never consumed). ``max_items``
    bounds the number of values emitted in all (default ``MAX_NODES``); the rest is
    ``"..."``.
    """
    try:
        return _walk(value, 0, set(), _Budget(MAX_NODES if max_items is None else max_items))
    except RecursionError:
        return "<nested too deep>"
    except Exception as exc:  # nothing above raises by design; this is the last guard
        return f"<unrenderable {safe_type_name(value)}: {type(exc).__name__}>"


def to_text(value: Any, limit: int | None = None) -> str:
    """``value`` as text: a string as it is, a value ``to_jsonable`` makes a string (an opaque
    object, a huge int) as that string, anything else as JSON (``to_jsonable``), cut to
    ``limit`` characters with ``...``. Lone surrogates are replaced, so the text always encodes
    as UTF-8. Never raises."""
    if isinstance(value, str):
        text = value
    else:
        budget = None if limit is None else limit + 1
        try:
            data = to_jsonable(value, max_items=budget)
            # An object shown by its str() (a date, an opaque object) reads better unquoted.
            text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        except Exception as exc:  # defensive: to_jsonable's output always dumps
            text = f"<unrenderable {safe_type_name(value)}: {type(exc).__name__}>"
    text = _clean(text)
    return text if limit is None else _cut(text, limit)


def safe_str(value: Any, limit: int = _OPAQUE_CHARS) -> str:
    """``str(value)``, else ``repr(value)``, else a description by type; cut to ``limit``.
    For exceptions and objects that may raise when shown. Never raises."""
    for show in (str, repr):
        try:
            text = show(value)
        except Exception:
            continue
        if isinstance(text, str):
            return _cut(_clean(text), limit)
    return f"<{safe_type_name(value)} object (cannot be shown)>"


def json_kind(value: Any) -> str:
    """What kind of JSON value ``value`` is, for an error message: ``null``, ``boolean``,
    ``number``, ``string``, ``list`` or ``object``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


def a_json_kind(value: Any) -> str:
    """``json_kind`` with its article: ``a number``, ``an object``."""
    kind = json_kind(value)
    return f"an {kind}" if kind == "object" else f"a {kind}"


def safe_type_name(value: Any) -> str:
    """The name of ``value``'s class, even when its metaclass makes reading it raise."""
    try:
        name = type(value).__name__
    except Exception:
        return "object"
    return name if isinstance(name, str) else "object"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def _clean(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)  # the replacement character
    return text


def _big_int(value: int) -> Any:
    """An int as JSON can take it: itself, or a marker past the int-to-string limit."""
    limit = sys.get_int_max_str_digits()
    if limit and value.bit_length() * _DIGITS_PER_BIT >= limit - 1:
        try:
            str(value)
        except ValueError:
            digits = int(value.bit_length() * _DIGITS_PER_BIT) + 1
            return f"<int of about {digits} digits>"
    return int(value)


def _float(value: float) -> Any:
    if math.isfinite(value):
        return float(value)
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _walk(value: Any, depth: int, path: set[int], budget: _Budget) -> Any:
    if not budget.spend():
        return "..."
    kind = type(value)
    if kind is str:
        return _clean(value)
    if kind is bool or value is None:
        return value
    if kind is int:
        return _big_int(value)
    if kind is float:
        return _float(value)
    if isinstance(value, enum.Enum):
        return _walk(_enum_value(value), depth, path, budget)
    if isinstance(value, str):
        return _clean(str.__str__(value))
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _big_int(int.__index__(value))
    if isinstance(value, float):
        return _float(float.__float__(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return _clean(bytes(value[: _OPAQUE_CHARS * 4]).decode("utf-8", "replace"))
    if depth >= MAX_DEPTH:
        return "<nested too deep>"
    key = id(value)
    if key in path:
        return "<cycle>"
    path.add(key)
    try:
        return _container(value, depth + 1, path, budget)
    finally:
        path.discard(key)


def _enum_value(value: enum.Enum) -> Any:
    try:
        return value.value
    except Exception:
        return safe_str(value)


def _container(value: Any, depth: int, path: set[int], budget: _Budget) -> Any:
    if isinstance(value, dict | Mapping):
        out: dict[str, Any] = {}
        try:
            items = list(value.items()) if not isinstance(value, dict) else value.items()
            for k, v in items:
                if budget.left is not None and budget.left <= 0:
                    out["..."] = "..."
                    break
                out[_clean(k) if type(k) is str else _key(k)] = _walk(v, depth, path, budget)
        except Exception:  # a mapping whose iteration raises: keep what we have
            out["..."] = "<cannot be read>"
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items_out: list[Any] = []
        for item in value:
            if budget.left is not None and budget.left <= 0:
                items_out.append("...")
                break
            items_out.append(_walk(item, depth, path, budget))
        return items_out
    model_dump = _pydantic_dump(value)
    if model_dump is not _NOTHING:
        # A dump is fresh data, but may hold huge ints, NaN or, for raw fields, anything.
        return (
            _container(model_dump, depth, path, budget)
            if isinstance(model_dump, dict)
            else model_dump
        )
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            try:
                field_value = getattr(value, f.name)
            except Exception:
                field_value = "<cannot be read>"
            fields[f.name] = _walk(field_value, depth, path, budget)
        return fields
    return safe_str(value)


_NOTHING = object()


def _pydantic_dump(value: Any) -> Any:
    """The JSON-mode dump of a pydantic model, its fields if that fails, or ``_NOTHING``."""
    try:
        from pydantic import BaseModel
    except ImportError:  # pragma: no cover - pydantic is a dependency of the engine
        return _NOTHING
    if not isinstance(value, BaseModel):
        return _NOTHING
    try:
        return value.model_dump(mode="json", warnings=False)
    except Exception:
        fields = {}
        for name in type(value).model_fields:
            try:
                fields[name] = getattr(value, name)
            except Exception:
                fields[name] = "<cannot be read>"
        return fields


def _key(key: Any) -> str:
    if isinstance(key, str):
        return _clean(str.__str__(key))
    if key is None or isinstance(key, bool | float):
        try:
            return json.dumps(_walk(key, 0, set(), _Budget(None)))
        except Exception:
            return safe_str(key, 200)
    if isinstance(key, int):
        shown = _big_int(int.__index__(key))
        return shown if isinstance(shown, str) else str(shown)
    if isinstance(key, tuple):
        return "(" + ", ".join(_key(k) for k in key[:20]) + (", ..." if len(key) > 20 else "") + ")"
    return safe_str(key, 200)
