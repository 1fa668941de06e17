"""SIGKILL the ingest process mid-stream and restart it: every document ends up stored exactly once."""

from __future__ import annotations

import asyncio
import signal
import subprocess

import pytest

from cascade.contracts import DocumentEvent, IngestAck, Topic, encode
from cascade.runtime.provision import provision_topics
from cascade.services.settings import Settings
from cascade.services.store import open_store
from tests.kafka_helpers import Collector, produce
from tests.processes import start_service

pytestmark = pytest.mark.both_stores

TOTAL = 2000


def _start_ingest(settings: Settings) -> subprocess.Popen[bytes]:
    return start_service(settings, "ingest", "ingest", CASCADE_MODELS_BI_ENCODER=settings.models.bi_encoder,
                         CASCADE_BATCH_INGEST_MAX_RECORDS="50")


async def _stream_documents(settings: Settings) -> None:
    topic = settings.kafka.topics.name(Topic.DOCUMENTS)
    for start in range(0, TOTAL, 100):
        await produce(settings.kafka.bootstrap, topic, [
            (f"d{i}", encode(DocumentEvent(collection="docs", doc_id=f"d{i}", text=f"streamed document {i}")))
            for i in range(start, start + 100)
        ])
        await asyncio.sleep(0.1)


async def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(settings: Settings) -> None:
    ids = {f"d{i}" for i in range(TOTAL)}
    await provision_topics(settings.kafka.topics, **settings.kafka.client_options())
    async with Collector(settings.kafka.bootstrap, settings.kafka.topics.name(Topic.ACKS), IngestAck) as acks:
        first = _start_ingest(settings)
        producer = asyncio.create_task(_stream_documents(settings))
        await acks.wait_for(lambda items: len(items) >= 300, within_s=120)
        first.send_signal(signal.SIGKILL)
        first.wait()
        acked_before_kill = len({ack.doc_id for ack in acks.items})
        assert acked_before_kill < TOTAL, "the process must die mid-stream for this test to mean anything"
        await producer

        second = _start_ingest(settings)
        await acks.wait_for(lambda items: {ack.doc_id for ack in items} >= ids, within_s=120)
        second.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(second.wait, 60) == 0
    assert {ack.status for ack in acks.items} <= {"indexed", "unchanged"}

    store = open_store(settings.store)
    try:
        assert await store.count("docs") == TOTAL
        assert set(await store.stored_states("docs", sorted(ids))) == ids
    finally:
        await store.close()
