"""The `cascade` command: run a local broker, serve roles, ingest files, search, provision topics, status."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeAlias, cast, get_args

from pydantic import ValidationError
from tqdm import tqdm

from cascade.contracts import ReindexStatus
from cascade.contracts.codec import describe_errors
from cascade.contracts.messages import Lane, Mode
from cascade.contracts.security import AUTHORIZATION_ERRORS
from cascade.infra.kafka_tools import TOOLS, KafkaToolFailed, run_tool
from cascade.runtime.clients import sdk_client
from cascade.runtime.local_broker import run_kafka
from cascade.runtime.local_qdrant import run_qdrant
from cascade.runtime.process import CascadeProcess, KafkaUnreachable, ProcessFailed, Role
from cascade.runtime.provision import provision_topics
from cascade.runtime.status import format_status, gather_status, status_json
from cascade.runtime.tenants import CertificateAuthority, TenantQuotas, add_tenant, remove_tenant
from cascade.runtime.trace_export import exporting_traces
from cascade.sdk import KafkaAccessError, ReindexFailed, SearchClient, SearchFailed, SearchTimeout, read_jsonl_documents
from cascade.sdk.display import format_result
from cascade.services.log import configure_logging
from cascade.services.settings import Settings
from cascade.services.store import StoreInUse

__all__ = ["main"]

Command = Callable[[Settings, argparse.Namespace], None]
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _require_bootstrap(settings: Settings) -> str:
    if not settings.kafka.bootstrap:
        sys.exit("no Kafka: set CASCADE_KAFKA_BOOTSTRAP (`cascade kafka` starts a local broker and prints it)")
    return settings.kafka.bootstrap


async def ingest_file(settings: Settings, path: Path, collection: str, wait: bool, model: str | None = None,
                      late_interaction: bool | None = None, passages: bool | None = None) -> None:
    documents = list(read_jsonl_documents(path))
    async with _client(settings) as client:
        with tqdm(total=len(documents), desc=f"ingest {path.name}", unit="doc") as bar:
            acks = await client.index(documents, collection=collection, model=model,
                                      late_interaction=late_interaction, passages=passages, wait=wait,
                                      timeout_s=3600,
                                      progress=bar.update)
    if wait:
        print(f"{len(acks)} documents acknowledged: {dict(Counter(ack.status for ack in acks))}")


async def reindex_collection(settings: Settings, collection: str, model: str | None,
                             late_interaction: bool | None) -> None:
    def shown(status: ReindexStatus) -> None:
        copied = f", {status.documents} documents copied in {status.seconds:.1f} s" if status.state != "started" else ""
        print(f"{status.state}: {status.source} -> {status.target} ({status.model}){copied}")

    async with _client(settings) as client:
        try:
            await client.reindex(collection, model=model, late_interaction=late_interaction, progress=shown)
        except ReindexFailed as exc:
            sys.exit(str(exc))


def _client(settings: Settings) -> SearchClient:
    _require_bootstrap(settings)
    return sdk_client(settings.kafka)


async def search_once(settings: Settings, args: argparse.Namespace) -> None:
    async with _client(settings) as client:
        try:
            result = await client.search(args.query, collection=args.collection, mode=args.mode, k=args.k,
                                         candidates=args.candidates, timeout_s=args.timeout,
                                         first_stage=args.first_stage, lane=args.lane,
                                         min_probability=args.min_probability)
        except (SearchFailed, SearchTimeout) as exc:
            sys.exit(str(exc))
        except ValidationError as exc:  # a request the contract refuses, e.g. --min-probability with mode bi
            sys.exit(describe_errors(exc))
    print(format_result(result))


def _add_local_commands(commands: Subcommands) -> None:
    """Commands that run something on this machine in the foreground."""
    kafka = commands.add_parser("kafka", help="run a local Kafka (one broker or a cluster) in the foreground, "
                                              "topics provisioned")
    kafka.add_argument("--brokers", type=int, default=1, help="brokers of a KRaft cluster on loopback (each also a "
                                                              "controller); with 3, topics get 3 replicas, 2 in sync")
    kafka.add_argument("--secured", action="store_true",
                       help="SASL_SSL (SCRAM-SHA-512, throwaway CA) and a user per role with only its ACLs")
    qdrant = commands.add_parser("qdrant", help="run a local Qdrant server (or a cluster) in the foreground")
    qdrant.add_argument("--nodes", type=int, default=1, help="peers of a cluster on loopback (Raft consensus)")
    tool = commands.add_parser("kafka-tool", help="one of Kafka's own command-line tools, configured for the cluster",
                               description="Kafka's console tools from the same jars as `cascade kafka`, with "
                                           "--bootstrap-server and the security settings filled in.")
    tool.add_argument("tool", choices=sorted(TOOLS))
    tool.add_argument("arguments", nargs=argparse.REMAINDER, help="the tool's own options (see its --help)")
    serve = commands.add_parser("serve", help="serve roles in this process until SIGTERM or Ctrl-C")
    serve.add_argument("roles", nargs="+", choices=get_args(Role))


def _add_client_commands(commands: Subcommands) -> None:
    """Commands that talk to the running services through the SDK."""
    ingest = commands.add_parser("ingest", help="publish a JSON Lines corpus and wait for its acks")
    ingest.add_argument("file", type=Path)
    ingest.add_argument("--collection", required=True)
    ingest.add_argument("--no-wait", action="store_true", help="publish without waiting for acks")
    ingest.add_argument("--model", help="first-stage model of a new collection (`cascade models list`)")
    ingest.add_argument("--late-interaction", action="store_true", default=None,
                        help="a new collection also stores token vectors (for mode colbert)")
    ingest.add_argument("--passages", action="store_true", default=None,
                        help="a new collection splits long documents into passages, each found by its best one")
    reindex = commands.add_parser("reindex", help="rebuild a collection with another model; switch when complete",
                                  description="The ingest service encodes the collection's stored documents with "
                                              "MODEL into a new version while queries are answered from the current "
                                              "one, then switches the collection's name to it atomically.")
    reindex.add_argument("collection")
    reindex.add_argument("--model", help="the new first-stage model (`cascade models list`; default: the service's)")
    reindex.add_argument("--late-interaction", action=argparse.BooleanOptionalAction, default=None,
                         help="store token vectors for mode colbert (default: as the collection does now)")
    search = commands.add_parser("search", help="one query through the running services; hits and latencies")
    search.add_argument("query")
    search.add_argument("--collection", required=True)
    search.add_argument("--mode", choices=get_args(Mode), default="rerank")
    search.add_argument("--k", type=int, default=10)
    search.add_argument("--candidates", type=int, default=None,
                        help="first-stage hits to rerank (default: the service's, 20 on CPU, 100 on a GPU)")
    search.add_argument("--first-stage", choices=["dense", "sparse", "hybrid"], default="dense")
    search.add_argument("--lane", choices=get_args(Lane), default="interactive",
                        help="bulk: the reranking gives way to interactive requests")
    search.add_argument("--min-probability", type=float, default=None,
                        help="only hits at least this likely to be relevant (modes rerank and cross)")
    search.add_argument("--timeout", type=float, default=30.0)


def _add_admin_commands(commands: Subcommands) -> None:
    """Commands that look after models, topics and the deployment's state."""
    models = commands.add_parser("models", help="the first-stage model catalogue: list, or fetch into the cache")
    models.add_argument("action", choices=["list", "fetch"])
    models.add_argument("names", nargs="*", help="models to fetch (default: all)")
    commands.add_parser("topics", help="create missing topics and check existing ones")
    tenants = commands.add_parser("tenants", help="add a tenant (its topics) or remove one")
    tenants.add_argument("action", choices=["add", "remove"])
    tenants.add_argument("name", help="the tenant: lower-case letters, digits and dashes")
    tenants.add_argument("--certificate", action="store_true",
                         help="the tenant authenticates by a client certificate (mutual TLS), not a password")
    tenants.add_argument("--ca-key", type=Path, help="with --certificate: the key of the CA that signs it")
    tenants.add_argument("--mtls-bootstrap", help="with --certificate: the listener that requires client certificates")
    defaults = TenantQuotas()
    tenants.add_argument("--produce-bytes-per-s", type=int,
                         help=f"quota on what its clients send, per broker (default {defaults.produce_bytes_per_s:,})")
    tenants.add_argument("--fetch-bytes-per-s", type=int,
                         help=f"quota on what its clients read, per broker (default {defaults.fetch_bytes_per_s:,})")
    tenants.add_argument("--request-percentage", type=float, help="quota on broker request time, percent of one "
                                                                 f"thread (default {defaults.request_percentage:g})")
    status = commands.add_parser("status", help="topics, consumer groups with members and lag, collections")
    status.add_argument("--process", metavar="URL",
                        help="the serving process to ask for the embedded store's collections "
                             "(default: http://127.0.0.1:CASCADE_METRICS_PORT)")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    roles = {cast(Role, role) for role in args.roles}
    try:
        with exporting_traces(settings.otlp_endpoint, f"cascade-{'-'.join(sorted(roles))}"):
            asyncio.run(CascadeProcess(settings, roles).run())
    except (KafkaUnreachable, KafkaAccessError, ProcessFailed, StoreInUse, OSError) as exc:
        sys.exit(f"cascade serve: {exc}")


