"""Tools described by a JSON Schema: reading the schema (BFCL's type names included), building
its validator once, and wording its validation errors for the model.

``Tool.from_schema`` is the public face; this module knows nothing of ``Tool``.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

import jsonschema
import regex

from toolweave.telemetry._values import safe_str, safe_type_name, to_text

from ._errors import UsageError

__all__ = [
    "BFCL_TYPES",
    "SchemaValidationError",
    "build_validator",
    "describe_schema_errors",
    "location",
    "shown",
    "subschemas",
    "validate_with_schema",
]

SchemaValidationError: type[Exception] = jsonschema.ValidationError
"""What ``validate_with_schema`` raises: ``jsonschema.ValidationError``, the most relevant
problem first; ``describe_schema_errors`` words it and the others found with it."""

BFCL_TYPES: Mapping[str, str | None] = {
    "dict": "object",
    "float": "number",
    "tuple": "array",
    "list": "array",
    "bool": "boolean",
    "any": None,
    "Any": None,
    "byte": "integer",
    "short": "integer",
    "long": "integer",
    "Bigint": "integer",
    "double": "number",
    "char": "string",
    "String": "string",
    "Boolean": "boolean",
    "Array": "array",
    "ArrayList": "array",
    "Queue": "array",
    "Stack": "array",
    "HashMap": "object",
    "Hashtable": "object",
}
"""Type names of the Berkeley Function Calling Leaderboard's function docs that JSON Schema does
not have, and the JSON Schema type each stands for (``None``: any value, so no ``type``)."""

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_ONE = (
    "additionalProperties",
    "additionalItems",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
)
_MAX_ERRORS = 50  # errors collected per validation: a huge wrong array must not cost more
_MAX_LINES = 10  # problems shown to the model
_MAX_NAMES = 8  # names listed in one problem (unexpected fields, allowed fields, enum values)
_MAX_SHOWN = 60  # characters of a value the model sent, shown back to it
_MAX_PART = 80  # characters of one field name in a path
_MAX_PATH = 200  # characters of a whole path: its start and its end are kept
_PROBLEMS = "_toolweave_problems"  # attribute carrying every error found with the raised one
_WEAK = frozenset({"anyOf", "oneOf"})
_STRONG: frozenset[str] = frozenset()
_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


def subschemas(node: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The schemas directly inside ``node`` (under ``properties``, ``items``, ``anyOf``...), not
    the values of keywords that merely hold data (``enum``, ``const``, ``default``)."""
    for key in _SCHEMA_MAPS:
        children = node.get(key)
        if isinstance(children, Mapping):
            yield from (c for c in children.values() if isinstance(c, dict))
    for key in _SCHEMA_LISTS:
        children = node.get(key)
        if isinstance(children, list):
            yield from (c for c in children if isinstance(c, dict))
    for key in _SCHEMA_ONE:
        child = node.get(key)
        if isinstance(child, dict):
            yield child
    items = node.get("items")
    if isinstance(items, dict):
        yield items
    elif isinstance(items, list):
        yield from (c for c in items if isinstance(c, dict))
    dependencies = node.get("dependencies")
    if isinstance(dependencies, Mapping):
        yield from (c for c in dependencies.values() if isinstance(c, dict))


def build_validator(tool_name: str, parameters: Any) -> tuple[dict[str, Any], Any]:
    """The normalised schema (BFCL type names replaced, at any depth) and its validator.

    Raises ``UsageError`` naming the tool when ``parameters`` is not an object schema or not
    valid for its draft (``$schema``; 2020-12 when it names none), or when a local ``$ref``
    points nowhere.
    """
    if not isinstance(parameters, Mapping):
        raise UsageError(
            f"tool '{tool_name}': parameters must be a JSON Schema object (a dict), got "
            f"{safe_type_name(parameters)}"
        )
    try:
        schema: dict[str, Any] = copy.deepcopy(dict(parameters))
        _normalise(schema)
    except RecursionError:
        raise UsageError(
            f"tool '{tool_name}': parameters is nested too deep (or contains itself)"
        ) from None
    kind = schema.get("type")
    if not (kind == "object" or (kind is None and "properties" in schema)):
        got = f"type {safe_str(parameters.get('type'), 40)!r}" if kind else "no type"
        raise UsageError(
            f"tool '{tool_name}': parameters must be an object schema "
            f'({{"type": "object", "properties": {{...}}}}), got {got}'
        )
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        where = location(tuple(exc.absolute_path))
        at = "" if where == "(arguments)" else f" at '{where}'"
        raise UsageError(
            f"tool '{tool_name}': parameters is not a valid JSON Schema{at}: "
            f"{safe_str(exc.message, 300)}"
        ) from None
    _check_refs(tool_name, schema, schema)
    return schema, _bounded(cls)(schema)


