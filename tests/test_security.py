"""On a SASL_SSL broker (SCRAM-SHA-512, a throwaway TLS certificate, StandardAuthorizer ACLs): the whole path
with a principal per role, and wrong passwords, untrusted CAs and missing ACLs failing clearly and quickly: at the
first refusal, never retried (checked by where and how each fails, not by a clock)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import for_code

from cascade.contracts import Topic, TopicRegistry
from cascade.contracts.security import AUTHORIZATION_ERRORS
from cascade.contracts.topic_admin import admin_client
from cascade.infra.acls import Grant, Role, grant, grant_role
from cascade.infra.kafka_tools import alter_user
from cascade.infra.local_kafka import LocalKafka, SecuredListener, ensure_kafka_jars, free_port
from cascade.runtime.clients import sdk_client
from cascade.runtime.process import CascadeProcess
from cascade.runtime.provision import provision_topics
from cascade.runtime.status import format_status, gather_status
from cascade.runtime.tenants import CertificateAuthority, add_tenant, remove_tenant
from cascade.sdk import KafkaAccessError, KafkaSecurity, SearchClient, SearchFailed
from cascade.services.settings import KafkaSettings, ModelSettings, Settings, StoreSettings
from tests.processes import CLI_HANG_GUARD_S, run_cli, service_environment

USERS = {"admin": "admin-secret", "first-stage": "fs-secret", "reranker": "rr-secret", "client": "cl-secret",
         "operator": "op-secret", "reader": "rd-secret"}
TOPICS = TopicRegistry(prefix="sec.")


GRANTS: list[tuple[str, Role]] = [
    ("first-stage", "ingest"), ("first-stage", "query"),  # the embedded mode: ingest and query, one process
    ("reranker", "reranker"), ("client", "client"), ("operator", "operator"),
]
READER = (Grant(("Describe",), topics=("",), prefixed=True), Grant(("Write",), topics=("documents",)),
          Grant(("Read",), topics=("replies",)))
"""A client that may index but not search (no Write on queries), nor consume anything as a service."""


@pytest.fixture(scope="module")
def secured() -> Iterator[LocalKafka]:
    kafka = LocalKafka(security=SecuredListener(users=USERS)).start()
    assert kafka.security is not None
    admin = {"bootstrap_servers": kafka.bootstrap, **kafka.security.admin_client_options()}
    try:
        for user, role in GRANTS:
            asyncio.run(grant_role(user, role, TOPICS, **admin))
        asyncio.run(grant("reader", READER, TOPICS, **admin))
        yield kafka
    finally:
        kafka.stop()


def kafka_settings(kafka: LocalKafka, user: str, password: str | None = None, trusted: bool = True) -> KafkaSettings:
    assert kafka.security is not None
    return KafkaSettings(
        bootstrap=kafka.bootstrap, topic_prefix=TOPICS.prefix, security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512", sasl_username=user, sasl_password=password or USERS[user],
        ssl_cafile=kafka.security.ca_file if trusted else None, session_timeout_ms=6000,
    )


@pytest.fixture
async def roles(secured: LocalKafka, tiny_bi_encoder: Path, tiny_cross_encoder: Path, tmp_path: Path
                ) -> AsyncIterator[None]:
    await provision_topics(TOPICS, **kafka_settings(secured, "operator").client_options())
    models = ModelSettings(bi_encoder=str(tiny_bi_encoder), cross_encoder=str(tiny_cross_encoder))
    first = CascadeProcess(Settings(kafka=kafka_settings(secured, "first-stage"), models=models,
                                    store=StoreSettings(path=tmp_path / "store"), instance_id="first"),
                           {"ingest", "query"})
    reranker = CascadeProcess(Settings(kafka=kafka_settings(secured, "reranker"), models=models,
                                       instance_id="reranker"), {"rerank"})
    await first.start()
    await reranker.start()
    yield
    await reranker.stop()
    await first.stop()


async def test_the_whole_path_with_a_principal_per_role(secured: LocalKafka, roles: None) -> None:
    security = kafka_settings(secured, "client").security
    async with SearchClient(secured.bootstrap, topic_prefix=TOPICS.prefix, security=security) as client:
        acks = await client.index([{"doc_id": f"d{i}", "text": f"document {i} on topic {i % 3}"} for i in range(30)],
                                  collection="c", timeout_s=60)
        assert {ack.status for ack in acks} == {"indexed"}
        stream = client.results()
        answered = []
        for mode in ("bi", "rerank", "cross"):
            result = await client.search("topic 1", collection="c", mode=mode, k=5, timeout_s=60)
            assert len(result.hits) == 5 and result.mode == mode
            answered.append(result.request_id)
        assert [(await anext(stream)).request_id for _ in answered] == answered


class Refusal(NamedTuple):
    message: str
    connected: bool
    """Whether the client got as far as connecting (the refusal came at its first search)."""
    failed_connects: int
    """Connections aiokafka logged as failed: a client that retried a refused connect would log more than one."""


async def _refused(security: KafkaSecurity, bootstrap: str, match: str, caplog: pytest.LogCaptureFixture
                   ) -> Refusal:
    """The KafkaAccessError a client meets, and how far it got. No service answers here, so only a hang guard
    bounds the attempt: a client that kept retrying a refusal instead of raising it would end in SearchTimeout or
    TimeoutError, not in the access error."""
    caplog.clear()
    connected = False

    async def connect_and_search() -> None:
        nonlocal connected
        async with (asyncio.timeout(CLI_HANG_GUARD_S),
                    SearchClient(bootstrap, topic_prefix=TOPICS.prefix, security=security) as client):
            connected = True
            await client.search("anything", collection="c", mode="bi", timeout_s=CLI_HANG_GUARD_S)

    with pytest.raises(KafkaAccessError, match=match) as failed:
        await connect_and_search()
    failed_connects = sum(record.name == "aiokafka" and record.getMessage().startswith("Unable connect")
                          for record in caplog.records)
    return Refusal(str(failed.value), connected, failed_connects)


async def test_wrong_password_untrusted_ca_and_missing_acl_fail_clearly_in_the_sdk(
    secured: LocalKafka, caplog: pytest.LogCaptureFixture
) -> None:
    await provision_topics(TOPICS, **kafka_settings(secured, "operator").client_options())
    wrong = await _refused(kafka_settings(secured, "client", password="not-it").security, secured.bootstrap,
                           "refused the credentials", caplog)
    assert (wrong.connected, wrong.failed_connects) == (False, 1)  # refused at its one connect, not retried
    assert "not-it" not in wrong.message and "'client'" in wrong.message
    untrusted = await _refused(kafka_settings(secured, "client", trusted=False).security, secured.bootstrap,
                               "certificate this client does not trust", caplog)
    assert (untrusted.connected, untrusted.failed_connects) == (False, 1)
    # It may connect (and index); its first search is refused at once, not left to time out.
    reader = await _refused(kafka_settings(secured, "reader").security, secured.bootstrap,
                            "may not write to 'sec.queries'", caplog)
    assert (reader.connected, reader.failed_connects) == (True, 0)


def _run(kafka: KafkaSettings, *arguments: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    settings = Settings(kafka=kafka)
    environment = service_environment(settings, "secured", CASCADE_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
                                      CASCADE_KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
                                      CASCADE_KAFKA_SASL_USERNAME=kafka.sasl_username or "",
                                      CASCADE_KAFKA_SASL_PASSWORD=kafka.sasl_password.get_secret_value()
                                      if kafka.sasl_password else "",
                                      CASCADE_KAFKA_SSL_CAFILE=str(kafka.ssl_cafile or ""), **env)
    if kafka.ssl_cafile is None:
        environment.pop("CASCADE_KAFKA_SSL_CAFILE")
    return run_cli(environment, *arguments)


async def test_provisioning_without_create_rights_says_so(secured: LocalKafka) -> None:
    unprovisioned = TopicRegistry(prefix="bare.")
    kafka = kafka_settings(secured, "reader").model_copy(update={"topic_prefix": unprovisioned.prefix})
    with pytest.raises(AUTHORIZATION_ERRORS, match=r"creating topic bare\."):
        await provision_topics(unprovisioned, **kafka.client_options())


@pytest.mark.parametrize(("user", "password", "trusted", "expected"), [
    ("reranker", "not-it", True, b"refused the credentials"),
    ("reranker", None, False, b"does not trust"),
    ("reader", None, True, b"an ACL allowing Read on both is missing"),
])
def test_serve_and_the_cli_fail_clearly_and_quickly(
    secured: LocalKafka, tiny_cross_encoder: Path, user: str, password: str | None, trusted: bool, expected: bytes
) -> None:
    kafka = kafka_settings(secured, user, password, trusted)
    asyncio.run(provision_topics(TOPICS, **kafka_settings(secured, "operator").client_options()))
    served = _run(kafka, "serve", "rerank", CASCADE_MODELS_CROSS_ENCODER=str(tiny_cross_encoder),
                  CASCADE_KAFKA_CONNECT_TIMEOUT_S="600")
    assert served.returncode != 0 and expected in served.stderr, served.stderr[-2000:]
    # Quickly: the first refusal ends the process; it does not back off and retry as for an unreachable cluster
    # (with 600 s allowed, that would outlast CLI_HANG_GUARD_S).
    assert b"cluster.retry" not in served.stderr
    searched = _run(kafka, "search", "anything", "--collection", "c", "--mode", "bi")
    assert searched.returncode != 0
    assert (expected if user != "reader" else b"may not write to 'sec.queries'") in searched.stderr
    assert b"not-it" not in served.stderr + searched.stderr and USERS[user].encode() not in served.stderr


def test_kafka_tools_use_the_security_settings(secured: LocalKafka) -> None:
    assert _run(kafka_settings(secured, "operator"), "topics").returncode == 0  # provisioned, if not yet
    listed = _run(kafka_settings(secured, "operator"), "kafka-tool", "topics", "--list")
    assert listed.returncode == 0, listed.stderr.decode()[-2000:]
    assert set(TOPICS.all()) <= set(listed.stdout.decode().split())
    refused = _run(kafka_settings(secured, "operator", password="not-it"), "kafka-tool", "topics", "--list",
                   "--command-property", "request.timeout.ms=5000")
    assert refused.returncode != 0 and b"not-it" not in refused.stdout + refused.stderr


async def test_status_says_when_a_login_may_not_see_the_groups(secured: LocalKafka, tmp_path: Path) -> None:
    """Kafka lists no group to a login that may not describe them, rather than refusing; status said "none yet"."""
    await provision_topics(TOPICS, **kafka_settings(secured, "operator").client_options())
    status = await gather_status(kafka_settings(secured, "reader"), StoreSettings(path=tmp_path / "store"),
                                 f"http://127.0.0.1:{free_port()}/status")
    assert status.groups == [] and status.groups_hidden == ["sec.ingest", "sec.ingest-reindex", "sec.query",
                                                            "sec.reranker", "sec.reranker-bulk"]
    assert "access denied: this login may not describe sec.ingest, sec.ingest-reindex" in format_status(status)
    reranker = await gather_status(kafka_settings(secured, "reranker"), StoreSettings(path=tmp_path / "store"),
                                   f"http://127.0.0.1:{free_port()}/status")
    assert reranker.groups_hidden == ["sec.ingest", "sec.ingest-reindex", "sec.query"]  # its own group it may see
    seen = await gather_status(kafka_settings(secured, "operator"), StoreSettings(path=tmp_path / "store"),
                               f"http://127.0.0.1:{free_port()}/status")
    assert seen.groups_hidden == []


def _tenant_login(credentials: Path) -> KafkaSecurity:
    """The login a tenant's credentials file gives its clients (read as the settings read it)."""
    assert credentials.stat().st_mode & 0o777 == 0o600
    return KafkaSettings(_env_file=credentials).security  # type: ignore[call-arg]


