"""The engine's own OpenTelemetry spans, through ``opentelemetry-api`` only.

One ``BatchTrace`` per recording batch span; when the batch span does not record (no SDK
configured, or sampled out) none is made and the engine pays one ``None`` check per call.
Telemetry never breaks a run: a failing span operation is logged and ignored.
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring_ascii
from operator import attrgetter
from typing import Any, TypeVar

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, Status, StatusCode

from toolweave.telemetry import TraceContent
from toolweave.telemetry import attributes as A
from toolweave.telemetry._values import safe_str, safe_type_name

from ._models import BatchResult, CallResult, DecisionContext, DecisionRecord, ExecutionPlan
from ._planner import Prepared, target_index

__all__ = ["BatchTrace", "end_span", "mark_failed", "plan_json", "safely", "start_batch_span"]

logger = logging.getLogger("toolweave")
T = TypeVar("T")


def safely(method: Callable[..., T]) -> Callable[..., T | None]:
    """Run a telemetry method; log and swallow its failure so the batch goes on."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T | None:
        try:
            return method(*args, **kwargs)
        except Exception:  # telemetry must never take a run down
            logger.warning("toolweave: tracing failed in %s", method.__name__, exc_info=True)
            return None

    return wrapper


def start_batch_span(tracer: trace.Tracer, workflow_name: str) -> Span:
    """Open the batch span as a child of the current span (never raises)."""
    try:
        return tracer.start_span(
            f"{A.BATCH_SPAN_PREFIX} {workflow_name}",
            attributes={
                A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_WORKFLOW,
                A.GEN_AI_WORKFLOW_NAME: workflow_name,
            },
        )
    except Exception:  # telemetry must never take a run down
        logger.warning("toolweave: tracing failed to start a batch span", exc_info=True)
        return trace.INVALID_SPAN


@safely
def mark_failed(span: Span, exc: BaseException, content: TraceContent | None = None) -> None:
    """``run()`` raised: say so on the batch span. ``error.type`` is the exception's qualified
    class; the message goes on the status and the ``exception`` event only with content
    capture on, since it may quote the batch."""
    kind = _qualified(type(exc))
    message = content.render("error", safe_str(exc)) if content and content.active else None
    _exception_event(span, exc, message or safe_type_name(exc), with_stack=message is not None)
    span.set_attribute(A.ERROR_TYPE, kind)
    # The status says what error.type does not: the message, when it may be shown.
    span.set_status(Status(StatusCode.ERROR, message))


def _exception_event(span: Span, exc: BaseException, message: str, *, with_stack: bool) -> None:
    """An ``exception`` event as the conventions name it; the SDK's ``record_exception`` would
    put ``str(exc)`` (content, and a call that may raise) on the span."""
    attributes = {
        A.EXCEPTION_TYPE: _qualified(type(exc)),
        A.EXCEPTION_MESSAGE: message,
    }
    if with_stack:
        attributes[A.EXCEPTION_STACKTRACE] = "".join(traceback.format_tb(exc.__traceback__))
    span.add_event("exception", attributes)


_quoted = encode_basestring_ascii
"""A string as ``json.dumps`` writes it (the C encoder it uses), quotes included."""
_CALL_ID = attrgetter("call_id")
_DATA = {A.TW_LINK_KIND: A.LINK_DATA}
_ORDER = {A.TW_LINK_KIND: A.LINK_ORDER}
_RESOURCE = {A.TW_LINK_KIND: A.LINK_RESOURCE}
_STATUS = attrgetter("status")


