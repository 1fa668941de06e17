"""Answers travel on the namespace's shared replies topic: nothing is created or deleted per client, and a
request cannot make a service write anywhere else. Real broker, real Edge store, tiny models."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka.errors import UnknownTopicOrPartitionError

from cascade.contracts import DeadLetter, SearchRequest, SearchResult, Topic, TopicRegistry, encode
from cascade.contracts.topic_admin import admin_client
from cascade.runtime.process import CascadeProcess
from cascade.runtime.provision import provision_topics
from cascade.sdk import SearchClient
from tests.conftest import client_for
from tests.kafka_helpers import Collector, produce

CORPUS = [{"doc_id": f"d{i}", "text": f"the telephone was invented in 18{i:02d}"} for i in range(10)]


@pytest.fixture
async def client(all_roles: CascadeProcess) -> AsyncIterator[SearchClient]:
    async with client_for(all_roles) as connected:
        await connected.index(CORPUS, collection="demo")
        yield connected


async def test_an_answer_address_outside_the_namespace_is_refused_with_a_reason_code(
    all_roles: CascadeProcess, client: SearchClient
) -> None:
    """Before, any topic under the old `replies.` prefix was answered on (and each cost the services a metadata
    lookup); now only the namespace's replies topic (at one of its partitions) or its results topic is."""
    kafka = all_roles.settings.kafka
    topics = kafka.topics
    other = TopicRegistry(prefix=f"other{topics.prefix}")  # another namespace on the same cluster
    await provision_topics(other, **kafka.client_options())
    replies, partitions = topics.name(Topic.REPLIES), topics.spec(Topic.REPLIES).partitions
    addresses: dict[str, tuple[str, int | None]] = {
        "another namespace's replies": (other.name(Topic.REPLIES), 0),
        "another namespace's results": (other.name(Topic.RESULTS), None),
        "a per-client topic": (f"{topics.prefix}replies.gone", None),
        "a topic that is not for answers": (topics.name(Topic.DOCUMENTS), None),
        "a partition past the last": (replies, partitions),
        "no partition": (replies, None),
        "a partition of the results topic": (topics.name(Topic.RESULTS), 0),
    }
    requests = [SearchRequest(request_id=f"bad-{i}", collection="demo", query="telephone", mode="bi",
                              reply_to=topic, reply_partition=partition)
                for i, (topic, partition) in enumerate(addresses.values())]
    async with (Collector(kafka.bootstrap, topics.name(Topic.RESULTS), SearchResult) as shared,
                Collector(kafka.bootstrap, topics.name(Topic.DLQ), DeadLetter) as dlq,
                Collector(kafka.bootstrap, other.name(Topic.REPLIES), SearchResult) as foreign,
                Collector(kafka.bootstrap, other.name(Topic.RESULTS), SearchResult) as foreign_results):
        await produce(kafka.bootstrap, topics.name(Topic.QUERIES), [(r.request_id, encode(r)) for r in requests])
        answered = await shared.wait_for(lambda items: len(items) >= len(requests), within_s=60)
        letters = await dlq.wait_for(lambda items: len(items) >= len(requests), within_s=60)
        after = await client.search("who invented the telephone", collection="demo", k=3, mode="bi")
        leaked = foreign.items + foreign_results.items
    errors = {result.request_id: result.error for result in answered}
    assert set(errors) == {request.request_id for request in requests}
    for request_id, error in errors.items():
        assert error is not None and error.code == "invalid_reply_to", request_id
    assert "outside this namespace's answer topics" in str(errors["bad-0"])
    assert f"not a partition of {replies!r} (0 to {partitions - 1})" in str(errors["bad-4"])
    assert sorted(letter.reason for letter in letters) == ["invalid_reply_to"] * len(requests)
    assert leaked == []
    assert len(after.hits) == 3
    assert all_roles.publisher.counts["retried"] == 0


async def test_clients_that_come_and_go_leave_no_topic_and_no_metadata_behind(
    all_roles: CascadeProcess, client: SearchClient
) -> None:
    """Each client used to create a reply topic at start and delete it at close; every service producer kept
    the metadata of every reply topic it had answered on."""
    kafka = all_roles.settings.kafka
    await client.search("telephone", collection="demo", mode="rerank")  # the services have written every answer
    async with admin_client(**kafka.client_options()) as admin:
        topics_before = set(await admin.list_topics())
        metadata_before = all_roles.publisher.metadata_topics
        partitions = set()
        for i in range(8):
            async with client_for(all_roles) as passing:
                result = await passing.search(f"telephone {i}", collection="demo", mode="rerank" if i % 2 else "bi")
                assert result.error is None and result.hits
                partitions.add(passing.replies.partition)
        topics_after = set(await admin.list_topics())
    assert topics_after == topics_before
    assert all_roles.publisher.metadata_topics == metadata_before
    assert partitions <= set(range(kafka.topics.spec(Topic.REPLIES).partitions))


async def test_a_client_of_an_unprovisioned_namespace_is_told_to_provision_it(bootstrap: str) -> None:
    with pytest.raises(UnknownTopicOrPartitionError, match=r"'nowhere\.replies' does not exist: provision"):
        async with SearchClient(bootstrap, topic_prefix="nowhere."):
            pass
