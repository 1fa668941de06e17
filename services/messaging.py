"""Kafka plumbing the services share: the FastStream broker from settings, raw records, dead letters."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

import structlog
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from contracts import DeadLetter
from contracts.limits import MAX_DLQ_RAW_BYTES, MAX_ERROR_CHARS, MAX_MESSAGE_BYTES
from sdk import KafkaSecurity
from services.settings import KafkaSettings

__all__ = ["RawRecord", "dead_letter", "faststream_security", "make_broker", "usable_id"]

_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


def make_broker(settings: KafkaSettings) -> KafkaBroker:
    """A FastStream broker whose producer waits for all in-sync replicas and never duplicates on retry."""
    return KafkaBroker(
        settings.bootstrap, client_id=settings.client_id, security=faststream_security(settings.security), acks="all",
        enable_idempotence=True, allow_auto_create_topics=False,  # topics come from provisioning, not consumers
        max_request_size=MAX_MESSAGE_BYTES + 64 * 1024, linger_ms=settings.linger_ms,
        logger=structlog.get_logger("faststream"), log_level=logging.DEBUG,  # per-message lines only at DEBUG
    )


def faststream_security(security: KafkaSecurity) -> BaseSecurity:
    """The same configuration as FastStream's security object (which follows `use_ssl` for the protocol)."""
    use_ssl = security.protocol.endswith("SSL")
    if security.sasl_mechanism:
        return _SASL[security.sasl_mechanism](security.username or "", security.password or "",
                                              ssl_context=security.ssl_context(), use_ssl=use_ssl)
    return BaseSecurity(ssl_context=security.ssl_context(), use_ssl=use_ssl)


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


def dead_letter(record: RawRecord, error: str, service: str) -> DeadLetter:
    return DeadLetter(
        source_topic=record.topic, partition=record.partition, offset=record.offset, key=record.key_text,
        raw_b64=base64.b64encode(record.value[:MAX_DLQ_RAW_BYTES]).decode(), raw_size=len(record.value),
        error=error[:MAX_ERROR_CHARS], service=service,
    )


def usable_id(value: object, max_chars: int) -> str | None:
    """`value` if it can serve as an id salvaged from a bad record (a request or document id), else None."""
    if isinstance(value, str) and 0 < len(value) <= max_chars and value.isprintable():
        return value
    return None
