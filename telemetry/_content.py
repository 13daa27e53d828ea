"""Whether tool arguments and outputs go on spans, and how they are cut and scrubbed."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["CAPTURE_ENV", "TraceContent"]

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The standard switch of the OpenTelemetry GenAI instrumentations for recording content."""

ContentKind = Literal["arguments", "result"]


@dataclass(frozen=True, kw_only=True)
class TraceContent:
    """Opt-in recording of tool arguments and outputs on spans.

    ``enabled=None`` (the default) follows ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
    (``true`` to record); ``True`` or ``False`` decide outright. Values are passed through
    ``redact(kind, value)`` if given, written as JSON and cut to ``max_chars``.
    """

    enabled: bool | None = None
    max_chars: int = 4096
    redact: Callable[[ContentKind, Any], Any] | None = None

    @property
    def active(self) -> bool:
        """Whether content is recorded now (the environment is read on each call)."""
        if self.enabled is not None:
            return self.enabled
        return os.environ.get(CAPTURE_ENV, "").strip().lower() == "true"

    def render(self, kind: ContentKind, value: Any) -> str:
        """``value`` as it goes on a span: redacted, as JSON, cut to ``max_chars``."""
        if self.redact is not None:
            value = self.redact(kind, value)
        if isinstance(value, str):
            text = value
        else:
            try:
                text = json.dumps(value, ensure_ascii=False, default=str)
            except (TypeError, ValueError):
                text = repr(value)
        if len(text) > self.max_chars:
            text = text[: max(0, self.max_chars - 3)] + "..."
        return text
