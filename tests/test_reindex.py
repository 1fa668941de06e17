"""Reindexing through Kafka: a collection is rebuilt with another model while queries keep being answered and
documents keep arriving; its name switches to the new version once complete, with nothing lost or stale."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from cascade.contracts import (
    DEFAULT_TENANT,
    REINDEX_COPY_HEADER,
    DocumentEvent,
    ReindexCopy,
    ReindexRequest,
    ReindexStatus,
    Topic,
    encode,
)
from cascade.runtime.process import CascadeProcess
from cascade.sdk import ReindexFailed, SearchClient
from cascade.services.consumers import Subscription
from cascade.services.encoders import BiEncoder, BiEncoders, LateInteractionLoader
from cascade.services.ingest import IngestProcessor, Reindexer, content_hash
from cascade.services.messaging import RawRecord
from cascade.services.settings import Settings
from cascade.services.store import open_store, point_id
from tests.conftest import client_for
from tests.kafka_helpers import eventually, produce

pytestmark = pytest.mark.both_stores

DOCS = [{"doc_id": f"d{i}", "title": f"title {i}", "text": f"document number {i} about topic {i % 5}"}
        for i in range(60)]


@pytest.fixture
async def served(settings: Settings, fetched_e5: Path) -> CascadeProcess:
    small_pages = settings.batching.model_copy(update={"reindex_page_size": 4})  # many pages: writes interleave
    process = CascadeProcess(settings.model_copy(update={"batching": small_pages}), {"ingest", "query"})
    await process.start()
    yield process  # type: ignore[misc]
    await process.stop()


async def _query_until(client: SearchClient, stop: asyncio.Event, failures: list[BaseException],
                       models: list[str]) -> None:
    """Queries one after another until `stop`, recording failures and the model that answered each."""
    while not stop.is_set():
        try:
            result = await client.search("document number 7", collection="docs", mode="bi", k=3, timeout_s=10)
            models.append(result.models["bi_encoder"])
        except Exception as exc:  # every failure counts, whatever its kind
            failures.append(exc)


async def test_a_reindex_switches_models_without_a_failed_query(served: CascadeProcess) -> None:
    store = served.store
    assert store is not None
    async with client_for(served) as client:
        await client.index(DOCS, collection="docs")
        old_model = (await client.search("document", collection="docs", mode="bi")).models["bi_encoder"]
        stop, failures, models = asyncio.Event(), list[BaseException](), list[str]()
        querying = asyncio.create_task(_query_until(client, stop, failures, models))
        statuses: list[str] = []
        reindexing = asyncio.create_task(client.reindex("docs", model="e5-small",
                                                        progress=lambda status: statuses.append(status.state)))
        # writes racing the copy: an update, a deletion and a new document
        await client.index([{"doc_id": "d1", "title": "title 1", "text": "rewritten during the reindex"},
                            {"doc_id": "new", "text": "a document that arrived during the reindex"}],
                           collection="docs")
        await client.delete(["d2"], collection="docs")
        status = await reindexing
        after = await client.search("document number 7", collection="docs", mode="bi", k=3)
        stop.set()
        await querying
    assert statuses == ["started", "switched"]
    assert (status.source, status.target, status.model) == ("docs@v1", "docs@v2", "e5-small")
    assert failures == [] and len(models) >= 3 and set(models) <= {old_model, "test/tiny-e5"}
    assert after.models["bi_encoder"] == "test/tiny-e5"
    assert await store.resolve("docs") == "docs@v2" and await store.collection_model("docs") == "e5-small"
    assert await store.count("docs") == len(DOCS)  # 60 - d2 + new
    states = await store.stored_states("docs", ["d1", "d2", "new", "d3"])
    assert set(states) == {"d1", "new", "d3"}
    assert states["d1"].content_hash == content_hash("test/tiny-e5", "title 1", "rewritten during the reindex")
    assert await store.collections() == ["docs"]  # versions stay out of the listing


async def test_reindex_refusals_are_clear_and_the_consumer_goes_on(served: CascadeProcess, bootstrap: str) -> None:
    async with client_for(served) as client:
        await client.index(DOCS[:3], collection="docs")
        with pytest.raises(ReindexFailed, match="'ghost' does not exist"):
            await client.reindex("ghost", model="e5-small", timeout_s=30)
        with pytest.raises(ReindexFailed, match=r"model_unavailable: .*cascade models fetch bge-small"):
            await client.reindex("docs", model="bge-small", timeout_s=30)
        await produce(bootstrap, client.topics.name(Topic.REINDEX), [("docs", b"{not json")])  # dead-lettered
        status = await client.reindex("docs", model="e5-small", timeout_s=60)
        assert status.state == "switched" and status.documents == 3
        again = await client.reindex("docs", timeout_s=60)  # back to the default model: a third version
        assert again.target == "docs@v3" and again.source == "docs@v2"


async def test_a_reindex_whose_copies_were_refused_fails_instead_of_switching(
        served: CascadeProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pod that cannot apply a copy (it lacks the new model) only logs it and goes on: before, the reindex
    switched to a version missing those documents."""
    mirror = IngestProcessor._mirror

    async def refusing_d3(self: IngestProcessor, served_version: str, building: str, received: list[Any]) -> None:
        await mirror(self, served_version, building, [each for each in received if each[1].doc_id != "d3"])

    async with client_for(served) as client:
        await client.index(DOCS[:6], collection="docs")
        monkeypatch.setattr(IngestProcessor, "_mirror", refusing_d3)
        with pytest.raises(ReindexFailed, match=r"docs@v2 holds 5 documents, docs@v1 6"):
            await client.reindex("docs", model="e5-small", timeout_s=60)
    assert served.store is not None and await served.store.resolve("docs") == "docs@v1"


