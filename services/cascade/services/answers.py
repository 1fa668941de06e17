"""Where results go, and the error results a waiting requester gets instead of silence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import structlog

from cascade.contracts import (
    ErrorInfo,
    Hit,
    SearchRequest,
    SearchResult,
    StageTimings,
    Topic,
    TopicRegistry,
    elapsed_ms,
)
from cascade.contracts.limits import MAX_ERROR_CHARS, MAX_REQUEST_ID_CHARS
from cascade.contracts.messages import DeadLetterReason, ErrorCode
from cascade.services.messaging import RawRecord, dead_letter, usable_id
from cascade.services.publishing import Outgoing, is_too_large

__all__ = ["Requester", "error_result", "ranked_result", "refusal", "requester_of", "result_to", "undeliverable"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Requester:
    """Who waits for a result: the request id, and the topic and partition (None: by key) to answer on."""

    request_id: str
    reply_topic: str
    reply_partition: int | None = None

    def answer(self, result: SearchResult) -> Outgoing:
        return Outgoing(self.reply_topic, self.request_id, result, partition=self.reply_partition)


def _requester(topics: TopicRegistry, request_id: str, reply_to: object, reply_partition: object) -> Requester:
    """Answer where the request asks if it may be answered there (`TopicRegistry.reply_problem`), else on the
    results topic."""
    partition = reply_partition if isinstance(reply_partition, int) else None
    if isinstance(reply_to, str) and topics.reply_problem(reply_to, partition) is None:
        return Requester(request_id, reply_to, partition)
    return Requester(request_id, topics.name(Topic.RESULTS))


def requester_of(topics: TopicRegistry, record: RawRecord, path: Sequence[str] = ()) -> Requester | None:
    """Salvage the requester from a record that failed validation, if its request id can be read at all.

    `path` leads to the request inside the record (("request",) for a CandidateSet). A reply_to (and partition)
    the services may not answer on is ignored in favour of the shared results topic. A record whose request id cannot be
    read (not even JSON) is answered on the shared results topic under its key, the request id by contract;
    so is one whose request id cannot serve as one (empty, over-long, not a string), on its reply topic.
    """
    try:
        data = orjson.loads(record.value)
        for key in path:
            data = data[key]
        request_id, reply_to, reply_partition = data["request_id"], data.get("reply_to"), data.get("reply_partition")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        key_id = usable_id(record.key_text, MAX_REQUEST_ID_CHARS)
        return Requester(key_id, topics.name(Topic.RESULTS)) if key_id else None
    usable = usable_id(request_id, MAX_REQUEST_ID_CHARS) or usable_id(record.key_text, MAX_REQUEST_ID_CHARS)
    return _requester(topics, usable, reply_to, reply_partition) if usable else None


def result_to(topics: TopicRegistry, result: SearchResult, request: SearchRequest) -> Outgoing:
    """`result` on its way to whoever sent `request`."""
    return _requester(topics, result.request_id, request.reply_to, request.reply_partition).answer(result)


def ranked_result(request: SearchRequest, hits: list[Hit], timings: StageTimings, served_by: dict[str, str],
                  models: dict[str, str]) -> SearchResult:
    """A request's answer; its total time runs from when the client created the request."""
    return SearchResult(request_id=request.request_id, collection=request.collection, mode=request.mode, hits=hits,
                        timings=timings.model_copy(update={"total_ms": elapsed_ms(request.created_at_ms)}),
                        served_by=served_by, models=models)


def error_result(request_id: str, code: ErrorCode, message: str, served_by: dict[str, str]) -> SearchResult:
    return SearchResult(request_id=request_id, served_by=served_by,
                        error=ErrorInfo(code=code, message=message[:MAX_ERROR_CHARS]))


def refusal(
    topics: TopicRegistry, record: RawRecord, code: ErrorCode, reason: str, *, filed_as: DeadLetterReason | None,
    service: str, served_by: dict[str, str], request: SearchRequest | None = None, path: Sequence[str] = (),
) -> list[Outgoing]:
    """What a refused record produces: a dead letter filed as `filed_as` (None: the record was fine, only not
    servable now, e.g. past its deadline), and an error result for whoever waits — the decoded `request`, or the
    requester salvaged from the raw record at `path`, if either exists."""
    out = [Outgoing(topics.name(Topic.DLQ), record.key_text, dead_letter(record, filed_as, reason, service))
           ] if filed_as is not None else []
    requester = (_requester(topics, request.request_id, request.reply_to, request.reply_partition)
                 if request is not None else requester_of(topics, record, path))
    log.warning("request.refused", service=service, request_id=requester.request_id if requester else None,
                code=code, error=reason, partition=record.partition, offset=record.offset)
    if requester is not None:
        result = error_result(requester.request_id, code, reason, served_by)
        out.append(requester.answer(result))
    return out


def undeliverable(
    topics: TopicRegistry, record: RawRecord, error: BaseException, *, service: str, served_by: dict[str, str],
    request: SearchRequest | None = None, path: Sequence[str] = (),
) -> list[Outgoing]:
    """What replaces an answer the cluster would not take (too large, ...): a dead letter of the request
    and an error result (small, so it goes through) for whoever waits."""
    code: ErrorCode = "too_large" if is_too_large(error) else "internal"
    reason = f"the answer could not be published: {str(error) or repr(error)}"
    return refusal(topics, record, code, reason, filed_as="undeliverable", service=service, served_by=served_by,
                   request=request, path=path)
