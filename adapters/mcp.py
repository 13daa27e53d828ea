"""MCP adapter: the tools of an MCP server (stdio or streamable HTTP) as toolweave tools.

    async with mcp_tools(StdioServerParameters(command="my-server")) as tools:
        result = await Orchestrator(tools).run(calls)

Each server tool becomes a ``Tool.from_schema`` tool, named as the server names it (after an
optional prefix), with its description and its ``inputSchema``; arguments are validated
before they reach the server. Calls over one session run concurrently. Needs the ``mcp``
extra (the ``mcp`` SDK, 2.x). Dicts and the SDK's types live only here, at the wire edge.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import shlex
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import anyio
import mcp.types as mcp_types
from mcp import Client, ClientSession, StdioServerParameters
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError
from tenacity.wait import wait_base

from toolweave import Middleware, Tool, ToolweaveError, UsageError
from toolweave.telemetry._values import safe_str, safe_type_name

__all__ = [
    "MCPConnectionError",
    "MCPProtocolError",
    "MCPServerError",
    "MCPToolError",
    "mcp_tools",
    "tools_from_session",
]

logger = logging.getLogger("toolweave")

_MAX_PAGES = 1000  # tools/list pages read from one server: a paginator that never ends stops
_MAX_TEXT = 2000  # characters of a server's text kept in an error message


class MCPServerError(ToolweaveError):
    """An MCP server did not give a usable answer. A tool from ``mcp_tools`` or
    ``tools_from_session`` raises one of the subclasses; the engine makes it that call's error
    (a ``ToolExecutionError`` whose ``__cause__`` it is, worded ``MCPToolError: <text>``).

        MCPServerError
        ├── MCPToolError        the server answered ``isError``: the tool itself failed
        ├── MCPProtocolError    a JSON-RPC error, or an answer of the wrong shape
        └── MCPConnectionError  no connection: it could not be opened, or it is gone
    """

    def __init__(self, message: str, *, server: str, tool: str | None = None) -> None:
        super().__init__(message)
        self.server = server
        """The server, as its messages name it (its own name, else its command or URL)."""
        self.tool = tool
        """The server's name for the tool called, when a call failed."""


class MCPToolError(MCPServerError):
    """The server answered a call with ``isError``: the message is the server's text.
    Retried when the tool has ``retries`` (a server's tool may fail for a moment)."""

    def __init__(
        self, message: str, *, server: str, tool: str, result: mcp_types.CallToolResult
    ) -> None:
        super().__init__(message, server=server, tool=tool)
        self.result = result
        """The server's whole answer (its content blocks, ``structured_content``, ``_meta``)."""


class MCPProtocolError(MCPServerError):
    """The server answered with a JSON-RPC error (an unknown tool, a request it timed out on)
    or with something that is not a valid answer (a result of the wrong shape, structured
    content its own output schema rejects). Retried when the tool has ``retries``."""

    def __init__(
        self, message: str, *, server: str, tool: str | None = None, code: int | None = None
    ) -> None:
        super().__init__(message, server=server, tool=tool)
        self.code = code
        """The JSON-RPC error code, when the server sent one."""


class MCPConnectionError(MCPServerError):
    """The connection to the server could not be opened, or is gone: the server exited, the
    HTTP session ended, or the ``async with`` around it was left. Never retried by default:
    every attempt over a closed session fails the same way."""


_DEFAULT_RETRY_ON: tuple[type[BaseException], ...] = (MCPToolError, MCPProtocolError)


@dataclass(frozen=True, kw_only=True)
class _ToolOptions:
    """What ``Tool.from_schema`` takes besides the schema, the same for every tool."""

    timeout: float | None
    retries: int
    retry_wait: wait_base | None
    retry_on: type[BaseException] | tuple[type[BaseException], ...]
    middleware: Sequence[Middleware]

    def build(
        self, name: str, description: str, schema: dict[str, Any], fn: Callable[..., Any]
    ) -> Tool:
        return Tool.from_schema(
            name,
            description,
            schema,
            fn,
            timeout=self.timeout,
            retries=self.retries,
            retry_wait=self.retry_wait,
            retry_on=self.retry_on,
            middleware=self.middleware,
        )


