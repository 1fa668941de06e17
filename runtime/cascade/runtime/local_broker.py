"""A local broker or cluster in the foreground with the topics provisioned (`make kafka`, `cascade kafka [--secured]
[--brokers 3]`).

With CASCADE_KAFKA_BOOTSTRAP set, no broker is started: the topics of that cluster are provisioned instead.
`--secured` starts it with SASL_SSL (SCRAM-SHA-512, a throwaway CA) and ACLs: a user per role with only its
ACLs (cascade.infra.acls), `embedded` with all three services' (`cascade serve ingest query rerank`), and writes
each role's settings to a credentials file (mode 0600) rather than printing passwords.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import sys
import tempfile
import threading
from pathlib import Path

from pydantic import SecretStr

from cascade.infra.acls import ROLE_GRANTS, Role, grant
from cascade.infra.local_kafka import KAFKA_VERSION, LocalKafka, SecuredListener
from cascade.runtime.provision import provision_topics
from cascade.services.settings import KafkaSettings

__all__ = ["run_kafka"]


def _provision(settings: KafkaSettings) -> str:
    report = asyncio.run(
        provision_topics(settings.topics, settings.replication_factor, **settings.client_options())
    )
    return f"topics created: {', '.join(report.created) or 'none'}; already present: {len(report.existing)}"


_USERS: dict[str, tuple[Role, ...]] = {
    "ingest": ("ingest",), "query": ("query",), "embedded": ("ingest", "query", "reranker"), "reranker": ("reranker",),
    "client": ("client",), "operator": ("operator",),
}


def _secure(kafka: LocalKafka, settings: KafkaSettings) -> tuple[KafkaSettings, Path]:
    """Grant each user its roles' ACLs; the operator's settings (to provision) and the credentials file."""
    assert kafka.security is not None
    lines = []
    for user, roles in _USERS.items():
        asyncio.run(grant(user, tuple(each for role in roles for each in ROLE_GRANTS[role]), settings.topics,
                          bootstrap_servers=kafka.bootstrap, **kafka.security.admin_client_options()))
        lines += [f"# {user}: {' + '.join(roles)}", f"CASCADE_KAFKA_BOOTSTRAP={kafka.bootstrap}",
                  "CASCADE_KAFKA_SECURITY_PROTOCOL=SASL_SSL", "CASCADE_KAFKA_SASL_MECHANISM=SCRAM-SHA-512",
                  f"CASCADE_KAFKA_SASL_USERNAME={user}", f"CASCADE_KAFKA_SASL_PASSWORD={kafka.security.users[user]}",
                  f"CASCADE_KAFKA_SSL_CAFILE={kafka.security.ca_file}", ""]
    lines += [f"# tenants by certificate: cascade tenants add NAME --certificate --ca-key {kafka.security.ca_key} "
              f"--mtls-bootstrap {kafka.security.mtls_bootstrap}", ""]
    credentials = Path(tempfile.mkdtemp(prefix="cascade-credentials-")) / "roles.env"
    credentials.touch(mode=0o600)
    credentials.write_text("\n".join(lines))
    operator = settings.model_copy(update={
        "bootstrap": kafka.bootstrap, "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "operator", "sasl_password": SecretStr(kafka.security.users["operator"]),
        "ssl_cafile": kafka.security.ca_file})
    return operator, credentials


def run_kafka(secured: bool = False, brokers: int = 1) -> None:
    settings = KafkaSettings()
    if settings.bootstrap:
        print(f"using the existing cluster {settings.bootstrap}; {_provision(settings)}")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    users = {user: secrets.token_urlsafe(18) for user in ["admin", *_USERS]}
    try:
        local = LocalKafka(security=SecuredListener(users=users) if secured else None, brokers=brokers)
    except ValueError as exc:  # --secured with --brokers
        sys.exit(f"cascade kafka: {exc}")
    with local as kafka:
        operator, credentials = _secure(kafka, settings) if secured else (
            settings.model_copy(update={"bootstrap": kafka.bootstrap}), None)
        summary = _provision(operator)
        stats = kafka.stats()
        print(f"Kafka {KAFKA_VERSION} at {kafka.bootstrap}{' (SASL_SSL, ACLs)' if secured else ''}"
              f"{f' ({brokers} brokers; RSS of the first)' if brokers > 1 else ''}: started in "
              f"{stats.startup_s:.1f} s, broker RSS {stats.rss_mb:.0f} MB; {summary}")
        if credentials:
            print(f"each role's settings (user, password, CA): {credentials}   # Ctrl-C stops the broker", flush=True)
        else:
            print(f"export CASCADE_KAFKA_BOOTSTRAP={kafka.bootstrap}   # Ctrl-C stops the broker", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
