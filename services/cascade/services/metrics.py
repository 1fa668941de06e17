"""Prometheus metrics of one Cascade process, on a registry of its own (several processes may share a Python
process in tests). Most figures are read off the messages the cluster confirmed, in one place (`published`):
results carry their per-stage timings, acks their status, dead letters their reason."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from cascade.contracts import DeadLetter, IngestAck, SearchResult
from cascade.services.publishing import Outgoing

__all__ = ["Metrics"]

_STAGES = {"query_queue": "query_queue_ms", "encode": "encode_ms", "ann": "ann_ms", "rerank_queue": "rerank_queue_ms",
           "rerank_compute": "rerank_ms", "total": "total_ms"}
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_LOOP_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class _Counts(Collector):
    """Counters kept as plain integers elsewhere (the query cache, the publisher), exposed at scrape time."""

    def __init__(self, name: str, help: str, label: str, read: Callable[[], Mapping[str, int]]) -> None:
        self._name, self._help, self._label, self._read = name, help, label, read

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._help, labels=[self._label])
        for value, count in self._read().items():
            family.add_metric([value], count)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._loop_lag_max = 0.0
        r = self.registry
        self.stage_seconds = Histogram("cascade_stage_seconds", "Latency of each stage of a search, from its result.",
                                       ["stage", "mode"], buckets=_LATENCY_BUCKETS, registry=r)
        self.rerank_batch_pairs = Histogram("cascade_rerank_batch_pairs", "Pairs scored per cross-encoder batch.",
                                            buckets=(1, 10, 50, 100, 200, 500, 1000, 2000), registry=r)
        self.rerank_padded_tokens = Histogram("cascade_rerank_padded_tokens", "Padded tokens per cross-encoder batch.",
                                              buckets=(256, 1024, 4096, 16384, 65536, 262144), registry=r)
        self.documents = Counter("cascade_documents_total", "Document events by outcome.", ["status"], registry=r)
        self.dead_letters = Counter("cascade_dead_letters_total", "Records dead-lettered, by service and reason.",
                                    ["service", "reason"], registry=r)
        self.error_results = Counter("cascade_error_results_total", "Error results by code.", ["code"], registry=r)
        self.inflight_candidate_sets = Gauge("cascade_inflight_candidate_sets", "Candidate sets being reranked.",
                                             registry=r)
        self.index_builds = Histogram("cascade_index_build_seconds", "HNSW index builds and their duration.",
                                      buckets=(1, 5, 15, 30, 60, 120, 300, 900), registry=r)
        self.index_build_failures = Counter("cascade_index_build_failures", "HNSW index builds that failed (each "
                                            "is retried later; searches go on brute force).", registry=r)
        self.consumer_lag = Gauge("cascade_consumer_lag", "Records not yet consumed by this process's groups.",
                                  ["group", "topic", "partition"], registry=r)
        self.loop_lag = Histogram("cascade_event_loop_lag_seconds", "How late the event loop ran a timer (the time "
                                  "work on the loop held it).", buckets=_LOOP_LAG_BUCKETS, registry=r)
        self.loop_lag_max = Gauge("cascade_event_loop_lag_max_seconds", "The largest event-loop lag since the "
                                  "process started serving.", registry=r)
        self.producer_metadata_topics = Gauge("cascade_producer_metadata_topics", "Topics whose metadata the "
                                              "producer holds and refreshes: one per topic it wrote to.", registry=r)

    def count(self, name: str, help: str, label: str, read: Callable[[], Mapping[str, int]]) -> None:
        """Expose counts kept elsewhere as a counter family `name{label}`."""
        self.registry.register(_Counts(name, help, label, read))

    def observe_loop_lag(self, seconds: float) -> None:
        self.loop_lag.observe(seconds)
        if seconds > self._loop_lag_max:
            self._loop_lag_max = seconds
            self.loop_lag_max.set(seconds)

    def observe_batch(self, pairs: int, padded_tokens: int) -> None:
        self.rerank_batch_pairs.observe(pairs)
        self.rerank_padded_tokens.observe(padded_tokens)

    def published(self, out: Outgoing) -> None:
        """Count a message the cluster confirmed: a result (timings, errors), an ack, a dead letter."""
        message = out.message
        if isinstance(message, SearchResult):
            self._result(message)
        elif isinstance(message, IngestAck):
            self.documents.labels(message.status).inc()
        elif isinstance(message, DeadLetter):
            self.dead_letters.labels(re.sub(r"@.*", "", message.service), message.reason).inc()

    def _result(self, result: SearchResult) -> None:
        if result.error is not None:
            self.error_results.labels(result.error.code).inc()
            return
        timings = result.timings
        for stage, field in _STAGES.items():
            value = getattr(timings, field)
            if value is not None:
                self.stage_seconds.labels(stage, result.mode or "").observe(max(value, 0.0) / 1000)