class _Session:
    """One server's session as its tools share it."""

    def __init__(self, session: ClientSession, label: str) -> None:
        self.session = session
        self.label = label
        self.closed = False
        """Set when ``mcp_tools`` left its ``async with``: calls fail at once, saying so."""

    def call(self, remote: str) -> Callable[[dict[str, Any]], Awaitable[Any]]:
        """The function behind the tool the server calls ``remote``."""

        async def call_mcp_tool(arguments: dict[str, Any]) -> Any:
            if self.closed:
                raise MCPConnectionError(
                    f"the connection to {self.label} was closed when its 'async with "
                    "mcp_tools(...)' block ended; run batches inside that block",
                    server=self.label,
                    tool=remote,
                )
            try:
                result = await self.session.call_tool(remote, arguments)
            except Exception as exc:
                raise self.translate(exc, "tools/call", remote) from exc
            return _output(result, self.label, remote)

        call_mcp_tool.__qualname__ = f"call_mcp_tool[{remote}]"
        return call_mcp_tool

    def translate(self, exc: Exception, method: str, tool: str | None) -> Exception:
        """The SDK's exceptions at this boundary as ours, most specific first; anything else
        as it is."""
        what = f"{method} for '{safe_str(tool, 100)}'" if tool is not None else method
        if isinstance(exc, MCPError):
            if exc.code == mcp_types.CONNECTION_CLOSED:
                return MCPConnectionError(
                    f"{self.label} closed the connection before answering {what} (the server "
                    "exited or the session ended); its tools cannot be called until it is "
                    "started again",
                    server=self.label,
                    tool=tool,
                )
            return MCPProtocolError(
                f"{self.label} answered {what} with error {exc.code}: "
                f"{safe_str(exc.message, _MAX_TEXT)}",
                server=self.label,
                tool=tool,
                code=exc.code,
            )
        if isinstance(exc, ValidationError):
            return MCPProtocolError(
                f"{self.label} sent an answer to {what} that is not valid MCP: "
                f"{_first_problem(exc)}",
                server=self.label,
                tool=tool,
            )
        if isinstance(exc, anyio.ClosedResourceError | anyio.BrokenResourceError):
            return MCPConnectionError(
                f"the connection to {self.label} is closed ({safe_type_name(exc)})",
                server=self.label,
                tool=tool,
            )
        if isinstance(exc, RuntimeError):
            # The SDK's own checks of an answer: structured content its output schema rejects,
            # an input-required answer toolweave cannot give input for.
            return MCPProtocolError(
                f"{self.label}: {safe_str(exc, _MAX_TEXT)}", server=self.label, tool=tool
            )
        return exc


async def tools_from_session(
    session: ClientSession | Client,
    *,
    prefix: str = "",
    timeout: float | None = None,  # noqa: ASYNC109 - each tool call's, not this listing's
    retries: int = 0,
    retry_wait: wait_base | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = _DEFAULT_RETRY_ON,
    middleware: Sequence[Middleware] = (),
    list_timeout: float | None = 60.0,
) -> list[Tool]:
    """The tools of the server behind an open, initialised ``ClientSession`` (or an entered
    ``mcp.Client``), one toolweave tool per server tool, every page of ``tools/list`` read.

    Each is named ``prefix + the server's name`` with the server's description, takes the
    arguments its ``inputSchema`` describes (validated before they reach the server) and
    returns the server's ``structuredContent`` when it gives one, else its text content
    parsed as JSON when it is JSON, else the text (several content blocks give a list; an
    image, audio or resource block gives its MCP dict, ``{"type": "image", "data": ...,
    "mimeType": ...}``). An ``isError`` answer fails the call with ``MCPToolError`` and the
    server's text; a lost connection with ``MCPConnectionError``.

    ``timeout``, ``retries``, ``retry_wait``, ``retry_on`` and ``middleware`` apply to every
    tool as in ``Tool.from_schema``; by default only ``MCPToolError`` and
    ``MCPProtocolError`` are retried (and timeouts). A timeout or a cancelled batch cancels
    the server's call too (the SDK sends ``notifications/cancelled``).

    A server's ``pattern`` keywords are checked like any schema's: in bounded time (a match
    that runs past a quarter of a second fails that call's arguments), so a catastrophic
    regular expression cannot stall the batch. A tool whose schema toolweave cannot use is
    left out with a logged warning.

    Listing gives up after ``list_timeout`` seconds (None: no bound) with
    ``MCPConnectionError``: the SDK drops an answer it cannot parse and would wait for it
    forever. For the same reason, give tools a ``timeout`` when the server is not yours.
    The tools call the server through ``session``: use them while it is open. The session's
    task groups are yours: where a failing transport cancels the task that entered them,
    ``mcp_tools`` is safer, as it keeps them in a task of their own.
    """
    options = _checked_options(prefix, timeout, retries, retry_wait, retry_on, middleware)
    _check_seconds("list_timeout", list_timeout)
    if isinstance(session, Client):
        session = session.session  # raises RuntimeError when the client was not entered
    if not isinstance(session, ClientSession):
        raise UsageError(
            "tools_from_session() takes an open mcp.ClientSession (or an entered mcp.Client), "
            f"got {safe_type_name(session)}; for a server to start or a URL, use "
            "'async with mcp_tools(server) as tools'"
        )
    shared = _Session(session, _label(session, None))
    try:
        async with asyncio.timeout(list_timeout):
            return await _tools(shared, prefix, options)
    except TimeoutError:
        raise MCPConnectionError(
            f"{shared.label} did not list its tools within {list_timeout:.3g} s (list_timeout)",
            server=shared.label,
        ) from None


