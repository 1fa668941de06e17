"""A reply topic deleted while an answer to it is in flight (its client closed): the answer is dropped, the
producer lets go of the topic, and nothing storms. Before, aiokafka's sender refreshed metadata in a tight loop
for 40 s, about 9,000 "not found in cluster metadata" lines a second. Real broker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from cascade.contracts import SearchResult
from cascade.runtime.provision import provision_topics
from cascade.services.log import configure_logging
from cascade.services.publishing import Outgoing, Publisher
from cascade.services.settings import Settings
from tests.kafka_helpers import eventually

WATCH_S = 3.0
"""How long after the answer is dropped the metadata errors are counted (the storm ran 40 s)."""


class Counting(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.not_found = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.not_found += "not found in cluster metadata" in record.getMessage()


async def _exists(admin: AIOKafkaAdminClient, topic: str) -> bool:
    [described] = await admin.describe_topics([topic])
    return described["error_code"] == 0


async def _gone(admin: AIOKafkaAdminClient, topic: str) -> bool:
    return not await _exists(admin, topic)


@pytest.fixture
async def publisher(settings: Settings) -> AsyncIterator[Publisher]:
    await provision_topics(settings.kafka.topics, **settings.kafka.client_options())
    started = Publisher(settings.kafka)
    await started.start()
    yield started
    await started.close()


async def test_an_answer_in_flight_to_a_deleted_reply_topic_storms_nothing(
    settings: Settings, publisher: Publisher
) -> None:
    kafka = settings.kafka
    topic = f"{kafka.topics.replies_prefix}client-a"
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    counting = Counting()
    aiokafka_cluster = logging.getLogger("aiokafka.cluster")  # where the metadata errors come from, unfiltered
    aiokafka_cluster.addHandler(counting)
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
        await eventually(lambda: _exists(admin, topic), within_s=30)  # the broker learns of it a moment later
        answer = SearchResult(request_id="r1", hits=[], served_by={"test": "1"})
        await publisher.publish([Outgoing(topic, "r1", answer)])  # the producer now holds the topic's metadata
        assert publisher.counts["published"] == 1
        await admin.delete_topics([topic])  # the client closes ...
        await eventually(lambda: _gone(admin, topic), within_s=30)  # (an answer sent before this point lands)
        await publisher.publish([Outgoing(topic, "r2", answer.model_copy(update={"request_id": "r2"}))])  # ... late
        assert publisher.counts["dropped_no_listener"] == 1
        counting.not_found = 0
        await asyncio.sleep(WATCH_S)
    finally:
        aiokafka_cluster.removeHandler(counting)
        await admin.close()
    # A metadata refresh already asked for may still name it once; before, 4,000 in these 3 s.
    assert counting.not_found < 5, f"{counting.not_found} metadata errors in {WATCH_S:g} s after the drop"
    assert publisher.counts["retried"] == 0


async def test_a_late_answer_to_a_reply_topic_deleted_earlier_is_dropped_not_retried(settings: Settings) -> None:
    """The topic was known (answered once), its client closed, and the producer's metadata no longer holds it:
    the late answer's send finds no metadata. Before, that timeout was retried as a cluster fault, then the batch
    rewound and handled again, for ever."""
    kafka = settings.kafka.model_copy(update={"send_timeout_ms": 1_000, "publish_retry_s": 3.0})
    await provision_topics(kafka.topics, **kafka.client_options())
    publisher = Publisher(kafka)
    await publisher.start()
    gone, other = f"{kafka.topics.replies_prefix}client-a", f"{kafka.topics.replies_prefix}client-b"
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    answer = SearchResult(request_id="r1", hits=[], served_by={"test": "1"})
    try:
        await admin.create_topics([NewTopic(gone, 1, 1), NewTopic(other, 1, 1)])
        await eventually(lambda: _exists(admin, gone), within_s=30)
        await eventually(lambda: _exists(admin, other), within_s=30)
        await publisher.publish([Outgoing(gone, "r1", answer)])
        await admin.delete_topics([gone])  # its client closed, nothing in flight
        await eventually(lambda: _gone(admin, gone), within_s=30)
        await publisher.publish([Outgoing(other, "r2", answer)])  # a metadata refresh: the producer forgets `gone`
        await publisher.publish([Outgoing(gone, "r3", answer)])  # the late answer
    finally:
        await admin.close()
        await publisher.close()
    assert publisher.counts["published"] == 2
    assert publisher.counts["dropped_no_listener"] == 1
    assert publisher.counts["retried"] == 0


def test_a_library_line_repeated_in_a_loop_is_written_once(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "INFO")
    try:
        for _ in range(1_000):
            logging.getLogger("aiokafka.cluster").error("Topic %s not found in cluster metadata", "replies.a")
        logging.getLogger("aiokafka.cluster").error("Topic %s not found in cluster metadata", "replies.b")
    finally:
        with capsys.disabled():  # back on the session's stderr: the captured one closes with this test
            configure_logging("console", "WARNING")
    lines = capsys.readouterr().err.splitlines()
    assert [line for line in lines if "replies.a" in line] == [lines[0]]
    assert sum("replies.b" in line for line in lines) == 1
