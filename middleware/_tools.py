"""Tools: a Python function (or a JSON Schema and a function taking one dict), its name,
description and argument schema, and how to call it."""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import logging
import math
import sys
import typing
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, overload

import pydantic
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tenacity.wait import wait_base, wait_exponential, wait_random

from toolweave.telemetry._values import safe_str, safe_type_name

from ._errors import UsageError
from ._hooks import CallContext, Middleware, check_middleware
from ._json_schemas import (
    SchemaValidationError,
    build_validator,
    describe_schema_errors,
    location,
    shown,
    validate_with_schema,
)

__all__ = ["VALIDATION_ERRORS", "ResourceKeys", "Tool", "describe_validation_error", "tool"]

ResourceKeys = str | Sequence[str] | Callable[[dict[str, Any]], Any]
"""What a tool's calls read or write (``@tool(reads=..., writes=...)``): one key, several, or
a function of a call's validated arguments (one dict, keyed by parameter name) returning one
key or an iterable of keys. Keys are strings; two calls conflict when one writes a key the
other reads or writes."""

VALIDATION_ERRORS: tuple[type[Exception], ...] = (ValidationError, SchemaValidationError)
"""What ``Tool.validate_arguments`` raises for arguments the tool does not accept: pydantic's
``ValidationError`` (tools from functions) and ``jsonschema.ValidationError`` (tools from a JSON
Schema). ``describe_validation_error`` words either for the model."""


def default_retry_wait() -> wait_base:
    """Exponential backoff with jitter: 0.1 s, 0.2 s, 0.4 s ... capped at 2 s, plus 0-0.1 s."""
    return wait_exponential(multiplier=0.1, max=2.0) + wait_random(0, 0.1)


