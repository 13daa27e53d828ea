"""Values real tools return that break naive rendering: one place, shared by the suites."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict


class Unshowable:
    """Raises from ``__repr__``, ``__str__`` and ``__eq__``."""

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        raise RuntimeError("repr refused")

    def __str__(self) -> str:
        raise RuntimeError("str refused")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("eq refused")


@dataclasses.dataclass
class WithLock:
    """A dataclass holding a lock: ``dataclasses.asdict`` cannot deep-copy it."""

    name: str
    lock: Any = dataclasses.field(default_factory=threading.Lock)


class Opaque:
    """A type pydantic knows nothing about."""


class ModelWithOpaque(BaseModel):
    """A pydantic model whose JSON dump fails."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    thing: Opaque
    n: int = 1


def nested(depth: int) -> list[Any]:
    """A list nested ``depth`` levels deep."""
    root: list[Any] = []
    current = root
    for _ in range(depth):
        inner: list[Any] = []
        current.append(inner)
        current = inner
    return root


def cyclic() -> list[Any]:
    """A list that contains itself."""
    loop: list[Any] = [1]
    loop.append(loop)
    return loop


def generator() -> Iterator[int]:
    """A generator; rendering must not consume it."""
    yield 1
    yield 2


HOSTILE: dict[str, Callable[[], Any]] = {
    "unshowable": Unshowable,
    "dataclass-with-lock": lambda: WithLock("x"),
    "int-5000-digits": lambda: 10**5000,
    "nested-1000": lambda: nested(1000),
    "cyclic": cyclic,
    "tuple-keys": lambda: {(1, 2): "a", None: "b", 3.5: "c"},
    "model-with-opaque-field": lambda: ModelWithOpaque(thing=Opaque()),
    "generator": generator,
    "nan-and-inf": lambda: [float("nan"), float("inf")],
    "lone-surrogate": lambda: "a\ud800b",
    "bytes": lambda: b"\xff\xfe raw",
    "dict-with-unshowable-key": lambda: {Unshowable(): 1},
}
"""Name -> a function making a fresh hostile value."""
