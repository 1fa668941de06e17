"""Making aiokafka's producer let go of a topic that was deleted under it.

aiokafka (pinned at 0.14.0) has no API for this. A batch queued for a partition whose topic was deleted waits
for a leader that never comes: the sender asks for metadata again at once, in a loop, until the batch expires
(`request_timeout_ms`, 40 s), logging "Topic ... not found in cluster metadata" for each answer (about 9,000
lines a second), and the topic stays in the set of topics the producer refreshes for ever. This module is the one
place that reaches into the producer for it; tests/test_vanished_topics.py runs it against a real broker, so a
changed aiokafka fails there.
"""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

__all__ = ["abandon_topic"]


def abandon_topic(producer: AIOKafkaProducer, topic: str, error: BaseException) -> int:
    """Fail the producer's queued batches for `topic` with `error` and stop refreshing its metadata; returns the
    batches failed. A batch in flight meanwhile comes back to the queue when the broker refuses it: call again."""
    accumulator = producer._message_accumulator
    failed = 0
    for partition in [partition for partition in accumulator._batches if partition.topic == topic]:
        while partition in accumulator._batches:
            accumulator._pop_batch(partition).failure(exception=error)  # as aiokafka fails an expired batch
            failed += 1
    client = producer.client
    if topic in client._topics:
        client.set_topics(client._topics - {topic})
    return failed
