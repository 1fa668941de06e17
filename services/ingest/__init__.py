"""The ingest service: embed new or changed documents once, ack every document, dead-letter bad input."""

from services.ingest.indexing import IndexScheduler
from services.ingest.processor import IngestOutcome, IngestProcessor, content_hash
from services.ingest.service import ingest_consumer

__all__ = ["IndexScheduler", "IngestOutcome", "IngestProcessor", "content_hash", "ingest_consumer"]
