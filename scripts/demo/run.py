"""`make run`: the embedded default end to end on this machine.

A local Kafka, every service in this process around one embedded Qdrant (Edge) store, the bundled models;
the demo corpus goes in through the ingest service (a second run re-encodes nothing), then a few queries
show the bi-encoder's ranking beside the reranked one, with each stage's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from tqdm import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from cascade.infra.local_kafka import kafka_bootstrap
from cascade.runtime.clients import sdk_client
from cascade.runtime.process import CascadeProcess
from cascade.sdk import read_jsonl_documents
from cascade.sdk.display import format_side_by_side
from cascade.services.encoders import default_bi_encoder_path
from cascade.services.log import configure_logging
from cascade.services.settings import Settings

HERE = Path(__file__).parent
QUERIES = [
    "hotel in Lisbon with a swimming pool",
    "who invented the telephone",
    "is Python faster than Java",
    "Paris Hilton",
    "hotels in Paris",
    "backpack available in blue",
]


def untrained_reranker(folder: Path) -> str:
    """MiniLM-L6 with a random head: the demo still runs, but says its reranking means nothing."""
    if not folder.is_dir():
        source = default_bi_encoder_path()
        AutoModelForSequenceClassification.from_pretrained(source, num_labels=1).save_pretrained(folder)
        AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return str(folder)


async def demo(settings: Settings, keep_serving: bool) -> None:
    process = CascadeProcess(settings, {"ingest", "query", "rerank"})
    await process.start()
    try:
        kafka = settings.kafka
        async with sdk_client(kafka) as client:
            documents = list(read_jsonl_documents(HERE / "corpus.jsonl"))
            with tqdm(total=len(documents), desc="ingest demo corpus", unit="doc") as bar:
                acks = await client.index(documents, collection="demo", progress=bar.update)
            statuses = {status: sum(ack.status == status for ack in acks) for status in ("indexed", "unchanged")}
            encoder = process.bi_encoder
            print(f"\n{len(acks)} documents acknowledged: {statuses['indexed']} indexed, {statuses['unchanged']} "
                  f"unchanged; the bi-encoder encoded {encoder.texts_encoded if encoder else 0} of them this run\n")
            for query in QUERIES:
                first = await client.search(query, collection="demo", k=5, mode="bi")
                reranked = await client.search(query, collection="demo", k=5, mode="rerank", candidates=50)
                print(f"=== {query}")
                print(format_side_by_side(first, reranked))
                print()
        if keep_serving:
            print(f"serving on {kafka.bootstrap} (topics prefixed {kafka.topic_prefix!r}); Ctrl-C stops")
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
            await stop.wait()
    finally:
        await process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help="keep serving after the demo queries")
    args = parser.parse_args()
    settings = Settings()
    configure_logging(settings.log_format, "WARNING")
    models = settings.models
    if not models.cross_encoder:
        print("WARNING: no trained reranker found (models/cascade-reranker-minilm-l6 or CASCADE_MODELS_CROSS_ENCODER):"
              " using MiniLM-L6 with an UNTRAINED head, so the reranked column below is NOT a meaningful ranking.")
        models = models.model_copy(update={"cross_encoder": untrained_reranker(Path(".cascade/untrained-reranker"))})
    with kafka_bootstrap(settings.kafka.bootstrap or None) as bootstrap:
        settings = settings.model_copy(update={
            "kafka": settings.kafka.model_copy(update={"bootstrap": bootstrap}), "models": models,
            "store": settings.store.model_copy(update={"path": Path(".cascade/demo-store")}),
        })
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(demo(settings, args.serve))


if __name__ == "__main__":
    main()
