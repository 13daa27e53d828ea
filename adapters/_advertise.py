"""How an adapter tells a model that arguments may refer to other calls' outputs: a hint in
each tool's description, a ``"${...}"`` string accepted by every non-string parameter, and a
system-prompt paragraph for frameworks whose prompts the user writes."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["REFERENCE_HINT", "accept_references", "describe_references", "reference_instructions"]

REFERENCE_HINT = (
    'Any argument may instead be a reference "${N.path}" to the output of call N (its id or '
    "1-based position) of this same batch; the call then runs after call N."
)


def reference_instructions() -> str:
    """A system-prompt paragraph that teaches a model toolweave's reference syntax.

    Add it to any framework's system prompt (LangChain's ``create_agent(system_prompt=...)``,
    an OpenAI ``instructions`` string) when the model should chain calls within one turn."""
    return (
        "You may call several tools at once. When one call needs the output of another call in "
        'the same batch, write a reference instead of the value: "${N}" is the whole output of '
        'call N, "${N.field[0].name}" a value inside it, where N is that call\'s id or its '
        "1-based position in your list of calls. The calls then run in the right order. "
        'Example: call 1 search(query="graph scheduling"), call 2 fetch(url="${1.hits[0].url}").'
    )


def describe_references(description: str) -> str:
    """A tool description with the reference hint appended."""
    return (description + "\n\n" if description else "") + REFERENCE_HINT


def accept_references(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a JSON schema of parameters in which every top-level parameter that is not
    a string also accepts a string (a reference). A parameter's description and default stay
    beside the ``anyOf``; pydantic's titles go (LangChain drops them too)."""
    out = copy.deepcopy(schema)
    for name, prop in out.get("properties", {}).items():
        if is_string(prop):
            continue
        if not isinstance(prop, dict):
            out["properties"][name] = {"anyOf": [prop, {"type": "string"}]}
            continue
        shape = {k: v for k, v in prop.items() if k not in ("title", "description", "default")}
        beside = {k: prop[k] for k in ("description", "default") if k in prop}
        out["properties"][name] = {"anyOf": [shape or {}, {"type": "string"}], **beside}
    return out


def is_string(schema: Any) -> bool:
    """Whether a parameter's schema already accepts any string."""
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    if kind == "string" or (isinstance(kind, list) and "string" in kind):
        return True
    return any(o == {"type": "string"} for o in schema.get("anyOf") or ())  # already takes one
