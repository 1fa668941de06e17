"""The launched broker is a real Kafka: records flow, consumer groups balance, provisioning is idempotent."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from cascade.contracts import Topic, TopicRegistry
from cascade.runtime.provision import TopicMismatchError, provision_topics


async def test_produce_and_consume(bootstrap: str, registry: TopicRegistry) -> None:
    await provision_topics(registry, bootstrap_servers=bootstrap)
    topic = registry.name(Topic.DOCUMENTS)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for i in range(20):
            await producer.send_and_wait(topic, f"v{i}".encode(), key=f"k{i}".encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"g-{uuid.uuid4()}")
    await consumer.start()
    try:
        seen: set[bytes] = set()
        async with asyncio.timeout(20):
            while len(seen) < 20:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    seen.update(record.value for record in records if record.value is not None)
    finally:
        await consumer.stop()
    assert seen == {f"v{i}".encode() for i in range(20)}


async def test_group_of_two_splits_six_partitions(bootstrap: str, registry: TopicRegistry) -> None:
    await provision_topics(registry, bootstrap_servers=bootstrap)
    topic = registry.name(Topic.CANDIDATES)
    group = f"g-{uuid.uuid4()}"
    members = [AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group) for _ in range(2)]
    await asyncio.gather(*(member.start() for member in members))
    try:
        async with asyncio.timeout(30):
            while sorted(len(member.assignment()) for member in members) != [3, 3]:
                await asyncio.gather(*(member.getmany(timeout_ms=200) for member in members))
        assigned = [partition for member in members for partition in member.assignment()]
        assert sorted(p.partition for p in assigned) == list(range(6))
    finally:
        await asyncio.gather(*(member.stop() for member in members))


async def test_provisioning_is_idempotent(bootstrap: str, registry: TopicRegistry) -> None:
    first = await provision_topics(registry, bootstrap_servers=bootstrap)
    second = await provision_topics(registry, bootstrap_servers=bootstrap)
    assert sorted(first.created) == sorted(registry.all())
    assert second.created == []
    assert sorted(second.existing) == sorted(registry.all())
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([registry.name(Topic.CANDIDATES)])
        assert len(described[0]["partitions"]) >= 6
    finally:
        await admin.close()


async def test_provisioning_grows_queries_and_candidates_but_not_documents(
    bootstrap: str, registry: TopicRegistry
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(registry.name(Topic.CANDIDATES), 2, 1)])
        for _ in range(100):  # until the broker's metadata knows the new topic
            if (await admin.describe_topics([registry.name(Topic.CANDIDATES)]))[0]["partitions"]:
                break
            await asyncio.sleep(0.1)
        more = dataclasses.replace(registry, partitions={Topic.CANDIDATES: 9})
        report = await provision_topics(more, bootstrap_servers=bootstrap)
        assert report.grown == [registry.name(Topic.CANDIDATES)]
        described = await admin.describe_topics([registry.name(Topic.CANDIDATES)])
        assert len(described[0]["partitions"]) == 9

        fixed = TopicRegistry(prefix=f"{registry.prefix}fixed.")
        await admin.create_topics([NewTopic(fixed.name(Topic.DOCUMENTS), 2, 1)])
    finally:
        await admin.close()
    with pytest.raises(TopicMismatchError, match=r"documents has 2 partitions, needs 6"):
        await provision_topics(fixed, bootstrap_servers=bootstrap)
    with pytest.raises(ValueError, match="fixed"):
        TopicRegistry(partitions={Topic.DOCUMENTS: 12})


def test_cluster_ids_never_look_like_options() -> None:
    from cascade.infra.local_kafka import _cluster_id

    ids = [_cluster_id() for _ in range(2000)]
    assert not any(cluster_id.startswith("-") for cluster_id in ids)
    assert all(len(cluster_id) == 22 for cluster_id in ids)
