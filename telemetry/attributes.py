"""Span names and attribute keys toolweave writes: the OpenTelemetry GenAI semantic
conventions where one exists, ``toolweave.*`` for the rest. One constant per key, so the
engine, the tests and the README agree."""

from __future__ import annotations

__all__ = [
    "BATCH_SPAN_PREFIX",
    "CALL_SPAN_PREFIX",
    "DECISION_SPAN",
    "ERROR_TYPE",
    "ERROR_TYPE_OTHER",
    "EXCEPTION_MESSAGE",
    "EXCEPTION_STACKTRACE",
    "EXCEPTION_TYPE",
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_REQUEST_MODEL",
    "GEN_AI_TOOL_CALL_ARGUMENTS",
    "GEN_AI_TOOL_CALL_ID",
    "GEN_AI_TOOL_CALL_RESULT",
    "GEN_AI_TOOL_DESCRIPTION",
    "GEN_AI_TOOL_NAME",
    "GEN_AI_TOOL_TYPE",
    "GEN_AI_USAGE_INPUT_TOKENS",
    "GEN_AI_USAGE_OUTPUT_TOKENS",
    "GEN_AI_WORKFLOW_NAME",
    "LINK_DATA",
    "LINK_ORDER",
    "LINK_RESOURCE",
    "OP_EXECUTE_TOOL",
    "OP_INVOKE_WORKFLOW",
    "PLAN_EVENT",
    "TW_ATTEMPTS",
    "TW_BATCH_ID",
    "TW_CACHED",
    "TW_CALLS_ERROR",
    "TW_CALLS_OK",
    "TW_CALLS_SKIPPED",
    "TW_DECISION_ACTION",
    "TW_DECISION_CALL_IDS",
    "TW_DECISION_FALLBACK",
    "TW_DECISION_REASON",
    "TW_DECISION_TRIGGER",
    "TW_DEDUPLICATED_FROM",
    "TW_DEPENDS_ON",
    "TW_ERROR_TYPE",
    "TW_EXECUTION_ORDER",
    "TW_GROUP_INDEX",
    "TW_LINK_KIND",
    "TW_ORDERED_AFTER",
    "TW_PLAN_JSON",
    "TW_REPLAYED",
    "TW_SKIP_REASON",
    "TW_STATUS",
    "TW_STOPPED",
    "TW_STOP_REASON",
    "TW_STRATEGY",
    "TW_TOOL_IDS",
    "TW_TOTAL_GROUPS",
    "TW_TOTAL_TOOLS",
]

# --- span names ---------------------------------------------------------------------------
BATCH_SPAN_PREFIX = "invoke_workflow"
"""The batch span is named ``invoke_workflow {workflow name}``."""
CALL_SPAN_PREFIX = "execute_tool"
"""A call's span is named ``execute_tool {tool name}``."""
DECISION_SPAN = "toolweave.decide"
"""One span per decision point."""
PLAN_EVENT = "toolweave.plan"
"""Span event on the batch span carrying the plan."""

# --- GenAI semantic conventions ---------------------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
"""``invoke_workflow`` on the batch span, ``execute_tool`` on call spans."""
OP_INVOKE_WORKFLOW = "invoke_workflow"
"""Value of ``gen_ai.operation.name`` for a batch."""
OP_EXECUTE_TOOL = "execute_tool"
"""Value of ``gen_ai.operation.name`` for a call."""
GEN_AI_WORKFLOW_NAME = "gen_ai.workflow.name"
"""The workflow's name: ``toolweave`` unless the orchestrator was given another."""
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
"""The tool the call names."""
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
"""The call's id, as the model gave it."""
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
"""Always ``function``."""
GEN_AI_TOOL_DESCRIPTION = "gen_ai.tool.description"
"""The tool's description (its docstring, or the schema's), when it has one."""
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
"""The arguments as the tool received them (JSON), only when content capture is on."""
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
"""The tool's output (JSON), only when content capture is on."""
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
"""On decision spans: the model a model-backed decider asked."""
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
"""On decision spans: tokens the decision model read."""
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
"""On decision spans: tokens the decision model wrote."""
ERROR_TYPE = "error.type"
"""The class of failure, on every span whose operation failed: a call's
``CallResult.error_type``; on the batch span the failed calls' common error type (``_OTHER``
when they differ), or the exception's qualified class when ``run()`` raised; on a decision
span, why the decider failed."""
ERROR_TYPE_OTHER = "_OTHER"
"""``error.type`` when failures of several kinds share one span (the conventions' fallback)."""
EXCEPTION_TYPE = "exception.type"
"""On ``exception`` events: the exception's qualified class name."""
EXCEPTION_MESSAGE = "exception.message"
"""On ``exception`` events: the message with content capture on, else a content-free summary
(the error type and the exception's class)."""
EXCEPTION_STACKTRACE = "exception.stacktrace"
"""On ``exception`` events, with content capture on only: the frames of the traceback."""

