"""Kafka plumbing the services share: raw records, dead letters, ids salvaged from bad input."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cascade.contracts import DeadLetter
from cascade.contracts.limits import MAX_DLQ_RAW_BYTES, MAX_ERROR_CHARS
from cascade.contracts.messages import DeadLetterReason

__all__ = ["RawRecord", "dead_letter", "usable_id"]

@dataclass(frozen=True)
class RawRecord:
    """A consumed record as bytes, before any decoding, so that nothing about bad input is lost."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of(cls, record: Any) -> RawRecord:
        """From an aiokafka ConsumerRecord."""
        return cls(record.topic, record.partition, record.offset, record.key, record.value or b"",
                   tuple(record.headers or ()))

    @property
    def key_text(self) -> str | None:
        try:
            return self.key.decode() if self.key is not None else None
        except UnicodeDecodeError:
            return None


def dead_letter(record: RawRecord, reason: DeadLetterReason, error: str, service: str) -> DeadLetter:
    return DeadLetter(
        source_topic=record.topic, partition=record.partition, offset=record.offset, key=record.key_text,
        raw_b64=base64.b64encode(record.value[:MAX_DLQ_RAW_BYTES]).decode(), raw_size=len(record.value),
        reason=reason, error=error[:MAX_ERROR_CHARS], service=service,
    )


def usable_id(value: object, max_chars: int) -> str | None:
    """`value` if it can serve as an id salvaged from a bad record (a request or document id), else None."""
    if isinstance(value, str) and 0 < len(value) <= max_chars and value.isprintable():
        return value
    return None
