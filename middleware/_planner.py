"""Planning: from a batch of calls to an ``ExecutionPlan``, without running or parsing JSONPath.

Everything here is linear in calls + edges: one pass over the arguments to find references,
levels in that same pass while every edge points back to an earlier call (the usual batch, in
topological order already), else Kahn's algorithm, and Tarjan's algorithm (only when Kahn's
leaves calls behind) to tell calls on a cycle from calls that merely wait behind one. graphlib
is not used because it stops at the first cycle it meets; we must flag every call on every
cycle and keep the rest. The plan is built from parts the planner made itself, without
validating them again (bench/bench_plan.py measures all of it against graphlib).
"""

from __future__ import annotations

import difflib
import json
import logging
import sys
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from pydantic import ValidationError

from ._errors import (
    CallError,
    CircularDependencyError,
    InvalidArgumentsError,
    InvalidBatchError,
    InvalidCallError,
    InvalidReferenceError,
    UnknownToolError,
)
from ._log import log_event
from ._models import ExecutionPlan, PlannedCall, ToolCall
from ._references import (
    MAX_ARGUMENT_DEPTH,
    ArgumentsTooDeepError,
    Found,
    ReferenceSyntaxError,
    compile_arguments,
    shorten,
)
from ._resources import NOT_YET, levels_over, plan_orderings
from ._tools import Tool

__all__ = ["Prepared", "coerce_batch", "plan_batch", "prepare_call", "target_index"]

logger = logging.getLogger("toolweave")

_NOTHING: Mapping[Any, Any] = MappingProxyType({})  # shared by the many calls without references
_NAME_EACH = 64  # components up to this size get a shortest cycle named for every member
_PLAN_FIELDS = {"strategy", "groups", "dependencies", "calls", "orderings"}
_NO_ORDERINGS: list[str] = []
_new = tuple.__new__  # a named tuple from a tuple of its fields, without a Python-level frame


@dataclass(slots=True)
class Prepared:
    """One call as the engine runs it: parsed arguments with reference markers, its tool,
    its dependencies as batch indexes, and the error it already has, if any."""

    index: int
    call: ToolCall
    tool: Tool | None
    arguments: dict[str, Any]
    targets: Mapping[str, int]
    """Reference target as written -> batch index of the call it names."""
    deps: list[int]
    has_references: bool
    output_mapping: Mapping[str, str]
    error: CallError | None
    level: int | None
    ordered_after: Sequence[int] = ()
    """Calls it waits for because of resources, once known (set as it starts)."""
    keys: Any = NOT_YET
    """Its resource keys as known before it runs (``_resources.static_keys``), once asked."""


def coerce_batch(calls: Any) -> list[ToolCall]:
    """The batch as ``ToolCall``s; ``InvalidBatchError`` if it is not a list of calls or two
    calls share an id."""
    if isinstance(calls, str | bytes | Mapping) or not isinstance(calls, Iterable):
        raise InvalidBatchError(
            f"a batch is a list of tool calls, got {type(calls).__name__}; "
            "pass [ToolCall(...), ...] or a list of dicts with id, name and arguments"
        )
    batch: list[ToolCall] = []
    seen: dict[str, int] = {}
    for position, item in enumerate(calls):
        if not isinstance(item, ToolCall):
            try:
                item = ToolCall.model_validate(item)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in err["loc"]) or "item"
                raise InvalidBatchError(
                    f"item {position + 1} of the batch is not a tool call: '{where}': "
                    f"{err['msg']}. Each call needs an id, a name and arguments.",
                    position=position,
                ) from None
        call_id = item.id
        first = seen.setdefault(call_id, position)
        if first != position:
            raise InvalidBatchError(
                f"calls {first + 1} and {position + 1} share the id '{call_id}'; "
                "every call in a batch needs its own id",
                position=position,
            )
        batch.append(item)
    return batch


