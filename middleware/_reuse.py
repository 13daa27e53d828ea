"""What makes two calls the same call: the tool and the canonical JSON of its resolved
arguments. Identical calls of a batch run once, results are cached under it, and the call
ledger hashes it to notice a resumed batch whose arguments changed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from toolweave.telemetry._values import safe_type_name, to_jsonable

__all__ = ["same_call"]


def same_call(tool_name: str, arguments: Any) -> str:
    """A short text naming ``tool_name`` called with ``arguments`` (validated and resolved):
    equal for equal calls, different for different ones (sha-256 of the canonical JSON: keys
    sorted, no spaces, text as it is)."""
    try:
        text = json.dumps(
            arguments,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=True,
            default=_plain,
        )
    except (TypeError, ValueError, RecursionError):  # keys of mixed types, a cycle, very deep
        text = "~" + json.dumps(to_jsonable(arguments, max_items=10**9), sort_keys=True)
    digest = hashlib.sha256(tool_name.encode("utf-8", "surrogatepass") + b"\0")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
    )


def _plain(value: Any) -> Any:
    """Validated arguments may hold what pydantic made of the JSON (a model, a set, a
    datetime): each as data whose JSON is the same in every process (sets sorted, so the
    hash seed of the process does not matter)."""
    if isinstance(value, BaseModel):
        fields = {name: getattr(value, name) for name in type(value).model_fields}
        return {"~model": type(value).__qualname__, "fields": fields}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"~dataclass": type(value).__qualname__, "fields": fields}
    if isinstance(value, set | frozenset):
        return {"~set": sorted(map(_canonical, value))}
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, bytes):
        return {"~bytes": value.hex()}
    if isinstance(value, Mapping):
        return {"~mapping": sorted([_canonical(k), _canonical(v)] for k, v in value.items())}
    return {"~" + safe_type_name(value): str(value)}
