"""Session-wide fixtures: one real Kafka broker for the whole run (or CASCADE_KAFKA_BOOTSTRAP's cluster)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from contracts import TopicRegistry
from infra.local_kafka import kafka_bootstrap
from services.log import configure_logging

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
configure_logging("console", "WARNING")


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    with kafka_bootstrap(os.environ.get("CASCADE_KAFKA_BOOTSTRAP")) as address:
        yield address


@pytest.fixture
def registry() -> TopicRegistry:
    """Topic names private to one test, so tests sharing the broker never see each other's records."""
    return TopicRegistry(prefix=f"t{uuid.uuid4().hex[:10]}.")
