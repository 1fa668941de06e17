"""Fitting texts into a message: Kafka limits bytes, and one character can take four of them (six, escaped).

Hits and candidates carry snippets of their documents. Each snippet gets a share of the message limit in
UTF-8 bytes, cut at a character boundary; if JSON escaping still pushes the encoded message over the limit,
the shares shrink and the message is built again. Whatever still does not fit is refused by the publisher.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel

from cascade.contracts import encode
from cascade.contracts.limits import MAX_MESSAGE_BYTES

__all__ = ["cut_utf8", "fit_snippet", "shrink_to_fit", "snippet_budget"]

M = TypeVar("M", bound=BaseModel)
_SNIPPETS_SHARE = 0.8
"""Of the message limit, what the snippets may take together; the rest is ids, scores and timings."""


def cut_utf8(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, never inside a character."""
    encoded = text.encode()
    return text if len(encoded) <= max_bytes else encoded[: max(max_bytes, 0)].decode(errors="ignore")


def snippet_budget(items: int, limit: int = MAX_MESSAGE_BYTES) -> int:
    """Bytes each of `items` snippets (title and text together) may take."""
    return int(limit * _SNIPPETS_SHARE) // max(items, 1)


def fit_snippet(title: str, text: str, max_chars: int, max_bytes: int) -> tuple[str, str]:
    """Title and text cut to `max_chars` characters each and `max_bytes` bytes together (the title at most
    a quarter of them)."""
    title = cut_utf8(title[:max_chars], max_bytes // 4)
    return title, cut_utf8(text[:max_chars], max_bytes - len(title.encode()))


def shrink_to_fit(build: Callable[[int], M], budget: int, limit: int = MAX_MESSAGE_BYTES, attempts: int = 4) -> M:
    """`build(budget)`, lowering the per-snippet byte budget until the encoded message fits within `limit`."""
    message = build(budget)
    for _ in range(attempts):
        size = len(encode(message))
        if size <= limit:
            break
        budget = int(budget * limit / size * 0.95)
        message = build(budget)
    return message
