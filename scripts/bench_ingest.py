"""Ingest throughput through Kafka against the raw encoder on the same texts, and re-ingest speed-up.

    python scripts/bench_ingest.py [--corpus ../shared/data/scifact/corpus.jsonl] [--limit N]

Starts a local Kafka (or uses CASCADE_KAFKA_BOOTSTRAP), serves ingest in this process around an EdgeStore
in a temporary folder, publishes the corpus with the SDK and waits for every ack. Writes bench/ingest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cascade.infra.local_kafka import kafka_bootstrap
from cascade.runtime.clients import sdk_client
from cascade.runtime.process import CascadeProcess
from cascade.sdk import read_jsonl_documents
from cascade.services.encoders import document_text
from cascade.services.log import configure_logging
from cascade.services.settings import KafkaSettings, Settings, StoreSettings
from scripts.benchlib import DATA_DIR, machine, write_result


async def _ingest_through_kafka(settings: Settings, documents: list[dict[str, Any]], label: str) -> float:
    """Seconds from the first publish to the last ack."""
    async with sdk_client(settings.kafka) as client:
        began = time.perf_counter()
        with tqdm(total=len(documents), desc=label, unit="doc") as bar:
            await client.index(documents, collection="bench", timeout_s=7200, progress=bar.update)
        return time.perf_counter() - began


async def run(corpus: Path, limit: int | None, bootstrap: str) -> dict[str, Any]:
    documents = list(read_jsonl_documents(corpus))[:limit]
    texts = [document_text(doc["title"], doc["text"]) for doc in documents]
    with tempfile.TemporaryDirectory() as store_dir:
        settings = Settings(kafka=KafkaSettings(bootstrap=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:6]}."),
                            store=StoreSettings(path=Path(store_dir)))
        process = CascadeProcess(settings, {"ingest"})
        encoder = process.bi_encoder

        began = time.perf_counter()
        for start in tqdm(range(0, len(texts), 256), desc="raw encoder", unit="batch"):
            encoder.encode_documents(texts[start : start + 256])
        encoder_s = time.perf_counter() - began
        encoder.texts_encoded = 0

        await process.start()
        try:
            first_s = await _ingest_through_kafka(settings, documents, "ingest")
            encoded_first = encoder.texts_encoded
            again_s = await _ingest_through_kafka(settings, documents, "re-ingest")
            count = await process.store.count("bench")
        finally:
            await process.stop()
    n = len(documents)
    return {
        "corpus": corpus.parent.name, "documents": n, "stored": count,
        "encoder_docs_per_s": n / encoder_s, "ingest_docs_per_s": n / first_s,
        "reingest_docs_per_s": n / again_s, "ingest_vs_encoder_ratio": encoder_s / first_s,
        "reingest_speedup": first_s / again_s, "encoded_first_pass": encoded_first,
        "encoded_second_pass": encoder.texts_encoded - encoded_first,
        "settings": {"model": encoder.model_id, "max_length": encoder.max_length,
                     "encode_batch_size": encoder.batch_size, "device": str(encoder.device),
                     "ingest_max_records": settings.batching.ingest_max_records,
                     "raw_encoder_chunk": 256},
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DATA_DIR / "scifact" / "corpus.jsonl")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    with kafka_bootstrap(os.environ.get("CASCADE_KAFKA_BOOTSTRAP")) as bootstrap:
        result = asyncio.run(run(args.corpus, args.limit, bootstrap))
    path = write_result("ingest", result)
    print(f"raw encoder {result['encoder_docs_per_s']:.1f} docs/s; ingest through Kafka "
          f"{result['ingest_docs_per_s']:.1f} docs/s (ratio {result['ingest_vs_encoder_ratio']:.3f}); "
          f"re-ingest {result['reingest_docs_per_s']:.0f} docs/s ({result['reingest_speedup']:.1f}x faster); "
          f"-> {path}")


if __name__ == "__main__":
    main()
