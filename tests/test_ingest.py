"""The ingest service on the real broker: embed once, never re-encode, reject bad input without losing any."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import orjson
import pytest

from cascade.contracts import DeadLetter, DocumentEvent, IngestAck, Topic, encode
from cascade.contracts.limits import MAX_TEXT_CHARS
from cascade.runtime.process import CascadeProcess
from cascade.services.settings import Settings
from tests.kafka_helpers import Collector, produce

pytestmark = pytest.mark.both_stores


def _docs(ids: range, version: str = "v1", collection: str = "docs", color: str = "red"
          ) -> list[tuple[str | None, bytes]]:
    return [(f"d{i}", encode(DocumentEvent(collection=collection, doc_id=f"d{i}", title=f"Doc {i}",
                                           text=f"document number {i} {version}", metadata={"n": i, "color": color})))
            for i in ids]


@pytest.fixture
async def ingest(settings: Settings) -> AsyncIterator[CascadeProcess]:
    process = CascadeProcess(settings, {"ingest"})
    await process.start()
    yield process
    await process.stop()


async def test_embeds_once_and_never_reencodes(ingest: CascadeProcess, settings: Settings) -> None:
    topics = settings.kafka.topics
    encoder = ingest.bi_encoder
    async with Collector(settings.kafka.bootstrap, topics.name(Topic.ACKS), IngestAck) as acks:
        await produce(settings.kafka.bootstrap, topics.name(Topic.DOCUMENTS), _docs(range(1000)))
        first = await acks.wait_for(lambda items: len(items) >= 1000)
        assert [ack.status for ack in first].count("indexed") == 1000
        assert {ack.doc_id for ack in first} == {f"d{i}" for i in range(1000)}
        assert encoder.texts_encoded == 1000
        assert await ingest.store.count("docs") == 1000

        await produce(settings.kafka.bootstrap, topics.name(Topic.DOCUMENTS), _docs(range(1000)))
        second = (await acks.wait_for(lambda items: len(items) >= 2000))[1000:]
        assert [ack.status for ack in second].count("unchanged") == 1000
        assert encoder.texts_encoded == 1000  # zero encoder calls for unchanged documents

        await produce(settings.kafka.bootstrap, topics.name(Topic.DOCUMENTS), _docs(range(10), version="v2"))
        third = (await acks.wait_for(lambda items: len(items) >= 2010))[2000:]
        assert [ack.status for ack in third].count("indexed") == 10
        assert encoder.texts_encoded == 1010  # exactly the 10 changed ones
        assert await ingest.store.count("docs") == 1000

        # Same text, new metadata: applied in place, acked `updated`, nothing re-encoded.
        await produce(settings.kafka.bootstrap, topics.name(Topic.DOCUMENTS), _docs(range(10, 30), color="blue"))
        fourth = (await acks.wait_for(lambda items: len(items) >= 2030))[2010:]
        assert [ack.status for ack in fourth].count("updated") == 20
        assert encoder.texts_encoded == 1010
        assert ingest.store is not None
        query = encoder.encode_queries(["document number 12 v1"])[0].tolist()
        blue = await ingest.store.search("docs", query, 100, filter={"color": "blue"})
        assert {doc.doc_id for doc in blue} == {f"d{i}" for i in range(10, 30)}
        assert all(dict(doc.metadata) == {"n": int(doc.doc_id[1:]), "color": "blue"} for doc in blue)
        red = await ingest.store.search("docs", query, 100, filter={"color": "red"})
        assert not {doc.doc_id for doc in red} & {f"d{i}" for i in range(10, 30)}


async def test_events_of_one_document_apply_in_order(ingest: CascadeProcess, settings: Settings) -> None:
    topics = settings.kafka.topics
    events = [
        DocumentEvent(collection="docs", doc_id="a", text="first"),
        DocumentEvent(collection="docs", doc_id="a", text="second"),
        DocumentEvent(op="delete", collection="docs", doc_id="a"),
        DocumentEvent(collection="docs", doc_id="b", text="kept"),
    ]
    async with Collector(settings.kafka.bootstrap, topics.name(Topic.ACKS), IngestAck) as acks:
        await produce(settings.kafka.bootstrap, topics.name(Topic.DOCUMENTS),
                      [(event.doc_id, encode(event)) for event in events])
        received = await acks.wait_for(lambda items: len(items) >= 4)
    assert [(ack.doc_id, ack.status) for ack in received if ack.doc_id == "a"] == [
        ("a", "indexed"), ("a", "indexed"), ("a", "deleted")]
    assert await ingest.store.count("docs") == 1


def _valid(doc_id: str) -> dict[str, object]:
    return {"collection": "docs", "doc_id": doc_id, "text": "a valid document"}


HOSTILE: dict[str, bytes] = {
    "malformed JSON": b'{"collection": "docs", "doc_id": ',
    "wrong schema version": orjson.dumps(_valid("v") | {"schema_version": 99}),
    "missing text": orjson.dumps({"collection": "docs", "doc_id": "m"}),
    "empty text": orjson.dumps(_valid("e") | {"text": ""}),
    "text over the limit": orjson.dumps(_valid("o") | {"text": "x" * (MAX_TEXT_CHARS + 1)}),
    "invalid UTF-8": b'{"collection": "docs", "doc_id": "u", "text": "\xff\xfe"}',
    "wrong types": orjson.dumps(_valid("t") | {"metadata": "not a mapping", "title": 5}),
    "not an object": b"[]",
    "empty record": b"",
}
REASONS = {
    "malformed JSON": ("not_json", "not valid UTF-8 JSON"),
    "wrong schema version": ("invalid_fields", "schema_version: Input should be 1"),
    "missing text": ("invalid_fields", "an upsert needs a non-empty text"),
    "empty text": ("invalid_fields", "an upsert needs a non-empty text"),
    "text over the limit": ("invalid_fields", "text: String should have at most"),
    "invalid UTF-8": ("not_json", "not valid UTF-8 JSON"),
    "wrong types": ("invalid_fields", "title: Input should be a valid string"),
    "not an object": ("not_an_object", "expected a JSON object"),
    "empty record": ("not_json", "not valid UTF-8 JSON"),
}
"""What each hostile record is dead-lettered as: the reason code, and words of its error."""


async def test_hostile_input_is_dead_lettered_and_rejected(ingest: CascadeProcess, settings: Settings) -> None:
    topics, bootstrap = settings.kafka.topics, settings.kafka.bootstrap
    records: list[tuple[str | None, bytes]] = []
    for i, raw in enumerate(HOSTILE.values()):
        records += [(f"bad{i}", raw), (f"good{i}", encode(DocumentEvent(collection="docs", doc_id=f"good{i}",
                                                                        text=f"valid document {i}")))]
    async with (Collector(bootstrap, topics.name(Topic.ACKS), IngestAck) as acks,
                Collector(bootstrap, topics.name(Topic.DLQ), DeadLetter) as dlq):
        await produce(bootstrap, topics.name(Topic.DOCUMENTS), records)
        received = await acks.wait_for(lambda items: len(items) >= len(records))
        letters = await dlq.wait_for(lambda items: len(items) >= len(HOSTILE))
    by_key = {letter.key: letter for letter in letters}
    for i, (kind, raw) in enumerate(HOSTILE.items()):
        letter = by_key[f"bad{i}"]
        reason, words = REASONS[kind]
        assert letter.reason == reason and words in letter.error, kind
        assert base64.b64decode(letter.raw_b64) == raw[:64 * 1024]
        assert letter.raw_size == len(raw)
        assert letter.source_topic == topics.name(Topic.DOCUMENTS)
    rejected = {ack.doc_id: ack for ack in received if ack.status == "rejected"}
    assert set(rejected) == {f"bad{i}" for i in range(len(HOSTILE))}
    assert all(ack.error for ack in rejected.values())
    assert {ack.doc_id for ack in received if ack.status == "indexed"} == {f"good{i}" for i in range(len(HOSTILE))}
    assert await ingest.store.count("docs") == len(HOSTILE)
