"""The public face of each package is exactly its ``__all__``, checked on the installed package."""

from __future__ import annotations

import importlib
import pathlib
from inspect import isclass, isfunction, ismodule

import pytest

PACKAGES = ["toolweave", "toolweave.adapters", "toolweave.telemetry"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        n for n, value in vars(module).items() if not n.startswith("_") and not ismodule(value)
    }
    exported_modules = {n for n in module.__all__ if ismodule(getattr(module, n))}
    assert set(module.__all__) - exported_modules == public
    assert list(module.__all__) == sorted(module.__all__)


@pytest.mark.parametrize(
    "name",
    [
        *PACKAGES,
        "toolweave.adapters.openai",
        "toolweave.adapters.langchain",
        "toolweave.adapters.agents",
        "toolweave.adapters.mcp",
        "toolweave.testing",
    ],
)
def test_every_exported_name_is_documented(name: str) -> None:
    module = importlib.import_module(name)
    for n in module.__all__:
        obj = getattr(module, n)
        if isclass(obj) or isfunction(obj):
            assert (getattr(obj, "__doc__", None) or "").strip(), f"{name}.{n} has no docstring"


def test_folders_map_to_import_names() -> None:
    import toolweave
    import toolweave.adapters
    import toolweave.telemetry

    root = pathlib.Path(__file__).resolve().parent.parent
    expected = {"toolweave": "middleware", "toolweave.adapters": "adapters"}
    expected["toolweave.telemetry"] = "telemetry"
    for module in (toolweave, toolweave.adapters, toolweave.telemetry):
        source = pathlib.Path(module.__file__ or "").resolve()
        assert source == (root / expected[module.__name__] / "__init__.py").resolve()
        assert (source.parent / "py.typed").exists()


def test_engine_does_not_import_adapters_or_telemetry_does_not_import_engine() -> None:
    root = pathlib.Path(__file__).resolve().parent.parent
    for path in (root / "middleware").glob("*.py"):
        text = path.read_text()
        assert "toolweave.adapters" not in text, path
        assert "from .adapters" not in text, path
    for path in (root / "telemetry").glob("*.py"):
        text = path.read_text()
        assert "from toolweave import" not in text, path
        assert "from toolweave._" not in text, path
        assert "from .." not in text, path
