"""Tenants on a cluster: `cascade tenants add NAME` provisions one, `remove` deletes what `add` made.

A tenant's clients work in a namespace of their own (`<prefix>tenant.<name>.`: documents, acks, queries, results,
replies, reindex, reindex.status) and their own collections; the services, subscribed to every tenant's request
topics by pattern, start serving it at their next metadata refresh (`CASCADE_KAFKA_TENANT_DISCOVERY_MS`).

On a cluster with SASL (SCRAM), the tenant is also a Kafka principal, `User:<prefix><name>` (`cascade.acme`: the
deployment's prefix keeps it apart from the roles' logins and from another deployment's tenant of that name): a
login (its password generated and written to a credentials file of mode 0600, never printed nor put on a command
line), the client role's ACLs on its own topics and groups only, and Kafka's client quotas on that principal
(produce and fetch bytes per second, request time). With `certificate`, the tenant authenticates by a client
certificate instead (mutual TLS): its certificate, CN `<prefix><name>`, is signed by the given CA and written with
its key (mode 0600) beside the credentials file, which names the listener that requires client certificates.
Run it as the operator, whose role may create logins, ACLs and quotas. Size the quotas from the measured capacity
(scripts/bench_tenants.py): the defaults only keep one tenant from taking a broker whole.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cascade.contracts import DEFAULT_TENANT
from cascade.contracts.security import KafkaSecurity
from cascade.contracts.topic_admin import admin_client, partition_counts
from cascade.infra.acls import ROLE_GRANTS, grant, revoke
from cascade.infra.certificates import issue_client_certificate
from cascade.infra.kafka_tools import alter_user
from cascade.runtime.provision import ProvisionReport, provision_topics
from cascade.services.settings import KafkaSettings

__all__ = ["AddedTenant", "CertificateAuthority", "TenantQuotas", "add_tenant", "login_of", "remove_tenant"]
_SCRAM = "SCRAM-SHA-512"
_SCRAM_ITERATIONS = 8192


@dataclass(frozen=True)
class TenantQuotas:
    """Kafka's client quotas on a tenant's principal: what one tenant can take from each broker, so that a tenant
    flooding the cluster slows itself, not the others."""

    produce_bytes_per_s: int = 1_000_000
    fetch_bytes_per_s: int = 4_000_000
    request_percentage: float = 100.0
    """Broker request-handler and network time, in percent of one thread."""

    def configs(self) -> dict[str, str]:
        return {"producer_byte_rate": str(self.produce_bytes_per_s), "consumer_byte_rate": str(self.fetch_bytes_per_s),
                "request_percentage": f"{self.request_percentage:g}"}


@dataclass(frozen=True)
class CertificateAuthority:
    """What a tenant authenticated by certificate needs: the CA the brokers trust for client certificates, its
    key, and the address of the listener that requires them."""

    cert: Path
    key: Path
    bootstrap: str


@dataclass(frozen=True)
class AddedTenant:
    topics: ProvisionReport
    credentials: Path | None
    """The tenant's client settings (mode 0600), where the cluster has SASL; None on an open one."""


def _check_name(name: str) -> None:
    if name == DEFAULT_TENANT:
        raise ValueError("the default tenant's topics are the deployment's own: it is neither added nor removed")


def login_of(settings: KafkaSettings, name: str) -> str:
    """The login (principal name) of tenant `name` of this deployment."""
    return f"{settings.topic_prefix}{name}"


def _admin(settings: KafkaSettings) -> KafkaSecurity | None:
    """The operator's security where tenants are principals (SASL SCRAM), else None."""
    security = settings.security
    return security if security.protocol.startswith("SASL_") and security.sasl_mechanism == _SCRAM else None


async def add_tenant(settings: KafkaSettings, name: str, quotas: TenantQuotas = TenantQuotas(),
                     certificate: CertificateAuthority | None = None) -> AddedTenant:
    """Make tenant `name`'s topics (and, with SASL, its login or certificate, ACLs, quotas and credentials file);
    safe to run again for the topics, a new password or certificate otherwise."""
    _check_name(name)
    tenant = settings.topics.for_tenant(name)
    report = await provision_topics(tenant, settings.replication_factor, **settings.client_options())
    admin = _admin(settings)
    if admin is None:
        return AddedTenant(report, None)
    login = login_of(settings, name)
    folder = Path(tempfile.mkdtemp(prefix=f"cascade-tenant-{name}-"))
    if certificate is None:
        password = secrets.token_urlsafe(24)
        await asyncio.to_thread(alter_user, login, settings.bootstrap, admin,
                                add={_SCRAM: f"iterations={_SCRAM_ITERATIONS},password={password}"})
        how = [f"CASCADE_KAFKA_BOOTSTRAP={settings.bootstrap}",
               f"CASCADE_KAFKA_SECURITY_PROTOCOL={settings.security_protocol}",
               f"CASCADE_KAFKA_SASL_MECHANISM={_SCRAM}", f"CASCADE_KAFKA_SASL_USERNAME={login}",
               f"CASCADE_KAFKA_SASL_PASSWORD={password}"]
    else:
        cert, key = issue_client_certificate(certificate.cert, certificate.key, login, folder)
        how = [f"CASCADE_KAFKA_BOOTSTRAP={certificate.bootstrap}", "CASCADE_KAFKA_SECURITY_PROTOCOL=SSL",
               f"CASCADE_KAFKA_SSL_CERTFILE={cert}", f"CASCADE_KAFKA_SSL_KEYFILE={key}"]
    await grant(login, ROLE_GRANTS["client"], tenant, **settings.client_options())
    await asyncio.to_thread(alter_user, login, settings.bootstrap, admin, add=quotas.configs())
    return AddedTenant(report, _credentials(settings, name, folder, how))


def _credentials(settings: KafkaSettings, name: str, folder: Path, how: list[str]) -> Path:
    path = folder / "tenant.env"
    path.touch(mode=0o600)
    path.write_text("\n".join([
        f"# tenant {name}", f"CASCADE_KAFKA_TOPIC_PREFIX={settings.topic_prefix}", f"CASCADE_KAFKA_TENANT={name}",
        *how, *([f"CASCADE_KAFKA_SSL_CAFILE={settings.ssl_cafile}"] if settings.ssl_cafile else []), ""]))
    return path


async def remove_tenant(settings: KafkaSettings, name: str, certificate: bool = False) -> list[str]:
    """Delete tenant `name`'s topics (and, with SASL, its ACLs, login and quotas); returns the topics deleted.
    `certificate`: the tenant authenticates by certificate (there is no login to delete; its certificate stays
    valid until it expires, with no ACL left to use). Its collections stay in the store, and a tenant added later
    under the same name finds them. Remove a tenant
    once its clients have stopped: an answer still in flight to its deleted topics is retried by the services for
    `CASCADE_KAFKA_PUBLISH_RETRY_S`, holding up the batch it belongs to."""
    _check_name(name)
    names = list(settings.topics.for_tenant(name).tenant_topics())
    async with admin_client(**settings.client_options()) as admin:
        present = sorted(await partition_counts(admin, names))
        if present:
            await admin.delete_topics(present)
    if (security := _admin(settings)) is not None:
        login = login_of(settings, name)
        await revoke(login, **settings.client_options())
        if not certificate:
            await asyncio.to_thread(alter_user, login, settings.bootstrap, security, delete=[_SCRAM])
        await asyncio.to_thread(alter_user, login, settings.bootstrap, security,
                                delete=list(TenantQuotas().configs()))
    return present