async def test_a_reindex_overtaken_by_a_newer_version_fails_instead_of_switching(
        served: CascadeProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another pod started a reindex to another model meanwhile (`docs@v3`): writes stopped reaching `docs@v2`,
    which must not be switched to."""
    store = served.store
    assert store is not None
    consumed = Reindexer._consumed
    calls = 0

    async def overtaken(self: Reindexer, documents: Subscription) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # the copies are sent: another reindex makes its version now
            await store.ensure_collection("docs@v3", 32, "another-model")
        await consumed(self, documents)

    async with client_for(served) as client:
        await client.index(DOCS[:6], collection="docs")
        monkeypatch.setattr(Reindexer, "_consumed", overtaken)
        with pytest.raises(ReindexFailed, match=r"docs@v2 is no longer the version writes reach \(docs@v3 is\)"):
            await client.reindex("docs", model="e5-small", timeout_s=60)
    assert await store.resolve("docs") == "docs@v1"


async def test_a_reindex_keeps_the_fields_that_could_be_filtered_on(settings: Settings, fetched_e5: Path) -> None:
    """The cap on filterable fields was reached while documents arrived (here: 1, taken by `b`); the copies come in
    point order, where a document bringing `a` first comes first. Before, the new version indexed `a` instead of
    `b`, and filters on `b` were refused once the name switched."""
    capped = settings.store.model_copy(update={"max_filter_fields": 1})
    process = CascadeProcess(settings.model_copy(update={"store": capped}), {"ingest", "query"})
    await process.start()
    try:
        ids = sorted((f"d{i}" for i in range(12)), key=lambda doc_id: point_id("docs", doc_id))
        first_copied, *others = ids
        async with client_for(process) as client:
            await client.index([{"doc_id": doc_id, "text": f"text {doc_id}", "metadata": {"b": 1}}
                                for doc_id in others], collection="docs")
            await client.index([{"doc_id": first_copied, "text": "text", "metadata": {"a": 1, "b": 2}}],
                               collection="docs")
            assert (await client.reindex("docs", model="e5-small", timeout_s=60)).state == "switched"
            found = await client.search("text", collection="docs", mode="bi", filter={"b": 2}, k=3)
        assert [hit.doc_id for hit in found.hits] == [first_copied]
    finally:
        await process.stop()


async def test_writes_reach_the_version_being_built_and_copies_make_it_hold_the_served_documents(
        settings: Settings, tiny_bi_encoder: Path, fetched_e5: Path) -> None:
    """What every ingest pod does with a batch once a newer version exists, decided by the store alone: writes go to
    both versions, a reindex's copy makes the new version hold what the served one holds (or nothing), no acks."""
    store = open_store(settings.store)
    encoders = BiEncoders(BiEncoder(str(tiny_bi_encoder), device="cpu"), lambda name: BiEncoder(name, device="cpu"))
    processor = IngestProcessor(store, encoders, LateInteractionLoader())
    offsets = iter(range(100))

    def record(event: DocumentEvent | ReindexCopy) -> RawRecord:
        header, kind = REINDEX_COPY_HEADER
        headers = ((header, kind.encode()),) if isinstance(event, ReindexCopy) else ()
        return RawRecord("documents", 0, next(offsets), event.doc_id.encode(), encode(event), headers)

    await processor.process([record(DocumentEvent(collection="docs", doc_id=doc_id, text=f"first {doc_id}"))
                             for doc_id in "acd"], DEFAULT_TENANT)
    await store.ensure_collection("docs@v2", 32, "e5-small")  # as a reindex makes it, in any pod
    outcome = await processor.process([record(DocumentEvent(collection="docs", doc_id="b", text="second")),
                                       record(DocumentEvent(collection="docs", op="delete", doc_id="a")),
                                       record(ReindexCopy(collection="docs", doc_id="c")),
                                       record(ReindexCopy(collection="docs", doc_id="a")),
                                       record(ReindexCopy(collection="docs", doc_id="ghost"))], DEFAULT_TENANT)
    assert sorted((ack.collection, ack.doc_id, ack.status) for ack in outcome.acks) == [
        ("docs", "a", "deleted"), ("docs", "b", "indexed")]  # acks of the collection only, under its name
    assert set(await store.stored_states("docs", ["a", "b", "c", "d"])) == {"b", "c", "d"}
    copied = await store.stored_states("docs@v2", ["a", "b", "c", "d", "ghost"])
    assert set(copied) == {"b", "c"}  # d: no copy yet
    assert copied["b"].content_hash == content_hash("test/tiny-e5", "", "second")
    assert copied["c"].content_hash == content_hash("test/tiny-e5", "", "first c")
    await store.switch_alias("docs", "docs@v2")
    await processor.process([record(DocumentEvent(collection="docs", doc_id="e", text="after the switch"))],
                            DEFAULT_TENANT)
    assert set(await store.stored_states("docs@v2", ["e"])) == {"e"}
    assert set(await store.stored_states("docs@v1", ["e"])) == set()  # the old version is left as it was
    await store.close()


async def test_a_reindex_request_delivered_again_while_it_runs_is_not_answered_failed(served: CascadeProcess) -> None:
    """A rebalance before the request's commit delivers it again (a second ingest pod joining does that): it used to
    be answered `failed` ("running already") under its own request id, and the waiting client raised."""
    assert served.reindexer is not None
    reports: list[ReindexStatus] = []

    async def report(status: ReindexStatus) -> None:
        reports.append(status)

    async with client_for(served) as client:
        await client.index(DOCS[:6], collection="docs")
    request = ReindexRequest(request_id="r1", collection="docs", model="e5-small")
    topics = served.settings.kafka.topics
    first = await served.reindexer.start(request, report, topics)
    again = await served.reindexer.start(request, report, topics)
    other = await served.reindexer.start(request.model_copy(update={"request_id": "r2"}), report, topics)
    await eventually(lambda: bool(reports), within_s=60)
    assert first is not None and first.state == "started" and again is None
    assert other is not None and other.state == "failed" and "running already" in (other.error or "")
    assert [status.state for status in reports] == ["switched"]
