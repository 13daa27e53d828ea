"""How one started call ended, as its task reports it to the run loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ._errors import CallError

__all__ = ["Outcome"]


@dataclass(slots=True)
class Outcome:
    """How one started call ended, as its task reports it to the run loop."""

    index: int
    status: Literal["ok", "error", "skipped"]
    arguments: dict[str, Any] | None
    """What the tool was last called with; None if it never ran."""
    started: float | None
    order: int | None
    attempts: int
    output: Any = None
    error: CallError | None = None
    reason: str = ""
    replayed: bool = False
    cached: bool = False
    deduplicated_from: str | None = None
