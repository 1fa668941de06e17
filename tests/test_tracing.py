"""One search is one trace: the SDK call, the query service and the reranker, joined by headers in Kafka."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cascade.runtime.process import CascadeProcess
from tests.conftest import client_for


@pytest.fixture(scope="session")
def spans() -> InMemorySpanExporter:
    """Every span this test process records from now on (the global provider can be set once)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


def _parent_name(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> str | None:
    return by_id[span.parent.span_id].name if span.parent else None


async def test_one_search_is_one_connected_trace(all_roles: CascadeProcess, spans: InMemorySpanExporter) -> None:
    async with client_for(all_roles) as client:
        await client.index([{"doc_id": f"d{i}", "text": f"document {i}"} for i in range(8)], collection="c")
        result = await client.search("document 3", collection="c", mode="rerank", k=3)
    mine = [span for span in spans.get_finished_spans()
            if span.attributes and span.attributes.get("cascade.request_id") == result.request_id]
    assert {span.context.trace_id for span in mine if span.context} == {mine[0].context.trace_id}  # type: ignore[union-attr]
    by_id = {span.context.span_id: span for span in mine if span.context}
    assert {span.name: _parent_name(span, by_id) for span in mine} == {
        "cascade.search": None,
        "query.queue": "cascade.search", "cascade.query": "cascade.search",
        "encode": "cascade.query", "ann": "cascade.query",
        "rerank.queue": "cascade.query", "cascade.rerank": "cascade.query",
        "rerank.compute": "cascade.rerank",
    }
    named = {span.name: span for span in mine}
    for inner, outer in [("encode", "cascade.query"), ("ann", "cascade.query"), ("rerank.compute", "cascade.rerank"),
                         ("cascade.rerank", "cascade.search")]:
        assert named[outer].start_time <= named[inner].start_time  # type: ignore[operator]
        assert named[inner].end_time <= named[outer].end_time  # type: ignore[operator]


class _Collector(BaseHTTPRequestHandler):
    paths: list[str] = []  # noqa: RUF012 - shared by the handler instances of one test

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.paths.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_spans_are_exported_to_the_configured_otlp_endpoint(collector: str) -> None:
    code = ("from opentelemetry import trace\nfrom cascade.runtime.trace_export import exporting_traces\n"
            f"with exporting_traces({collector!r}, 'cascade-test'):\n"
            "    trace.get_tracer('t').start_span('s').end()\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert _Collector.paths == ["/v1/traces"]
