"""References from one call's arguments to another call's output.

Two forms, anywhere in the arguments:

- object: ``{"$ref": TARGET, "path": JSONPATH}`` (a dict with no other keys; path defaults to
  ``$``, the whole output);
- string: ``"${TARGET}"`` or ``"${TARGET.a.b[0]}"``; TARGET ends at the first ``.`` or ``[``.
  A string that is exactly one reference takes the value with its type; inside longer text the
  value is interpolated (strings as they are, anything else as JSON). ``$${`` is a literal ``${``.

TARGET is a call id of the batch or a 1-based position in it (an id equal to the text wins).
Scanning (``compile_arguments``) finds references without parsing any JSONPath; paths compile
on first use and are cached, since parsing costs far more than a lookup.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

from jsonpath_ng.ext.parser import parse as parse_jsonpath
from pydantic import BaseModel

from toolweave.telemetry._values import safe_str, to_jsonable, to_text

__all__ = [
    "MAX_ARGUMENT_DEPTH",
    "MAX_PATH_STEPS",
    "ArgumentsTooDeepError",
    "Found",
    "PathError",
    "Reference",
    "ReferenceSyntaxError",
    "Template",
    "compile_arguments",
    "extract",
    "resolve_arguments",
    "searches",
    "shorten",
]

MAX_ARGUMENT_DEPTH = 64
"""Arguments nested deeper than this are the call's error (nothing here recurses further)."""
MAX_PATH_STEPS = 64
"""A reference path with more steps than this is malformed (the JSONPath parser recurses)."""
_MAX_PATH_CHARS = 2000
_SHOWN = 80

_OUTPUT_PREVIEW = 300
_SCALARS = frozenset({int, float, bool, type(None)})
# "${target}" or "${target.path}" with nothing the full scanner would treat differently:
# no quotes, parentheses, braces, spaces or nested brackets.
_SIMPLE = re.compile(
    r"\$\{([^.\[\]{}'\"()\s$]+)"  # target
    r"((?:\.[^.\[\]{}'\"()\s]+|\[[^\[\]{}'\"()\s]*\])*)\}"  # .field and [index] steps
)
_MULTI_NODES = frozenset({"Wildcard", "Slice", "Descendants", "Filter", "_Union", "Union"})
_MULTI_NODES |= {"Intersect", "Where", "WhereNot", "SortedThis"}
_OBJECT_KEYS = frozenset({"$ref", "path"})
_new = tuple.__new__
"""Builds a named tuple from a tuple of its fields without its generated Python ``__new__``
(one interpreter frame saved per reference found)."""


class ReferenceSyntaxError(ValueError):
    """A malformed reference; ``location`` is the argument path where it stands."""

    def __init__(self, message: str, location: str) -> None:
        super().__init__(message)
        self.location = location


class ArgumentsTooDeepError(ValueError):
    """Arguments nested past ``MAX_ARGUMENT_DEPTH``; ``location`` is where the walk stopped."""

    def __init__(self, location: str) -> None:
        super().__init__(f"arguments nested more than {MAX_ARGUMENT_DEPTH} levels deep")
        self.location = location


class PathError(LookupError):
    """A path that does not parse, or that matches nothing in the target's output."""


class Reference(NamedTuple):
    """One reference: the target as written and a normalised JSONPath (``$`` = everything)."""

    target: str
    path: str
    text: str
    """The reference in string form, for messages and ``output_mapping``."""


class Template(NamedTuple):
    """A string with references inside longer text, interpolated at resolution."""

    parts: tuple[str | Reference, ...]


class Found(NamedTuple):
    """A reference, or a template holding some, and the argument path where it stands."""

    location: str
    text: str
    references: tuple[Reference, ...]


def compile_arguments(arguments: dict[str, Any]) -> tuple[dict[str, Any], list[Found]]:
    """Replace references in ``arguments`` by ``Reference``/``Template`` markers.

    Returns the arguments unchanged (the same object) when they hold no reference and no
    ``$${`` escape, which keeps calls without references free of copying.
    """
    found: list[Found] = []
    if type(arguments) is dict and "$ref" not in arguments:  # the usual case, one call less
        return _compile_dict(arguments, "", 0, found), found
    return _compile(arguments, "", 0, found), found


def resolve_arguments(compiled: Any, value_of: Callable[[Reference], Any]) -> Any:
    """A copy of ``compiled`` with every marker replaced by ``value_of(reference)``."""
    if isinstance(compiled, Reference):
        return value_of(compiled)
    if isinstance(compiled, Template):
        out = []
        for part in compiled.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                value = value_of(part)
                out.append(value if isinstance(value, str) else to_text(value))
        return "".join(out)
    if isinstance(compiled, dict):
        return {k: resolve_arguments(v, value_of) for k, v in compiled.items()}
    if isinstance(compiled, list):
        return [resolve_arguments(v, value_of) for v in compiled]
    return compiled


