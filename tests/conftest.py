"""Session-wide fixtures: one real Kafka broker for the whole run (or CASCADE_KAFKA_BOOTSTRAP's cluster); per test,
its own topics and store. Tests marked `both_stores` run twice: on the embedded store, and on QdrantStore against a
real Qdrant server of their own."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cascade.contracts import SearchRequest, TopicRegistry
from cascade.infra.local_kafka import kafka_bootstrap
from cascade.runtime.process import CascadeProcess
from cascade.sdk import SearchClient
from cascade.services.log import configure_logging
from cascade.services.settings import BatchingSettings, KafkaSettings, ModelSettings, Settings, StoreSettings
from tests.processes import SESSION_TIMEOUT_MS
from tests.stores import STORE_KINDS, StoreKind, store_settings
from tests.tiny_models import build_tiny_bi_encoder, build_tiny_cross_encoder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("CASCADE_METRICS_PORT", "0")  # each process of a test (and its children) on a free port
configure_logging("console", "WARNING")


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    with kafka_bootstrap(os.environ.get("CASCADE_KAFKA_BOOTSTRAP")) as address:
        yield address


@pytest.fixture(scope="session")
def tiny_bi_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bi_encoder(tmp_path_factory.mktemp("tiny-bi-encoder"))


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_stores") and "store_kind" in metafunc.fixturenames:
        metafunc.parametrize("store_kind", STORE_KINDS, indirect=True)


@pytest.fixture
def store_kind(request: pytest.FixtureRequest) -> StoreKind:
    """The embedded store, unless the test is marked `both_stores` (then each kind in turn)."""
    kind: StoreKind = getattr(request, "param", "edge")
    return kind


@pytest.fixture
def store(store_kind: StoreKind, tmp_path: Path) -> Iterator[StoreSettings]:
    """The store settings of one test: a folder of its own, or a Qdrant server of its own."""
    with store_settings(store_kind, tmp_path / "store") as chosen:
        yield chosen


@pytest.fixture
def settings(bootstrap: str, registry: TopicRegistry, tiny_bi_encoder: Path, store: StoreSettings) -> Settings:
    """Settings of a process private to one test: its own topics, store and the tiny models."""
    return Settings(
        kafka=KafkaSettings(bootstrap=bootstrap, topic_prefix=registry.prefix),
        store=store,
        models=ModelSettings(bi_encoder=str(tiny_bi_encoder), late_interaction=""),  # ColBERT tests name theirs
        batching=BatchingSettings(ingest_max_records=128),
        instance_id="test",
    )


@pytest.fixture
async def first_stage(settings: Settings) -> AsyncIterator[CascadeProcess]:
    """Ingest and query served in this process, for tests that run rerankers as separate processes."""
    kafka = settings.kafka.model_copy(update={"session_timeout_ms": SESSION_TIMEOUT_MS})
    process = CascadeProcess(settings.model_copy(update={"kafka": kafka}), {"ingest", "query"})
    await process.start()
    yield process
    await process.stop()


@pytest.fixture
async def all_roles(settings: Settings, tiny_cross_encoder: Path) -> AsyncIterator[CascadeProcess]:
    """Ingest, query and rerank served in this process around one store, with the tiny models."""
    settings = settings.model_copy(update={
        "models": settings.models.model_copy(update={"cross_encoder": str(tiny_cross_encoder)}),
        "batching": settings.batching.model_copy(update={"cross_max_documents": 20}),
    })
    process = CascadeProcess(settings, {"ingest", "query", "rerank"})
    await process.start()
    yield process
    await process.stop()


@pytest.fixture
def fetched_e5(tiny_bi_encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A model cache holding a (tiny) `e5-small`, with its prefixes and mean pooling; bge-small is not fetched."""
    folder = Path(shutil.copytree(tiny_bi_encoder, tmp_path / "cache" / "models" / "e5-small"))
    (folder / "cascade.json").write_text(json.dumps({"pooling": "mean", "query_prefix": "query: ",
                                                     "document_prefix": "passage: ", "model_id": "test/tiny-e5"}))
    monkeypatch.setenv("CASCADE_CACHE_DIR", str(tmp_path / "cache"))
    return folder


def client_for(process: CascadeProcess) -> SearchClient:
    """An SDK client on the cluster and topic prefix of `process`."""
    kafka = process.settings.kafka
    return SearchClient(kafka.bootstrap, topic_prefix=kafka.topic_prefix)


def addressed_to(client: SearchClient, request: SearchRequest) -> SearchRequest:
    """`request` answered on `client`'s partition of the replies topic, as `client.search` sends one, and
    awaited by its result streams (a test that publishes requests itself)."""
    client.replies.asked(request.request_id)
    return request.model_copy(update={"reply_to": client.replies.topic, "reply_partition": client.replies.partition})


@pytest.fixture
def registry() -> TopicRegistry:
    """Topic names private to one test, so tests sharing the broker never see each other's records."""
    return TopicRegistry(prefix=f"t{uuid.uuid4().hex[:10]}.")
