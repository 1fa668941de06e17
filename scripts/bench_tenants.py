"""The tenants issue's figures: what clients that come and go cost, and whether one tenant can hurt another.

    python -m scripts.bench_tenants [--part churn|flood ...] [--clients 10000] [--concurrency 20] [--idle-s 30]
                                    [--phase-s 30]

churn: a local Kafka and `cascade serve ingest query rerank` (the bundled models) in a child process, the demo
corpus indexed. Then `--clients` SDK clients, `--concurrency` at a time, each connect, search once (mode bi) and
close. Before and after: the cluster's topic count, the topics whose metadata the services' producer holds (its
`/metrics`), and the services' CPU while idle (CPU seconds per second over `--idle-s`). The cluster's topics are
also listed every few seconds during the churn, so a topic created and deleted meanwhile is counted too.
flood: a SASL_SSL broker (SCRAM, ACLs) and the services in a child process under one login of the three service
roles; two tenants made by `cascade tenants add` (their own logins, ACLs and quotas), `victim` and `flood`, each
with the demo corpus. Each phase runs `--phase-s`: the victim's capacity (searches of mode bi, 32 in flight: answers
per second); the victim's p99 at a quarter of that rate, alone ("quiet"); the same while `flood` offers three times
the capacity, with its produce quota set to the bytes of a twentieth of the capacity ("flooded"); and the same with that
quota lifted ("unbounded", what the quota prevents). Then what `flood`'s login may not do to `victim`: each
refusal counted (`isolation_refusals` of `isolation_attempts`).
Writes bench/tenants.json (keys of other parts are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr
from tqdm import tqdm

from cascade.contracts import SearchRequest, Topic, TopicRegistry, encode
from cascade.contracts.security import AUTHORIZATION_ERRORS
from cascade.contracts.topic_admin import admin_client
from cascade.infra.acls import ROLE_GRANTS, grant
from cascade.infra.kafka_tools import alter_user
from cascade.infra.local_kafka import LocalKafka, SecuredListener, kafka_bootstrap
from cascade.runtime.clients import sdk_client
from cascade.runtime.provision import provision_topics
from cascade.runtime.tenants import add_tenant, login_of
from cascade.sdk import KafkaAccessError, SearchClient, read_jsonl_documents
from cascade.services.log import configure_logging
from cascade.services.settings import KafkaSettings
from scripts.bench_offsets import DEMO, QUERIES, Service, index_demo, serving
from scripts.benchlib import machine, write_result

COLLECTION = "churn"
QUOTA_SHARE = 20
"""The flooding tenant's produce quota: the bytes of a twentieth of the capacity's searches a second."""
TOPIC_SAMPLE_S = 2.0


def _metadata_topics(service: Service) -> int:
    text = urllib.request.urlopen(service.metrics_url(), timeout=10).read().decode()
    found = re.search(r"^cascade_producer_metadata_topics (\S+)$", text, re.MULTILINE)
    if found is None:
        raise RuntimeError("no cascade_producer_metadata_topics in /metrics")
    return int(float(found.group(1)))


def _idle_cpu(service: Service, seconds: float, label: str) -> float:
    """The service's CPU seconds per second while nobody asks anything."""
    before = service.cpu_s()
    for _ in tqdm(range(int(seconds)), desc=f"services idle ({label})", unit="s"):
        time.sleep(1)
    return round((service.cpu_s() - before) / int(seconds), 4)


async def _topics(bootstrap: str) -> set[str]:
    async with admin_client(bootstrap_servers=bootstrap) as admin:
        return set(await admin.list_topics())


async def _churn(bootstrap: str, clients: int, concurrency: int) -> dict[str, Any]:
    """`clients` clients that connect, search once and close; the topics seen meanwhile."""
    gate = asyncio.Semaphore(concurrency)
    failures: list[str] = []
    seen: set[str] = set()
    bar = tqdm(total=clients, desc=f"clients: connect, search, close ({concurrency} at a time)", unit="client")

    async def one(i: int) -> None:
        async with gate:
            try:
                async with SearchClient(bootstrap) as client:
                    await client.search(QUERIES[i % len(QUERIES)], collection=COLLECTION, mode="bi", k=3,
                                        timeout_s=120)
            except Exception as exc:  # counted and reported, the churn goes on
                failures.append(repr(exc))
            bar.update()

    async def watch_topics() -> None:
        while True:
            seen.update(await _topics(bootstrap))
            await asyncio.sleep(TOPIC_SAMPLE_S)

    watcher = asyncio.create_task(watch_topics())
    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(clients)))
    elapsed = time.monotonic() - started
    watcher.cancel()
    bar.close()
    return {"seen": seen, "failures": failures, "elapsed_s": elapsed}


