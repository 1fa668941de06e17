"""The ingest service: embed new or changed documents once, ack every document, dead-letter bad input; rebuild a
collection with another model without downtime (reindex)."""

from cascade.services.ingest.indexing import IndexScheduler
from cascade.services.ingest.processor import IngestOutcome, IngestProcessor, content_hash
from cascade.services.ingest.reindex import Reindexer
from cascade.services.ingest.service import ingest_consumer, reindex_consumer

__all__ = ["IndexScheduler", "IngestOutcome", "IngestProcessor", "Reindexer", "content_hash", "ingest_consumer",
           "reindex_consumer"]
