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
    stamped: list[structlog.types.Processor] = [
        structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True)]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *stamped, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call] # no bars on stderr from services loading weights
    # Library loggers (aiokafka, faststream, uvicorn) go through the standard library at WARNING and above, and
    # come out in the same format (one JSON object a line in production), with their logger's name.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *stamped],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[level]))
