"""Entry points the engine discovers (group ``toolweave.tools``). Cheap to import: they look at
an object's type before importing any framework."""

from __future__ import annotations

from typing import Any

from toolweave import Tool

__all__ = ["tool_from_langchain"]


def tool_from_langchain(obj: Any) -> Tool | None:
    """A ``Tool`` for a LangChain ``BaseTool``; None for anything else."""
    if not any(c.__module__.startswith("langchain_core.") for c in type(obj).__mro__):
        return None  # not a LangChain object (its own subclasses included)
    from .langchain import from_langchain_tool  # only now: langchain is heavy and optional

    return from_langchain_tool(obj)