def extract(output: Any, reference: Reference) -> Any:
    """The value at ``reference.path`` in ``output``.

    A path with a wildcard, slice, filter, union or recursive descent gives a list (maybe
    empty); any other path gives one value, and ``PathError`` if nothing matches.
    """
    if reference.path == "$":
        return output
    expression, multi = _compile_path(reference.path)
    try:
        matches = [m.value for m in expression.find(plain(output))]
    except Exception as exc:  # a filter comparing values of different types, say
        raise PathError(
            f"evaluating {shorten(reference.path)} failed: {type(exc).__name__}: "
            f"{safe_str(exc, 200)}"
        ) from None
    if multi:
        return matches
    if not matches:
        raise PathError(f"nothing in the output matches {shorten(reference.path)}")
    return matches[0]


def preview(value: Any, limit: int = _OUTPUT_PREVIEW) -> str:
    """``value`` as JSON (a string as it is), cut to ``limit`` characters; never raises."""
    return to_text(value, limit)


def shorten(text: str, limit: int = _SHOWN) -> str:
    """Model-written text (a reference, an id) cut for an error message."""
    return to_text(text, limit)


def plain(value: Any) -> Any:
    """What a reference path walks: a pydantic model or dataclass as JSON-safe data (never
    raising, whatever its fields hold), anything else as it is."""
    if isinstance(value, BaseModel) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        return to_jsonable(value)
    return value


def searches(path: str) -> bool:
    """Whether a path may visit many values (a wildcard, slice, filter or ``..``): such a path
    walks the output's JSON-safe form, which is bounded even when the output is cyclic."""
    try:
        return _compile_path(path)[1]
    except PathError:
        return False  # extract() reports it


@lru_cache(maxsize=2048)
def _compile_path(path: str) -> tuple[Any, bool]:
    if len(path) > _MAX_PATH_CHARS or path.count(".") + path.count("[") > MAX_PATH_STEPS:
        raise PathError(
            f"'{shorten(path)}' is too long: a path may have at most {MAX_PATH_STEPS} steps"
        )
    if "=~" in path:  # Python's re has no time limit: a model-written pattern could hang us
        raise PathError(
            f"'{shorten(path)}' uses a regular-expression filter (=~), which references do "
            "not support; compare with == instead"
        )
    try:
        expression = parse_jsonpath(path)
        return expression, _is_multi(expression)
    except Exception as exc:  # jsonpath-ng raises bare Exception subclasses of several kinds
        raise PathError(
            f"'{shorten(path)}' is not a valid JSONPath ({safe_str(exc, 200)})"
        ) from None


def _is_multi(node: Any) -> bool:
    stack = [node]  # iterative: a parsed path is a tree as deep as its steps
    while stack:
        node = stack.pop()
        kind = type(node).__name__
        if kind in _MULTI_NODES:
            return True
        if kind == "Fields" and (len(node.fields) != 1 or node.fields[0] == "*"):
            return True
        if kind == "Index" and len(getattr(node, "indices", (0,))) != 1:
            return True
        stack += [getattr(node, side) for side in ("left", "right") if hasattr(node, side)]
    return False


Location = str | tuple[Any, ...]
"""Where a value stands in the arguments: its text (``filters.owner``, ``items[0]``), or, below a
dict key that is not a plain string, the text above that key and the keys from it down. Such
keys are formatted only when a reference or an error needs the text, as formatting one may
fail (an int of 5,000 digits) or run a class's own code."""


def _text(location: Location) -> str:
    if type(location) is str:
        return location
    text: str = location[0]
    for key in location[1:]:
        if isinstance(key, int):
            text += f"[{key}]"
        elif text:
            text += f".{key}"
        else:
            text = f"{key}"  # a dot only after something: keys before may have been ""
    return text


def _compile(value: Any, location: Location, depth: int, found: list[Found]) -> Any:
    # Containers are copied only when something inside them changed.
    if isinstance(value, str):
        return _compile_string(value, location, found) if "${" in value else value
    if isinstance(value, dict) and "$ref" in value and value.keys() <= _OBJECT_KEYS:
        ref = _object_reference(value, location)
        found.append(_new(Found, (_text(location), ref.text, (ref,))))
        return ref
    if isinstance(value, dict):
        return _compile_dict(value, location, depth, found)
    if isinstance(value, list):
        return _compile_list(value, location, depth, found)
    return value


# The two loops below dispatch inline on the exact type: most values need no call at all,
# strings with a reference go straight to the string scanner, plain containers straight to
# their loop; anything else (subclasses, {"$ref": ...}) takes the general route.


