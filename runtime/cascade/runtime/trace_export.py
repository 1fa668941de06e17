"""Trace export for a serving process: OTLP over HTTP to `CASCADE_OTLP_ENDPOINT`, or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

__all__ = ["exporting_traces"]


@contextmanager
def exporting_traces(endpoint: str | None, service_name: str) -> Iterator[None]:
    """Install a tracer provider that exports to `endpoint` (spans batched in the background, flushed on
    exit); with no endpoint, leave the API's no-op provider in place."""
    if not endpoint:
        yield
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")))
    trace.set_tracer_provider(provider)
    try:
        yield
    finally:
        provider.shutdown()
