"""structlog set up once per process: JSON lines when stderr is not a terminal, key=value when it is.

Bind the request id with `structlog.contextvars.bound_contextvars(request_id=...)` so every line carries it.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog
import transformers

__all__ = ["configure_logging"]


def configure_logging(
    fmt: Literal["auto", "json", "console"] = "auto", level: str = "INFO"
) -> None:
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call] # no bars on stderr from services loading weights
    # Library loggers (aiokafka, faststream) go through the standard library at WARNING and above.
    logging.basicConfig(stream=sys.stderr, level=max(logging.WARNING, logging.getLevelNamesMapping()[level]))
