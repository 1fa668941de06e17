"""What the ingest service does to a batch of document records, independent of how they arrive.

Each document is hashed (model id + title + text); only documents whose hash differs from the stored one are
encoded, so a replayed or unchanged corpus costs lookups, not forward passes. Point ids are deterministic,
so a batch processed twice (at-least-once delivery) leaves the same state.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import structlog

from cascade.contracts import (
    REINDEX_COPY_HEADER,
    ContractError,
    DeadLetter,
    DocumentEvent,
    IngestAck,
    Passages,
    ReindexCopy,
    decode,
    now_ms,
)
from cascade.contracts.limits import MAX_DOC_ID_CHARS, MAX_ERROR_CHARS
from cascade.contracts.messages import AckStatus, DeadLetterReason
from cascade.services.encoders import (
    BiEncoder,
    BiEncoders,
    LateInteractionEncoder,
    LateInteractionLoader,
    UnknownModel,
    document_text,
)
from cascade.services.encoders.late_interaction import TokenVectors
from cascade.services.encoders.sparse import Bm25Encoder
from cascade.services.encoders.text import passages_label, split_all
from cascade.services.ingest.versions import versions
from cascade.services.messaging import RawRecord, dead_letter, usable_id
from cascade.services.store import (
    StoredDocument,
    UnknownCollectionError,
    VectorSizeMismatch,
    VectorStore,
    base_name,
)
from cascade.services.tenancy import owner, shown_collection, stored_collection

__all__ = ["IngestOutcome", "IngestProcessor", "Received", "content_hash", "is_reindex_copy"]

log = structlog.get_logger(__name__)


def content_hash(model_id: str, title: str, text: str) -> str:
    """Changes when the text or the model that embeds it changes: both call for a new vector."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (model_id, title, text):
        digest.update(part.encode())
        digest.update(b"\x1f")
    return digest.hexdigest()


@dataclass(frozen=True)
class Layout:
    """What a collection stores of each document beside its text, chosen when it is made: token vectors too
    (late_interaction, for mode colbert), or its passages' vectors in place of one vector (passages)."""

    late_interaction: bool = False
    passages: Passages | None = None
    """How the collection splits documents into passages, if it does."""

    @classmethod
    def asked(cls, upserts: Sequence[DocumentEvent], passages: Passages) -> Layout:
        """A new collection's: as the first document that says anything about it (as if the documents came one
        at a time: a later one asking otherwise is refused; the contract refuses one that asks for both)."""
        first = next((event for event in upserts if event.late_interaction is not None or event.passages is not None),
                     None)
        return cls(bool(first.late_interaction), passages if first.passages else None) if first else cls()

    def refusal(self, named: str, event: DocumentEvent) -> str | None:
        """Why `event` cannot go into the collection `named` made this way (None: it can)."""
        for name, what, made, asked in (("late_interaction", "token vectors", self.late_interaction,
                                         event.late_interaction), ("passages", "passages", self.passages is not None,
                                                                   event.passages)):
            if asked is not None and asked != made:
                return (f"model_mismatch: collection {named!r} was made {'with' if made else 'without'} {what} "
                        f"({name}), this document asks for {name}={asked}")
        return None


@dataclass
class IngestOutcome:
    acks: list[IngestAck] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    encoded: int = 0


Received = tuple[RawRecord, DocumentEvent]
Incoming = tuple[RawRecord, DocumentEvent | ReindexCopy]
"""A record of the documents topic and what it holds."""


def is_reindex_copy(record: RawRecord) -> bool:
    name, value = REINDEX_COPY_HEADER
    return (name, value.encode()) in record.headers


def _split_runs(events: Sequence[Incoming]) -> list[list[Incoming]]:
    """Consecutive runs in which no document appears twice, so events of one document apply in order."""
    runs: list[list[Incoming]] = [[]]
    seen: set[tuple[str, str]] = set()
    for record, event in events:
        identity = (event.collection, event.doc_id)
        if identity in seen:
            runs.append([])
            seen.clear()
        seen.add(identity)
        runs[-1].append((record, event))
    return runs


