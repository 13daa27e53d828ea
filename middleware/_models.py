"""The typed values that cross toolweave's boundary: calls in, plans and results out."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from typing import Annotated, Any, Literal, NamedTuple, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializationInfo,
    field_serializer,
)

from toolweave.telemetry._values import to_jsonable, to_text

from ._errors import ErrorType

__all__ = [
    "BatchResult",
    "CallResult",
    "CallStatus",
    "Decision",
    "DecisionContext",
    "DecisionRecord",
    "ExecutionPlan",
    "FinishedCall",
    "PlannedCall",
    "ToolCall",
]

CallStatus = Literal["ok", "error", "skipped"]
"""How a call ended: it ran and returned, it failed, or it never ran."""

Strategy = Literal["parallel", "serial", "dag"]


def _ids_as_text(value: Any) -> Any:
    # A model may write a 1-based position as a number: depends_on=[1]. Anything else that is
    # not text becomes text too, so the planner can name it in this call's error.
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v if isinstance(v, str) else to_text(v, 80) for v in value]
    return value


def _arguments_in(value: Any) -> Any:
    # Some models send "arguments": null for a tool that takes none. Other values that are not
    # an object or JSON text (a list, a number) become JSON text, which the planner reports as
    # this call's error rather than the batch's.
    if value is None:
        return {}
    try:
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return value
    except Exception:  # a dict subclass whose iteration raises
        return "<arguments that cannot be read>"  # not JSON: the planner says so
    if isinstance(value, str):
        return value
    return to_text(value)


_REPR_CHARS = 200


class _Shown(str):
    """A value's bounded text, printed as it is inside a model's ``repr``."""

    def __repr__(self) -> str:
        return str(self)


def _bounded_repr_args(
    model: BaseModel, fields: frozenset[str]
) -> Iterator[tuple[str | None, Any]]:
    # A repr must stay cheap and never raise: ``fields`` may hold anything a tool returned
    # (asyncio even prints a finished task's result when asyncio.run() returns).
    for name, value in BaseModel.__repr_args__(model):
        shown = name in fields and value is not None
        yield name, _Shown(to_text(value, _REPR_CHARS)) if shown else value


class ToolCall(BaseModel):
    """One tool call as the model wrote it.

    ``arguments`` is a dict or the raw JSON text the model produced; raw text is parsed when the
    batch is planned, so bad JSON is an error for this call only. ``depends_on`` lists calls
    (ids, or 1-based positions in the batch) that must succeed before this one starts, for
    ordering that no reference expresses.

    Fields may be given by position: ``ToolCall("c1", "search", {"q": "x"})``.

    ``error`` is for adapters: a call the model wrote but toolweave cannot run as written (a
    repeated id, a custom tool call, a call a broken stream left incomplete) still belongs in
    the batch, so it gets its one result; with ``error`` set it never runs and its result is an
    ``invalid_call`` error with that text.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: Annotated[dict[str, Any] | str, BeforeValidator(_arguments_in)] = Field(
        default_factory=dict
    )
    depends_on: Annotated[list[str], BeforeValidator(_ids_as_text)] = Field(default_factory=list)
    error: str | None = None
    """Why this call cannot run, when the adapter that read it already knows."""

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        return _bounded_repr_args(self, frozenset({"arguments"}))

    def __init__(self, *args: Any, **data: Any) -> None:
        if len(args) > 4:
            raise TypeError(f"ToolCall takes at most 4 positional arguments, got {len(args)}")
        for key, value in zip(("id", "name", "arguments", "depends_on"), args, strict=False):
            if key in data:
                raise TypeError(f"ToolCall got two values for '{key}'")
            data[key] = value
        super().__init__(**data)


class PlannedCall(NamedTuple):
    """What the planner found out about one call, before anything ran (an immutable record;
    a named tuple, so a plan of 10,000 calls stays cheap to build)."""

    call_id: str
    tool_name: str
    depends_on: list[str]
    """Ids of the calls it waits for: reference targets and ``depends_on``, resolved."""
    group_index: int | None
    """Its level: 0 without dependencies, else 1 + the highest level among them; None on or
    behind a cycle."""
    output_mapping: Mapping[str, str]
    """Argument path (``url``, ``filters.owner``, ``items[0]``) -> the reference text there."""
    error: str | None = None
    """Why the call will fail without running, if the planner already knows."""
    error_type: ErrorType | None = None
    ordered_after: list[str] = []  # noqa: RUF012 - a NamedTuple field; never mutated
    """Ids of the calls it runs after because of resources they share (``reads``/``writes``
    known before the batch runs); a data or ``depends_on`` edge to the same call is not
    repeated here."""