def plan_json(plan: ExecutionPlan, *, capture: bool, ids: list[str] | None = None) -> str:
    """The ``toolweave.plan`` event's JSON: the text ``json.dumps(plan.to_dict())`` gives,
    character for character, written straight from the plan (no dicts to build and walk: a
    plan of 1,000 calls is on every batch span). Without content capture, each call's
    ``output_mapping`` shows argument names only (``_argument_names_only``). ``ids``: the
    plan's call ids in order, when the caller has them already."""
    calls = plan.calls
    if ids is None:
        ids = list(map(_CALL_ID, calls))
    quoted = list(map(_quoted, ids))
    known = dict(zip(ids, zip(calls, quoted, strict=True), strict=True))
    index_of: dict[str, int] | None = None  # for the names-only mapping, built on first need
    alone: dict[str, str] = {}  # tool name -> the tail of a call's entry without edges
    groups = []
    for level, group in enumerate(plan.groups):
        tools = []
        for call_id in group:
            planned, tool_id = known[call_id]
            deps = planned.depends_on
            mapping = planned.output_mapping
            after = planned.ordered_after
            if deps or mapping or after:
                depends = dependency_groups = shown = ""
                if deps:
                    depends = ", ".join([known[d][1] for d in deps])
                    levels = {g for d in deps if (g := known[d][0].group_index) is not None}
                    dependency_groups = ", ".join(map(str, sorted(levels)))
                if mapping:
                    if not capture:
                        if index_of is None:
                            index_of = {call_id: i for i, call_id in enumerate(ids)}
                        mapping = _argument_names_only(mapping, index_of)
                    shown = ", ".join([f"{_quoted(k)}: {_quoted(v)}" for k, v in mapping.items()])
                ordered = ", ".join([known[a][1] for a in after])
                tail = _entry_tail(
                    _quoted(planned.tool_name), depends, dependency_groups, shown, ordered
                )
            else:  # the commonest entry: its tail is the same for every call of the tool
                tail = alone.get(planned.tool_name, "")
                if not tail:
                    tail = alone[planned.tool_name] = _entry_tail(
                        _quoted(planned.tool_name), "", "", "", ""
                    )
            tools.append(f'{{"tool_id": {tool_id}{tail}')
        parallel = "true" if len(group) > 1 else "false"
        groups.append(
            f'{{"group_index": {level}, "tools": [{", ".join(tools)}], '
            f'"parallel_execution": {parallel}}}'
        )
    return (
        f'{{"strategy": {_quoted(plan.strategy)}, "execution_groups": [{", ".join(groups)}], '
        f'"total_groups": {len(plan.groups)}, "total_tools": {len(calls)}, '
        f'"tool_ids": [{", ".join(quoted)}]}}'
    )


def _entry_tail(
    tool_type: str, depends: str, dependency_groups: str, mapping: str, ordered: str
) -> str:
    """A call's entry in the plan event after its ``tool_id``, from JSON text of its parts."""
    return (
        f', "tool_type": {tool_type}, "depends_on": [{depends}], '
        f'"dependency_groups": [{dependency_groups}], "output_mapping": {{{mapping}}}, '
        f'"ordered_after": [{ordered}]}}'
    )


def _argument_names_only(mapping: Mapping[str, str], index_of: dict[str, int]) -> dict[str, str]:
    """Without content capture, ``output_mapping`` keeps each reference under its top-level
    argument's name only (keys deeper inside an argument's value are the model's data), and
    only references to calls of the batch: ``${...}`` text that names none is just text."""
    merged: dict[str, str] = {}
    for location, refs in mapping.items():
        name = location.partition(".")[0].partition("[")[0]  # up to the first . or [
        if ", " in refs:  # several references at one place
            known = ", ".join([_known(ref, index_of) for ref in refs.split(", ")])
        else:
            known = _known(refs, index_of)
        merged[name] = f"{merged[name]}, {known}" if name in merged else known
    return merged


def _known(ref: str, ids: dict[str, int]) -> str:
    target = ref[2:].partition(".")[0].partition("[")[0].partition("}")[0].strip()
    return ref if target_index(target, ids, len(ids)) is not None else "${?}"


def _qualified(kind: type) -> str:
    try:  # a metaclass may make reading these raise
        module, name = kind.__module__, kind.__qualname__
    except Exception:
        return "object"
    if not isinstance(name, str):
        return "object"
    return name if module in ("builtins", "", None) else f"{module}.{name}"


@safely
def end_span(span: Span) -> None:
    """End a span; a failing span processor is logged, not raised."""
    span.end()