class IngestProcessor:
    def __init__(self, store: VectorStore, encoders: BiEncoders, late_interaction: LateInteractionLoader,
                 service: str = "ingest", max_collections: int = 1_000, passages: Passages | None = None) -> None:
        """`passages`: how a collection of passages made here splits documents (an existing one keeps its own)."""
        self._store = store
        self._passages = passages or Passages()
        self._max_collections = max_collections
        self._encoders = encoders
        self._late_interaction = late_interaction
        self._bm25 = Bm25Encoder()
        self._service = service

    async def process(self, records: Sequence[RawRecord], tenant: str) -> IngestOutcome:
        """Validate, then apply the batch's events (documents of `tenant`) in order; acks name collections as the
        tenant knows them. Store or model failures propagate (the consumer retries cluster faults and isolates anything
        else record by record)."""
        outcome = IngestOutcome()
        events: list[Incoming] = []
        for record in records:
            try:
                event: DocumentEvent | ReindexCopy = (decode(record.value, ReindexCopy) if is_reindex_copy(record)
                                else decode(record.value, DocumentEvent))
            except ContractError as exc:
                self.reject(record, exc.reason, str(exc), outcome)
            else:  # events name the tenant's collections; the store knows them by names of its own
                events.append((record, event.model_copy(update={
                    "collection": stored_collection(tenant, event.collection)})))
        for run in _split_runs(events):
            for collection in sorted({event.collection for _, event in run}):
                await self._apply_to_versions(collection, [each for each in run if each[1].collection == collection],
                                              outcome)
        return outcome

    async def _apply_to_versions(self, collection: str, received: list[Incoming], outcome: IngestOutcome) -> None:
        """Writes to the version served; then the version being built (cascade.services.ingest.versions) made to hold
        what the served one now holds for every document of the run, written or copied: it mirrors the served
        version's outcome (a refused write stays out of both), whatever the events asked of the old model."""
        held = await versions(self._store, collection)
        writes = [(record, event) for record, event in received if isinstance(event, DocumentEvent)]
        if writes:
            await self._apply(held.served, writes, outcome)
        if held.building is None:
            return
        try:
            await self._mirror(held.served, held.building, received)
        except UnknownCollectionError:  # a version given up since the lookup: nothing to build any more
            log.warning("reindex.version_gone", version=held.building)

    async def _mirror(self, served: str, building: str, received: list[Incoming]) -> None:
        """Make `building` hold what `served` holds for each document of `received` (upserts, deletes if gone),
        encoded by its model; its acks go nowhere (the collection's own were published), a refusal is logged (the
        reindex then finds the document missing before it switches)."""
        stored = await self._store.documents(served, [event.doc_id for _, event in received])
        mirrored: list[Received] = [  # named as clients know the collection: `building` is where they go
            (record, DocumentEvent(collection=shown_collection(event.collection), doc_id=event.doc_id,
                                   title=doc.title, text=doc.text, metadata=dict(doc.metadata))
             if (doc := stored.get(event.doc_id)) else
             DocumentEvent(collection=shown_collection(event.collection), doc_id=event.doc_id, op="delete"))
            for record, event in received]
        refused = IngestOutcome()
        await self._apply(building, mirrored, refused, create=False)
        for letter in refused.dead_letters:
            log.warning("reindex.copy_refused", target=building, doc_id=letter.key, error=letter.error)

    def reject(self, record: RawRecord, reason: DeadLetterReason, error: str, outcome: IngestOutcome,
               collection: str | None = None) -> None:
        """A dead letter and a `rejected` ack for a record that cannot be applied (a reindex's copy: no ack, no
        client waits for it)."""
        log.warning("ingest.rejected", topic=record.topic, partition=record.partition, offset=record.offset,
                    reason=reason, error=error)
        outcome.dead_letters.append(dead_letter(record, reason, error, self._service))
        if is_reindex_copy(record):
            return
        named = collection and shown_collection(base_name(collection))
        outcome.acks.append(IngestAck(doc_id=_doc_id_from_key(record), collection=named, status="rejected",
                                      error=error[:MAX_ERROR_CHARS]))

    def _reject_upserts(self, received: list[Received], reason: DeadLetterReason, error: str, outcome: IngestOutcome,
                        collection: str) -> None:
        for record, event in received:
            if event.op == "upsert":
                self.reject(record, reason, error, outcome, collection)

    async def _model_of(self, collection: str, exists: bool, upserts: list[DocumentEvent]) -> str:
        """The model an existing collection recorded; for a new collection, the first model its documents name,
        else the default."""
        if exists:
            return await self._store.collection_model(collection)
        return next((event.model for event in upserts if event.model), self._encoders.default.name)

    async def _layout_of(self, collection: str, exists: bool, upserts: list[DocumentEvent]) -> Layout:
        """What the collection stores: as it was made, or as the first document to say asks."""
        if exists:
            return Layout(await self._store.token_dim(collection) is not None, await self._store.passages(collection))
        return Layout.asked(upserts, self._passages)

    async def _mismatch(self, collection: str, dim: int, model_id: str,
                        tokens_encoder: LateInteractionEncoder | None) -> str | None:
        """Why the collection's vectors cannot be compared with the encoders' (None: they can)."""
        size = await self._store.vector_size(collection)
        if size != dim:
            return str(VectorSizeMismatch(collection, size, dim, model_id))
        token_dim = await self._store.token_dim(collection)
        if tokens_encoder is not None and token_dim != tokens_encoder.dim:
            return str(VectorSizeMismatch(collection, token_dim or 0, tokens_encoder.dim, tokens_encoder.model_id))
        return None

    async def _apply(self, collection: str, received: list[Received], outcome: IngestOutcome,
                     create: bool = True) -> None:
        """Deletes, then the upserts the collection can take (a new collection only if `create`)."""
        exists = await self._store.has_collection(collection)
        if not exists and not create:
            raise UnknownCollectionError(collection)
        named = shown_collection(base_name(collection))  # as clients know it (a reindex writes to a version of it)
        deletes = [event.doc_id for _, event in received if event.op == "delete"]
        if deletes and exists:
            await self._store.delete(collection, deletes)
        outcome.acks.extend(IngestAck(doc_id=doc_id, collection=named, status="deleted") for doc_id in deletes)
        upserts = [(record, event) for record, event in received if event.op == "upsert"]
        if not upserts or (not exists and not await self._may_create(collection, upserts, outcome)):
            return
        model = await self._model_of(collection, exists, [event for _, event in upserts])
        layout = await self._layout_of(collection, exists, [event for _, event in upserts])
        upserts = self._matching(collection, model, layout, upserts, outcome)
        encoders = await self._encoders_for(collection, model, layout, upserts, outcome)
        if encoders is not None:
            await self._write(collection, *encoders, layout.passages, [event for _, event in upserts], outcome)

    async def _may_create(self, collection: str, upserts: list[Received], outcome: IngestOutcome) -> bool:
        """Whether the store may hold one more collection of the collection's tenant (each tenant has the cap of
        its own); if not, the upserts are refused."""
        tenant = owner(collection)
        held = sum(owner(name) == tenant for name in await self._store.collections())
        if held < self._max_collections:
            return True
        error = (f"collection {shown_collection(base_name(collection))!r} was not created: the store holds {held} "
                 "collections, the cap (CASCADE_STORE_MAX_COLLECTIONS)")
        self._reject_upserts(upserts, "collection_cap", error, outcome, collection)
        return False

    def _matching(self, collection: str, model: str, layout: Layout, upserts: list[Received],
                  outcome: IngestOutcome) -> list[Received]:
        """The upserts that ask for the collection's model and layout (or nothing); the others refused."""
        named = shown_collection(base_name(collection))
        kept: list[Received] = []
        for record, event in upserts:
            if event.model and event.model != model:
                self.reject(record, "model_mismatch", f"model_mismatch: collection {named!r} holds vectors of model "
                            f"{model!r}, this document asks for {event.model!r}", outcome, collection)
            elif refusal := layout.refusal(named, event):
                self.reject(record, "model_mismatch", refusal, outcome, collection)
            else:
                kept.append((record, event))
        return kept

    async def _encoders_for(self, collection: str, model: str, layout: Layout, upserts: list[Received],
                            outcome: IngestOutcome) -> tuple[BiEncoder, LateInteractionEncoder | None] | None:
        """The encoders of the collection (made now if new), or None with the upserts refused when they are
        unavailable or their vectors do not fit the collection's."""
        try:
            encoder = await self._encoders.get(model)
            tokens_encoder = await self._late_interaction.get() if layout.late_interaction else None
        except UnknownModel as exc:
            self._reject_upserts(upserts, "model_unavailable", f"model_unavailable: {exc}", outcome, collection)
            return None
        await self._store.ensure_collection(collection, encoder.dim, encoder.name,
                                            tokens_encoder.dim if tokens_encoder else None, layout.passages)
        mismatch = await self._mismatch(collection, encoder.dim, encoder.model_id, tokens_encoder)
        if mismatch:
            self._reject_upserts(upserts, "model_mismatch", mismatch, outcome, collection)
            return None
        return encoder, tokens_encoder

    async def _write(self, collection: str, encoder: BiEncoder, tokens_encoder: LateInteractionEncoder | None,
                     passages: Passages | None, upserts: list[DocumentEvent], outcome: IngestOutcome) -> None:
        """Encode and store what changed, relabel what only changed metadata, acknowledge every upsert."""
        # the token vectors' model and the passages' sizes are part of the hash: changing them re-encodes
        model_id = encoder.model_id if tokens_encoder is None else f"{encoder.model_id} + {tokens_encoder.model_id}"
        if passages is not None:
            model_id = f"{model_id} + {passages_label(passages)}"
        hashes = {event.doc_id: content_hash(model_id, event.title, event.text) for event in upserts}
        stored = await self._store.stored_states(collection, list(hashes))
        changed = [event for event in upserts if event.doc_id not in stored
                   or stored[event.doc_id].content_hash != hashes[event.doc_id]]
        changed_ids = {event.doc_id for event in changed}
        relabelled = {event.doc_id: event.metadata for event in upserts
                      if event.doc_id not in changed_ids and dict(stored[event.doc_id].metadata) != event.metadata}
        if changed:
            await self._store.upsert(collection, await self._encoded(changed, encoder, tokens_encoder, passages,
                                                                     hashes, model_id))
            outcome.encoded += len(changed)
        if relabelled:
            await self._store.update_metadata(collection, relabelled)
        outcome.acks.extend(
            IngestAck(doc_id=event.doc_id, collection=shown_collection(base_name(collection)),
                      content_hash=hashes[event.doc_id],
                      status=_status(event.doc_id, changed_ids, relabelled))
            for event in upserts
        )

    async def _encoded(self, changed: list[DocumentEvent], encoder: BiEncoder,
                       tokens_encoder: LateInteractionEncoder | None, passages: Passages | None,
                       hashes: Mapping[str, str],
                       model_id: str) -> list[StoredDocument]:
        """The documents to store: dense (or each passage's) and BM25 vectors, and token vectors where the
        collection keeps them."""
        texts = [document_text(event.title, event.text) for event in changed]
        # Off the event loop: a batch can take seconds, and the consumer must keep heartbeating.
        by_passage: list[list[list[float]] | None] = [None] * len(texts)
        if passages is not None:
            grouped = await asyncio.to_thread(_passage_vectors, encoder, passages, changed)
            by_passage, vectors = list(grouped), [rows[0] for rows in grouped]
        else:
            vectors = (await asyncio.to_thread(encoder.encode_documents, texts)).tolist()
        sparse = await asyncio.to_thread(self._bm25.encode_documents, texts)
        tokens: list[TokenVectors | None] = [None] * len(texts)
        if tokens_encoder is not None:
            tokens = list(await asyncio.to_thread(tokens_encoder.encode_documents, texts))
        at = now_ms()
        return [StoredDocument(doc_id=event.doc_id, vector=vector, title=event.title, text=event.text,
                               content_hash=hashes[event.doc_id], model_id=model_id, ingested_at_ms=at,
                               metadata=event.metadata, sparse=terms, passage_vectors=rows, tokens=matrix)
                for event, vector, terms, rows, matrix in zip(changed, vectors, sparse, by_passage, tokens,
                                                              strict=True)]

def _passage_vectors(encoder: BiEncoder, passages: Passages, documents: list[DocumentEvent]
                     ) -> list[list[list[float]]]:
    """Each document's passages' vectors, every passage of the batch encoded together."""
    texts, starts = split_all(passages, [(event.title, event.text) for event in documents])
    return [rows.tolist() for rows in np.split(encoder.encode_documents(texts), starts[1:])]


def _status(doc_id: str, changed: set[str], relabelled: Mapping[str, object]) -> AckStatus:
    return "indexed" if doc_id in changed else "updated" if doc_id in relabelled else "unchanged"


def _doc_id_from_key(record: RawRecord) -> str | None:
    """The record key names the document (topic contract), if it is a usable id."""
    return usable_id(record.key_text, MAX_DOC_ID_CHARS)