class ExecutionPlan(BaseModel):
    """How a batch will run: its strategy, its levels and its dependency edges."""

    model_config = ConfigDict(frozen=True)

    strategy: Strategy
    """``parallel`` (no edges), ``serial`` (one call per level, or forced), or ``dag``."""
    groups: list[list[str]]
    """Call ids by level, batch order inside a level. Calls on or behind a cycle are in none."""
    dependencies: dict[str, list[str]]
    """Call id -> ids of the calls it waits for (every call has an entry)."""
    calls: list[PlannedCall]
    """One entry per call, in batch order."""
    orderings: dict[str, list[str]] = Field(default_factory=dict)
    """Call id -> ids of the calls it waits for because of resources (``@tool(reads=...,
    writes=...)``), for the calls that have any. Levels count these edges too. Keys that
    depend on a reference are known only as the batch runs: those orderings are on the call
    spans' links (``toolweave.link.kind`` ``resource``), not here."""

    @cached_property
    def _by_id(self) -> dict[str, PlannedCall]:
        return {c.call_id: c for c in self.calls}

    def get(self, call_id: str) -> PlannedCall:
        """The planned call with this id; ``KeyError`` if the batch has none."""
        try:
            return self._by_id[call_id]
        except KeyError:
            raise KeyError(f"no call with id {call_id!r} in this plan") from None

    @property
    def errors(self) -> dict[str, str]:
        """Call id -> the error the planner already found for it (bad JSON, unknown tool,
        bad reference, cycle)."""
        return {c.call_id: c.error for c in self.calls if c.error is not None}

    def to_dict(self) -> dict[str, Any]:
        """The plan in the JSON shape trace viewers read (``execution_groups`` and friends)."""
        by_id = self._by_id
        groups = []
        for index, group in enumerate(self.groups):
            tools = []
            for call_id in group:
                planned = by_id[call_id]
                tools.append(
                    {
                        "tool_id": call_id,
                        "tool_type": planned.tool_name,
                        "depends_on": list(planned.depends_on),
                        "dependency_groups": sorted(
                            {
                                g
                                for dep in planned.depends_on
                                if (g := by_id[dep].group_index) is not None
                            }
                        ),
                        "output_mapping": dict(planned.output_mapping),
                        "ordered_after": list(planned.ordered_after),
                    }
                )
            groups.append(
                {"group_index": index, "tools": tools, "parallel_execution": len(group) > 1}
            )
        return {
            "strategy": self.strategy,
            "execution_groups": groups,
            "total_groups": len(self.groups),
            "total_tools": len(self.calls),
            "tool_ids": [c.call_id for c in self.calls],
        }


class CallResult(BaseModel):
    """How one call ended. A batch has exactly one per call, in the order the calls were given.

    Times are seconds since the batch started (``BatchResult.started_at``).
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    call_id: str
    name: str
    """The tool's name as the model wrote it."""
    status: CallStatus
    output: Any = None
    """What the tool returned (``status == "ok"``), else None."""
    error: str | None = None
    """For ``error`` and ``skipped``: what went wrong, written for the model to act on."""
    error_type: ErrorType | None = None
    arguments: dict[str, Any] | None = None
    """The arguments the tool was called with, references resolved; None if it never ran."""
    group_index: int | None = None
    execution_order: int | None = None
    """0-based rank of the moment the call started (its middleware, then its tool); None if
    it never started."""
    depends_on: list[str] = Field(default_factory=list)
    attempts: int = 0
    started_at: float | None = None
    """When the call started (its middleware, then its first attempt); None if it never
    started."""
    ended_at: float | None = None
    """When the call's outcome was settled (for a skipped call, when it was skipped)."""
    exception: BaseException | None = Field(default=None, exclude=True, repr=False)
    """The ``CallError`` behind ``error`` (for a tool's own exception, its ``__cause__``)."""
    replayed: bool = False
    """True when the result comes from the call ledger: the call ended in an earlier run of
    this ``batch_id`` and its tool was not called again. ``output`` is then the recorded JSON
    data (a tuple comes back a list, an object as its fields)."""
    cached: bool = False
    """True when the result comes from the orchestrator's cache, or from an identical call
    running at the same time in another batch; the tool was not called for this call."""
    deduplicated_from: str | None = None
    """The id of the identical call of this batch (same idempotent tool, same arguments)
    that ran for this one; None when this call ran itself."""
    ordered_after: list[str] = Field(default_factory=list)
    """Ids of the calls it started after because of resources they share, as the batch ran
    (orderings from keys known only at run time included; see ``ExecutionPlan.orderings``)."""

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        return _bounded_repr_args(self, frozenset({"output", "arguments"}))

    @property
    def ok(self) -> bool:
        """True when the tool ran and returned."""
        return self.status == "ok"

    @property
    def duration(self) -> float | None:
        """Seconds from the first attempt's start to the outcome; None if it never ran."""
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at