class BatchTrace:
    """Spans for one batch, as an observer of its run: the batch span, a span per call, a span
    per decision. The run loop's ``Observers`` guards every method; the batch span's own
    start and end are ``start_batch_span`` and ``end_span``."""

    def __init__(self, tracer: trace.Tracer, batch: Span, content: TraceContent) -> None:
        self.tracer = tracer
        self.batch = batch
        self.context = trace.set_span_in_context(batch)
        self.capture = content.active
        self.content = content
        self.running: dict[int, Span] = {}
        """Spans of the calls started and not yet ended."""
        self.linked: dict[int, SpanContext] = {}
        """Every call span's context, for its dependents' links. Contexts, not spans: an ended
        span is the exporter's now, and a batch of 1,000 would keep 1,000 alive for the GC."""
        self.ids: dict[int, str] = {}
        """Every call span's call id, by batch index: its dependents' ``depends_on``."""
        self._decisions: dict[object, Span] = {}

    def batch_finished(self, plan: ExecutionPlan, result: BatchResult) -> None:
        """Put the plan and the outcome on the batch span (the caller ends it): attributes in
        one pass, and the plan as the ``toolweave.plan`` event."""
        ids = list(map(_CALL_ID, plan.calls))
        statuses = list(map(_STATUS, result.results))
        attributes: dict[str, Any] = {
            A.TW_BATCH_ID: result.batch_id,
            A.TW_STRATEGY: plan.strategy,
            A.TW_TOTAL_GROUPS: len(plan.groups),
            A.TW_TOTAL_TOOLS: len(ids),
            A.TW_TOOL_IDS: ids,
            A.TW_STOPPED: result.stopped is not None,
            A.TW_CALLS_OK: statuses.count("ok"),
            A.TW_CALLS_ERROR: statuses.count("error"),
            A.TW_CALLS_SKIPPED: statuses.count("skipped"),
        }
        if result.stopped is not None:
            attributes[A.TW_STOP_REASON] = result.stopped
        failed = attributes[A.TW_CALLS_ERROR]
        if failed:
            kinds = {r.error_type for r in result.results if r.status == "error"}
            attributes[A.ERROR_TYPE] = kinds.pop() if len(kinds) == 1 else A.ERROR_TYPE_OTHER
        self.batch.set_attributes(attributes)
        if failed:  # counts only: which calls failed and why is on their own spans
            self.batch.set_status(Status(StatusCode.ERROR, f"{failed} of {len(ids)} calls failed"))
        shown = plan_json(plan, capture=self.capture, ids=ids)
        self.batch.add_event(A.PLAN_EVENT, {A.TW_PLAN_JSON: shown})

    def call_started(self, p: Prepared, order: int) -> None:
        """Open the call's span, linked to its dependencies', and make it current in the
        call's task: its middleware's and tool's own spans nest under it (threads too)."""
        span = self.running[p.index] = self._call_span(p, order, None)
        context_api.attach(trace.set_span_in_context(span))  # the task's context ends with it

    def call_ended(self, p: Prepared, result: CallResult) -> None:
        """Close the call's span (opening one now for a call that never ran)."""
        span = self.running.pop(p.index, None)
        if span is None:
            span = self._call_span(p, None, result.depends_on)
        try:
            self._describe_call(span, result)
        finally:
            span.end()  # whatever failed above (a redact hook, say), the span ends

    def _describe_call(self, span: Span, result: CallResult) -> None:
        """What is known once the call settled; what was known as it started is on the span
        since ``_call_span``."""
        # Each field is read once: a pydantic model's attribute is dearer than a local's.
        status, error_type = result.status, result.error_type
        attributes: dict[str, Any] = {A.TW_STATUS: status, A.TW_ATTEMPTS: result.attempts}
        if result.replayed:
            attributes[A.TW_REPLAYED] = True
        if result.cached:
            attributes[A.TW_CACHED] = True
        if result.deduplicated_from is not None:
            attributes[A.TW_DEDUPLICATED_FROM] = result.deduplicated_from
        if error_type is not None:
            attributes[A.TW_ERROR_TYPE] = error_type
        if status == "skipped":
            if error_type == "skipped_by_middleware" and not self.capture:
                # The reason is the middleware's own text: it may quote the arguments.
                attributes[A.TW_SKIP_REASON] = "skipped by middleware"
            else:
                attributes[A.TW_SKIP_REASON] = result.error or ""
        elif status == "error":
            failure = error_type or "error"
            attributes[A.ERROR_TYPE] = failure
            cause = result.exception.__cause__ if result.exception is not None else None
            shown = cause or result.exception
            summary = failure if cause is None else f"{failure}: {safe_type_name(cause)}"
            message = self.content.render("error", result.error or "") if self.capture else None
            if shown is not None:
                _exception_event(span, shown, message or summary, with_stack=self.capture)
            # The description adds to error.type (the message, or the cause's class); a bare
            # repeat of error.type is left out, as the conventions ask.
            span.set_status(Status(StatusCode.ERROR, message or (summary if cause else None)))
        if self.capture:
            if result.arguments is not None:
                attributes[A.GEN_AI_TOOL_CALL_ARGUMENTS] = self.content.render(
                    "arguments", result.arguments
                )
            if status == "ok":
                attributes[A.GEN_AI_TOOL_CALL_RESULT] = self.content.render("result", result.output)
        span.set_attributes(attributes)

    def decision_started(self, key: object, context: DecisionContext) -> None:
        """Open the span of a decision point, current in the decider's task."""
        span = self._decisions[key] = self._decision_span(context.waiting_ids, context.trigger)
        context_api.attach(trace.set_span_in_context(span))  # the task's context ends with it

    def decision_ended(self, key: object, record: DecisionRecord) -> None:
        """Close a decision span with what was decided."""
        span = self._decisions.pop(key, None)
        if span is None:  # settled before its decider started
            span = self._decision_span(record.call_ids, record.trigger)
        try:
            self._describe_decision(span, record)
        finally:
            span.end()

    def _decision_span(self, call_ids: list[str], trigger: str) -> Span:
        return self.tracer.start_span(
            A.DECISION_SPAN,
            context=self.context,
            attributes={A.TW_DECISION_CALL_IDS: call_ids, A.TW_DECISION_TRIGGER: trigger},
        )

    def _describe_decision(self, span: Span, record: DecisionRecord) -> None:
        decision = record.decision
        attributes: dict[str, Any] = {
            A.TW_DECISION_ACTION: decision.effective,
            A.TW_DECISION_FALLBACK: record.fallback,
            A.TW_DECISION_REASON: decision.reason,
        }
        if record.error_type is not None:
            attributes[A.ERROR_TYPE] = record.error_type
            # The decider's error may quote what it was shown: its text only with capture on.
            shown = self.content.render("error", record.error or "") if self.capture else None
            span.set_status(Status(StatusCode.ERROR, shown))
        if record.model is not None:
            attributes[A.GEN_AI_REQUEST_MODEL] = record.model
        if record.usage is not None:
            attributes[A.GEN_AI_USAGE_INPUT_TOKENS] = record.usage["input_tokens"]
            attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] = record.usage["output_tokens"]
        span.set_attributes(attributes)

    def _call_span(self, p: Prepared, order: int | None, depends_on: list[str] | None) -> Span:
        """Open a call's span with every attribute known before it runs, so that samplers and
        span processors see them at its start. ``depends_on``: the ids of its dependencies,
        when the caller has them (otherwise they are the ended dependencies' ids)."""
        call, deps, index = p.call, p.deps, p.index
        ids, linked = self.ids, self.linked
        ids[index] = call_id = call.id
        attributes: dict[str, Any] = {
            A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL,
            A.GEN_AI_TOOL_NAME: call.name,
            A.GEN_AI_TOOL_CALL_ID: call_id,
            A.GEN_AI_TOOL_TYPE: "function",
        }
        tool = p.tool
        if tool is not None and tool.description:
            attributes[A.GEN_AI_TOOL_DESCRIPTION] = tool.description
        if p.level is not None:
            attributes[A.TW_GROUP_INDEX] = p.level
        if order is not None:
            attributes[A.TW_EXECUTION_ORDER] = order
        if depends_on is None:  # a started call's dependencies have all ended, so have ids
            depends_on = [ids[d] for d in deps if d in ids]
        attributes[A.TW_DEPENDS_ON] = depends_on  # the SDK keeps a copy (a tuple)
        links: list[Link] = []
        if deps:
            data = set(p.targets.values()) if p.has_references else ()
            links = [Link(linked[d], _DATA if d in data else _ORDER) for d in deps if d in linked]
        after = p.ordered_after
        if after:
            attributes[A.TW_ORDERED_AFTER] = [ids[j] for j in after if j in ids]
            links += [Link(linked[j], _RESOURCE) for j in after if j in linked]
        # The kind is left to its default, INTERNAL, as the conventions ask.
        span = self.tracer.start_span(
            f"{A.CALL_SPAN_PREFIX} {call.name}",
            context=self.context,
            links=links,
            attributes=attributes,
        )
        linked[index] = span.get_span_context()
        return span