def plan_batch(
    calls: Sequence[ToolCall],
    tools: Mapping[str, Tool] | None,
    strategy: Literal["auto", "serial"] = "auto",
) -> tuple[ExecutionPlan, list[Prepared]]:
    """Plan ``calls``. ``tools=None`` plans without checking tool names (``toolweave plan``)."""
    ids = [c.id for c in calls]
    index_of = dict(zip(ids, range(len(ids)), strict=True))
    serial = strategy == "serial"
    prepared: list[Prepared] = []
    edges = 0
    # Levels in the same pass, while every edge points back to an earlier call (as in most
    # batches): such a batch is in topological order already, with no cycle to look for. At
    # the first edge that points forward, Kahn's algorithm takes over below.
    levels: list[int] = []
    in_order = True
    for i, call in enumerate(calls):
        p = prepare_call(i, call, tools, index_of, serial)
        prepared.append(p)
        deps = p.deps
        if deps:
            edges += len(deps)
            if in_order:
                level = 0
                for d in deps:
                    if d >= i:
                        in_order = False
                        break
                    if levels[d] >= level:
                        level = levels[d] + 1
                else:
                    p.level = level  # Kahn's algorithm, if it runs, finds the same level
                    levels.append(level)
        elif in_order:
            p.level = 0
            levels.append(0)
    log_event(logging.DEBUG, "orchestration.dependencies_extracted", calls=len(calls), edges=edges)

    stuck: list[int] = []
    if in_order:
        depth = 1 + max(levels, default=-1)
    else:
        succ: list[list[int]] = [[] for _ in prepared]
        for p in prepared:
            for d in p.deps:
                succ[d].append(p.index)
        stuck = _assign_levels(prepared, succ)
        if stuck:
            _flag_cycles(prepared, succ, stuck)
        depth = 1 + max((p.level for p in prepared if p.level is not None), default=-1)
    orderings: dict[int, list[int]] = {}
    if not serial and tools is not None and any(t.declares_resources for t in tools.values()):
        orderings = plan_orderings(prepared)
        if orderings:
            levels_over(prepared, orderings)
            depth = 1 + max((p.level for p in prepared if p.level is not None), default=-1)
    if serial:
        for p in prepared:
            p.level = p.index
        groups = [[call_id] for call_id in ids]
    else:
        groups = [[] for _ in range(depth)]

    planned: list[PlannedCall] = []
    dependencies: dict[str, list[str]] = {}
    for p in prepared:
        call_id = ids[p.index]
        group = p.level
        if group is not None and not serial:
            groups[group].append(call_id)
        depends_on = [ids[d] for d in p.deps] if p.deps else []
        dependencies[call_id] = depends_on
        error = p.error
        after = _NO_ORDERINGS
        if orderings and p.index in orderings:
            after = [ids[j] for j in orderings[p.index]]
        # Built without PlannedCall's Python-level __new__: (call_id, tool_name, depends_on,
        # group_index, output_mapping, error, error_type, ordered_after).
        planned.append(
            _new(
                PlannedCall,
                (call_id, p.call.name, depends_on, group, p.output_mapping, None, None, after)
                if error is None
                else (
                    call_id,
                    p.call.name,
                    depends_on,
                    group,
                    p.output_mapping,
                    str(error),
                    error.error_type,
                    after,
                ),
            )
        )

    kind: Literal["parallel", "serial", "dag"]
    if serial:
        kind = "serial"
    elif edges == 0:
        kind = "parallel"
    elif not stuck and all(len(g) == 1 for g in groups):
        kind = "serial"
    else:
        kind = "dag"
    log_event(
        logging.DEBUG,
        "orchestration.strategy_determined",
        strategy=kind,
        groups=len(groups),
        calls=len(calls),
    )
    # Built from trusted parts: validating 10,000 entries again would double planning time.
    plan = ExecutionPlan.model_construct(
        _PLAN_FIELDS,
        strategy=kind,
        groups=groups,
        dependencies=dependencies,
        calls=planned,
        orderings={ids[i]: [ids[j] for j in after] for i, after in orderings.items()},
    )
    return plan, prepared