class Decision(BaseModel):
    """A decider's answer for the calls it was asked about.

    ``continue`` runs them; ``skip`` skips the calls named in ``skip`` (only among those
    waiting) and their dependents; ``stop`` skips every call not yet started and lets running
    ones finish. ``skip`` with an empty list acts as ``continue``; ``continue`` ignores ``skip``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["continue", "skip", "stop"]
    skip: list[str] = Field(default_factory=list)
    """Ids of waiting calls to skip (read only with ``action="skip"``)."""
    reason: str = ""
    """Why, in a sentence; shown to the model in the skipped calls' errors."""

    @property
    def effective(self) -> Literal["continue", "skip", "stop"]:
        """The action as applied: ``skip`` with nothing to skip is ``continue``."""
        return "continue" if self.action == "skip" and not self.skip else self.action


class FinishedCall(BaseModel):
    """A call that has ended, as a decider sees it."""

    model_config = ConfigDict(frozen=True)

    call_id: str
    name: str
    status: CallStatus
    output: str | None
    """The output as text (JSON for structured values), cut to the configured length."""
    error: str | None


class DecisionContext(BaseModel):
    """What a decider is told: what has finished, which calls wait on this decision, what
    waits behind them, and the user's goal."""

    model_config = ConfigDict(frozen=True)

    finished: Sequence[FinishedCall]
    """Calls that have ended, in the order they ended. The engine passes a read-only view
    that builds each entry when first read, so a decision costs the same at step 2,000 as at
    step 2: read what you need (``finished[-1]``, say) rather than copying it all."""
    waiting: list[ToolCall]
    """The calls this decision is about, with their references resolved."""
    pending: Sequence[ToolCall]
    """Calls not started yet that wait behind them (arguments as the model wrote them); a
    view found when first read."""
    goal: str | None = None
    """The user's request, as given to ``Orchestrator.run(..., goal=...)``."""
    trigger: Literal["step", "failure"] = "step"
    """``step``: the waiting calls are about to start. ``failure``: a call failed and the
    waiting calls (its dependents) will be skipped; the choice is whether to stop the batch."""

    _usage: dict[str, int] | None = PrivateAttr(default=None)

    @field_serializer("finished")
    def _as_list(self, calls: Sequence[FinishedCall]) -> list[FinishedCall]:
        return list(calls)  # the engine's lazy views dump like the lists they stand for

    @field_serializer("waiting", "pending")
    def _calls(self, calls: Sequence[ToolCall], info: SerializationInfo) -> list[Any]:
        # Resolved arguments hold tools' outputs, which may be anything: JSON-safe in JSON mode.
        if info.mode_is_json():
            return [to_jsonable(c.model_dump()) for c in calls]
        return [c.model_dump() for c in calls]

    _model: str | None = PrivateAttr(default=None)

    @property
    def waiting_ids(self) -> list[str]:
        """Ids of the calls this decision is about."""
        return [c.id for c in self.waiting]

    def report_usage(
        self, input_tokens: int, output_tokens: int, *, model: str | None = None
    ) -> None:
        """For model-backed deciders: record the tokens a model used for this decision.
        Counts that are not whole non-negative numbers (a server's ``1.5``, ``1e300``, None)
        count as 0; a model name that is not text is ignored."""
        usage = self._usage or {"input_tokens": 0, "output_tokens": 0}
        usage["input_tokens"] += _tokens(input_tokens)
        usage["output_tokens"] += _tokens(output_tokens)
        self._usage = usage
        if isinstance(model, str):
            self._model = model


def _tokens(count: Any) -> int:
    if isinstance(count, bool) or not isinstance(count, int | float):
        return 0
    if isinstance(count, float) and not (count.is_integer() and 0 <= count < 2**53):
        return 0
    return int(count) if 0 <= count < 2**63 else 0