async def _refusal(attempt: Awaitable[object]) -> str:
    """The authorization error `attempt` meets (within the hang guard: a refusal must come, not a wait)."""
    with pytest.raises((*AUTHORIZATION_ERRORS, KafkaAccessError)) as refused:
        async with asyncio.timeout(CLI_HANG_GUARD_S):
            await attempt
    return type(refused.value).__name__


async def test_tenants_are_principals_that_reach_only_their_own(secured: LocalKafka, roles: None) -> None:
    operator = kafka_settings(secured, "operator")
    logins = {}
    for name in ("acme", "globex"):
        added = await add_tenant(operator, name)
        assert added.credentials is not None
        logins[name] = _tenant_login(added.credentials)
    globex = TOPICS.for_tenant("globex")

    def client(tenant: str, login: str) -> SearchClient:
        return SearchClient(secured.bootstrap, topic_prefix=TOPICS.prefix, tenant=tenant, security=logins[login])

    async with client("acme", "acme") as alice, client("globex", "globex") as bob:
        await alice.index([{"doc_id": f"a{i}", "text": f"acme document {i}"} for i in range(5)], collection="c",
                          timeout_s=60)
        answered = [(await alice.search("acme document", collection="c", mode=mode, k=3, timeout_s=60)).request_id
                    for mode in ("bi", "rerank")]
        with pytest.raises(SearchFailed) as unknown:
            await bob.search("acme document", collection="c", mode="bi", timeout_s=60)
        assert unknown.value.code == "unknown_collection"  # globex has no collection c: acme's is acme's

    acme_options = {"bootstrap_servers": secured.bootstrap, **logins["acme"].client_options()}
    writer = AIOKafkaProducer(**acme_options)
    await writer.start()
    try:
        refusals = {"write globex's queries": await _refusal(writer.send_and_wait(globex.name(Topic.QUERIES), b"{}")),
                    "write the default tenant's queries": await _refusal(
                        writer.send_and_wait(TOPICS.name(Topic.QUERIES), b"{}")),
                    "read globex's replies, as the SDK": await _refusal(client("globex", "acme").__aenter__())}
    finally:
        await writer.stop()
    async with admin_client(**acme_options) as admin:  # not even their names and partitions: no Describe, no Read
        described = await admin.describe_topics(sorted(globex.tenant_topics()))
        [(_, deleted, *_)] = (await admin.delete_topics([globex.name(Topic.RESULTS)])).topic_error_codes
    refusals |= {"see or read globex's topics": sorted({for_code(topic["error_code"]).__name__ for topic in described}),
                 "delete globex's results": for_code(deleted).__name__}
    assert refusals == {"write globex's queries": "TopicAuthorizationFailedError",
                        "write the default tenant's queries": "TopicAuthorizationFailedError",
                        "read globex's replies, as the SDK": "KafkaAccessError",
                        "see or read globex's topics": ["TopicAuthorizationFailedError"],
                        "delete globex's results": "TopicAuthorizationFailedError"}
    # globex's own topics, read by globex: none of acme's answers or documents are there
    globex_options = {"bootstrap_servers": secured.bootstrap, **logins["globex"].client_options()}
    seen = AIOKafkaConsumer(globex.name(Topic.RESULTS), globex.name(Topic.REPLIES), globex.name(Topic.ACKS),
                            group_id=f"{globex.namespace}client.check", auto_offset_reset="earliest", **globex_options)
    await seen.start()
    try:
        records = [record for batch in (await seen.getmany(timeout_ms=5_000)).values() for record in batch]
    finally:
        await seen.stop()
    assert any(b"unknown_collection" in record.value for record in records)  # globex reads its own answers
    assert not [record for record in records if any(request_id.encode() in record.value for request_id in answered)]
    assert not [record for record in records if b'"a0"' in record.value]

    await remove_tenant(operator, "globex")
    with pytest.raises(KafkaAccessError, match="refused the credentials"):  # its login is gone with it
        async with client("globex", "globex"):
            pass