def mcp_tools(
    server: StdioServerParameters | str,
    *,
    prefix: str = "",
    timeout: float | None = None,
    retries: int = 0,
    retry_wait: wait_base | None = None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = _DEFAULT_RETRY_ON,
    middleware: Sequence[Middleware] = (),
    connect_timeout: float | None = 60.0,
) -> AbstractAsyncContextManager[list[Tool]]:
    """Connect to an MCP server for the length of an ``async with`` block, and give its tools:

        async with mcp_tools(StdioServerParameters(command="uvx", args=["my-server"])) as tools:
            result = await Orchestrator(tools).run(calls)

    ``server`` is the SDK's ``StdioServerParameters`` (the command is started, and stopped
    when the block ends) or the URL of a streamable-HTTP endpoint (``"http://host/mcp"``;
    the HTTP session is ended when the block ends). The options are those of
    ``tools_from_session``; ``connect_timeout`` bounds starting the server, the handshake
    and the listing together (None: no bound). A server that cannot be reached raises
    ``MCPConnectionError`` when the block is entered.

    The connection runs in a task of its own, which enters and leaves the SDK's client (its
    task groups must be entered and left in one task): a transport that fails mid-batch
    ends the connection, and the batch's calls get ``MCPConnectionError`` rather than your
    task being cancelled. Run batches inside the block; a call after it ended fails with
    ``MCPConnectionError``. For headers, authentication or other client settings, open an
    ``mcp.Client`` yourself and use ``tools_from_session``.
    """
    options = _checked_options(prefix, timeout, retries, retry_wait, retry_on, middleware)
    _check_seconds("connect_timeout", connect_timeout)
    if isinstance(server, str):
        if urlsplit(server.strip()).scheme.lower() not in ("http", "https"):
            raise UsageError(
                f"mcp_tools() takes an http(s) URL or StdioServerParameters, got the text "
                f"{safe_str(server, 80)!r}; to start a server, pass "
                "StdioServerParameters(command=..., args=[...])"
            )
    elif not isinstance(server, StdioServerParameters):
        raise UsageError(
            "mcp_tools() takes mcp.StdioServerParameters or a streamable-HTTP URL, got "
            f"{safe_type_name(server)}; for a session you opened, use tools_from_session()"
        )
    if isinstance(server, str):
        server = server.strip()
    return _Connection(server, prefix, options, connect_timeout)


