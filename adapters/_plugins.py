"""Entry points the engine discovers (group ``toolweave.tools``). Cheap to import: they look at
an object's type before importing any framework."""

from __future__ import annotations

from typing import Any

from toolweave import Tool, ToolCall

__all__ = ["batch_from_openai", "tool_from_langchain"]


def tool_from_langchain(obj: Any) -> Tool | None:
    """A ``Tool`` for a LangChain ``BaseTool``; None for anything else."""
    if not any(c.__module__.startswith("langchain_core.") for c in type(obj).__mro__):
        return None  # not a LangChain object (its own subclasses included)
    from .langchain import from_langchain_tool  # only now: langchain is heavy and optional

    return from_langchain_tool(obj)


def batch_from_openai(data: Any) -> tuple[str, list[ToolCall]] | None:
    """The tool calls in an OpenAI-shaped batch file, and what the file was taken for: a whole
    ``ChatCompletion``, an assistant message, a ``tool_calls`` list, a Responses response or
    its ``output`` list. None for anything else (toolweave's own list of calls, say)."""
    if isinstance(data, dict):
        if "choices" in data:
            kind = "a Chat Completions response"
        elif isinstance(data.get("output"), list):
            kind = "a Responses API response"
        elif "tool_calls" in data or data.get("role") == "assistant":
            kind = "a Chat Completions message"
        else:
            return None
    elif isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        if all("function" in item for item in data):
            data, kind = {"tool_calls": data}, "a Chat Completions tool_calls list"
        elif any("type" in item for item in data):  # toolweave's own calls have no "type"
            kind = "a Responses API output list"
        else:
            return None
    else:
        return None
    from .openai import calls_from_openai  # only now: most batch files are toolweave's own

    return kind, calls_from_openai(data)
