"""``IntermediateLLMDecider``: a model, over any OpenAI-compatible Chat Completions endpoint,
decides between steps.

The ``openai`` package is an optional extra; it is imported only when a decision is made.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_exponential, wait_random

from toolweave.telemetry._values import to_jsonable

from ._errors import (
    DeciderUnavailableError,
    DecisionRefusedError,
    InvalidDecisionError,
    UsageError,
)
from ._models import Decision, DecisionContext
from ._references import preview

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["IntermediateLLMDecider", "decision_prompt", "decision_schema"]

DEFAULT_INSTRUCTIONS = """\
You check a batch of tool calls between steps. Some calls have finished (see "finished"). The
calls in "waiting" are about to run with the arguments shown; "pending" calls wait behind them.
Decide:
- "continue": run the waiting calls;
- "skip": do not run the waiting calls whose ids you list in "skip" (nor what depends on them),
  because what has come back makes them pointless or wrong;
- "stop": stop the whole batch so the agent can re-plan, because the results show the plan no
  longer fits the goal.
Prefer "continue" unless the results clearly make a waiting call pointless or harmful.
Give "reason" as one short sentence. Answer with the JSON object only."""

FAILURE_NOTE = """\
A call failed; the "waiting" calls depend on it and will be skipped whatever you answer.
Answer "stop" if the rest of the batch should stop too, else "continue"."""

_DEFAULT_FALLBACK = Decision(
    action="continue", reason="the decision model did not answer; continuing as planned"
)
_RETRY_STATUS = frozenset({408, 409, 429})


def decision_prompt(
    context: DecisionContext, instructions: str = DEFAULT_INSTRUCTIONS, output_chars: int = 1000
) -> list[dict[str, str]]:
    """Chat messages asking a model to decide: the instructions, then the context as JSON."""
    system = instructions
    if context.trigger == "failure":
        system += "\n" + FAILURE_NOTE
    payload: dict[str, Any] = {
        "goal": context.goal,
        "finished": [
            {"id": f.call_id, "tool": f.name, "status": f.status}
            | ({"output": f.output} if f.status == "ok" else {"error": f.error})
            for f in context.finished
        ],
        "waiting": [
            {"id": c.id, "tool": c.name, "arguments": preview(c.arguments, output_chars)}
            for c in context.waiting
        ],
        "pending": [{"id": c.id, "tool": c.name} for c in context.pending],
    }
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": json.dumps(to_jsonable(payload), ensure_ascii=False)},
    ]


def decision_schema(waiting_ids: list[str]) -> dict[str, Any]:
    """The strict JSON schema of a ``Decision`` whose ``skip`` may name only ``waiting_ids``."""
    ids: dict[str, Any] = {"type": "string"}
    if waiting_ids:
        ids["enum"] = list(waiting_ids)
    return {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["continue", "skip", "stop"]},
            "skip": {"type": "array", "items": ids},
            "reason": {"type": "string"},
        },
        "required": ["action", "skip", "reason"],
        "additionalProperties": False,
    }


class IntermediateLLMDecider:
    """Asks a model, through the ``openai`` async client, whether the next steps should run.

    ``client`` is an ``AsyncOpenAI`` (its ``base_url`` may point at any OpenAI-compatible
    server; Chat Completions is used). The answer is structured output against the
    ``Decision`` schema.

    - ``timeout`` bounds each attempt, enforced here, not only by the client;
    - ``retries`` counts attempts after the first, on connection errors, timeouts, 408, 409,
      429 and 5xx, with exponential backoff and jitter, honouring ``Retry-After``;
    - ``max_wait`` bounds the whole decision, waits included: a server asking to wait longer
      than is left means no answer now;
    - the client's own retries are turned off for these requests (``max_retries=0``) so the two
      are not multiplied; its other settings are used as they are;
    - ``fallback`` is applied when the decision fails, and ``breaker`` consecutive failures in
      one batch stop the engine from asking again in that batch.
    """

    def __init__(
        self,
        client: AsyncOpenAI,
        model: str,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        max_wait: float = 30.0,
        fallback: Decision = _DEFAULT_FALLBACK,
        breaker: int = 3,
        instructions: str = DEFAULT_INSTRUCTIONS,
        output_chars: int = 1000,
    ) -> None:
        if not timeout > 0 or not max_wait > 0:
            raise UsageError("IntermediateLLMDecider: timeout and max_wait must be positive")
        if retries < 0 or breaker < 1:
            raise UsageError("IntermediateLLMDecider: retries must be >= 0 and breaker >= 1")
        self.client = client
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.max_wait = max_wait
        self.fallback = fallback
        self.breaker = breaker
        self.instructions = instructions
        self.output_chars = output_chars
        self.backoff: wait_base = wait_exponential(multiplier=0.5, max=8) + wait_random(0, 0.25)
        """Wait between attempts when the server gives no ``Retry-After``."""

    def messages(self, context: DecisionContext) -> list[dict[str, str]]:
        """The chat messages sent for ``context``: instructions, then the context as JSON."""
        return decision_prompt(context, self.instructions, self.output_chars)

    async def decide(self, context: DecisionContext) -> Decision:
        """Ask the model; raise a ``DeciderError`` (or the client's error) when it cannot."""
        import openai  # the optional extra, needed only now

        deadline = time.monotonic() + self.max_wait
        client = self.client.with_options(max_retries=0)
        messages: Any = self.messages(context)
        response_format: Any = {
            "type": "json_schema",
            "json_schema": {
                "name": "decision",
                "strict": True,
                "schema": decision_schema(context.waiting_ids),
            },
        }
        attempts = 0

        async def attempt() -> Any:
            nonlocal attempts
            attempts += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeciderUnavailableError(f"no time left within max_wait={self.max_wait:g} s")
            limit = min(self.timeout, left)
            try:
                async with asyncio.timeout(limit):
                    return await client.chat.completions.create(
                        model=self.model,
                        messages=messages,
                        response_format=response_format,
                        timeout=limit,
                    )
            except TimeoutError:
                raise _AttemptTimedOut(limit) from None

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retries + 1) | _OutOfTime(deadline, self.backoff),
            wait=_ServerAwareWait(deadline, self.backoff),
            retry=retry_if_exception(lambda exc: _retryable(exc, openai)),
            reraise=True,
        )
        try:
            response: Any = await retrying(attempt)
        except _AttemptTimedOut as exc:
            raise DeciderUnavailableError(
                f"no answer within {exc.limit:g} s on attempt {attempts} of {self.retries + 1}"
            ) from None
        except openai.RateLimitError as exc:
            raise DeciderUnavailableError(_rate_limit_message(exc, deadline)) from exc
        return self._parse(response, context)

    def _parse(self, response: Any, context: DecisionContext) -> Decision:
        usage = getattr(response, "usage", None)
        if usage is not None:
            context.report_usage(
                usage.prompt_tokens or 0, usage.completion_tokens or 0, model=self.model
            )
        else:
            context.report_usage(0, 0, model=self.model)
        if not response.choices:
            raise InvalidDecisionError("the model returned no choices")
        choice = response.choices[0]
        refusal = getattr(choice.message, "refusal", None)
        if refusal:
            raise DecisionRefusedError(f"the model refused: {refusal}")
        if choice.finish_reason == "length":
            raise InvalidDecisionError("the answer was cut off (finish_reason 'length')")
        content = choice.message.content
        if not content:
            raise InvalidDecisionError("the model's answer was empty")
        try:
            return Decision.model_validate_json(content)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"]) or "answer"
            shown = preview(content, 200)  # never raises, whatever the model wrote
            raise InvalidDecisionError(
                f"the answer is not a valid decision ('{where}': {err['msg']}): {shown}"
            ) from None


