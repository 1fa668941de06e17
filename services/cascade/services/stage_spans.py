"""Spans for the stages of a search. Encoding and reranking run in batches shared by many requests, so a
request's spans are made from the timings it already records (wall-clock milliseconds), once its answer is
ready; the returned headers make the next hop (the reranker, or the client) a child of this service's span."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from cascade.contracts import now_ms
from cascade.contracts.trace_context import trace_headers

__all__ = ["Stage", "service_spans"]

_tracer = trace.get_tracer("cascade.services")


@dataclass(frozen=True)
class Stage:
    name: str
    start_ms: float
    """Wall clock (epoch milliseconds), like the messages' timestamps."""
    duration_ms: float


def _ns(ms: float) -> int:
    return int(ms * 1_000_000)


def _record(stage: Stage, parent: Context, attributes: dict[str, AttributeValue]) -> None:
    span = _tracer.start_span(stage.name, context=parent, start_time=_ns(stage.start_ms), attributes=attributes)
    span.end(end_time=_ns(stage.start_ms + max(stage.duration_ms, 0.0)))


def service_spans(parent: Context, name: str, started_ms: float, request_id: str, *, queued: Stage | None,
                  stages: Sequence[Stage], **attributes: AttributeValue) -> dict[str, str]:
    """Span `name` from `started_ms` to now under `parent`, `stages` inside it and `queued` (the wait before
    this service picked the request up) beside it; the trace headers to send on with the answer."""
    common: dict[str, AttributeValue] = {"cascade.request_id": request_id}
    if queued is not None:
        _record(queued, parent, common)
    span = _tracer.start_span(name, context=parent, kind=SpanKind.CONSUMER, start_time=_ns(started_ms),
                              attributes={**common, **attributes})
    inside = trace.set_span_in_context(span, parent)
    for stage in stages:
        _record(stage, inside, common)
    span.end(end_time=_ns(now_ms()))
    return trace_headers(inside)