def _compile_dict(value: dict[Any, Any], location: Location, depth: int, found: list[Found]) -> Any:
    if depth >= MAX_ARGUMENT_DEPTH:
        raise ArgumentsTooDeepError(_text(location))
    depth += 1
    out: Any = None
    for key, item in value.items():
        kind = type(item)
        if kind in _SCALARS or (kind is str and "${" not in item):
            continue
        if type(key) is not str or type(location) is not str:
            where: Location = (*location, key) if type(location) is tuple else (location, key)
        elif location:
            where = f"{location}.{key}"
        else:
            where = key
        if kind is str:
            new = _compile_string(item, where, found)
        elif kind is list:
            new = _compile_list(item, where, depth, found)
        elif kind is dict and "$ref" not in item:
            new = _compile_dict(item, where, depth, found)
        else:
            new = _compile(item, where, depth, found)
        if new is not item:
            if out is None:
                out = value.copy()
            out[key] = new
    return value if out is None else out


def _compile_list(value: list[Any], location: Location, depth: int, found: list[Found]) -> Any:
    if depth >= MAX_ARGUMENT_DEPTH:
        raise ArgumentsTooDeepError(_text(location))
    depth += 1
    out: Any = None
    for index, item in enumerate(value):
        kind = type(item)
        if kind in _SCALARS or (kind is str and "${" not in item):
            continue
        where = f"{location}[{index}]" if type(location) is str else (*location, index)
        if kind is str:
            new = _compile_string(item, where, found)
        elif kind is list:
            new = _compile_list(item, where, depth, found)
        elif kind is dict and "$ref" not in item:
            new = _compile_dict(item, where, depth, found)
        else:
            new = _compile(item, where, depth, found)
        if new is not item:
            if out is None:
                out = value.copy()
            out[index] = new
    return value if out is None else out


def _object_reference(value: dict[str, Any], where: Location) -> Reference:
    location = _text(where)
    target = value["$ref"]
    if isinstance(target, int) and not isinstance(target, bool):
        target = to_text(target)  # "<int of about N digits>" past the int-to-string limit
    if not isinstance(target, str) or target == "":
        raise ReferenceSyntaxError(
            f'"$ref" must be a call id or a 1-based position, got {to_text(target, _SHOWN)}',
            location,
        )
    raw_path = value.get("path", "$")
    if raw_path is None:
        raw_path = "$"
    if not isinstance(raw_path, str):
        raise ReferenceSyntaxError(
            f'"path" must be a JSONPath string such as "$.items[0].id", got '
            f"{to_text(raw_path, _SHOWN)}",
            location,
        )
    json_path = _normalise_path(raw_path.strip())
    return Reference(str(target), json_path, "${" + str(target) + json_path[1:] + "}")


def _normalise_path(path: str) -> str:
    if path in ("", "$"):
        return "$"
    if path.startswith("$"):
        return path
    return "$" + path if path.startswith("[") else "$." + path


def _compile_string(text: str, location: Location, found: list[Found]) -> Any:
    simple = _SIMPLE.fullmatch(text)
    if simple is not None:  # the common case: the whole string is one plain reference
        target, steps = simple.groups()
        ref = _new(Reference, (target, "$" + steps if steps else "$", text))
        where = location if type(location) is str else _text(location)
        found.append(_new(Found, (where, text, (ref,))))
        return ref
    parts: list[str | Reference] = []
    literal: list[str] = []
    refs: list[Reference] = []
    i = 0
    while True:
        j = text.find("$", i)
        if j < 0:
            literal.append(text[i:])
            break
        literal.append(text[i:j])
        if text.startswith("$${", j):
            literal.append("${")
            i = j + 3
        elif text.startswith("${", j):
            end = _closing_brace(text, j + 2)
            if end < 0:
                raise ReferenceSyntaxError(
                    f"unterminated reference in {text!r}: '${{' has no closing '}}' "
                    "(write $${ for a literal '${')",
                    _text(location),
                )
            ref = _string_reference(text[j : end + 1], location)
            if any(literal):
                parts.append("".join(literal))
            literal = []
            parts.append(ref)
            refs.append(ref)
            i = end + 1
        else:
            literal.append("$")
            i = j + 1
    if any(literal):
        parts.append("".join(literal))
    if not refs:
        return "".join(p for p in parts if isinstance(p, str))
    found.append(Found(_text(location), text, tuple(refs)))
    if len(parts) == 1:
        return parts[0]
    return Template(tuple(parts))


def _closing_brace(text: str, start: int) -> int:
    depth = 0
    quote = ""
    for k in range(start, len(text)):
        ch = text[k]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "}" and depth <= 0:
            return k
    return -1


def _string_reference(written: str, location: Location) -> Reference:
    body = written[2:-1].strip()
    if not body:
        raise ReferenceSyntaxError(
            "empty reference '${}': write ${CALL} or ${CALL.path}, where CALL is a call id "
            "or a 1-based position",
            _text(location),
        )
    cut = len(body)
    for sep in ".[":
        k = body.find(sep)
        if 0 <= k < cut:
            cut = k
    target = body[:cut].strip()
    if not target:
        raise ReferenceSyntaxError(
            f"reference {written!r} names no call before its path: write ${{CALL{body}}}",
            _text(location),
        )
    return Reference(target, "$" + body[cut:] if cut < len(body) else "$", written)
