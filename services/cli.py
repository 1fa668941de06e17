"""The `cascade` command: run a local broker, serve roles, ingest files, provision topics."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import cast, get_args

from tqdm import tqdm

from infra.foreground import run_kafka
from infra.provision import provision_topics
from sdk import SearchClient, read_jsonl_documents
from services.log import configure_logging
from services.process import CascadeProcess, Role
from services.settings import Settings

__all__ = ["main"]


def _require_bootstrap(settings: Settings) -> str:
    if not settings.kafka.bootstrap:
        sys.exit("no Kafka: set CASCADE_KAFKA_BOOTSTRAP (`cascade kafka` starts a local broker and prints it)")
    return settings.kafka.bootstrap


async def ingest_file(settings: Settings, path: Path, collection: str, wait: bool) -> None:
    documents = list(read_jsonl_documents(path))
    kafka = settings.kafka
    _require_bootstrap(settings)
    async with SearchClient(topic_prefix=kafka.topic_prefix, **kafka.client_options()) as client:
        with tqdm(total=len(documents), desc=f"ingest {path.name}", unit="doc") as bar:
            acks = await client.index(documents, collection=collection, wait=wait, timeout_s=3600,
                                      progress=bar.update)
    if wait:
        statuses = {status: sum(ack.status == status for ack in acks) for status in ("indexed", "unchanged")}
        print(f"{len(acks)} documents acknowledged: {statuses}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cascade", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("kafka", help="run a local single-node Kafka in the foreground, topics provisioned")
    serve = commands.add_parser("serve", help="serve roles in this process until SIGTERM or Ctrl-C")
    serve.add_argument("roles", nargs="+", choices=get_args(Role))
    ingest = commands.add_parser("ingest", help="publish a JSON Lines corpus and wait for its acks")
    ingest.add_argument("file", type=Path)
    ingest.add_argument("--collection", required=True)
    ingest.add_argument("--no-wait", action="store_true", help="publish without waiting for acks")
    commands.add_parser("topics", help="create missing topics and check existing ones")
    args = parser.parse_args(argv)

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    if args.command == "kafka":
        run_kafka()
    elif args.command == "serve":
        asyncio.run(CascadeProcess(settings, {cast(Role, role) for role in args.roles}).run())
    elif args.command == "ingest":
        asyncio.run(ingest_file(settings, args.file, args.collection, wait=not args.no_wait))
    elif args.command == "topics":
        _require_bootstrap(settings)
        report = asyncio.run(provision_topics(settings.kafka.topics, settings.kafka.replication_factor,
                                              **settings.kafka.client_options()))
        print(f"created: {report.created or 'none'}; already present: {report.existing or 'none'}")


if __name__ == "__main__":
    main()
