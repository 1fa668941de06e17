"""Topics replicated for the cluster they are on: three replicas and two in sync on three brokers, and a refused
creation raised with the broker's reason."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import InvalidReplicationFactorError

from cascade.contracts import Topic, TopicRegistry
from cascade.contracts.topic_admin import TopicToCreate, create_topics, replication_for
from cascade.infra.local_kafka import LocalKafka
from cascade.runtime.provision import provision_topics


async def _replicas(admin: AIOKafkaAdminClient, topic: str) -> list[int]:
    [described] = await admin.describe_topics([topic])
    return [len(partition["replicas"]) for partition in described["partitions"]]


async def _min_in_sync(admin: AIOKafkaAdminClient, topic: str) -> str:
    [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    [(_, _, _, _, entries)] = response.resources
    return next(str(value) for name, value, *_ in entries if name == "min.insync.replicas")


@pytest.fixture
async def admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await client.start()
    yield client
    await client.close()


async def _brokers(admin: AIOKafkaAdminClient) -> int:
    return len((await admin.describe_cluster())["brokers"])


async def test_a_refused_creation_says_why(admin: AIOKafkaAdminClient) -> None:
    topic, brokers = f"t{uuid.uuid4().hex[:8]}", await _brokers(admin)
    with pytest.raises(InvalidReplicationFactorError, match=f"creating topic {topic}: .*only {brokers} broker"):
        await create_topics(admin, [TopicToCreate(topic, 1, {})], replication_factor=brokers + 1)


async def test_the_session_cluster_gets_the_replication_its_size_calls_for(
        admin: AIOKafkaAdminClient, bootstrap: str, registry: TopicRegistry) -> None:
    await provision_topics(registry, bootstrap_servers=bootstrap)
    factor, in_sync = replication_for(await _brokers(admin))
    queries = registry.name(Topic.QUERIES)
    assert await _replicas(admin, queries) == [factor] * registry.all()[queries].partitions
    assert await _min_in_sync(admin, registry.name(Topic.DOCUMENTS)) == str(in_sync)


async def test_three_brokers_get_three_replicas_two_in_sync_and_survive_a_leader(registry: TopicRegistry) -> None:
    with LocalKafka(brokers=3) as kafka:
        await provision_topics(registry, bootstrap_servers=kafka.bootstrap)
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            for topic in registry.all():
                assert set(await _replicas(admin, topic)) == {3}, topic
                assert await _min_in_sync(admin, topic) == "2", topic
            documents = registry.name(Topic.DOCUMENTS)
            [described] = await admin.describe_topics([documents])
            leader: int = described["partitions"][0]["leader"]
        finally:
            await admin.close()
        kafka.kill(leader)  # one of three: two replicas stay in sync, so writes acknowledged by all go on
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            sent: Any = await producer.send_and_wait(documents, b"after the leader died", key=b"k", partition=0)
        finally:
            await producer.stop()
        assert sent.offset == 0
