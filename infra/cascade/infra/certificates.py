"""A throwaway certificate authority, a server certificate for a local TLS broker and client certificates it
signs (tests, demos).

PEM files, which both Kafka (`ssl.keystore.type=PEM`) and Python's `ssl` read. Never for production: the
keys are unencrypted and live next to the broker's data.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["TlsFiles", "issue_client_certificate", "make_tls_files"]


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    """What clients trust (CASCADE_KAFKA_SSL_CAFILE)."""
    ca_key: Path
    """What signs client certificates (`issue_client_certificate`); mode 0600."""
    server_cert: Path
    server_key: Path
    server_name: str
    """The server certificate's CN (its host): the broker's own principal where it presents it as a client."""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def make_tls_files(folder: Path, host: str = "127.0.0.1", days: int = 7) -> TlsFiles:
    """A fresh CA and a server certificate for `host` (an IP address or a DNS name) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Cascade local CA")).issuer_name(_name("Cascade local CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    try:
        alt_name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt_name = x509.DNSName(host)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(ca.subject)
              .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=days))
              .add_extension(x509.SubjectAlternativeName([alt_name]), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .sign(ca_key, hashes.SHA256()))
    files = TlsFiles(folder / "ca.pem", folder / "ca.key", folder / "server.pem", folder / "server.key", host)
    files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(ca_key, files.ca_key)
    files.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    _write_key(server_key, files.server_key)
    return files


def issue_client_certificate(ca_cert: Path, ca_key: Path, common_name: str, folder: Path, days: int = 7
                             ) -> tuple[Path, Path]:
    """A client certificate for `common_name` (the principal a broker that maps CN= names sees), signed by the CA
    of `ca_cert` and `ca_key`; its certificate and key (mode 0600) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signing_key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    assert isinstance(signing_key, ec.EllipticCurvePrivateKey)
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .sign(signing_key, hashes.SHA256()))
    cert_path, key_path = folder / f"{common_name}.pem", folder / f"{common_name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return cert_path, key_path
