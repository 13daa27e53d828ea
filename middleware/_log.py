"""Structured log events on the ``toolweave`` logger. Library code never prints.

Each record's message is the event name followed by ``key=value`` pairs; the same pairs are on
the record as ``record.toolweave`` (a dict) for handlers that want structure.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("toolweave")
logger.addHandler(logging.NullHandler())

__all__ = ["log_event", "logger"]


def log_event(level: int, event: str, **fields: Any) -> None:
    """Log ``event`` with ``fields`` at ``level``, at no cost when that level is off."""
    if not logger.isEnabledFor(level):
        return
    text = " ".join(f"{k}={v}" for k, v in fields.items())
    logger.log(level, "%s %s", event, text, extra={"toolweave": {"event": event, **fields}})
