"""A reindex with two ingest processes (`cascade serve ingest` twice, one consumer group, the Qdrant server store):
documents are updated, added and deleted throughout, through both processes; once the name has switched, the new
version holds exactly the last acknowledged write of every document."""

from __future__ import annotations

import asyncio
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from cascade.runtime.provision import provision_topics
from cascade.sdk import SearchClient
from cascade.services.ingest import content_hash
from cascade.services.settings import Settings
from cascade.services.store import open_store
from tests.kafka_helpers import eventually
from tests.processes import start_service

pytestmark = pytest.mark.parametrize("store_kind", ["server"], indirect=True)  # the embedded store serves one process

DOCUMENTS = 200


@pytest.fixture
def two_ingest_pods(settings: Settings, fetched_e5: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    pods = [start_service(settings, "ingest", f"ingest-{name}", CASCADE_MODELS_BI_ENCODER=settings.models.bi_encoder,
                          CASCADE_BATCH_REINDEX_PAGE_SIZE="4", CASCADE_BATCH_INGEST_MAX_RECORDS="16")
            for name in "ab"]
    yield pods
    for pod in pods:
        pod.terminate()
    for pod in pods:
        pod.wait(60)


async def _both_joined(settings: Settings, group: str) -> bool:
    """Whether the ingest group is stable with two members (each then owns some of the documents' partitions)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    [description] = response.to_object()["groups"]
    return description["state"] == "Stable" and len(description["members"]) == 2


async def test_a_reindex_with_two_ingest_pods_keeps_every_last_write(
        settings: Settings, two_ingest_pods: list[subprocess.Popen[bytes]]) -> None:
    await provision_topics(settings.kafka.topics, **settings.kafka.client_options())
    group = f"{settings.kafka.topic_prefix}ingest"
    await eventually(lambda: _both_joined(settings, group), within_s=180, every_s=0.5)
    latest: dict[str, str | None] = {f"d{i}": f"document {i}, first text" for i in range(DOCUMENTS)}
    rng = random.Random(7)
    async with SearchClient(settings.kafka.bootstrap, topic_prefix=settings.kafka.topic_prefix) as client:
        await client.index([{"doc_id": doc_id, "text": text} for doc_id, text in latest.items()], collection="docs")

        async def write_round(round_number: int) -> None:
            held = sorted(doc_id for doc_id, text in latest.items() if text is not None)
            changed = {doc_id: f"{doc_id} rewritten in round {round_number}" for doc_id in rng.sample(held, 10)}
            changed |= {f"new-{round_number}-{i}": f"added in round {round_number}" for i in range(2)}
            await client.index([{"doc_id": doc_id, "text": text} for doc_id, text in changed.items()],
                               collection="docs")
            latest.update(changed)
            gone = rng.sample(sorted(set(held) - set(changed)), 2)
            await client.delete(gone, collection="docs")
            latest.update(dict.fromkeys(gone))

        reindexing = asyncio.create_task(client.reindex("docs", model="e5-small", timeout_s=300))
        rounds = 0
        while not reindexing.done():
            await write_round(rounds)
            rounds += 1
        status = await reindexing
        await write_round(rounds)  # and after the switch
    assert status.state == "switched" and (status.source, status.target) == ("docs@v1", "docs@v2")
    assert rounds >= 1, "writes must race the copy for this test to mean anything"

    store = open_store(settings.store)
    try:
        assert await store.resolve("docs") == "docs@v2"
        kept = {doc_id: text for doc_id, text in latest.items() if text is not None}
        stored = await store.stored_states("docs", sorted(latest))
        assert set(stored) == set(kept)
        stale = sorted(doc_id for doc_id, text in kept.items()
                       if stored[doc_id].content_hash != content_hash("test/tiny-e5", "", text))
        assert stale == []
        assert await store.count("docs") == len(kept)
    finally:
        await store.close()
