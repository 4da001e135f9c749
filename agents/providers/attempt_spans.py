"""The span of one provider attempt, in the OpenTelemetry GenAI semantic conventions.

Every attempt is its own span (a retry is the next one, a fallback's attempts sit under
its ``provider`` span), with the vendor, the model, the usage and cost the vendor
reported, the finish reason, the time to the first chunk and, when it failed, the error
kind. The prompt and the completion are recorded only with TRACE_CONTENT.
"""

from __future__ import annotations

from agents.providers.base import ChatChunk, ChatRequest, ChatResult, Usage
from llmplatform.core import tracing
from llmplatform.core.tracing import Span


def attempt_span(provider: str, request: ChatRequest, *, attempt: int, streaming: bool) -> Span:
    """An attempt's span, started (not current), child of the current one."""
    span = tracing.start_span(
        f"chat {request.model}",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": provider,
            "gen_ai.request.model": request.model,
            "gen_ai.request.max_tokens": request.max_tokens,
            "gen_ai.request.temperature": request.temperature,
            "llmplatform.attempt": attempt,
            "llmplatform.streaming": streaming,
        },
    )
    if tracing.content_enabled():
        tracing.record_content(span, "gen_ai.system_instructions", request.system)
        tracing.record_content(
            span,
            "gen_ai.input.messages",
            "\n".join(f"{m.role}: {m.content}" for m in request.messages),
        )
    return span


def fallback_span(provider: str, *, position: int) -> Span:
    """The span of one member of a fallback chain (its attempts are its children)."""
    return tracing.start_span(
        f"provider {provider}",
        {"gen_ai.system": provider, "llmplatform.fallback_position": position},
    )


def record_usage(span: Span, usage: Usage | None, *, model: str | None) -> None:
    tracing.set_attributes(
        span,
        {
            "gen_ai.response.model": model or None,
            "gen_ai.usage.input_tokens": usage.input_tokens if usage else None,
            "gen_ai.usage.output_tokens": usage.output_tokens if usage else None,
            "llmplatform.cost_usd": usage.cost_usd if usage else None,
        },
    )


def record_finish(span: Span, chunk: ChatChunk) -> None:
    """The finish chunk's reason and usage (priced) on the attempt's span."""
    tracing.set_attributes(span, {"gen_ai.response.finish_reasons": [chunk.finish_reason]})
    record_usage(span, chunk.usage, model=chunk.model)


def record_result(span: Span, result: ChatResult) -> None:
    """A whole answer's usage (priced), finish reason and text (with TRACE_CONTENT)."""
    record_usage(span, result.usage, model=result.model)
    if result.finish_reason:
        tracing.set_attributes(span, {"gen_ai.response.finish_reasons": [result.finish_reason]})
    tracing.record_content(span, "gen_ai.output.messages", result.text)
