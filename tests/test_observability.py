"""`/metrics`, `/healthz` and `/readyz` scraped over HTTP from running services: the counters move with traffic."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cascade.contracts import SearchRequest, Topic, encode
from cascade.infra.local_kafka import free_port
from cascade.runtime.health import HealthServer
from cascade.runtime.process import CascadeProcess
from cascade.runtime.status import CollectionStatus, Status, format_status, gather_status
from cascade.services.settings import Settings
from cascade.services.store import EdgeStore
from tests.conftest import client_for
from tests.kafka_helpers import eventually, produce

CAUGHT_UP_GUARD_S = 60
"""Only against a commit that never comes: the last one follows its answer's confirmation by milliseconds."""


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(value for (sample, found), value in samples.items()
               if sample == name and set(labels.items()) <= set(found))


async def test_metrics_health_and_readiness_follow_the_traffic(all_roles: CascadeProcess) -> None:
    assert all_roles.health is not None
    base = f"http://127.0.0.1:{all_roles.health.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"ready": True, "problems": []}

        async with client_for(all_roles) as client:
            await client.index([{"doc_id": f"d{i}", "text": f"document {i}"} for i in range(12)], collection="c")
            await client.index([{"doc_id": "d0", "text": "document 0"}], collection="c")  # unchanged
            for mode in ("bi", "rerank", "bi"):
                await client.search("document 3", collection="c", mode=mode, k=3)  # the second bi hits the cache
        kafka = all_roles.settings.kafka
        bad = SearchRequest(request_id="bad", collection="nope", query="q", mode="bi")
        await produce(kafka.bootstrap, kafka.topics.name(Topic.QUERIES), [("bad", encode(bad)), ("junk", b"{")])

        for _ in range(100):  # until the two refused requests are counted
            samples = _samples((await http.get("/metrics")).text)
            if _value(samples, "cascade_dead_letters_total") >= 2:
                break
            await asyncio.sleep(0.2)
        assert _value(samples, "cascade_documents_total", status="indexed") == 12
        assert _value(samples, "cascade_documents_total", status="unchanged") == 1
        assert _value(samples, "cascade_stage_seconds_count", stage="total", mode="bi") == 2
        assert _value(samples, "cascade_stage_seconds_count", stage="rerank_compute", mode="rerank") == 1
        assert _value(samples, "cascade_query_cache_total", result="hit") >= 1
        assert _value(samples, "cascade_rerank_batch_pairs_count") >= 1
        assert _value(samples, "cascade_error_results_total", code="unknown_collection") == 1
        assert _value(samples, "cascade_dead_letters_total", service="query", reason="unknown_collection") == 1
        assert _value(samples, "cascade_dead_letters_total", service="query", reason="not_json") == 1
        assert _value(samples, "cascade_publish_total", outcome="published") > 0
        assert (await http.get("/nope")).status_code == 404


async def _once_caught_up(settings: Settings, group: str, status_url: str) -> Status:
    """The status once `group` has committed offsets and its lag reads 0. Its last offset is committed just after
    its answer is confirmed, so a status taken the moment the answer arrives may still show lag 1; polling makes
    "lag 0" deterministic, and a commit that never comes fails here with the lag it left."""
    lag: dict[str, int] | None = None
    try:
        async with asyncio.timeout(CAUGHT_UP_GUARD_S):
            while True:
                status = await gather_status(settings.kafka, settings.store, status_url)
                lag = next((each.lag for each in status.groups if each.group == group), None)
                if lag and sum(lag.values()) == 0:
                    return status
                await asyncio.sleep(0.2)
    except TimeoutError:
        pytest.fail(f"{group} never caught up within {CAUGHT_UP_GUARD_S} s: its lag stayed {lag} "
                    "(None: the group never appeared; {}: it committed no offset)")


