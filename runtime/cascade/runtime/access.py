"""Checking at start that this process may consume what it subscribes to, so that a missing ACL is one clear
error naming it, not a consumer that retries in the background forever."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from cascade.contracts.security import AUTHORIZATION_ERRORS, KafkaAccessError
from cascade.services.consumers import Subscription

__all__ = ["check_consumer_access"]


async def check_consumer_access(subscriptions: Sequence[Subscription], who: str, **client_options: Any) -> None:
    """Raise KafkaAccessError unless each topic may be read (a fetch) and each group found (its coordinator),
    with one consumer and one admin client for all of them."""
    if not subscriptions:
        return
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_options)
    admin = AIOKafkaAdminClient(**client_options)
    await consumer.start()
    await admin.start()
    try:
        for subscription in subscriptions:
            partition = TopicPartition(subscription.topic, 0)
            try:
                consumer.assign([partition])
                await consumer.seek_to_end(partition)
                await consumer.getmany(partition, timeout_ms=300)
                await admin.find_coordinator(subscription.group)
            except AUTHORIZATION_ERRORS as exc:
                raise KafkaAccessError(
                    f"Kafka refused this process ({who}) to consume {subscription.topic!r} in group "
                    f"{subscription.group!r}: an ACL allowing Read on both is missing ({exc})") from exc
    finally:
        await admin.close()
        await consumer.stop()