_MATCH_SECONDS = 0.25
"""How long one ``pattern`` match may take. The schema may come from a server you do not
control and the string from the model: Python's ``re`` can backtrack for minutes on
``(x+x+)+y`` against 30 x's, on the event loop, and no call timeout could stop it."""


class PatternTooCostly(Exception):
    """A ``pattern`` match that ran past ``_MATCH_SECONDS``."""


def _search(pattern: str, text: str) -> bool:
    """``re.search``, in the ``regex`` engine (Python's syntax, plus protection against the
    classic catastrophic patterns), stopped after ``_MATCH_SECONDS``."""
    try:
        return regex.search(pattern, text, timeout=_MATCH_SECONDS) is not None
    except TimeoutError:
        raise PatternTooCostly(pattern) from None
    except regex.error:  # a rare pattern that only ``re`` reads (the schema check used ``re``)
        return re.search(pattern, text) is not None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "string"):
        return
    try:
        if not _search(pattern, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")
    except PatternTooCostly:
        yield jsonschema.ValidationError(
            f"matching the value against the pattern {safe_str(pattern, 80)!r} took over "
            f"{_MATCH_SECONDS} s and was stopped; send a shorter or simpler value",
            validator="pattern (stopped)",  # not worded as "expected a string matching"
        )


def _extras(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> Iterator[str]:
    """The properties that neither ``properties`` nor ``patternProperties`` cover."""
    declared = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    for name in instance:
        if name not in declared and not any(_matches(p, name) for p in patterns):
            yield name


def _matches(pattern: str, name: str) -> bool:
    try:
        return _search(pattern, name)
    except PatternTooCostly:
        return False  # the name is then checked as an additional property


def _pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for name, value in instance.items():
            if _matches(pattern, name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _additional_properties(validator: Any, extra: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    extras = sorted(_extras(instance, schema), key=str)
    if validator.is_type(extra, "object"):
        for name in extras:
            yield from validator.descend(instance[name], extra, path=name)
    elif not extra and extras:
        shown_names = ", ".join(repr(name) for name in extras)
        yield jsonschema.ValidationError(
            f"Additional properties are not allowed ({shown_names} unexpected)"
        )


def _bounded(cls: Any) -> Any:
    """``cls`` whose regular expressions run in bounded time."""
    keywords = {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    }
    own = {k: v for k, v in keywords.items() if k in cls.VALIDATORS}  # drafts differ
    return jsonschema.validators.extend(cls, own)  # type: ignore[no-untyped-call]


def validate_with_schema(validator: Any, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``arguments`` as the values to call with, if the schema accepts them (nothing
    is converted or filled in); else raise the most relevant ``jsonschema.ValidationError``,
    carrying the others found with it for ``describe_schema_errors``."""
    values = dict(arguments)
    try:
        errors = list(itertools.islice(validator.iter_errors(values), _MAX_ERRORS))
    except ValueError:  # jsonschema words its errors with repr(), past Python's digit limit
        path = _huge_int(values)
        if path is None:
            raise
        raise jsonschema.ValidationError(
            "a number too large to check against the schema (over 4,000 digits); "
            "send a smaller one",
            path=path,
        ) from None
    if not errors:
        return values
    errors.sort(key=_relevance, reverse=True)  # stable: siblings stay in document order
    best = errors[0]
    setattr(best, _PROBLEMS, errors)
    raise best


def _huge_int(value: Any, depth: int = 0) -> list[Any] | None:
    """The path to the first int too long to print, if any (arguments nest 64 deep at most)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 13_000:
        return []
    items: Any = (
        value.items() if isinstance(value, Mapping) else
        enumerate(value) if isinstance(value, list) else ()
    )  # fmt: skip
    if depth < 64:
        for key, inner in items:
            found = _huge_int(inner, depth + 1)
            if found is not None:
                return [key, *found]
    return None


def describe_schema_errors(exc: Exception, tool_name: str) -> list[str]:
    """One line per problem, best first: the field's path, what was expected and what came."""
    errors: Sequence[Any] = getattr(exc, _PROBLEMS, None) or [exc]
    lines: dict[str, None] = {}
    for error in errors:
        lines.update(dict.fromkeys(_lines(error, tool_name)))
    found = list(lines)
    if len(found) > _MAX_LINES:
        more = len(found) - _MAX_LINES
        found = [*found[:_MAX_LINES], f"and {more} more problem{'s' if more > 1 else ''}"]
    return found


def location(path: Sequence[Any]) -> str:
    """A field path as the model reads it: ``items[0].id``; ``(arguments)`` for the top."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = safe_str(part, _MAX_PART)
            text += f".{name}" if text else name
    if len(text) > _MAX_PATH:
        keep = (_MAX_PATH - 3) // 2
        text = text[:keep] + "..." + text[-keep:]
    return text or "(arguments)"


def shown(value: Any) -> str:
    """A value the model sent, short: strings quoted, the rest as JSON, cut to 60 characters."""
    text = repr(value) if isinstance(value, str) else to_text(value, _MAX_SHOWN)  # never raises
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


# ------------------------------------------------------------------ reading the schema


def _normalise(node: dict[str, Any]) -> None:
    kind = node.get("type")
    if isinstance(kind, str) and kind in BFCL_TYPES:
        mapped = BFCL_TYPES[kind]
        if mapped is None:
            del node["type"]
        else:
            node["type"] = mapped
    elif isinstance(kind, list) and any(isinstance(k, str) and k in BFCL_TYPES for k in kind):
        names = [BFCL_TYPES.get(k, k) if isinstance(k, str) else k for k in kind]
        if None in names:
            del node["type"]
        else:
            node["type"] = list(dict.fromkeys(names))
    for child in subschemas(node):
        _normalise(child)


def _check_refs(tool_name: str, node: dict[str, Any], root: dict[str, Any]) -> None:
    """Local ``$ref``s (``#/$defs/Point``) must point into the schema: no schema is fetched."""
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/") and not _points_into(root, ref[2:]):
        raise UsageError(
            f"tool '{tool_name}': $ref {safe_str(ref, 100)!r} points to nothing in parameters; "
            "define it under $defs"
        )
    for child in subschemas(node):
        if "$id" not in child:  # a nested resource resolves its refs against itself
            _check_refs(tool_name, child, root)


def _points_into(root: Any, pointer: str) -> bool:
    node = root
    for raw in pointer.split("/"):
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


# ------------------------------------------------------------------ wording errors


def _relevance(error: Any) -> tuple[int, bool, bool]:
    # jsonschema's own order (shallow problems first, weak keywords last); siblings keep their
    # order, as the sort is stable.
    return (-len(error.path), error.validator not in _WEAK, error.validator in _STRONG)


def _closeness(error: Any) -> tuple[Any, ...]:
    # jsonschema's key for descending into alternatives, with path parts made comparable
    # (ints and strings), so that among siblings the first one wins.
    path = tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in error.path)
    return (-len(path), path, error.validator not in _WEAK, error.validator in _STRONG)


def _lines(error: Any, tool_name: str) -> list[str]:
    path = list(error.absolute_path)
    where = location(path)
    keyword, expected = error.validator, error.validator_value
    instance = error.instance
    if keyword == "required" and isinstance(instance, Mapping) and isinstance(expected, list):
        missing = [p for p in expected if isinstance(p, str) and p not in instance]
        return [f"'{location([*path, p])}': required argument is missing" for p in missing]
    if keyword == "additionalProperties" and expected is False and isinstance(instance, Mapping):
        extra = _unexpected(instance, error.schema)
        if extra:
            allowed = _names(list(error.schema.get("properties") or ()))
            takes = f"{tool_name} takes" if not path else "allowed here"
            lines = [
                f"'{location([*path, name])}': unexpected argument ({takes}: {allowed})"
                for name in extra[:_MAX_NAMES]
            ]
            if len(extra) > _MAX_NAMES:
                lines.append(f"and {len(extra) - _MAX_NAMES} more unexpected arguments")
            return lines
    if keyword in _WEAK and error.context:
        deeper = _deepest(error)
        if deeper is not error:
            return _lines(deeper, tool_name)
    phrase = _expected(keyword, expected)
    if phrase is None:  # a keyword without wording of ours: jsonschema's, cut
        return [f"'{where}': {safe_str(error.message, 200)}"]
    return [f"'{where}': expected {phrase} (got {shown(instance)})"]


def _unexpected(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    declared = schema.get("properties") or {}
    patterns = list(schema.get("patternProperties") or ())
    out = []
    for name in instance:
        if name in declared:
            continue
        try:
            if any(_matches(p, name) for p in patterns):
                continue
        except (regex.error, TypeError):
            pass
        out.append(name)
    return out


def _deepest(error: Any) -> Any:
    """The alternative of an ``anyOf``/``oneOf`` that came closest, or ``error`` when none did
    (as ``jsonschema.exceptions.best_match`` descends)."""
    try:
        return jsonschema.exceptions.best_match([error], key=_closeness)
    except Exception:  # a heuristic: never let it cost the message
        return error


def _expected(keyword: str, value: Any) -> str | None:
    if keyword == "type":
        return _type_words(value)
    if keyword == "enum" and isinstance(value, list):
        return "one of " + _names([shown(v) for v in value])
    if keyword == "const":
        return f"exactly {shown(value)}"
    bounds = {
        "minimum": "a number >= {}",
        "maximum": "a number <= {}",
        "exclusiveMinimum": "a number > {}",
        "exclusiveMaximum": "a number < {}",
        "multipleOf": "a multiple of {}",
        "minLength": "at least {} characters",
        "maxLength": "at most {} characters",
        "minItems": "at least {} items",
        "maxItems": "at most {} items",
        "minProperties": "at least {} fields",
        "maxProperties": "at most {} fields",
        "pattern": "a string matching the pattern {}",
        "format": "a string in the format {}",
    }
    if keyword in bounds:
        return bounds[keyword].format(shown(value) if keyword == "pattern" else to_text(value, 40))
    if keyword == "uniqueItems":
        return "items that are all different"
    if keyword in _WEAK and isinstance(value, list):
        shapes = [_summary(s) for s in value[:_MAX_NAMES]]
        if keyword == "oneOf":
            return "exactly one of: " + ", ".join(shapes)
        return " or ".join(shapes)
    return None


def _type_words(value: Any) -> str:
    kinds = value if isinstance(value, list) else [value]
    return " or ".join(_TYPE_WORDS.get(k, safe_str(k, 30)) for k in kinds)


def _summary(schema: Any) -> str:
    if not isinstance(schema, Mapping):
        return "any value" if schema is True else "no value"
    if "type" in schema:
        return _type_words(schema["type"])
    if "enum" in schema and isinstance(schema["enum"], list):
        return "one of " + _names([shown(v) for v in schema["enum"]])
    if "const" in schema:
        return shown(schema["const"])
    if "$ref" in schema:
        return safe_str(schema["$ref"], 60).rsplit("/", 1)[-1]
    return "a value of another shape"


def _names(names: Sequence[Any]) -> str:
    shown_names = [safe_str(n, _MAX_PART) for n in names[:_MAX_NAMES]]
    more = len(names) - _MAX_NAMES
    text = ", ".join(shown_names) + (f", and {more} more" if more > 0 else "")
    return text or "no arguments"
