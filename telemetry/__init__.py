"""OpenTelemetry support for toolweave: attribute names, content policy, SDK set-up.

It imports nothing from the engine; the engine imports it.
"""

from . import attributes
from ._content import CAPTURE_ENV, TraceContent
from ._setup import ExporterName, Tracing, configure_tracing, jsonl_exporter

__all__ = [
    "CAPTURE_ENV",
    "ExporterName",
    "TraceContent",
    "Tracing",
    "attributes",
    "configure_tracing",
    "jsonl_exporter",
]
