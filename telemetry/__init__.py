"""OpenTelemetry support for toolweave. It imports nothing from the engine."""

__all__: list[str] = []