async def test_status_shows_topics_groups_lag_and_collections(all_roles: CascadeProcess) -> None:
    assert all_roles.health is not None
    async with client_for(all_roles) as client:
        await client.index([{"doc_id": f"d{i}", "text": f"document {i}"} for i in range(7)], collection="c")
        await client.search("document 3", collection="c", mode="rerank", k=3)
    settings = all_roles.settings
    status = await _once_caught_up(settings, f"{settings.kafka.topic_prefix}reranker",
                                   f"http://127.0.0.1:{all_roles.health.port}/status")

    topics = {topic.name: topic for topic in status.topics}
    queries = topics[settings.kafka.topics.name(Topic.QUERIES)]
    assert queries.partitions == 6 and queries.retention_ms == 24 * 3_600_000
    groups = {group.group: group for group in status.groups}
    reranker = groups[f"{settings.kafka.topic_prefix}reranker"]
    assert reranker.state == "Stable" and len(reranker.members) == 1
    assert len(reranker.members[0].partitions) == 6
    # Caught up (polled above), and on the one partition it read, where the search's one candidate set went: a
    # commit of offsets it never read would show here.
    assert list(reranker.lag.values()) == [0]
    assert status.collections == [CollectionStatus("c", 7, 0.0)]  # too small to be worth an index
    assert status.store_source.startswith("asked the serving process")
    text = format_status(status)
    assert f"{settings.kafka.topic_prefix}reranker  Stable, 1 member(s), lag 0" in text
    assert "c" in text and "7 points" in text


async def test_a_taken_metrics_port_is_a_clear_error(all_roles: CascadeProcess) -> None:
    assert all_roles.health is not None
    taken = HealthServer(all_roles.metrics.registry, all_roles.problems, all_roles.describe, "127.0.0.1",
                         all_roles.health.port)
    with pytest.raises(OSError, match=r"cannot listen on 127\.0\.0\.1:.*set CASCADE_METRICS_PORT"):
        await taken.start()


async def test_the_event_loop_lag_is_measured_under_load_and_a_stall_is_seen(all_roles: CascadeProcess) -> None:
    """The loop-lag metric samples the loop while it serves; work that holds the loop shows as lag and a warning.
    (Its figure under a realistic load is bench/offsets.json's max_loop_lag_ms.)"""
    assert all_roles.health is not None
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{all_roles.health.port}", timeout=10) as http:
        async with client_for(all_roles) as client:
            await client.index([{"doc_id": f"d{i}", "text": f"document {i}"} for i in range(40)], collection="c")
            for mode in ("bi", "rerank", "cross"):
                await client.search_many([f"document {i}" for i in range(8)], collection="c", mode=mode, k=3)

            async def sampled() -> bool:  # at least once a second, every 50 ms while consumers have records
                count = _value(_samples((await http.get("/metrics")).text), "cascade_event_loop_lag_seconds_count")
                return count > 0

            await eventually(sampled, within_s=10)
            await client.search("document 1", collection="c", mode="bi")  # records just now: sampled closely
            before = _samples((await http.get("/metrics")).text)
            time.sleep(0.3)  # noqa: ASYNC251 - the stall under test: this holds the services' loop too
            await asyncio.sleep(0.2)  # the sampler wakes up late once, then again on time
        stalled = _samples((await http.get("/metrics")).text)

    def over_quarter_second(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
        return (_value(samples, "cascade_event_loop_lag_seconds_count")
                - _value(samples, "cascade_event_loop_lag_seconds_bucket", le="0.25"))

    assert _value(stalled, "cascade_event_loop_lag_max_seconds") >= 0.25
    assert over_quarter_second(stalled) == over_quarter_second(before) + 1  # the stall, seen once (its warning:
    # tests/test_loop_lag.py)


async def test_status_never_opens_an_embedded_store_it_could_not_ask_about(settings: Settings) -> None:
    """No process answered (it is busy, or on another port): the store is its process's, and an index build may be
    running in it. Before, status opened the store itself, which deleted the build's generation (or died on the
    store's lock with a traceback)."""
    store = EdgeStore(settings.store)
    await store.ensure_collection("docs", 8, "m")
    await store.close()
    building = settings.store.path / "docs@v1" / "g1"  # a build's copy, being optimised by the serving process
    building.mkdir()
    (building / "segment").write_text("in progress")
    status = await gather_status(settings.kafka, settings.store, f"http://127.0.0.1:{free_port()}/status")
    assert building.is_dir() and (building / "segment").read_text() == "in progress"
    assert status.collections == [CollectionStatus("docs", None, None)]
    assert status.store_source.startswith("names only") and "no process answered" in status.store_source
    assert "docs                                     ? points" in format_status(status)
