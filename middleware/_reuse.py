"""What makes two calls the same call: the tool and the canonical JSON of its resolved
arguments. Identical calls of a batch run once, results are cached under it, and the call
ledger hashes it to notice a resumed batch whose arguments changed."""

from __future__ import annotations

import hashlib
import json
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


def _plain(value: Any) -> Any:
    """Validated arguments may hold what pydantic made of the JSON (a model, a datetime)."""
    if isinstance(value, BaseModel):
        return {"~model": type(value).__qualname__, "fields": value.model_dump(mode="json")}
    if isinstance(value, set | frozenset):
        return {"~set": sorted(map(repr, value))}
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, bytes):
        return {"~bytes": value.hex()}
    return {"~" + safe_type_name(value): repr(value)}