class _Connection(AbstractAsyncContextManager[list[Tool]]):
    """What ``mcp_tools`` returns. The ``mcp.Client`` lives in a task of its own that enters
    and leaves it: the SDK's task groups must be entered and left in one task, and a failure
    in one of them (an HTTP server gone mid-request) cancels the task they were entered in.
    In their own task, that cancels this connection, never the caller's batch: its calls
    are answered with ``MCPConnectionError``."""

    def __init__(
        self,
        server: StdioServerParameters | str,
        prefix: str,
        options: _ToolOptions,
        connect_timeout: float | None,
    ) -> None:
        self._server = server
        self._target = _describe(server)
        self._prefix = prefix
        self._options = options
        self._connect_timeout = connect_timeout
        self._session: _Session | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def __aenter__(self) -> list[Tool]:
        if self._task is not None:
            raise UsageError("an mcp_tools(...) block can be entered once; call mcp_tools again")
        ready: asyncio.Future[list[Tool]] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._serve(ready), name=f"toolweave MCP {self._target}")
        try:
            return await asyncio.shield(ready)
        except BaseException:
            self._task.cancel()  # still connecting or listing: there is nothing to keep
            await self._end()
            if ready.done() and not ready.cancelled():
                ready.exception()  # seen: asyncio would log it as never retrieved
            raise

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._end()

    async def _end(self) -> None:
        """Stop the connection and wait until it is closed (the stdio server stopped, the HTTP
        session ended). If the caller is cancelled meanwhile, closing goes on by itself."""
        if self._session is not None:
            self._session.closed = True
        self._stop.set()
        task = self._task
        if task is None:
            return
        await asyncio.wait({task})  # unlike 'await task', a cancelled caller leaves it be
        if not task.cancelled() and task.exception() is not None:  # a bug of ours: say so
            logger.error(
                "toolweave: the connection to %s failed", self._target, exc_info=task.exception()
            )

    async def _serve(self, ready: asyncio.Future[list[Tool]]) -> None:
        """Connect, list the tools into ``ready``, hold the connection until ``_end``, close."""
        client = Client(self._server)
        limit = self._connect_timeout
        deadline = None if limit is None else asyncio.get_running_loop().time() + limit
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    await client.__aenter__()
            except Exception as exc:
                why = (
                    f"no answer within {self._connect_timeout:.3g} s (connect_timeout)"
                    if isinstance(exc, TimeoutError) and self._connect_timeout is not None
                    else _leaf_text(exc)
                )
                _fail(
                    ready,
                    MCPConnectionError(
                        f"cannot connect to the MCP server {self._target}: {why}",
                        server=self._target,
                    ),
                    exc,
                )
                return
            try:
                await self._hold(client, ready, deadline)
            finally:
                await _close(client, self._session.label if self._session else self._target)
        finally:
            _fail(
                ready,
                MCPConnectionError(
                    f"the connection to the MCP server {self._target} ended before its tools "
                    "were listed",
                    server=self._target,
                ),
            )

    async def _hold(
        self, client: Client, ready: asyncio.Future[list[Tool]], deadline: float | None
    ) -> None:
        shared = self._session = _Session(client.session, _label(client.session, self._target))
        try:
            async with asyncio.timeout_at(deadline):
                tools = await _tools(shared, self._prefix, self._options)
        except TimeoutError as exc:
            problem = MCPConnectionError(
                f"{shared.label} did not list its tools within {self._connect_timeout:.3g} s "
                "of starting (connect_timeout)",
                server=shared.label,
            )
            _fail(ready, problem, exc)
            return
        except Exception as exc:
            _fail(ready, exc)
            return
        if not ready.done():
            ready.set_result(tools)
            await self._stop.wait()


def _fail(ready: asyncio.Future[Any], problem: Exception, cause: Exception | None = None) -> None:
    if ready.done():
        return
    if cause is not None:
        problem.__cause__ = cause
    ready.set_exception(problem)


async def _close(client: Client, label: str) -> None:
    """Leave ``client``: the stdio server is stopped (the SDK closes its stdin, then
    terminates it) or the HTTP session ended. A failure to close a connection that is
    already broken is logged, not raised: the block's outcome is what the caller sees."""
    try:
        await client.__aexit__(None, None, None)
    except Exception as problem:
        logger.warning(
            "toolweave: closing the connection to %s failed: %s", label, _leaf_text(problem)
        )


async def _tools(shared: _Session, prefix: str, options: _ToolOptions) -> list[Tool]:
    listed = await _list_all(shared)
    tools: list[Tool] = []
    names: set[str] = set()
    for remote in listed:
        name = prefix + remote.name
        why = _unusable(remote.name, name, names)
        built: Tool | None = None
        if why is None:
            schema, why = _schema(remote.input_schema)
        if why is None:
            try:
                built = options.build(
                    name, remote.description or "", schema, shared.call(remote.name)
                )
            except UsageError as exc:
                why = str(exc)
        if built is None:
            logger.warning(
                "toolweave: %s: tool '%s' is left out: %s",
                shared.label,
                safe_str(remote.name, 100),
                why,
            )
            continue
        names.add(name)
        tools.append(built)
    return tools