def churn_part(bootstrap: str, clients: int, concurrency: int, idle_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cascade-churn-") as folder, serving(bootstrap, Path(folder)) as service:
        asyncio.run(index_demo(bootstrap, COLLECTION))
        asyncio.run(_churn(bootstrap, 1, 1))  # the services have answered on results and replies once
        topics_before = asyncio.run(_topics(bootstrap))
        metadata_before = _metadata_topics(service)
        idle_before = _idle_cpu(service, idle_s, "before")
        churn = asyncio.run(_churn(bootstrap, clients, concurrency))
        topics_after = asyncio.run(_topics(bootstrap))
        metadata_after = _metadata_topics(service)
        idle_after = _idle_cpu(service, idle_s, "after")
    if churn["failures"]:
        print(f"{len(churn['failures'])} clients failed, e.g. {churn['failures'][0]}")
    return {"clients_churned": clients - len(churn["failures"]), "churn_failures": len(churn["failures"]),
            "churn_concurrency": concurrency, "churn_s": round(churn["elapsed_s"], 1),
            "reply_topics_created": len((churn["seen"] | topics_after) - topics_before),
            "topics_before": len(topics_before), "topics_after": len(topics_after),
            "metadata_topics_before": metadata_before, "metadata_topics_after": metadata_after,
            "idle_cpu_before": idle_before, "idle_cpu_after": idle_after, "idle_cpu_window_s": idle_s}


async def _capacity(client: SearchClient, seconds: float) -> float:
    """Answers per second with 32 searches in flight, for `seconds`."""
    answered, give_up_at = 0, time.monotonic() + seconds

    async def worker(i: int) -> None:
        nonlocal answered
        while time.monotonic() < give_up_at:
            await client.search(QUERIES[i % len(QUERIES)], collection="demo", mode="bi", k=3, timeout_s=60)
            answered += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(32)))
    return answered / (time.monotonic() - started)


async def _p99_ms(client: SearchClient, rate: float, seconds: float) -> float:
    """The victim's searches sent at `rate` a second for `seconds` (open loop); the 99th percentile of their
    round trips, in milliseconds."""
    latencies: list[float] = []

    async def one(i: int) -> None:
        sent = time.perf_counter()
        await client.search(QUERIES[i % len(QUERIES)], collection="demo", mode="bi", k=3, timeout_s=60)
        latencies.append((time.perf_counter() - sent) * 1000)

    tasks, began = [], time.monotonic()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return float(np.percentile(latencies, 99))


async def _offer(settings: KafkaSettings, rate: float, seconds: float) -> int:
    """Searches sent to the flooding tenant's queries topic at `rate` a second (none waited for); how many the
    broker took within `seconds` (its quota delays the rest)."""
    topics = settings.topics.for_tenant(settings.tenant)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=5, **settings.security.client_options())
    await producer.start()
    taken, began = 0, time.monotonic()
    try:
        async with asyncio.timeout(seconds):
            for i in range(int(rate * seconds)):
                await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
                request = SearchRequest(request_id=f"flood-{i}", collection="demo", query=QUERIES[i % len(QUERIES)],
                                        mode="bi", k=3)
                await producer.send(topics.name(Topic.QUERIES), encode(request), key=request.request_id.encode())
                taken += 1
    except TimeoutError:
        pass
    finally:
        await producer.stop()
    return taken


async def _refusals(flood: KafkaSettings, victim: TopicRegistry) -> tuple[int, int]:
    """What `flood`'s login tries on `victim`'s namespace: (refused, attempts)."""
    options = {"bootstrap_servers": flood.bootstrap, **flood.security.client_options()}
    refused = 0
    producer = AIOKafkaProducer(**options)
    await producer.start()
    try:
        for topic in (Topic.QUERIES, Topic.DOCUMENTS, Topic.REPLIES):
            try:
                await producer.send_and_wait(victim.name(topic), b"{}")
            except AUTHORIZATION_ERRORS:
                refused += 1
    finally:
        await producer.stop()
    async with admin_client(**options) as admin:
        described = await admin.describe_topics(sorted(victim.tenant_topics()))
        refused += sum(topic["error_code"] != 0 for topic in described)
        deleted = (await admin.delete_topics([victim.name(Topic.RESULTS)])).topic_error_codes
        refused += sum(code != 0 for _, code, *_ in deleted)
    try:
        async with SearchClient(flood.bootstrap, topic_prefix=flood.topic_prefix, tenant=victim.tenant,
                                security=flood.security):
            pass
    except KafkaAccessError:
        refused += 1
    return refused, 3 + len(described) + len(deleted) + 1


