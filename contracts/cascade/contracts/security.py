"""How a Kafka client of Cascade connects: one security configuration for the SDK and every service client.

PLAINTEXT, SSL (optionally with a client certificate), SASL PLAIN or SCRAM over PLAINTEXT or SSL. The
protocol decides: a SASL mechanism with a non-SASL protocol is a configuration error, not silently SASL.
When a client cannot connect, `diagnose` connects once more to say why in one line (aiokafka only says
"Unable to bootstrap"): rejected credentials and untrusted certificates are access errors, never retried.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiokafka.conn import create_conn
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    UnsupportedSaslMechanismError,
)

__all__ = ["AUTHORIZATION_ERRORS", "KafkaAccessError", "KafkaSecurity", "Protocol", "SaslMechanism", "diagnose"]

AUTHORIZATION_ERRORS = (TopicAuthorizationFailedError, GroupAuthorizationFailedError, ClusterAuthorizationFailedError)
"""A missing ACL."""

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaAccessError(RuntimeError):
    """Kafka refused this client: wrong credentials, an untrusted certificate or a missing ACL. Retrying
    cannot help, so it is raised at once with the cause."""


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: Protocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    """The CA to trust (SSL protocols); None: the system's."""
    cert_file: Path | None = None
    """A client certificate (PEM) for mutual TLS, with `key_file`."""
    key_file: Path | None = None

    def __post_init__(self) -> None:
        sasl = self.protocol.startswith("SASL_")
        if sasl and not (self.sasl_mechanism and self.username and self.password is not None):
            raise ValueError(f"security protocol {self.protocol} needs a SASL mechanism, a user name and a password")
        if not sasl and self.sasl_mechanism:
            raise ValueError(f"a SASL mechanism ({self.sasl_mechanism}) needs security protocol SASL_PLAINTEXT or "
                             f"SASL_SSL, not {self.protocol}")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs both its certificate file and its key file")
        if not self.protocol.endswith("SSL") and (self.ca_file or self.cert_file):
            raise ValueError(f"TLS files are set but security protocol {self.protocol} does not use TLS")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.protocol.endswith("SSL"):
            return None
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file and self.key_file:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for every aiokafka client (producer, consumer, admin, plain client)."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if context := self.ssl_context():
            options["ssl_context"] = context
        if self.sasl_mechanism:
            options |= {"sasl_mechanism": self.sasl_mechanism, "sasl_plain_username": self.username,
                        "sasl_plain_password": self.password}
        return options

    def describe(self) -> str:
        """Who connects how, without the secret."""
        who = f" as {self.username!r} ({self.sasl_mechanism})" if self.sasl_mechanism else ""
        return f"{self.protocol}{who}"


async def diagnose(bootstrap: str, security: KafkaSecurity) -> KafkaAccessError | None:
    """Why a client could not connect, if the answer is an access problem; None if the broker is simply not
    reachable (worth retrying)."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        connection = await create_conn(host, int(port), request_timeout_ms=5000, **security.client_options())
    except (SaslAuthenticationFailed, UnsupportedSaslMechanismError) as exc:
        return KafkaAccessError(f"Kafka at {bootstrap} refused the credentials ({security.describe()}): {exc}")
    except ssl.SSLCertVerificationError as exc:
        return KafkaAccessError(f"Kafka at {bootstrap} presented a certificate this client does not trust "
                                f"({exc.verify_message}): set the CA file that signed it")
    except ssl.SSLError as exc:
        return KafkaAccessError(f"TLS with Kafka at {bootstrap} failed ({security.describe()}): {exc}")
    except KafkaConnectionError as exc:
        if security.protocol == "SSL" and security.cert_file is None and "closed" in str(exc):
            # TLS 1.3: a listener that requires a client certificate closes the connection after the handshake
            return KafkaAccessError(f"Kafka at {bootstrap} closed the connection after TLS ({security.describe()}): "
                                    "it requires a client certificate (CASCADE_KAFKA_SSL_CERTFILE and _KEYFILE)")
        return None
    except Exception:
        return None
    connection.close()
    return None