def _as_client(command: Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, None]]) -> Command:
    """A client command run to completion; a refusal by Kafka is one line naming the command."""
    def run(settings: Settings, args: argparse.Namespace) -> None:
        try:
            asyncio.run(command(settings, args))
        except KafkaAccessError as exc:
            sys.exit(f"cascade {args.command}: {exc}")
    return run


def _status(settings: Settings, args: argparse.Namespace) -> None:
    _require_bootstrap(settings)
    url = f"{args.process or f'http://127.0.0.1:{settings.metrics_port or 9400}'}/status"
    found = asyncio.run(gather_status(settings.kafka, settings.store, url))
    print(status_json(found).decode() if args.json else format_status(found))


def _models(settings: Settings, args: argparse.Namespace) -> None:
    from cascade.runtime.models_cli import fetch_models, list_models

    print(list_models() if args.action == "list" else fetch_models(args.names))


def _topics(settings: Settings, args: argparse.Namespace) -> None:
    _require_bootstrap(settings)
    report = asyncio.run(provision_topics(settings.kafka.topics, settings.kafka.replication_factor,
                                          **settings.kafka.client_options()))
    print(f"created: {report.created or 'none'}; already present: {report.existing or 'none'}; "
          f"partitions raised: {report.grown or 'none'}")


def _tenants(settings: Settings, args: argparse.Namespace) -> None:
    _require_bootstrap(settings)
    try:
        if args.action == "add":
            quotas = TenantQuotas(**{name: value for name in ("produce_bytes_per_s", "fetch_bytes_per_s",
                                                              "request_percentage")
                                     if (value := getattr(args, name)) is not None})
            authority = (CertificateAuthority(settings.kafka.ssl_cafile, args.ca_key, args.mtls_bootstrap)
                         if args.certificate and settings.kafka.ssl_cafile and args.ca_key and args.mtls_bootstrap
                         else None)
            if args.certificate and authority is None:
                raise ValueError("--certificate needs the CA (CASCADE_KAFKA_SSL_CAFILE), --ca-key and --mtls-bootstrap")
            added = asyncio.run(add_tenant(settings.kafka, args.name, quotas, authority))
            print(f"tenant {args.name}: topics created {added.topics.created or 'none'}"
                  + (f"; its client settings (login, password, CA): {added.credentials}" if added.credentials else ""))
        else:
            deleted = asyncio.run(remove_tenant(settings.kafka, args.name, args.certificate))
            print(f"tenant {args.name}: deleted {deleted or 'no topics'}")
    except (ValueError, KafkaToolFailed, *AUTHORIZATION_ERRORS) as exc:
        sys.exit(f"cascade tenants: {exc}")


_COMMANDS: dict[str, Command] = {
    "kafka": lambda settings, args: run_kafka(secured=args.secured, brokers=args.brokers),
    "qdrant": lambda settings, args: run_qdrant(args.nodes),
    "kafka-tool": lambda settings, args: sys.exit(
        run_tool(args.tool, args.arguments, _require_bootstrap(settings), settings.kafka.security)),
    "serve": _serve,
    "ingest": _as_client(lambda settings, args: ingest_file(
        settings, args.file, args.collection, wait=not args.no_wait, model=args.model,
        late_interaction=args.late_interaction, passages=args.passages)),
    "reindex": _as_client(lambda settings, args: reindex_collection(
        settings, args.collection, args.model, args.late_interaction)),
    "search": _as_client(search_once),
    "status": _status,
    "models": _models,
    "topics": _topics,
    "tenants": _tenants,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cascade", description=__doc__,
                                     epilog="Ranking quality on BEIR folders: `cascade-eval` (the evaluation tools).")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_local_commands, _add_client_commands, _add_admin_commands):
        add(commands)
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    _COMMANDS[args.command](settings, args)


if __name__ == "__main__":
    main()
