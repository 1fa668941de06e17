"""Where results go, and the error results a waiting requester gets instead of silence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from contracts import ErrorInfo, SearchResult, Topic, TopicRegistry
from contracts.limits import MAX_ERROR_CHARS
from contracts.messages import ErrorCode
from services.messaging import Outgoing

__all__ = ["Requester", "error_result", "requester_of", "result_to"]


@dataclass(frozen=True)
class Requester:
    """Who waits for a result: the request id and the topic to answer on."""

    request_id: str
    reply_topic: str


def _reply_topic(topics: TopicRegistry, reply_to: object) -> str:
    if isinstance(reply_to, str) and topics.is_reply_target(reply_to):
        return reply_to
    return topics.name(Topic.RESULTS)


def requester_of(topics: TopicRegistry, raw: bytes, path: Sequence[str] = ()) -> Requester | None:
    """Salvage the requester from a record that failed validation, if its request id can be read at all.

    `path` leads to the request inside the record (("request",) for a CandidateSet). A reply_to that is
    not a reply topic is ignored in favour of the shared results topic.
    """
    try:
        data = orjson.loads(raw)
        for key in path:
            data = data[key]
        request_id, reply_to = data["request_id"], data.get("reply_to")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 128 or not request_id.isprintable():
        return None
    return Requester(request_id, _reply_topic(topics, reply_to))


def result_to(topics: TopicRegistry, result: SearchResult, reply_to: str | None) -> Outgoing:
    return Outgoing(_reply_topic(topics, reply_to), result.request_id, result)


def error_result(request_id: str, code: ErrorCode, message: str, served_by: dict[str, str]) -> SearchResult:
    return SearchResult(request_id=request_id, served_by=served_by,
                        error=ErrorInfo(code=code, message=message[:MAX_ERROR_CHARS]))