def prepare_call(
    index: int,
    call: ToolCall,
    tools: Mapping[str, Tool] | None,
    index_of: Mapping[str, int],
    serial: bool,
) -> Prepared:
    tool = tools.get(call.name) if tools is not None else None
    p = Prepared(index, call, tool, {}, _NOTHING, [], False, _NOTHING, None, None)
    try:
        if call.error is not None:
            raise InvalidCallError(call.error, call_id=call.id, tool_name=call.name)
        arguments = call.arguments
        if type(arguments) is not dict:
            arguments = _parse_arguments(call)
        if tools is not None and tool is None:
            raise UnknownToolError(
                _unknown_tool(call.name, tools), call_id=call.id, tool_name=call.name
            )
        try:
            p.arguments, found = compile_arguments(arguments)
        except ArgumentsTooDeepError as exc:
            raise InvalidArgumentsError(
                f"argument '{shorten(exc.location)}' is nested more than "
                f"{MAX_ARGUMENT_DEPTH} levels deep. Send a flatter object.",
                call_id=call.id,
                tool_name=call.name,
            ) from None
        except ReferenceSyntaxError as exc:
            detail = f"argument '{exc.location}' has a malformed reference: {exc}"
            raise _ref_error(call, detail) from None
        depends_on = call.depends_on
        if found or depends_on:
            problem = _collect_edges(p, found, depends_on, index_of, serial)
            if problem is not None:
                raise _ref_error(call, problem)
    except CallError as exc:
        p.error = exc
    return p


def _collect_edges(
    p: Prepared,
    found: list[Found],
    depends_on: list[str],
    index_of: Mapping[str, int],
    serial: bool,
) -> str | None:
    """Fill in the call's edges from its references and depends_on; return the first problem.

    An edge to another call of the batch (an earlier one when ``serial``) is taken inline;
    ``target_index`` finds positions, and ``_edge_problem`` words what is wrong with the rest."""
    n = len(index_of)
    index = p.index
    deps: dict[int, None] = {}
    problem: str | None = None
    if found:
        p.has_references = True
        p.output_mapping = mapping = {}
        p.targets = targets = {}
        for f in found:
            location, refs = f.location, f.references
            # References only, never the text around them: the plan goes on spans.
            mapping[location] = refs[0].text if len(refs) == 1 else ", ".join(r.text for r in refs)
            for ref in refs:
                written = ref.target
                target = index_of.get(written)
                if target is None:
                    target = target_index(written, index_of, n)
                if target is not None and target != index and not (serial and target > index):
                    targets[written] = target
                    deps[target] = None
                elif problem is None:
                    problem = f"argument '{location}' refers to {shorten(ref.text)!r}, " + (
                        _edge_problem(index, target, serial) or _no_such_call(written, n)
                    )
    for written in depends_on:
        target = index_of.get(written)
        if target is None:
            target = target_index(written, index_of, n)
        if target is not None and target != index and not (serial and target > index):
            deps[target] = None
        elif problem is None:
            problem = f"depends_on names '{shorten(written)}', " + (
                _edge_problem(index, target, serial) or _no_such_call(written, n)
            )
    p.deps = list(deps)
    return problem


def _parse_arguments(call: ToolCall) -> dict[str, Any]:
    raw = call.arguments
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidArgumentsError(
                f"arguments are not valid JSON ({exc.msg} at line {exc.lineno} column "
                f"{exc.colno}). Send the arguments as one JSON object.",
                call_id=call.id,
                tool_name=call.name,
            ) from None
        except ValueError:  # Python's int-to-string limit (4,300 digits by default)
            raise InvalidArgumentsError(
                f"arguments hold a number with more than {sys.get_int_max_str_digits()} "
                "digits. Send such a number as a string.",
                call_id=call.id,
                tool_name=call.name,
            ) from None
        except RecursionError:
            raise InvalidArgumentsError(
                f"arguments are nested too deeply to parse (more than {MAX_ARGUMENT_DEPTH} "
                "levels are never accepted). Send a flatter object.",
                call_id=call.id,
                tool_name=call.name,
            ) from None
    if not isinstance(raw, dict):
        raise InvalidArgumentsError(
            f"arguments must be a JSON object, got {type(raw).__name__}. "
            'Send them as one object, e.g. {"name": value}.',
            call_id=call.id,
            tool_name=call.name,
        )
    return raw


def target_index(written: str, index_of: Mapping[str, int], n: int) -> int | None:
    """The batch index a reference target or ``depends_on`` entry names (an id, else a 1-based
    position), or None."""
    found = index_of.get(written)
    if found is not None:
        return found
    # Positions are ASCII digits only ("²" and "١" are digits to str.isdigit), and no longer
    # than the batch's size needs: int() of 5,000 digits would raise.
    if _is_position(written) and len(written) <= len(str(n)) and 1 <= int(written) <= n:
        return int(written) - 1
    return None


def _is_position(written: str) -> bool:
    return written.isascii() and written.isdigit()


