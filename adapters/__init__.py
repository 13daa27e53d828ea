"""Adapters between toolweave and agent frameworks (OpenAI, LangChain/LangGraph).

They import the engine (``toolweave``); the engine never imports them.
"""

__all__: list[str] = []