def flood_part(phase_s: float) -> dict[str, Any]:
    users = {user: secrets.token_urlsafe(18) for user in ("admin", "operator", "services")}
    with LocalKafka(security=SecuredListener(users=users)) as kafka, \
            tempfile.TemporaryDirectory(prefix="cascade-flood-") as folder:
        assert kafka.security is not None and kafka.security.ca_file is not None
        admin = {"bootstrap_servers": kafka.bootstrap, **kafka.security.admin_client_options()}
        topics = TopicRegistry()
        asyncio.run(grant("operator", ROLE_GRANTS["operator"], topics, **admin))
        asyncio.run(grant("services", tuple(each for role in ("ingest", "query", "reranker")
                                            for each in ROLE_GRANTS[role]), topics, **admin))
        login = {"bootstrap": kafka.bootstrap, "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                 "ssl_cafile": kafka.security.ca_file}
        operator = KafkaSettings(**login, sasl_username="operator", sasl_password=SecretStr(users["operator"]))
        asyncio.run(provision_topics(topics, **operator.client_options()))
        tenants = {}
        for name in ("victim", "flood"):
            added = asyncio.run(add_tenant(operator, name))
            assert added.credentials is not None
            tenants[name] = KafkaSettings(_env_file=added.credentials)  # type: ignore[call-arg]
        env = {"CASCADE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "CASCADE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
               "CASCADE_KAFKA_SASL_USERNAME": "services", "CASCADE_KAFKA_SASL_PASSWORD": users["services"],
               "CASCADE_KAFKA_SSL_CAFILE": str(kafka.security.ca_file), "CASCADE_KAFKA_TENANT_DISCOVERY_MS": "2000"}
        with serving(kafka.bootstrap, Path(folder), env):
            return asyncio.run(_flood(tenants, phase_s, admin_security=kafka.security.security_for("admin")))


async def _flood(tenants: dict[str, KafkaSettings], phase_s: float, admin_security: Any) -> dict[str, Any]:
    victim, flood = tenants["victim"], tenants["flood"]
    corpus = list(read_jsonl_documents(DEMO))
    async with sdk_client(victim) as client, sdk_client(flood) as flooder:
        await client.index(corpus, collection="demo", timeout_s=600)
        await flooder.index(corpus, collection="demo", timeout_s=600)
        capacity = await _capacity(client, phase_s)
        rate = capacity / 4
        quiet = await _p99_ms(client, rate, phase_s)
        request = SearchRequest(request_id="flood-00000", collection="demo", query=QUERIES[0], mode="bi", k=3)
        record_bytes = len(encode(request)) + len(request.request_id) + 25  # a batched record's overhead, roughly
        quota = int(capacity / QUOTA_SHARE * record_bytes)
        login = login_of(flood, "flood")
        await asyncio.to_thread(alter_user, login, flood.bootstrap, admin_security,
                                add={"producer_byte_rate": str(quota)})
        offered = 3 * capacity
        flooding = asyncio.create_task(_offer(flood, offered, phase_s))
        flooded = await _p99_ms(client, rate, phase_s)
        taken = await flooding
        await asyncio.to_thread(alter_user, login, flood.bootstrap, admin_security,
                                add={"producer_byte_rate": str(10**12)})
        flooding = asyncio.create_task(_offer(flood, offered, phase_s))
        unbounded = await _p99_ms(client, rate, phase_s)
        taken_unbounded = await flooding
    refused, attempts = await _refusals(flood, victim.topics.for_tenant("victim"))
    return {"capacity_rps": round(capacity, 1), "victim_rps": round(rate, 1), "flood_offered_rps": round(offered, 1),
            "flood_quota_bytes_per_s": quota, "flood_taken_rps": round(taken / phase_s, 1),
            "flood_taken_unbounded_rps": round(taken_unbounded / phase_s, 1),
            "victim_p99_quiet_ms": round(quiet, 1), "victim_p99_flooded_ms": round(flooded, 1),
            "victim_p99_unbounded_ms": round(unbounded, 1), "isolation_refusals": refused,
            "isolation_attempts": attempts, "flood_phase_s": phase_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["churn", "flood"], action="append")
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--phase-s", type=float, default=30.0)
    args = parser.parse_args()
    configure_logging("console", "ERROR")
    parts = args.part or ["churn", "flood"]
    if "churn" in parts:
        with kafka_bootstrap(os.environ.get("CASCADE_KAFKA_BOOTSTRAP")) as bootstrap:
            record(churn_part(bootstrap, args.clients, args.concurrency, args.idle_s))
    if "flood" in parts:
        record(flood_part(args.phase_s))


def record(figures: dict[str, Any]) -> None:
    print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    write_result("tenants", figures | {"machine": machine()}, merge=True)


if __name__ == "__main__":
    main()
