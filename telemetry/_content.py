"""Whether tool arguments and outputs go on spans, and how they are cut and scrubbed."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ._values import to_jsonable, to_text

__all__ = ["CAPTURE_ENV", "TraceContent"]

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The standard switch of the OpenTelemetry GenAI instrumentations for recording content."""

ContentKind = Literal["arguments", "result", "error"]
"""What is being recorded: a call's arguments, its output, or an error message (which may
quote either)."""

logger = logging.getLogger("toolweave")


@dataclass(frozen=True, kw_only=True)
class TraceContent:
    """Opt-in recording of tool arguments and outputs on spans.

    ``enabled=None`` (the default) follows ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
    (``true`` to record); ``True`` or ``False`` decide outright. Values are passed through
    ``redact(kind, value)`` if given (``value`` is a JSON-safe copy: dicts, lists, strings,
    numbers), written as JSON and cut to ``max_chars``.

    With content off, spans carry no argument or output value and no text that may quote one:
    error statuses and exception events say the error's type, not its message.
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
        """``value`` as it goes on a span: redacted, as JSON, cut to ``max_chars``. Never
        raises: if ``redact`` fails, a placeholder goes on the span instead (never the value
        unredacted) and the failure is logged."""
        if self.redact is not None:
            try:
                # A JSON-safe copy: the hook may scrub it in place without touching the
                # values the run hands on, and never meets an object that raises.
                value = self.redact(kind, to_jsonable(value))
            except KeyboardInterrupt:
                raise
            except BaseException:  # SystemExit or CancelledError from a hook is its failure
                logger.warning("toolweave: the redact hook failed on %s", kind, exc_info=True)
                return "[redaction failed]"
        return to_text(value, max(3, self.max_chars))