@dataclass(frozen=True, kw_only=True, eq=False)
class Tool:
    """A function the model can call, with what the engine needs to run it.

    Build one with the ``@tool`` decorator or ``Tool.from_function`` (arguments described by
    the function's signature), or with ``Tool.from_schema`` (arguments described by a JSON
    Schema, passed to the function as one dict). Calling the ``Tool`` calls the function
    directly, so decorated functions stay usable as they were.

    What the engine relies on, for both kinds: ``validate_arguments(arguments)`` gives the
    values to call with (or raises one of ``VALIDATION_ERRORS``), ``bind(values)`` splits them
    into ``(args, kwargs)`` for ``fn``, ``is_async`` says whether ``fn`` is awaited,
    ``parameters`` is the JSON schema advertised to the model, and ``middleware`` wraps each
    call.
    """

    name: str
    description: str
    fn: Callable[..., Any] = field(repr=False)
    args_schema: type[BaseModel] = field(repr=False)
    """Pydantic model of the arguments, built from the function's type hints. For a tool from
    a JSON Schema it is a permissive model (any object): the schema validates, not this."""
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
    """A JSON schema to advertise instead of ``args_schema``'s (for tools defined elsewhere,
    and tools from ``from_schema``, whose schema it is, BFCL type names normalised)."""
    middleware: tuple[Middleware, ...] = field(default=(), repr=False)
    """Middleware around each call of this tool, the first outermost; the orchestrator's
    middleware wraps these. Any sequence is accepted and kept as a tuple."""
    reads: ResourceKeys | None = field(default=None, repr=False)
    """Resources each call reads (see ``ResourceKeys``); None: it reads none worth ordering."""
    writes: ResourceKeys | None = field(default=None, repr=False)
    """Resources each call changes. A call that writes a key runs after the batch's earlier
    calls that read or write it have ended, and before its later ones start."""
    idempotent: bool = False
    """True when running a call twice with the same arguments does no more than running it
    once: identical calls of a batch then run once, a result may be cached (``cache_ttl``),
    and a call a crash left unfinished runs again on resume instead of being reported
    ``uncertain``."""
    cache_ttl: float | None = None
    """Seconds a result may be reused from the orchestrator's cache (idempotent tools only);
    None: never cached."""
    _defaults: frozenset[str] = field(default=frozenset(), repr=False)
    _positional: tuple[str, ...] = field(default=(), repr=False)
    _renamed: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """(field of ``args_schema``, parameter) for parameters pydantic cannot name a field."""
    _validator: Any = field(default=None, repr=False)
    """The JSON Schema validator of a tool from ``from_schema``; None for other tools."""
    _context: str | None = field(default=None, repr=False)
    """The parameter that receives the ``CallContext``, if ``fn`` declares one."""

    def __post_init__(self) -> None:
        if not self.name:
            raise UsageError("a tool needs a non-empty name")
        object.__setattr__(self, "middleware", _middleware(self.name, self.middleware))
        timeout = self.timeout
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        ):
            raise UsageError(
                f"tool '{self.name}': timeout must be a positive number of seconds, got "
                f"{safe_str(timeout, 40)}"
            )
        retries = self.retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise UsageError(
                f"tool '{self.name}': retries must be 0 or more (a whole number), got "
                f"{safe_str(retries, 40)}"
            )
        if not self.retry_on or not all(
            isinstance(k, type) and issubclass(k, BaseException) for k in self.retry_on
        ):
            raise UsageError(
                f"tool '{self.name}': retry_on takes exception types (ValueError, or a tuple "
                f"of them), got {safe_str(self.retry_on, 80)}"
            )
        for which in ("reads", "writes"):
            object.__setattr__(self, which, _resource_keys(self.name, which, getattr(self, which)))
        if not isinstance(self.idempotent, bool):
            raise UsageError(
                f"tool '{self.name}': idempotent must be True or False, got "
                f"{safe_str(self.idempotent, 40)}"
            )
        ttl = self.cache_ttl
        if ttl is not None:
            if (
                isinstance(ttl, bool)
                or not isinstance(ttl, int | float)
                or not math.isfinite(ttl)
                or not ttl > 0
            ):
                raise UsageError(
                    f"tool '{self.name}': cache_ttl must be a positive number of seconds, got "
                    f"{safe_str(ttl, 40)}"
                )
            if not self.idempotent:
                raise UsageError(
                    f"tool '{self.name}': cache_ttl reuses results, which is only safe for a "
                    "tool that does nothing more when called twice; declare idempotent=True"
                )
        if not isinstance(self.retry_wait, wait_base):
            raise UsageError(
                f"tool '{self.name}': retry_wait takes a tenacity wait (wait_fixed(1), say), "
                f"got {safe_type_name(self.retry_wait)}"
            )

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
        middleware: Sequence[Middleware] = (),
        reads: ResourceKeys | None = None,
        writes: ResourceKeys | None = None,
        idempotent: bool = False,
        cache_ttl: float | None = None,
    ) -> Tool:
        """Describe ``fn`` as a tool: its name, its docstring as description, and an argument
        schema from its signature and type hints (``Annotated[int, Field(...)]`` works).

        A parameter whose name starts with ``_`` (``def book(_from: str, to: str)``) keeps
        that name in the schema and in what the model sends.
        ``namespace`` resolves type hints written as strings (``from __future__ import
        annotations``) that name local types; it defaults to the caller's local names.
        ``middleware`` wraps each call of this tool (see ``Tool.middleware``). ``reads``,
        ``writes``, ``idempotent`` and ``cache_ttl`` are as on ``Tool``. A parameter annotated
        ``CallContext`` receives the call's context and is left out of the schema.
        """
        tool_name = name or getattr(fn, "__name__", None)
        if not tool_name or tool_name == "<lambda>":
            raise UsageError(f"cannot name the tool for {fn!r}: pass name=...")
        if namespace is None:
            namespace = sys._getframe(1).f_locals
        schema, defaults, positional, renamed, context = _arguments_model(fn, tool_name, namespace)
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
            middleware=_middleware(tool_name, middleware),
            reads=reads,
            writes=writes,
            idempotent=idempotent,
            cache_ttl=cache_ttl,
            _defaults=defaults,
            _positional=positional,
            _renamed=renamed,
            _context=context,
        )

    @classmethod
    def from_schema(
        cls,
        name: str,
        description: str,
        parameters: Mapping[str, Any],
        fn: Callable[[dict[str, Any]], Any],
        *,
        timeout: float | None = None,
        retries: int = 0,
        retry_wait: wait_base | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        middleware: Sequence[Middleware] = (),
        reads: ResourceKeys | None = None,
        writes: ResourceKeys | None = None,
        idempotent: bool = False,
        cache_ttl: float | None = None,
    ) -> Tool:
        """A tool whose arguments a JSON Schema describes, as OpenAI, MCP and BFCL write it.

        ``parameters`` is an object schema: ``"type": "object"`` (BFCL's ``"dict"`` too), or
        no type and ``properties``. BFCL's other type names (``float``, ``tuple``, ``any``...)
        are read as JSON Schema's at any depth, and that normalised schema is what
        ``parameters`` advertises. The model's arguments are validated with ``jsonschema``
        against it (its ``$schema`` draft, else 2020-12; ``format`` is not asserted), as they
        are: nothing is converted, defaults are not filled in, and an explicit null is
        passed on when the schema allows it. ``fn`` (sync or async) receives them as one
        dict, so any property name works (``from``, ``_from``, ``user-id``, ``$filter``).

        Timeouts, retries, middleware, ``reads``, ``writes``, ``idempotent`` and ``cache_ttl``
        work as for ``Tool.from_function``; ``fn`` may take a second parameter annotated
        ``CallContext``. Raises ``UsageError`` naming the tool when the schema is not a valid
        object schema.
        """
        if not isinstance(name, str) or not name:
            raise UsageError(f"a tool needs a non-empty name, got {safe_str(name, 60)!r}")
        if not callable(fn):
            raise UsageError(
                f"tool '{name}': fn must be a function taking the arguments as one dict, got "
                f"{safe_type_name(fn)}"
            )
        layers = _middleware(name, middleware)
        context = _context_parameter(fn, name)
        try:
            if context is None:
                inspect.signature(fn).bind({})
            else:
                inspect.signature(fn).bind({}, **{context: None})
        except TypeError:
            raise UsageError(
                f"tool '{name}': fn receives the arguments as one dict; write it as "
                "'def fn(arguments: dict)'"
            ) from None
        except ValueError:  # no signature to read (a builtin): it will tell when called
            pass
        schema, validator = build_validator(name, parameters)
        permissive = pydantic.create_model(
            f"{_model_name(name)}Arguments", __config__=ConfigDict(extra="allow")
        )
        return cls(
            name=name,
            description=description,
            fn=fn,
            args_schema=permissive,
            timeout=timeout,
            retries=retries,
            retry_wait=retry_wait if retry_wait is not None else default_retry_wait(),
            retry_on=retry_on if isinstance(retry_on, tuple) else (retry_on,),
            is_async=is_async(fn),
            json_schema=schema,
            middleware=layers,
            reads=reads,
            writes=writes,
            idempotent=idempotent,
            cache_ttl=cache_ttl,
            _validator=validator,
            _context=context,
        )

    @property
    def defined_by_schema(self) -> bool:
        """True for tools from ``from_schema``: ``fn`` takes the arguments as one dict, and
        they are validated as the JSON Schema says, without conversion or defaults."""
        return self._validator is not None

    @property
    def context_parameter(self) -> str | None:
        """The parameter of ``fn`` that receives the ``CallContext``; None if it has none."""
        return self._context

    @property
    def declares_resources(self) -> bool:
        """True when the tool says what its calls read or write (``reads``/``writes``)."""
        return self.reads is not None or self.writes is not None

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
        """Validate the model's arguments; return the values to call the function with, keyed
        by parameter name (for a tool from a JSON Schema: the arguments as they are).

        For a tool from a function, an explicit null for a parameter with a default means
        that default. Raises one of ``VALIDATION_ERRORS``; ``describe_validation_error``
        words it for the model.
        """
        if self._validator is not None:
            return validate_with_schema(self._validator, arguments)
        if self._defaults and any(v is None for v in arguments.values()):
            arguments = {
                k: v for k, v in arguments.items() if not (v is None and k in self._defaults)
            }
        model = self.args_schema.model_validate(arguments)
        values = model.__dict__.copy()
        if self._renamed:
            names = dict(self._renamed)
            values = {names.get(k, k): v for k, v in values.items()}
        if model.__pydantic_extra__:
            values.update(model.__pydantic_extra__)
        return values

    def bind(self, values: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Split validated values into positional and keyword arguments for ``fn``: for a tool
        from a function its positional-only parameters and the rest by name; for a tool from
        a JSON Schema ``((values,), {})``. ``values`` is left as it is."""
        if self._validator is not None:
            return (values,), {}
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
    middleware: Sequence[Middleware] = (),
    reads: ResourceKeys | None = None,
    writes: ResourceKeys | None = None,
    idempotent: bool = False,
    cache_ttl: float | None = None,
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
    middleware: Sequence[Middleware] = (),
    reads: ResourceKeys | None = None,
    writes: ResourceKeys | None = None,
    idempotent: bool = False,
    cache_ttl: float | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function a tool, as ``@tool`` or ``@tool(timeout=5, retries=2)``.

    The name defaults to the function's, the description to its docstring, the argument schema
    to its type hints. ``async def`` functions are awaited; plain functions run in a worker
    thread. ``timeout`` bounds each attempt; ``retries`` counts attempts after the first, with
    exponential backoff and jitter (``retry_wait``), on exceptions of ``retry_on`` and timeouts.
    ``middleware`` wraps each call of this tool, inside the orchestrator's middleware.

    Side effects: ``writes``/``reads`` name the resources a call changes or reads (a key, keys,
    or a function of the validated arguments: ``writes=lambda a: a["path"]``), so that
    conflicting calls of a batch run in batch order while the rest stay parallel.
    ``idempotent=True`` lets identical calls of a batch run once and, with ``cache_ttl``
    seconds, reuses results through the orchestrator's cache.
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
            namespace=sys._getframe(depth).f_locals,  # where the decorator was applied
            middleware=middleware,
            reads=reads,
            writes=writes,
            idempotent=idempotent,
            cache_ttl=cache_ttl,
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


def describe_validation_error(exc: Exception, tool: Tool) -> str:
    """One line per problem, naming the field, what was expected and what came, for the model
    to fix. Takes either of ``VALIDATION_ERRORS``."""
    if isinstance(exc, ValidationError):
        problems = _pydantic_problems(exc, tool)
    elif isinstance(exc, SchemaValidationError):
        problems = describe_schema_errors(exc, tool.name)
    else:
        problems = [f"{type(exc).__name__}: {safe_str(exc, 300)}"]
    return "invalid arguments: " + "; ".join(problems) + ". Fix these and call again."


def _pydantic_problems(exc: ValidationError, tool: Tool) -> list[str]:
    fields = tool.args_schema.model_fields
    expected = ", ".join(f.alias or n for n, f in fields.items()) or "no arguments"
    problems = []
    for err in exc.errors(include_url=False):
        where = location(err["loc"])
        if err["type"] == "extra_forbidden":
            problems.append(f"'{where}': unexpected argument ({tool.name} takes: {expected})")
        elif err["type"] == "missing":
            problems.append(f"'{where}': required argument is missing")
        else:
            value = shown(err.get("input"))
            problems.append(f"'{where}': {safe_str(err['msg'], 300)} (got {value})")
    return problems


def _middleware(tool_name: str, middleware: Any) -> tuple[Middleware, ...]:
    """``middleware`` as a tuple of ``mw(request, call_next)``; else a ``UsageError``."""
    return check_middleware(middleware, f"tool '{tool_name}'")


def _model_name(tool_name: str) -> str:
    return "".join(p.capitalize() for p in tool_name.replace("-", "_").split("_")) or "Tool"


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` returns a coroutine (an ``async def``, or an object whose
    ``__call__`` is one)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    )


def _arguments_model(
    fn: Callable[..., Any], tool_name: str, namespace: Mapping[str, Any]
) -> tuple[
    type[BaseModel], frozenset[str], tuple[str, ...], tuple[tuple[str, str], ...], str | None
]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"tool '{tool_name}': cannot read the signature of {fn!r}") from exc
    try:
        hints = typing.get_type_hints(fn, localns=dict(namespace), include_extras=True)
    except Exception:  # a callable object, say: use the signature's annotations as they are
        hints = {}
    fields: dict[str, Any] = {}
    annotations: dict[str, Any] = {}
    defaults: set[str] = set()
    positional: list[str] = []
    renamed: list[tuple[str, str]] = []
    extra: typing.Literal["forbid", "allow"] = "forbid"
    taken = set(signature.parameters)
    context: str | None = None
    for param in signature.parameters.values():
        if _is_context(hints.get(param.name, param.annotation)):
            if param.kind is param.POSITIONAL_ONLY or context is not None:
                raise UsageError(
                    f"tool '{tool_name}': the CallContext parameter '{param.name}' must be one, "
                    "and passable by name (not before a '/')"
                )
            context = param.name
            continue
        if param.kind is param.VAR_KEYWORD:
            extra = "allow"
            continue
        if param.kind is param.VAR_POSITIONAL:
            raise UsageError(
                f"tool '{tool_name}': *{param.name} cannot be sent by a model; "
                "use a list parameter instead"
            )
        if param.kind is param.POSITIONAL_ONLY:
            positional.append(param.name)
        annotation = hints.get(param.name, param.annotation)
        if annotation is inspect.Parameter.empty:
            annotation = Any
        annotations[param.name] = annotation
        field_name = param.name
        if _needs_alias(param.name):
            # Pydantic keeps `_x` for private attributes and `model_config` for itself: the
            # field gets another name, and the parameter's name is its alias, for validation
            # and in the schema alike.
            field_name = _field_name(param.name, taken)
            annotation = Annotated[annotation, Field(alias=param.name)]
            renamed.append((field_name, param.name))
        if param.default is inspect.Parameter.empty:
            fields[field_name] = (annotation, ...)
        else:
            fields[field_name] = (annotation, param.default)
            defaults.add(param.name)
    config = ConfigDict(extra=extra, arbitrary_types_allowed=True, protected_namespaces=())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a field shadowing a BaseModel attribute is fine
            model = pydantic.create_model(
                f"{_model_name(tool_name)}Arguments", __config__=config, **fields
            )
    except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError, TypeError) as exc:
        raise UsageError(f"tool '{tool_name}': cannot build an argument schema: {exc}") from exc
    if not model.__pydantic_complete__:
        unresolved = [f"{n}: {a}" for n, a in annotations.items() if isinstance(a, str)]
        raise UsageError(
            f"tool '{tool_name}': cannot resolve the type hints {', '.join(unresolved)}; "
            "define those types where the tool is defined or at module level, "
            "or pass namespace= to Tool.from_function"
        )
    return model, frozenset(defaults), tuple(positional), tuple(renamed), context


def _is_context(annotation: Any) -> bool:
    """``CallContext``, also as ``CallContext | None`` or ``Annotated[CallContext, ...]``."""
    if annotation is CallContext or annotation == "CallContext":
        return True
    if typing.get_origin(annotation) is Annotated:
        return _is_context(typing.get_args(annotation)[0])
    args = typing.get_args(annotation)
    return bool(args) and CallContext in args and all(a in (CallContext, type(None)) for a in args)


def _context_parameter(fn: Callable[..., Any], tool_name: str) -> str | None:
    """For a tool from a JSON Schema: the parameter after the arguments' dict annotated
    ``CallContext``, if ``fn`` has one."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    found = [p for p in params[1:] if _is_context(hints.get(p.name, p.annotation))]
    if not found:
        return None
    if len(found) > 1 or found[0].kind is inspect.Parameter.POSITIONAL_ONLY:
        raise UsageError(
            f"tool '{tool_name}': fn may take one CallContext parameter, passable by name"
        )
    return found[0].name


def _resource_keys(tool_name: str, which: str, keys: Any) -> Any:
    """``reads``/``writes`` as the engine keeps them: None, a frozenset of fixed keys, or the
    function; ``UsageError`` for anything else."""
    if keys is None or callable(keys):
        return keys
    if isinstance(keys, str):
        return frozenset((keys,))
    if isinstance(keys, list | tuple | set | frozenset) and all(isinstance(k, str) for k in keys):
        return frozenset(keys)
    raise UsageError(
        f"tool '{tool_name}': {which} takes a key (a string), a list of keys, or a function of "
        f"the call's arguments returning them, got {safe_type_name(keys)}"
    )


def _needs_alias(name: str) -> bool:
    return name.startswith("_") or name == "model_config"


def _field_name(name: str, taken: set[str]) -> str:
    """A field name for parameter ``name`` that pydantic accepts and no parameter has."""
    base = "p_" + (name.lstrip("_") or "arg")
    if base == "p_model_config":
        base = "p_model_config_"
    candidate, n = base, 1
    while candidate in taken or _needs_alias(candidate):
        candidate, n = f"{base}_{n}", n + 1
    taken.add(candidate)
    return candidate
