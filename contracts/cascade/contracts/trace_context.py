"""W3C trace context in Kafka headers, so that one search is one trace from the SDK call through the services
back to the client. Uses only the OpenTelemetry API: without a configured tracer provider nothing is recorded,
yet a context that arrives is passed on."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import propagate
from opentelemetry.context import Context

__all__ = ["Headers", "context_of", "trace_headers"]

Headers = Iterable[tuple[str, bytes]]
"""Kafka record headers as aiokafka gives and takes them."""


def trace_headers(context: Context | None = None) -> dict[str, str]:
    """The propagation headers (`traceparent`, `tracestate`) of `context` (default: the current one)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier


def context_of(headers: Headers) -> Context:
    """The trace context a record carries (an empty context if none, or if its headers are not text)."""
    carrier = {}
    for name, value in headers:
        try:
            carrier[name.lower()] = value.decode()
        except (UnicodeDecodeError, AttributeError):
            continue
    return propagate.extract(carrier)