# --- toolweave: batch ---------------------------------------------------------------------
TW_BATCH_ID = "toolweave.batch.id"
"""The engine's id of the batch (``BatchResult.batch_id``, ``CallRequest.batch_id``): the
inspector names the batch by it, as ``BatchResult.to_html()`` does."""
TW_STRATEGY = "toolweave.strategy"
"""``parallel``, ``serial`` or ``dag``."""
TW_TOTAL_GROUPS = "toolweave.total_groups"
"""Number of levels in the plan."""
TW_TOTAL_TOOLS = "toolweave.total_tools"
"""Number of calls in the batch."""
TW_TOOL_IDS = "toolweave.tool_ids"
"""Call ids in the model's order."""
TW_STOPPED = "toolweave.stopped"
"""True when a decider stopped the batch."""
TW_STOP_REASON = "toolweave.stop_reason"
"""The decider's reason for stopping (set only when stopped)."""
TW_CALLS_OK = "toolweave.calls.ok"
"""How many calls succeeded."""
TW_CALLS_ERROR = "toolweave.calls.error"
"""How many calls failed."""
TW_CALLS_SKIPPED = "toolweave.calls.skipped"
"""How many calls were skipped."""
TW_PLAN_JSON = "toolweave.plan.json"
"""Attribute of the ``toolweave.plan`` event: ``ExecutionPlan.to_dict()`` as JSON."""

# --- toolweave: call ----------------------------------------------------------------------
TW_GROUP_INDEX = "toolweave.group_index"
"""The call's level in the plan (absent for calls on or behind a cycle)."""
TW_EXECUTION_ORDER = "toolweave.execution_order"
"""Rank of the moment the tool started (absent when it never ran)."""
TW_DEPENDS_ON = "toolweave.depends_on"
"""Ids of the calls it waited for; each is also a span link."""
TW_ORDERED_AFTER = "toolweave.ordered_after"
"""Ids of the calls it ran after because of resources they share (``reads``/``writes``); each
is also a span link of kind ``resource``."""
TW_LINK_KIND = "toolweave.link.kind"
"""On a call span's link: why the call waited for the linked one: ``data`` (a reference),
``order`` (``depends_on``) or ``resource`` (a resource one writes and the other uses)."""
LINK_DATA = "data"
LINK_ORDER = "order"
LINK_RESOURCE = "resource"
TW_REPLAYED = "toolweave.replayed"
"""True when the result was replayed from the call ledger (the tool was not called)."""
TW_CACHED = "toolweave.cached"
"""True when the result came from the cache or a call in flight elsewhere."""
TW_DEDUPLICATED_FROM = "toolweave.deduplicated_from"
"""The id of the identical call of the batch whose result this call took."""
TW_STATUS = "toolweave.status"
"""``ok``, ``error`` or ``skipped``."""
TW_ATTEMPTS = "toolweave.attempts"
"""Attempts made (0 when the tool never ran)."""
TW_ERROR_TYPE = "toolweave.error_type"
"""Why the call did not succeed (``CallResult.error_type``)."""
TW_SKIP_REASON = "toolweave.skip_reason"
"""Why a skipped call was skipped."""

# --- toolweave: decision ------------------------------------------------------------------
TW_DECISION_ACTION = "toolweave.decision.action"
"""``continue``, ``skip`` or ``stop`` as applied."""
TW_DECISION_FALLBACK = "toolweave.decision.fallback"
"""True when the decider failed and the fallback applied."""
TW_DECISION_CALL_IDS = "toolweave.decision.call_ids"
"""The calls the decision was about."""
TW_DECISION_REASON = "toolweave.decision.reason"
"""The decision's reason."""
TW_DECISION_TRIGGER = "toolweave.decision.trigger"
"""``step`` (before dependent calls) or ``failure`` (after a failed call)."""