def test_no_password_is_ever_on_a_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """kafka-storage was given each SCRAM password as an argument, which any local user can read (ps)."""
    commands: list[str] = []
    run, popen = subprocess.run, subprocess.Popen

    def recorded_run(args: list[str], *rest: Any, **options: Any) -> Any:
        commands.append(" ".join(map(str, args)))
        return run(args, *rest, **options)

    def recorded_popen(args: list[str], *rest: Any, **options: Any) -> Any:
        commands.append(" ".join(map(str, args)))
        return popen(args, *rest, **options)

    monkeypatch.setattr(subprocess, "run", recorded_run)
    monkeypatch.setattr(subprocess, "Popen", recorded_popen)
    users = {"admin": "admin-pw-never-shown", "someone": "user-pw-never-shown"}
    with LocalKafka(security=SecuredListener(users=users)) as kafka:
        admin = kafka.security.security_for("admin") if kafka.security else None
        assert admin is not None
        alter_user("someone", kafka.bootstrap, admin, add={"SCRAM-SHA-512": "password=new-pw-never-shown"})
    assert any("StorageTool" in command for command in commands)
    assert any("ConfigCommand" in command for command in commands)
    assert not [command for command in commands if "never-shown" in command]


async def test_a_tenant_authenticated_by_certificate(secured: LocalKafka, roles: None) -> None:
    """Mutual TLS end to end: a listener that requires client certificates, a tenant whose certificate (signed by
    the cluster's CA, CN its login) is its only credential; a client without one is refused."""
    assert secured.security is not None and secured.security.ca_file and secured.security.ca_key
    authority = CertificateAuthority(secured.security.ca_file, secured.security.ca_key,
                                     secured.security.mtls_bootstrap)
    added = await add_tenant(kafka_settings(secured, "operator"), "initech", certificate=authority)
    assert added.credentials is not None and "PASSWORD" not in added.credentials.read_text()
    tenant = KafkaSettings(_env_file=added.credentials)  # type: ignore[call-arg]
    assert tenant.security.protocol == "SSL" and tenant.security.cert_file is not None
    async with sdk_client(tenant) as client:
        await client.index([{"doc_id": f"i{i}", "text": f"initech memo {i}"} for i in range(4)], collection="memos",
                           timeout_s=60)
        result = await client.search("initech memo", collection="memos", mode="bi", k=2, timeout_s=60)
    assert {hit.doc_id[0] for hit in result.hits} == {"i"}
    anonymous = KafkaSecurity(protocol="SSL", ca_file=secured.security.ca_file)  # trusts the broker, has no cert
    with pytest.raises(KafkaAccessError, match="requires a client certificate"):
        async with (asyncio.timeout(CLI_HANG_GUARD_S),
                    SearchClient(secured.security.mtls_bootstrap, topic_prefix=TOPICS.prefix, tenant="initech",
                                 security=anonymous)):
            pass
    await remove_tenant(kafka_settings(secured, "operator"), "initech", certificate=True)