class _AttemptTimedOut(Exception):
    def __init__(self, limit: float) -> None:
        super().__init__(f"attempt timed out after {limit:g} s")
        self.limit = limit


def _retryable(exc: BaseException, openai: Any) -> bool:
    if isinstance(exc, _AttemptTimedOut | openai.APIConnectionError):
        return True  # APITimeoutError is an APIConnectionError
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _RETRY_STATUS or exc.status_code >= 500
    return False


def retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked to wait (``retry-after-ms`` or ``retry-after``), if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("retry-after-ms")
        if value is not None:
            seconds = _seconds(value, 1000)
            if seconds is not None:
                return seconds
        value = headers.get("retry-after")
        if value is None:
            return None
        seconds = _seconds(value, 1)
        if seconds is not None:
            return seconds
        moment = email.utils.parsedate_to_datetime(value)
        return max(0.0, moment.timestamp() - time.time())
    except Exception:  # a malformed date or header: no wait asked for
        return None


def _seconds(value: Any, per_second: int) -> float | None:
    try:
        seconds = float(value) / per_second
    except (TypeError, ValueError):
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


class _ServerAwareWait(wait_base):
    """``Retry-After`` when the server gives one, else the backoff; never past the deadline."""

    def __init__(self, deadline: float, backoff: wait_base) -> None:
        self.deadline = deadline
        self.backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> float:
        asked = retry_after(retry_state.outcome.exception() if retry_state.outcome else None)
        delay = asked if asked is not None else self.backoff(retry_state)
        return max(0.0, min(delay, self.deadline - time.monotonic()))


class _OutOfTime(stop_base):
    """Stop when the next wait (a server's ``Retry-After``, or the backoff's least) would end
    past the deadline: waiting would only lead to a fallback later."""

    def __init__(self, deadline: float, backoff: wait_base) -> None:
        self.deadline = deadline
        self.backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> bool:
        asked = retry_after(retry_state.outcome.exception() if retry_state.outcome else None)
        needed = asked if asked is not None else 0.0
        return time.monotonic() + needed >= self.deadline


def _rate_limit_message(exc: BaseException, deadline: float) -> str:
    asked = retry_after(exc)
    left = max(0.0, deadline - time.monotonic())
    if asked is not None and asked > left:
        return (
            f"rate limited (429): the server asked to wait {asked:g} s, "
            f"more than the {left:.1f} s left"
        )
    return "rate limited (429) on every attempt"
