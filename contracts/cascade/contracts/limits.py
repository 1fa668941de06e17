"""Explicit size limits of the public contract. Anything beyond them is rejected, never truncated."""

from typing import Final

__all__ = [
    "EARLIEST_EPOCH_MS",
    "LATEST_EPOCH_MS",
    "MAX_CANDIDATES",
    "MAX_DLQ_RAW_BYTES",
    "MAX_DOC_ID_CHARS",
    "MAX_ERROR_CHARS",
    "MAX_K",
    "MAX_MESSAGE_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_KEYS",
    "MAX_QUERY_CHARS",
    "MAX_REQUEST_ID_CHARS",
    "MAX_TEXT_CHARS",
    "MAX_TITLE_CHARS",
]

MAX_MESSAGE_BYTES: Final = 1_000_000
"""A whole encoded message, within Kafka's default max.message.bytes (1 MiB) so any cluster accepts it."""
MAX_TEXT_CHARS: Final = 32_768
MAX_TITLE_CHARS: Final = 1_024
MAX_DOC_ID_CHARS: Final = 256
MAX_QUERY_CHARS: Final = 2_048
MAX_REQUEST_ID_CHARS: Final = 128
MAX_METADATA_KEYS: Final = 32
MAX_METADATA_BYTES: Final = 8_192
MAX_K: Final = 100
MAX_CANDIDATES: Final = 1_000
MAX_ERROR_CHARS: Final = 2_000
MAX_DLQ_RAW_BYTES: Final = 64 * 1024
EARLIEST_EPOCH_MS: Final = 978_307_200_000
"""2001-01-01T00:00:00Z: a request's times are epoch milliseconds from here on; a time in seconds falls below."""
LATEST_EPOCH_MS: Final = 4_102_444_800_000
"""2100-01-01T00:00:00Z, excluded: a time in microseconds or nanoseconds falls above."""
