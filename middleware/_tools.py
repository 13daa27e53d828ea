"""Tools: a Python function, its name, description and argument schema, and how to call it."""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import logging
import sys
import typing
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

import pydantic
from pydantic import BaseModel, ConfigDict, ValidationError
from tenacity.wait import wait_base, wait_exponential, wait_random

from toolweave.telemetry._values import safe_str, to_text

from ._errors import UsageError

__all__ = ["VALIDATION_ERRORS", "Tool", "tool"]

VALIDATION_ERRORS: tuple[type[Exception], ...] = (ValidationError,)

_MAX_INPUT_REPR = 60


def default_retry_wait() -> wait_base:
    """Exponential backoff with jitter: 0.1 s, 0.2 s, 0.4 s ... capped at 2 s, plus 0-0.1 s."""
    return wait_exponential(multiplier=0.1, max=2.0) + wait_random(0, 0.1)


@dataclass(frozen=True, kw_only=True, eq=False)
class Tool:
    """A function the model can call, with what the engine needs to run it.

    Build one with the ``@tool`` decorator or ``Tool.from_function``. Calling the ``Tool``
    calls the function directly, so decorated functions stay usable as they were.
    """

    name: str
    description: str
    fn: Callable[..., Any] = field(repr=False)
    args_schema: type[BaseModel] = field(repr=False)
    """Pydantic model of the arguments, built from the function's type hints."""
    timeout: float | None = None
    """Seconds each attempt may take; None for no limit."""
    retries: int = 0
    """Attempts after the first, when an attempt raises one of ``retry_on`` or times out."""
    retry_wait: wait_base = field(default_factory=default_retry_wait, repr=False)
    """Tenacity wait policy between attempts."""
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    """Exception types that are retried; others fail the call at once."""
    is_async: bool = False
    """True for ``async def`` tools; others run in a worker thread."""
    json_schema: dict[str, Any] | None = field(default=None, repr=False)
    """A JSON schema to advertise instead of ``args_schema``'s (for tools defined elsewhere)."""
    middleware: tuple[Any, ...] = ()
    _defaults: frozenset[str] = field(default=frozenset(), repr=False)
    _positional: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise UsageError("a tool needs a non-empty name")
        if self.timeout is not None and not self.timeout > 0:
            raise UsageError(f"tool '{self.name}': timeout must be a positive number of seconds")
        if self.retries < 0:
            raise UsageError(f"tool '{self.name}': retries must be 0 or more")

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        retries: int = 0,
        retry_wait: wait_base | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        namespace: Mapping[str, Any] | None = None,
        middleware: Any = (),
    ) -> Tool:
        """Describe ``fn`` as a tool: its name, its docstring as description, and an argument
        schema from its signature and type hints (``Annotated[int, Field(...)]`` works).

        ``namespace`` resolves type hints written as strings (``from __future__ import
        annotations``) that name local types; it defaults to the caller's local names.
        """
        tool_name = name or getattr(fn, "__name__", None)
        if not tool_name or tool_name == "<lambda>":
            raise UsageError(f"cannot name the tool for {fn!r}: pass name=...")
        if namespace is None:
            namespace = sys._getframe(1).f_locals
        schema, defaults, positional = _arguments_model(fn, tool_name, namespace)
        return cls(
            name=tool_name,
            description=description if description is not None else (inspect.getdoc(fn) or ""),
            fn=fn,
            args_schema=schema,
            timeout=timeout,
            retries=retries,
            retry_wait=retry_wait if retry_wait is not None else default_retry_wait(),
            retry_on=retry_on if isinstance(retry_on, tuple) else (retry_on,),
            is_async=is_async(fn),
            middleware=tuple(middleware),
            _defaults=defaults,
            _positional=positional,
        )

    @property
    def parameters(self) -> dict[str, Any]:
        """JSON schema of the arguments (an object schema)."""
        if self.json_schema is not None:
            return self.json_schema
        return self.args_schema.model_json_schema()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly, bypassing the engine."""
        return self.fn(*args, **kwargs)

    def validate_arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Validate the model's arguments; return keyword arguments for the function.

        An explicit null for a parameter with a default means that default. Raises
        ``pydantic.ValidationError``; ``describe_validation_error`` words it for the model.
        """
        if self._defaults and any(v is None for v in arguments.values()):
            arguments = {
                k: v for k, v in arguments.items() if not (v is None and k in self._defaults)
            }
        model = self.args_schema.model_validate(arguments)
        values = model.__dict__.copy()
        if model.__pydantic_extra__:
            values.update(model.__pydantic_extra__)
        return values

    def bind(self, values: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Split validated values into positional-only and keyword arguments for ``fn``;
        ``values`` is left as it is."""
        if not self._positional:
            return (), values
        keywords = {k: v for k, v in values.items() if k not in self._positional}
        return tuple(values[p] for p in self._positional), keywords


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    retries: int = 0,
    retry_wait: wait_base | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    middleware: Any = (),
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    retries: int = 0,
    retry_wait: wait_base | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    middleware: Any = (),
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function a tool, as ``@tool`` or ``@tool(timeout=5, retries=2)``.

    The name defaults to the function's, the description to its docstring, the argument schema
    to its type hints. ``async def`` functions are awaited; plain functions run in a worker
    thread. ``timeout`` bounds each attempt; ``retries`` counts attempts after the first, with
    exponential backoff and jitter (``retry_wait``), on exceptions of ``retry_on`` and timeouts.
    """

    def wrap(f: Callable[..., Any], depth: int = 1) -> Tool:
        return Tool.from_function(
            f,
            name=name,
            description=description,
            timeout=timeout,
            retries=retries,
            retry_wait=retry_wait,
            retry_on=retry_on,
            middleware=middleware,
            namespace=sys._getframe(depth).f_locals,  # where the decorator was applied
        )

    return wrap(fn, 2) if fn is not None else wrap


def as_tool(obj: Any) -> Tool:
    """A ``Tool`` for ``obj``: a ``Tool`` as it is, a function described from its signature,
    and other objects (a LangChain ``BaseTool``, say) through the converters installed under
    the ``toolweave.tools`` entry-point group."""
    if isinstance(obj, Tool):
        return obj
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        return Tool.from_function(obj)
    for convert in _converters():
        converted = convert(obj)
        if converted is not None:
            return converted
    if callable(obj):
        return Tool.from_function(obj)
    raise UsageError(f"{obj!r} is not a tool: pass functions or objects made with @tool")


@functools.cache
def _converters() -> tuple[Callable[[Any], Tool | None], ...]:
    # Plugins, not imports: the engine never names an adapter; adapters register themselves.
    found = []
    for entry in importlib.metadata.entry_points(group="toolweave.tools"):
        try:
            found.append(entry.load())
        except Exception:  # a broken plugin must not break plain tools
            logging.getLogger("toolweave").warning(
                "toolweave: cannot load tool converter %s", entry.value, exc_info=True
            )
    return tuple(found)


def tool_table(tools: Iterable[Any] | Mapping[str, Any]) -> dict[str, Tool]:
    """Name -> Tool for the tools an orchestrator is given; two tools may not share a name."""
    items: Iterable[Any] = tools.values() if isinstance(tools, Mapping) else tools
    table: dict[str, Tool] = {}
    for obj in items:
        t = as_tool(obj)
        if t.name in table:
            raise UsageError(f"two tools are named '{t.name}': tool names must be unique")
        table[t.name] = t
    return table


def describe_validation_error(exc: ValidationError, tool: Tool) -> str:
    """One line per problem, naming the field, for the model to fix."""
    expected = ", ".join(tool.args_schema.model_fields) or "no arguments"
    problems = []
    for err in exc.errors(include_url=False):
        where = _location(err["loc"])
        if err["type"] == "extra_forbidden":
            problems.append(f"'{where}': unexpected argument ({tool.name} takes: {expected})")
        elif err["type"] == "missing":
            problems.append(f"'{where}': required argument is missing")
        else:
            value = err.get("input")
            shown = repr(value) if isinstance(value, str) else to_text(value)  # never raises
            if len(shown) > _MAX_INPUT_REPR:
                shown = shown[: _MAX_INPUT_REPR - 3] + "..."
            problems.append(f"'{where}': {safe_str(err['msg'], 300)} (got {shown})")
    return "invalid arguments: " + "; ".join(problems) + ". Fix these and call again."


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(arguments)"


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` returns a coroutine (an ``async def``, or an object whose
    ``__call__`` is one)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    )


def _arguments_model(
    fn: Callable[..., Any], tool_name: str, namespace: Mapping[str, Any]
) -> tuple[type[BaseModel], frozenset[str], tuple[str, ...]]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"tool '{tool_name}': cannot read the signature of {fn!r}") from exc
    try:
        hints = typing.get_type_hints(fn, localns=dict(namespace), include_extras=True)
    except Exception:  # a callable object, say: use the signature's annotations as they are
        hints = {}
    fields: dict[str, Any] = {}
    defaults: set[str] = set()
    positional: list[str] = []
    extra: typing.Literal["forbid", "allow"] = "forbid"
    for param in signature.parameters.values():
        if param.kind is param.VAR_KEYWORD:
            extra = "allow"
            continue
        if param.kind is param.VAR_POSITIONAL:
            raise UsageError(
                f"tool '{tool_name}': *{param.name} cannot be sent by a model; "
                "use a list parameter instead"
            )
        if param.name.startswith("_"):
            raise UsageError(
                f"tool '{tool_name}': parameter '{param.name}' starts with '_', which a "
                "schema cannot carry; rename it"
            )
        if param.kind is param.POSITIONAL_ONLY:
            positional.append(param.name)
        annotation = hints.get(param.name, param.annotation)
        if annotation is inspect.Parameter.empty:
            annotation = Any
        if param.default is inspect.Parameter.empty:
            fields[param.name] = (annotation, ...)
        else:
            fields[param.name] = (annotation, param.default)
            defaults.add(param.name)
    config = ConfigDict(extra=extra, arbitrary_types_allowed=True, protected_namespaces=())
    model_name = "".join(p.capitalize() for p in tool_name.replace("-", "_").split("_")) or "Tool"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a field shadowing a BaseModel attribute is fine
            model = pydantic.create_model(f"{model_name}Arguments", __config__=config, **fields)
    except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError, TypeError) as exc:
        raise UsageError(f"tool '{tool_name}': cannot build an argument schema: {exc}") from exc
    if not model.__pydantic_complete__:
        unresolved = [
            f"{n}: {a}" for n, a in ((n, fields[n][0]) for n in fields) if isinstance(a, str)
        ]
        raise UsageError(
            f"tool '{tool_name}': cannot resolve the type hints {', '.join(unresolved)}; "
            "define those types where the tool is defined or at module level, "
            "or pass namespace= to Tool.from_function"
        )
    return model, frozenset(defaults), tuple(positional)
