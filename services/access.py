"""Checking at start that this process may consume what it subscribes to, so that a missing ACL is one clear
error naming it, not a consumer that retries in the background forever."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from sdk.security import AUTHORIZATION_ERRORS, KafkaAccessError

__all__ = ["check_consumer_access"]


async def check_consumer_access(topic: str, group: str, who: str, **client_options: Any) -> None:
    """Raise KafkaAccessError unless `topic` may be read (a fetch) and `group` found (its coordinator)."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_options)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        await consumer.getmany(partition, timeout_ms=300)
        await consumer._client.coordinator_lookup(0, group)
    except AUTHORIZATION_ERRORS as exc:
        raise KafkaAccessError(f"Kafka refused this process ({who}) to consume {topic!r} in group {group!r}: an ACL "
                               f"allowing Read on both is missing ({exc})") from exc
    finally:
        await consumer.stop()