def test_the_controller_listener_lets_no_local_user_list_the_acls(secured: LocalKafka, tmp_path: Path) -> None:
    """It was PLAINTEXT with every anonymous principal a super user: any local process could list (and change)
    the ACLs through it without a password. Kafka's own AclCommand, with no certificate, is now refused."""
    config = tmp_path / "client.properties"
    config.write_text("default.api.timeout.ms=5000\nrequest.timeout.ms=3000\n")
    for protocol in ("PLAINTEXT", "SSL"):  # SSL: trusting the broker's CA, without a certificate of its own
        extra = "" if protocol == "PLAINTEXT" else (f"security.protocol=SSL\nssl.truststore.type=PEM\n"
                                                    f"ssl.truststore.location={secured.security.ca_file}\n"
                                                    if secured.security else "")
        config.write_text(config.read_text().split("security.protocol")[0] + extra)
        listed = subprocess.run(
            ["java", "-cp", f"{ensure_kafka_jars()}/*", "org.apache.kafka.tools.AclCommand", "--bootstrap-controller",
             secured.controllers, "--command-config", str(config), "--list"],
            capture_output=True, text=True, timeout=CLI_HANG_GUARD_S)
        assert listed.returncode != 0 and "User:" not in listed.stdout, (protocol, listed.stdout[-500:])
