"""OpenTelemetry support for toolweave: attribute names, content policy, SDK set-up, and the
two functions that show any value safely (``to_text`` for bounded text, ``to_jsonable`` for
JSON-safe data), which the engine, the adapters and the command line all use.

It imports nothing from the engine; the engine imports it.
"""

from . import attributes
from ._content import CAPTURE_ENV, TraceContent
from ._setup import ExporterName, Tracing, configure_tracing, jsonl_exporter
from ._values import to_jsonable, to_text

__all__ = [
    "CAPTURE_ENV",
    "ExporterName",
    "TraceContent",
    "Tracing",
    "attributes",
    "configure_tracing",
    "jsonl_exporter",
    "to_jsonable",
    "to_text",
]
