"""Adapters between toolweave and agent frameworks: OpenAI, LangChain/LangGraph, MCP servers
and the OpenAI Agents SDK.

They import the engine (``toolweave``); the engine never imports them.
"""

__all__: list[str] = []
