"""The broker is SIGKILLed mid-stream and restarted on the same data directory: the services and the SDK
resume by themselves, every acknowledged document is stored, every search is answered or fails clearly."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cascade.contracts import IngestAck, Topic
from cascade.infra.local_kafka import LocalKafka
from cascade.runtime.process import CascadeProcess
from cascade.sdk import SearchClient, SearchFailed, SearchTimeout
from cascade.services.settings import KafkaSettings, Settings, StoreSettings
from tests.kafka_helpers import Collector, eventually

DOCS = [{"doc_id": f"d{i}", "text": f"document {i} about subject {i % 11}"} for i in range(650)]


async def _search_loop(client: SearchClient, outcomes: list[str], stop: asyncio.Event) -> None:
    """Search until `stop`, recording each outcome: "answered", "SearchTimeout" or "SearchFailed:<code>". Any
    other exception ends the loop, and the test with it (`await searching`): a search that fails unclearly."""
    i = 0
    while not stop.is_set():
        try:
            await client.search(f"subject {i % 11}", collection="docs", mode="bi", timeout_s=8)
            outcomes.append("answered")
        except SearchTimeout:
            outcomes.append("SearchTimeout")
        except SearchFailed as exc:
            outcomes.append(f"SearchFailed:{exc.code}")
        i += 1
        await asyncio.sleep(0.1)


async def test_services_and_sdk_resume_after_a_broker_crash(tiny_bi_encoder: Path, tmp_path: Path) -> None:
    kafka = LocalKafka().start()
    try:
        settings = Settings(
            kafka=KafkaSettings(bootstrap=kafka.bootstrap, session_timeout_ms=6000, retry_backoff_max_ms=2000),
            store=StoreSettings(path=tmp_path / "store", index_min_points=10**9),
            models=Settings().models.model_copy(update={"bi_encoder": str(tiny_bi_encoder)}), instance_id="restart",
        )
        process = CascadeProcess(settings, {"ingest", "query"})
        await process.start()
        assert process.store is not None
        async with (SearchClient(kafka.bootstrap) as client,
                    Collector(kafka.bootstrap, settings.kafka.topics.name(Topic.ACKS), IngestAck) as acks):
            await client.index(DOCS[:300], collection="docs")
            outcomes: list[str] = []
            stop = asyncio.Event()
            searching = asyncio.create_task(_search_loop(client, outcomes, stop))
            await eventually(lambda: outcomes.count("answered") >= 3, within_s=60)
            await client.index(DOCS[300:600], collection="docs", wait=False)  # accepted by the broker...
            acked_before_crash = {ack.doc_id for ack in acks.items if ack.status == "indexed"}
            kafka.kill()  # ...and the broker dies while ingest works through them
            answered_before = outcomes.count("answered")
            await asyncio.sleep(3)
            await asyncio.to_thread(kafka.restart)
            restarted_at = time.monotonic()
            await client.index(DOCS[600:], collection="docs", timeout_s=120)  # the whole path works again
            resumed_s = time.monotonic() - restarted_at
            await acks.wait_for(lambda items: {a.doc_id for a in items} >= {d["doc_id"] for d in DOCS}, within_s=120)
            await eventually(lambda: outcomes.count("answered") >= answered_before + 3, within_s=60)
            stop.set()
            await searching
            assert outcomes[-1] == "answered"
        stored = await process.store.stored_states("docs", [doc["doc_id"] for doc in DOCS])
        await process.stop()
        assert process.failure is None
    finally:
        kafka.stop()
    assert acked_before_crash <= set(stored)  # every document acknowledged before the crash is stored
    assert set(stored) == {doc["doc_id"] for doc in DOCS}  # and every one the broker accepted, after it
    # The only honest refusal of a search during an outage is its deadline (picked up after it passed): the
    # store and the models are local, so an outage must not turn into internal errors or unknown collections.
    refused = [outcome for outcome in outcomes if outcome.startswith("SearchFailed")]
    assert set(refused) <= {"SearchFailed:deadline_exceeded"}, refused
    print(f"\nbroker killed with {len(acked_before_crash)} of 600 published documents acknowledged; "
          f"restarted after 3 s; the whole path answered again {resumed_s:.1f} s after the restart; "
          f"stored {len(stored)}/{len(DOCS)}; searches: {outcomes.count('answered')} answered "
          f"({answered_before} before the crash), {outcomes.count('SearchTimeout')} timed out clearly, "
          f"{len(refused)} refused for their deadline")
