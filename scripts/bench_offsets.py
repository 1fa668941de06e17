"""The offsets issue's figures: the model-based offsets test, the log storm of clients that close with an answer
in flight, and the services' event-loop lag under load.

    python -m scripts.bench_offsets [--part model|storm|lag ...] [--watch-s 45]

- model: the stateful test (tests/offsets_model.py), 1,000 random schedules over a fake broker; skipped records.
- storm: a local Kafka and `cascade serve ingest query rerank` (the bundled models) in a child process; three
  clients each get one rerank answer, send another rerank request and close at once (the answer in flight goes to
  a partition nobody reads any more); then the service's log lines and CPU seconds over the next `watch_s`.
- lag: the same service (with the bundled ColBERT encoder) loaded with `--documents` SciFact documents (dense,
  sparse and ColBERT token vectors) and searches of modes bi (dense and hybrid), rerank and colbert; the largest
  event-loop lag its `/metrics` reports over the whole run.
Writes bench/offsets.json (parts not run keep their previous figures).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import run_state_machine_as_test
from tqdm import tqdm

from cascade.infra.local_kafka import kafka_bootstrap
from cascade.sdk import SearchClient, read_jsonl_documents
from cascade.services.log import configure_logging
from cascade.services.settings import BUNDLED_COLBERT, bundled_models
from scripts.benchlib import DATA_DIR, cpu_seconds, machine, write_result

DEMO = Path(__file__).parent / "demo" / "corpus.jsonl"
SCHEDULES = 1_000
LOADS = [("bi", "dense"), ("bi", "hybrid"), ("rerank", "dense"), ("colbert", "dense")]
"""Searches of every kind the lag part sends (mode cross is refused for a collection of this size)."""
QUERIES = ["hotel in Lisbon with a swimming pool", "who invented the telephone", "backpack available in blue"]


def model_part() -> dict[str, Any]:
    from tests.offsets_model import OffsetsModel, Tally  # the test's model, imported only for this part

    OffsetsModel.tally = Tally()
    run_state_machine_as_test(OffsetsModel, settings=hypothesis_settings(
        max_examples=SCHEDULES, stateful_step_count=30, deadline=None, database=None))
    return {"stateful_schedules": OffsetsModel.tally.schedules, "skipped_records": OffsetsModel.tally.skipped_records}


@dataclass
class Service:
    """`cascade serve ingest query rerank` in a child process, its stderr in `log`."""

    process: subprocess.Popen[bytes]
    log: Path

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def cpu_s(self) -> float:
        return cpu_seconds(self.process.pid)

    def metrics_url(self) -> str:
        for line in self.lines():
            if "process.started" in line and (port := re.search(r'"health_port": ?(\d+)', line)):
                return f"http://127.0.0.1:{port.group(1)}/metrics"
        raise RuntimeError("the service logged no health port")


@contextmanager
def serving(bootstrap: str, folder: Path, extra_env: dict[str, str] | None = None) -> Iterator[Service]:
    log = folder / "service.log"
    env = {**os.environ, "CASCADE_KAFKA_BOOTSTRAP": bootstrap, "CASCADE_STORE_PATH": str(folder / "store"),
           "CASCADE_METRICS_PORT": "0", "CASCADE_LOG_FORMAT": "json", "CASCADE_LOG_LEVEL": "INFO",
           **(extra_env or {})}
    with log.open("wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "cascade.runtime.cli", "serve", "ingest", "query", "rerank"],
                                   env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    service = Service(process, log)
    try:
        give_up_at = time.monotonic() + 600
        while not any("process.started" in line for line in service.lines()):
            if process.poll() is not None or time.monotonic() > give_up_at:
                raise RuntimeError(f"the service did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield service
    finally:
        process.terminate()
        process.wait(timeout=120)


async def index_demo(bootstrap: str, collection: str) -> None:
    async with SearchClient(bootstrap) as client:
        await client.index(list(read_jsonl_documents(DEMO)), collection=collection)


async def _close_with_answers_in_flight(bootstrap: str, clients: int) -> None:
    for _ in tqdm(range(clients), desc="clients closing with an answer in flight", unit="client"):
        async with SearchClient(bootstrap) as client:
            await client.search(QUERIES[0], collection="storm", mode="rerank", timeout_s=300)
            in_flight = asyncio.create_task(client.search(QUERIES[1], collection="storm", mode="rerank",
                                                          timeout_s=300))
            await asyncio.sleep(0.1)  # sent; the answer takes a rerank longer
            in_flight.cancel()


def storm_part(bootstrap: str, watch_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cascade-storm-") as folder, serving(bootstrap, Path(folder)) as service:
        asyncio.run(index_demo(bootstrap, "storm"))
        asyncio.run(_close_with_answers_in_flight(bootstrap, 3))
        mark, cpu_before = len(service.lines()), service.cpu_s()
        for _ in tqdm(range(int(watch_s)), desc="watching the service", unit="s"):
            time.sleep(1)
        lines, cpu = service.lines()[mark:], service.cpu_s() - cpu_before
    return {"storm_log_lines_45s": len(lines), "storm_cpu_s_45s": round(cpu, 2),
            "storm_not_found_lines_45s": sum("not found in cluster metadata" in line for line in lines),
            "storm_watch_s": watch_s}


async def _load(bootstrap: str, documents: int) -> None:
    corpus = list(itertools.islice(read_jsonl_documents(DATA_DIR / "scifact" / "corpus.jsonl"), documents))
    async with SearchClient(bootstrap) as client:
        with tqdm(total=len(corpus), desc="ingest (dense, sparse and ColBERT token vectors)", unit="doc") as bar:
            await client.index(corpus, collection="lag", late_interaction=True, progress=bar.update)
        for mode, first_stage in LOADS:
            results = await client.search_many(QUERIES * 10, collection="lag", mode=mode, first_stage=first_stage,
                                               concurrency=16, timeout_s=300)
            failures = [result for result in results if isinstance(result, Exception)]
            if failures:
                raise RuntimeError(f"mode {mode}, first stage {first_stage}: {failures[0]!r}")


def _max_lag_ms(metrics_url: str) -> float:
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    found = re.search(r"^cascade_event_loop_lag_max_seconds (\S+)$", text, re.MULTILINE)
    if found is None:
        raise RuntimeError("no cascade_event_loop_lag_max_seconds in /metrics")
    return float(found.group(1)) * 1000


def lag_part(bootstrap: str, documents: int) -> dict[str, Any]:
    late_interaction = str(bundled_models() / BUNDLED_COLBERT)
    with tempfile.TemporaryDirectory(prefix="cascade-lag-") as folder, serving(
            bootstrap, Path(folder), {"CASCADE_MODELS_LATE_INTERACTION": late_interaction}) as service:
        asyncio.run(_load(bootstrap, documents))
        return {"max_loop_lag_ms": round(_max_lag_ms(service.metrics_url()), 1), "lag_load_documents": documents,
                "lag_load_searches": len(LOADS) * len(QUERIES) * 10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["model", "storm", "lag"], action="append")
    parser.add_argument("--watch-s", type=float, default=45.0)
    parser.add_argument("--documents", type=int, default=1_000, help="SciFact documents ingested by the lag part")
    args = parser.parse_args()
    parts = args.part or ["model", "storm", "lag"]
    configure_logging("console", "ERROR")  # the model part's schedules retry and rewind by design
    def record(figures: dict[str, Any]) -> None:
        print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
        write_result("offsets", figures | {"machine": machine()}, merge=True)

    if "model" in parts:
        record(model_part())
    if {"storm", "lag"} & set(parts):
        with kafka_bootstrap(os.environ.get("CASCADE_KAFKA_BOOTSTRAP")) as bootstrap:
            if "storm" in parts:
                record(storm_part(bootstrap, args.watch_s))
            if "lag" in parts:
                record(lag_part(bootstrap, args.documents))


if __name__ == "__main__":
    main()
