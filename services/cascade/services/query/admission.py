"""Whether the query service may serve a request, and with what: checked before any encoding is spent on it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cascade.contracts import SearchRequest, TopicRegistry
from cascade.contracts.messages import DeadLetterReason, ErrorCode
from cascade.services.encoders import BiEncoder, BiEncoders, LateInteractionLoader, UnknownModel
from cascade.services.settings import Settings
from cascade.services.store import UnknownCollectionError, VectorSizeMismatch, VectorStore
from cascade.services.tenancy import stored_collection

__all__ = ["Admission", "Admitted", "Refused"]


@dataclass(frozen=True)
class Admitted:
    encoder: BiEncoder
    collection: str
    """The version serving the request (a name resolved through its alias)."""


class Refused(Exception):
    """A request this service will not serve; a dead letter unless the request was fine and only cannot be
    served now (`dead_letter=False`: past its deadline, the rerankers overloaded, ...)."""

    def __init__(self, code: ErrorCode, message: str, dead_letter: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.filed_as: DeadLetterReason | None = code if dead_letter else None


class Admission:
    def __init__(self, settings: Settings, store: VectorStore, encoders: BiEncoders,
                 late_interaction: LateInteractionLoader, reranker_backlog: Callable[[], int]) -> None:
        self._settings = settings
        self._store = store
        self._encoders = encoders
        self._late_interaction = late_interaction
        self._reranker_backlog = reranker_backlog
        """Candidate sets the reranker group has yet to read (cascade.services.lag.GroupBacklog)."""

    async def admit(self, request: SearchRequest, picked_at: float, topics: TopicRegistry) -> Admitted:
        """The version of the request's collection (of the tenant of `topics`) that serves it and its encoder, if
        the request may be served (else Refused). The name is resolved once, so a reindex's switch never splits a
        query between versions."""
        self._check_now(request, picked_at, topics)
        collection = await self._store.resolve(stored_collection(topics.tenant, request.collection))
        try:
            model = await self._store.collection_model(collection)
            size = await self._store.vector_size(collection)
        except UnknownCollectionError:
            raise Refused("unknown_collection", f"collection {request.collection!r} does not exist") from None
        try:
            encoder = await self._encoders.get(model)
        except UnknownModel as exc:
            raise Refused("model_unavailable", f"collection {request.collection!r}: {exc}") from None
        if size != encoder.dim:
            raise Refused("model_mismatch",
                          str(VectorSizeMismatch(request.collection, size, encoder.dim, encoder.model_id)))
        if request.mode == "colbert":
            await self._admit_colbert(collection, request.collection)
        return Admitted(encoder, collection)

    def _check_now(self, request: SearchRequest, picked_at: float, topics: TopicRegistry) -> None:
        """What can be refused without asking the store: where the answer goes, the deadline, the rerankers'
        backlog."""
        if request.reply_to and (problem := topics.reply_problem(request.reply_to, request.reply_partition)):
            raise Refused("invalid_reply_to", problem)
        if request.deadline_ms is not None and picked_at > request.deadline_ms:
            raise Refused("deadline_exceeded", f"the deadline passed {picked_at - request.deadline_ms:.0f} ms "
                          "before the query service picked the request up", dead_letter=False)
        most = self._settings.batching.rerank_max_backlog
        interactive = request.mode == "rerank" and request.lane == "interactive"
        if interactive and most and (waiting := self._reranker_backlog()) > most:
            raise Refused("overloaded", f"the rerankers have {waiting} candidate sets waiting, more than "
                          f"CASCADE_BATCH_RERANK_MAX_BACKLOG={most}: try again later, or ask mode 'bi'",
                          dead_letter=False)

    async def _admit_colbert(self, collection: str, named: str) -> None:
        """Mode colbert needs the collection's token vectors and an encoder of their width (`named`: the name the
        requester knows the collection by)."""
        token_dim = await self._store.token_dim(collection)
        if token_dim is None:
            raise Refused("invalid_request", f"collection {named!r} has no token vectors: mode 'colbert' needs "
                          "a collection made with late_interaction=True (index its documents anew into one)")
        try:
            late = await self._late_interaction.get()
        except UnknownModel as exc:
            raise Refused("model_unavailable", f"collection {named!r}: {exc}") from None
        if late.dim != token_dim:
            raise Refused("model_mismatch", str(VectorSizeMismatch(named, token_dim, late.dim, late.model_id)))