async def _list_all(shared: _Session) -> list[mcp_types.Tool]:
    """Every page of ``tools/list``."""
    found: list[mcp_types.Tool] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(_MAX_PAGES):
        params = None if cursor is None else mcp_types.PaginatedRequestParams(cursor=cursor)
        try:
            page = await shared.session.list_tools(params=params)
        except Exception as exc:
            problem = shared.translate(exc, "tools/list", None)
            if problem is exc:
                raise
            raise problem from exc
        found.extend(page.tools)
        cursor = page.next_cursor or None  # an empty cursor marks no further page
        if cursor is None:
            return found
        if cursor in seen:
            raise MCPProtocolError(
                f"{shared.label} lists its tools in pages that loop: the cursor "
                f"{safe_str(cursor, 80)!r} came back twice",
                server=shared.label,
            )
        seen.add(cursor)
    raise MCPProtocolError(
        f"{shared.label} lists its tools in more than {_MAX_PAGES} pages; toolweave stopped "
        "reading",
        server=shared.label,
    )


def _unusable(remote: str, name: str, taken: set[str]) -> str | None:
    if not remote:
        return "the server gave it no name"
    if name in taken:
        return f"the server lists a tool named '{safe_str(name, 100)}' twice; the first is kept"
    return None


def _schema(given: Any) -> tuple[dict[str, Any], str | None]:
    """The schema to build the tool with (a copy; the SDK's object is left as it is), or why
    there is none."""
    try:
        schema = copy.deepcopy(dict(given))
    except RecursionError:
        return {}, "its inputSchema is nested too deep"
    if "type" not in schema:  # MCP's input schemas are object schemas
        schema["type"] = "object"
    return schema, None


def _output(result: mcp_types.CallToolResult, label: str, remote: str) -> Any:
    """The call's output, as the model and references see it."""
    if result.is_error:
        raise MCPToolError(_error_text(result), server=label, tool=remote, result=result)
    if result.structured_content is not None:
        return result.structured_content
    values = [_block(b) for b in result.content]
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _block(block: mcp_types.ContentBlock) -> Any:
    if isinstance(block, mcp_types.TextContent):
        return _parsed(block.text)
    return block.model_dump(by_alias=True, mode="json", exclude_none=True)


def _parsed(text: str) -> Any:
    """``text`` parsed as JSON when it is JSON (strict: no ``NaN`` or ``Infinity``), else
    ``text``."""
    try:
        return json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return text


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _error_text(result: mcp_types.CallToolResult) -> str:
    parts = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        else:
            parts.append(f"[{block.type} content]")
    text = "\n".join(p for p in parts if p).strip()
    return safe_str(text, _MAX_TEXT) if text else "the tool failed and the server gave no text"


def _checked_options(
    prefix: Any,
    timeout: float | None,
    retries: int,
    retry_wait: wait_base | None,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    middleware: Sequence[Middleware],
) -> _ToolOptions:
    """The tool options, checked once (so that a mistake is told before connecting, not
    taken for a server's broken tool)."""
    if not isinstance(prefix, str):
        raise UsageError(f"prefix must be text (like 'fs_'), got {safe_type_name(prefix)}")
    options = _ToolOptions(
        timeout=timeout,
        retries=retries,
        retry_wait=retry_wait,
        retry_on=retry_on,
        middleware=middleware,
    )
    options.build("<each MCP tool>", "", {"type": "object"}, _never)  # UsageError if wrong
    return options


def _check_seconds(option: str, value: Any) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
    ):
        raise UsageError(
            f"{option} must be None or a positive number of seconds, got {safe_str(value, 40)}"
        )


def _never(arguments: dict[str, Any]) -> None:  # pragma: no cover - never called
    raise AssertionError("the probe tool is never called")


def _label(session: ClientSession, target: str | None) -> str:
    """The server as messages name it: its own name, else its command or URL."""
    info = session.server_info
    name = getattr(info, "name", None)
    if isinstance(name, str) and name.strip():
        return f"MCP server '{safe_str(name, 80)}'"
    return f"MCP server {target}" if target else "the MCP server"


def _describe(server: StdioServerParameters | str) -> str:
    """The command, or the URL without credentials, query or fragment (they may hold
    secrets)."""
    if isinstance(server, StdioServerParameters):
        return safe_str(shlex.join([server.command, *server.args]), 200)
    parts = urlsplit(server.strip())
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # not a port number: the client will say so when it connects
        port = ""
    return safe_str(f"{parts.scheme}://{host}{port}{parts.path}", 200)


def _leaf_text(exc: BaseException) -> str:
    """The first exception that is not a group, as ``Type: message``."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = safe_str(exc, 500)
    return f"{safe_type_name(exc)}: {text}" if text else safe_type_name(exc)


def _first_problem(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    if not errors:
        return safe_str(exc, 300)
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "(the answer)"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{safe_str(where, 120)}: {safe_str(first['msg'], 200)}{more}"
