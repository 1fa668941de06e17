"""structlog set up once per process: JSON lines when stderr is not a terminal, key=value when it is.

Bind the request id with `structlog.contextvars.bound_contextvars(request_id=...)` so every line carries it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import OrderedDict
from typing import Literal

import structlog

__all__ = ["RepeatLimiter", "configure_logging"]


class RepeatLimiter(logging.Filter):
    """Lets a library's identical line (same logger, template and arguments) through once per `window_s`.

    A library that retries in a loop logs the same line thousands of times a second (aiokafka's metadata
    errors did, about 9,000 a second); once is enough to tell the reader, and the rest would bury every other
    line and cost CPU. Lines that differ in anything are all written."""

    _REMEMBERED = 10_000

    def __init__(self, window_s: float = 60.0) -> None:
        super().__init__()
        self._window_s = window_s
        self._written: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg), repr(record.args))
        now = time.monotonic()
        written = self._written.get(key)
        if written is not None and now - written < self._window_s:
            self.suppressed += 1
            return False
        self._written[key] = now
        self._written.move_to_end(key)
        while len(self._written) > self._REMEMBERED:
            self._written.popitem(last=False)
        return True


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
    # Library loggers (aiokafka, uvicorn) go through the standard library at WARNING and above, and
    # come out in the same format (one JSON object a line in production), with their logger's name.
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatLimiter())
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *stamped],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[level]))