def _edge_problem(index: int, target: int | None, serial: bool) -> str | None:
    if target is None:
        return None  # the caller words an unknown target
    if target == index:
        return "which is this call itself; a call can only use the output of another call"
    if serial and target > index:
        return (
            "a later call; with strategy 'serial' calls run in batch order, "
            "so a call can only wait for earlier calls"
        )
    return None


def _no_such_call(written: str, n: int) -> str:
    return (
        f"but the batch has no call with id '{shorten(written)}'"
        + (f" and only {n} calls" if _is_position(written) else "")
        + "; refer to another call of this batch by its id or its 1-based position"
    )


def _unknown_tool(name: str, tools: Mapping[str, Tool]) -> str:
    close = difflib.get_close_matches(name, list(tools), n=1) if len(name) <= 200 else []
    hint = f" Did you mean '{close[0]}'?" if close else ""
    names = ", ".join(sorted(tools)) or "none"
    return f"unknown tool '{shorten(name)}'.{hint} Available tools: {names}."


def _ref_error(call: ToolCall, detail: str) -> InvalidReferenceError:
    return InvalidReferenceError(detail, call_id=call.id, tool_name=call.name)


def _assign_levels(prepared: list[Prepared], succ: list[list[int]]) -> list[int]:
    """Kahn's algorithm: set each call's level; return the calls it could not order."""
    waiting = [len(p.deps) for p in prepared]
    levels = [0] * len(prepared)
    queue = [p.index for p in prepared if not p.deps]
    for i in queue:  # the list grows while we walk it
        prepared[i].level = levels[i]
        nxt = levels[i] + 1
        for s in succ[i]:
            if levels[s] < nxt:
                levels[s] = nxt
            waiting[s] -= 1
            if waiting[s] == 0:
                queue.append(s)
    return [i for i, w in enumerate(waiting) if w > 0]


def _flag_cycles(prepared: list[Prepared], succ: list[list[int]], stuck: list[int]) -> None:
    """Give every call on a cycle a ``CircularDependencyError`` naming a cycle through it.
    Calls only behind a cycle keep no error: they are skipped when the cycle's calls fail."""
    inside = set(stuck)
    for component in _strongly_connected(stuck, succ, inside):
        if len(component) == 1:
            continue  # self-references are rejected earlier, so a single call is not a cycle
        members = set(component)
        ordered = sorted(component)
        if len(component) > _NAME_EACH:
            # One breadth-first search per member would be quadratic: name one example.
            example = [prepared[n].call.id for n in _shortest_cycle(ordered[0], prepared, members)]
            for i in ordered:
                _set_cycle_error(prepared[i], example, len(component))
            continue
        named: dict[int, list[int]] = {}
        for start in ordered:
            if start not in named:
                cycle = _shortest_cycle(start, prepared, members)
                for k, node in enumerate(cycle[:-1]):
                    named.setdefault(node, cycle[k:-1] + cycle[:k] + [node])
            _set_cycle_error(prepared[start], [prepared[n].call.id for n in named[start]], None)


def _set_cycle_error(p: Prepared, cycle: list[str], group_size: int | None) -> None:
    if p.error is None:  # an error found earlier (bad JSON, unknown tool) comes first
        p.error = CircularDependencyError(
            cycle, call_id=p.call.id, tool_name=p.call.name, group_size=group_size
        )


def _strongly_connected(
    nodes: list[int], succ: list[list[int]], inside: set[int]
) -> list[list[int]]:
    """Tarjan's algorithm, iterative, over ``nodes`` and the edges among them."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    components: list[list[int]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, k = work.pop()
            if k == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            edges = succ[node]
            while k < len(edges):
                nxt = edges[k]
                k += 1
                if nxt not in inside:
                    continue
                if nxt not in index:
                    work.append((node, k))
                    work.append((nxt, 0))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    components.append(component)
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
    return components


def _shortest_cycle(start: int, prepared: list[Prepared], members: set[int]) -> list[int]:
    """Breadth-first over "waits for" edges inside one component, back to ``start``."""
    parent: dict[int, int] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for dep in prepared[node].deps:
            if dep not in members:
                continue
            if dep == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if dep not in parent:
                parent[dep] = node
                queue.append(dep)
    raise AssertionError("a strongly connected component always has a cycle")
