"""Which failures belong to the cluster (retry, with capped backoff) and which to one record (answer, move on).

A record's own failure must never hold its partition: it is answered and dead-lettered. Only faults of the
infrastructure itself (a broker or the vector store server unreachable, leadership moving) are worth waiting
for, and waiting is bounded and logged, never a tight loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog
from aiokafka.errors import (
    InvalidTopicError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
)

__all__ = ["Backoff", "ClusterFault", "is_transient"]

log = structlog.get_logger(__name__)

_RECORD_FAULTS = (MessageSizeTooLargeError, RecordTooLargeError, InvalidTopicError, TopicAuthorizationFailedError)


class ClusterFault(Exception):
    """Raised when the cluster stayed unreachable for longer than the retry budget: the batch is rewound."""


class ServiceFault(Exception):
    """A part of this process failed (a worker task died): not the record's fault, and the process exits."""


def is_transient(error: BaseException) -> bool:
    """True for faults of Kafka, of the vector store server or of this process: the batch is retried (and
    redelivered to another member if this one exits). False for anything tied to one record."""
    if isinstance(error, ClusterFault | ServiceFault | ConnectionError | KafkaConnectionError | KafkaTimeoutError):
        return True
    if isinstance(error, _RECORD_FAULTS):
        return False
    if isinstance(error, KafkaError):
        return bool(error.retriable)
    # qdrant-client wraps a server it cannot reach in ResponseHandlingException around an httpx transport error.
    cause = error.__cause__ or error.__context__
    return type(error).__name__ == "ResponseHandlingException" and cause is not None and is_transient(cause)


@dataclass
class Backoff:
    """Capped exponential backoff: 1x, 2x, 4x ... `initial_s`, never more than `max_s` per wait."""

    initial_s: float
    max_s: float
    failures: int = field(default=0, init=False)

    def next_delay(self) -> float:
        return float(min(self.initial_s * 2.0 ** min(self.failures, 30), self.max_s))

    def failed(self) -> float:
        """Count a failure; returns how long to wait before the next try."""
        delay = self.next_delay()
        self.failures += 1
        return delay

    async def wait(self, what: str, error: BaseException) -> None:
        delay = self.failed()
        log.warning("cluster.retry", what=what, attempt=self.failures, delay_s=round(delay, 3), error=repr(error))
        await asyncio.sleep(delay)

    def reset(self) -> None:
        self.failures = 0