class DecisionRecord(BaseModel):
    """One decision point of a batch, as it happened."""

    model_config = ConfigDict(frozen=True)

    call_ids: list[str]
    """The calls the decision was about."""
    decision: Decision
    """The decision applied (the fallback when ``fallback`` is true)."""
    fallback: bool
    """True when the decider failed, timed out, answered nonsense or was not asked."""
    error: str | None = None
    """Why the decider's answer was not used."""
    error_type: str | None = None
    """A short class of the failure: the exception's name, ``timeout``, ``invalid_decision``
    or ``circuit_open``."""
    elapsed: float
    """Seconds spent deciding."""
    started_at: float
    """Seconds since the batch started."""
    usage: dict[str, int] | None = None
    """``{"input_tokens", "output_tokens"}`` when a model answered, else None."""
    model: str | None = None
    """The model that was asked, for model-backed deciders."""
    trigger: Literal["step", "failure"] = "step"


class BatchResult(BaseModel):
    """The outcome of one batch: the plan, and one result per call in the model's order."""

    model_config = ConfigDict(frozen=True)

    plan: ExecutionPlan
    results: list[CallResult]
    elapsed: float
    """Wall-clock seconds from the start of ``run()`` to the last outcome."""
    started_at: float
    """Unix time at which the batch started."""
    decisions: list[DecisionRecord] = Field(default_factory=list)
    """Every decision point of the batch, in the order decisions were applied."""
    stopped: str | None = None
    """The decider's reason when it stopped the batch, else None."""
    batch_id: str = ""
    """Names the batch, as middleware saw it in ``CallRequest.batch_id``."""

    @property
    def ok(self) -> bool:
        """True when every call succeeded."""
        return all(r.status == "ok" for r in self.results)

    @cached_property
    def _by_id(self) -> dict[str, CallResult]:
        return {r.call_id: r for r in self.results}

    def get(self, call_id: str) -> CallResult:
        """The result of the call with this id; ``KeyError`` if the batch has none."""
        try:
            return self._by_id[call_id]
        except KeyError:
            raise KeyError(f"no call with id {call_id!r} in this batch") from None

    def by_status(self, status: CallStatus) -> list[CallResult]:
        """The results with this status, in batch order."""
        return [r for r in self.results if r.status == status]

    def to_trace(self, *, include_content: bool = False) -> dict[str, Any]:
        """A JSON-ready record of the run: the plan (``ExecutionPlan.to_dict()``) and, per call,
        status, level, execution order, timing and error. Arguments and outputs are left out
        unless ``include_content`` is true."""
        calls = []
        for r in self.results:
            entry: dict[str, Any] = {
                "call_id": r.call_id,
                "name": r.name,
                "status": r.status,
                "error_type": r.error_type,
                "error": r.error,
                "group_index": r.group_index,
                "execution_order": r.execution_order,
                "depends_on": list(r.depends_on),
                "attempts": r.attempts,
                "started_at": r.started_at,
                "ended_at": r.ended_at,
                "duration": r.duration,
                "replayed": r.replayed,
                "cached": r.cached,
                "deduplicated_from": r.deduplicated_from,
                "ordered_after": list(r.ordered_after),
            }
            if include_content:
                entry["arguments"] = r.arguments
                entry["output"] = r.output
            calls.append(entry)
        return {
            "plan": self.plan.to_dict(),
            "ok": self.ok,
            "started_at": self.started_at,
            "elapsed": self.elapsed,
            "stopped": self.stopped,
            "decisions": [d.model_dump(mode="json") for d in self.decisions],
            "calls": calls,
        }

    def to_html(self, *, include_content: bool = False) -> str:
        """This batch as the Inspector's self-contained HTML page (``toolweave inspect
        --html``): timeline, dependency graph, summary and a details panel, with no tracing set
        up. Arguments and outputs appear only when ``include_content`` is true."""
        from toolweave.telemetry._html import page
        from toolweave.telemetry._view import from_record

        view = from_record(
            self.to_trace(include_content=include_content),
            batch_id=self.batch_id or "batch",
            name="batch",
        )
        return page([view], title=f"batch {self.batch_id}" if self.batch_id else "batch")


M = TypeVar("M", bound=BaseModel)


def trusted(cls: type[M], fields: dict[str, Any]) -> M:
    """An instance of ``cls`` from ``fields`` the engine built itself, every field given and
    of the right type: what validation would make, without its cost (about half a
    ``CallResult``'s, once per call). Never for data from outside."""
    model = cls.__new__(cls)
    object.__setattr__(model, "__dict__", fields)
    object.__setattr__(model, "__pydantic_fields_set__", set(fields))
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model
