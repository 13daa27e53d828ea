"""OpenTelemetry support for toolweave: attribute names, content policy, SDK set-up.

It imports nothing from the engine; the engine imports it.
"""

from . import attributes
from ._content import CAPTURE_ENV, TraceContent

__all__ = ["CAPTURE_ENV", "TraceContent", "attributes"]
