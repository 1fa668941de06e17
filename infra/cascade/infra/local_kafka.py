"""A real Apache Kafka (KRaft mode, one node or a cluster on loopback) started from Maven Central jars, for tests,
benchmarks and `make run`.

No Docker and no Kafka package exist here, so the broker's runtime jars are fetched once per machine with
Maven into a cache folder keyed by the Kafka version, and each launch gets random free loopback ports and
a fresh data directory.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
from aiokafka import AIOKafkaClient

from cascade.contracts.security import KafkaSecurity
from cascade.contracts.topic_admin import replication_for
from cascade.infra.certificates import TlsFiles, make_tls_files
from cascade.infra.children import terminate

__all__ = [
    "KAFKA_VERSION",
    "BrokerStats",
    "LocalKafka",
    "SecuredListener",
    "ensure_kafka_jars",
    "free_port",
    "jaas_config",
    "kafka_bootstrap",
]

KAFKA_VERSION = "4.3.1"
_PR_SET_PDEATHSIG = 1
_RECIPE_DIR = Path(__file__).parent / "kafka"
_CACHE_ROOT = Path(os.environ.get("CASCADE_CACHE_DIR", Path.home() / ".cache" / "cascade"))

log = structlog.get_logger(__name__)


def ensure_kafka_jars(cache_root: Path = _CACHE_ROOT) -> Path:
    """Return the folder of broker jars, fetching them with Maven the first time on this machine (a folder
    per version of the recipe, so a changed pom.xml fetches anew)."""
    recipe = hashlib.sha256((_RECIPE_DIR / "pom.xml").read_bytes()).hexdigest()[:10]
    lib = cache_root / f"kafka-{KAFKA_VERSION}" / f"lib-{recipe}"
    if lib.is_dir():
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    with open(lib.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several test sessions may start at once
        if lib.is_dir():
            return lib
        staging = Path(tempfile.mkdtemp(dir=lib.parent, prefix="lib-"))
        log.info("kafka.fetch_jars", version=KAFKA_VERSION, into=str(lib))
        subprocess.run(
            ["mvn", "-q", "-B", "-f", str(_RECIPE_DIR / "pom.xml"), "dependency:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={staging}", f"-Dkafka.version={KAFKA_VERSION}"],
            check=True,
        )
        staging.rename(lib)
    return lib


def _die_with_parent() -> None:
    """Runs in the child before exec: the broker gets SIGTERM if the Python process that started it dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (what StorageTool prints).

    Like Kafka's own Uuid.randomUuid, never one starting with '-': StorageTool would read it as an option
    (that made 1 launch in 64 fail)."""
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return cluster_id


async def _metadata_ok(bootstrap: str, security: SecuredListener | None) -> bool:
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=2000,
                            **(security.admin_client_options() if security else {}))
    try:
        await client.bootstrap()
        # Ready means consumer groups work too: the group coordinator answers once __consumer_offsets exists.
        await client.coordinator_lookup(0, "cascade-readiness")
        return True
    except Exception:
        return False
    finally:
        await client.close()


def _broker_answers(bootstrap: str, security: SecuredListener | None = None) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    try:  # the cheap check first, so the client does not log connection errors while the JVM boots
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    # A worker thread owns its own event loop, so this works from sync code and from inside a running loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _metadata_ok(bootstrap, security)).result()


@dataclass(frozen=True)
class SecuredListener:
    """Clients connect with SASL_SSL (SCRAM-SHA-512) over a throwaway TLS certificate; StandardAuthorizer
    ACLs decide what each user may do. `admin` is the broker's own user and a super user. The controller
    listener (KRaft controllers do not speak SCRAM) requires TLS with a client certificate, and only the
    broker's own (its CN) is a super user there: a local process without it can neither list nor change ACLs."""

    users: dict[str, str] = field(repr=False)
    """User name -> password, created when the storage is formatted; must include `admin`."""
    admin: str = "admin"
    ca_file: Path | None = None
    """Set by LocalKafka.start: the CA clients must trust."""
    ca_key: Path | None = None
    """Set by LocalKafka.start: the CA's key, which signs client certificates (mode 0600)."""
    mtls_bootstrap: str = ""
    """Set by LocalKafka.start: a second listener, SSL with client certificates required; the principal is the
    certificate's CN (`User:<CN>`), so ACLs name it as they name a SCRAM login."""

    def security_for(self, user: str) -> KafkaSecurity:
        """How `user` connects: SCRAM-SHA-512 over TLS, trusting the broker's throwaway CA."""
        return KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", username=user,
                             password=self.users[user], ca_file=self.ca_file)

    def admin_client_options(self) -> dict[str, Any]:
        return self.security_for(self.admin).client_options()


_LOGIN_MODULES = {"PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
                  "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
                  "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule"}


def jaas_config(user: str, password: str, mechanism: str = "SCRAM-SHA-512") -> str:
    """The `sasl.jaas.config` value of a Java client or broker listener."""
    return f'{_LOGIN_MODULES[mechanism]} required username="{user}" password="{password}";'


def _secured_properties(security: SecuredListener, tls: TlsFiles, port: int, mtls_port: int) -> str:
    keystore = tls.server_key.with_name("server-keystore.pem")
    keystore.write_bytes(tls.server_key.read_bytes() + tls.server_cert.read_bytes())
    keystore.chmod(0o600)
    return "\n".join([
        f"listeners=SASL_SSL://127.0.0.1:{port},MTLS://127.0.0.1:{mtls_port},CONTROLLER://127.0.0.1:@CPORT@",
        f"advertised.listeners=SASL_SSL://127.0.0.1:{port},MTLS://127.0.0.1:{mtls_port}",
        "inter.broker.listener.name=SASL_SSL",
        "listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL,MTLS:SSL",
        "listener.name.mtls.ssl.client.auth=required",
        "listener.name.controller.ssl.client.auth=required",  # the broker's own certificate: no one else's
        "ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/,DEFAULT",
        "sasl.enabled.mechanisms=SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
        + jaas_config(security.admin, security.users[security.admin]),
        "ssl.keystore.type=PEM", f"ssl.keystore.location={keystore}",
        "ssl.truststore.type=PEM", f"ssl.truststore.location={tls.ca_cert}",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        f"super.users=User:{security.admin};User:{tls.server_name}",
        "allow.everyone.if.no.acl.found=false",
        "",
    ])


@dataclass(frozen=True)
class BrokerStats:
    startup_s: float
    rss_mb: float


@dataclass
class _Node:
    """One KRaft node (broker and controller in one JVM) of a local cluster."""

    node_id: int
    port: int
    controller_port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def _replication_properties(nodes: int) -> str:
    """Internal topics, and topics made with the broker's defaults, replicated as Cascade's own are."""
    factor, in_sync = replication_for(nodes)
    return "\n".join([
        f"offsets.topic.replication.factor={factor}",
        f"transaction.state.log.replication.factor={factor}", f"transaction.state.log.min.isr={in_sync}",
        f"share.coordinator.state.topic.replication.factor={factor}",
        f"share.coordinator.state.topic.min.isr={in_sync}",
        f"default.replication.factor={factor}", f"min.insync.replicas={in_sync}", "",
    ])


class LocalKafka:
    """Start and stop a throwaway KRaft cluster: one node, or `brokers` nodes each both broker and controller (a
    quorum of three survives the loss of one). Use as a context manager; `bootstrap` lists every broker."""

    def __init__(self, heap: str = "1g", startup_timeout_s: float = 90.0,
                 security: SecuredListener | None = None, brokers: int = 1) -> None:
        if security is not None and brokers > 1:
            raise ValueError("a secured local Kafka has one broker")
        self._heap = heap
        self.security = security
        self._startup_timeout_s = startup_timeout_s
        self._brokers = brokers
        self._nodes: list[_Node] = []
        self._workdir: Path | None = None
        self._java: list[str] = []
        self.bootstrap = ""
        self.startup_s = 0.0

    @property
    def controllers(self) -> str:
        """Every controller listener's address."""
        return ",".join(f"127.0.0.1:{node.controller_port}" for node in self._nodes)

    @property
    def addresses(self) -> dict[int, str]:
        """Each broker's address by node id."""
        return {node.node_id: node.address for node in self._nodes}

    def start(self) -> LocalKafka:
        """Format fresh data directories on random free ports and launch the nodes."""
        lib = ensure_kafka_jars()
        began = time.monotonic()
        self._workdir = Path(tempfile.mkdtemp(prefix="cascade-kafka-"))
        self._java = ["java", f"-Dlog4j2.configurationFile={_RECIPE_DIR / 'log4j2.properties'}", "-cp", f"{lib}/*"]
        self._nodes = [_Node(index + 1, free_port(), free_port(), self._workdir / f"node{index + 1}")
                       for index in range(self._brokers)]
        cluster_id = _cluster_id()
        voters = ",".join(f"{node.node_id}@127.0.0.1:{node.controller_port}" for node in self._nodes)
        self.bootstrap = ",".join(node.address for node in self._nodes)
        try:
            for node in self._nodes:
                node.folder.mkdir()
                self._format(node, cluster_id, voters)
            for node in self._nodes:
                self._launch(node, wait=False)
            for node in self._nodes:
                self._wait_until_ready(node)
        except BaseException:
            self.stop()  # no node or folder left behind by a start that failed half-way
            raise
        self.startup_s = time.monotonic() - began
        log.info("kafka.started", bootstrap=self.bootstrap, startup_s=round(self.startup_s, 2))
        return self

    def _format(self, node: _Node, cluster_id: str, voters: str) -> None:
        template = (_RECIPE_DIR / "server.properties.template").read_text()
        scram: list[str] = []
        if self.security is not None:
            tls, mtls_port = make_tls_files(node.folder / "tls"), free_port()
            self.security = replace(self.security, ca_file=tls.ca_cert, ca_key=tls.ca_key,
                                    mtls_bootstrap=f"127.0.0.1:{mtls_port}")
            template += _secured_properties(self.security, tls, node.port, mtls_port)  # overrides the template's
            for user, password in self.security.users.items():
                scram += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
        if self._brokers > 1:  # a static quorum of every node, instead of one standalone controller
            template = template.replace("controller.quorum.bootstrap.servers=", "#")
            template += f"controller.quorum.voters={voters}\n" + _replication_properties(self._brokers)
        (node.folder / "server.properties").write_text(
            template.replace("@PORT@", str(node.port)).replace("@CPORT@", str(node.controller_port))
            .replace("@DATA@", str(node.folder / "data")).replace("@NODE@", str(node.node_id)))
        arguments = node.folder / "format.args"  # the passwords go in a file, never on a command line
        arguments.touch(mode=0o600)
        arguments.write_text("\n".join(scram) + "\n")
        try:
            subprocess.run(
                [*self._java, "kafka.tools.StorageTool", "format", *(["--standalone"] if self._brokers == 1 else []),
                 "-t", cluster_id, "-c", str(node.folder / "server.properties"), *([f"@{arguments}"] if scram else [])],
                check=True, capture_output=True,
            )
        finally:
            arguments.unlink()

    def _launch(self, node: _Node, wait: bool = True) -> None:
        broker_log = open(node.folder / "broker.log", "ab")  # noqa: SIM115 - owned by the child process
        node.process = subprocess.Popen(
            [*self._java, "-Xms256m", f"-Xmx{self._heap}", "-XX:+UseSerialGC", "kafka.Kafka",
             str(node.folder / "server.properties")],
            stdout=broker_log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
        )
        broker_log.close()
        if wait:
            self._wait_until_ready(node)

    def _node(self, node_id: int | None) -> _Node:
        return self._nodes[0] if node_id is None else next(node for node in self._nodes if node.node_id == node_id)

    def kill(self, node_id: int | None = None) -> None:
        """SIGKILL a broker (the first if none is named), keeping its data directory and ports (a crash)."""
        node = self._node(node_id)
        if node.process is not None and node.process.poll() is None:
            node.process.kill()
            node.process.wait()

    def restart(self, node_id: int | None = None) -> None:
        """Launch a broker again on the same data directory and ports (after `kill`)."""
        self.kill(node_id)
        self._launch(self._node(node_id))

    def _wait_until_ready(self, node: _Node) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            assert node.process is not None
            if node.process.poll() is not None:
                raise RuntimeError(f"Kafka exited with {node.process.returncode}: {self.log_tail(node.node_id)}")
            if _broker_answers(node.address, self.security):
                return
            time.sleep(0.3)
        raise TimeoutError(f"Kafka did not answer within {self._startup_timeout_s}s: {self.log_tail(node.node_id)}")

    def log_tail(self, node_id: int | None = None, lines: int = 30) -> str:
        broker_log = self._node(node_id).folder / "broker.log"
        if not broker_log.exists():
            return ""
        return "\n".join(broker_log.read_text(errors="replace").splitlines()[-lines:])

    def stats(self) -> BrokerStats:
        """Start-up time and resident memory of the (first) broker process (from /proc)."""
        process = self._nodes[0].process
        assert process is not None
        status = Path(f"/proc/{process.pid}/status").read_text()
        rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return BrokerStats(startup_s=self.startup_s, rss_mb=rss_kb / 1024)

    def stop(self) -> None:
        for node in self._nodes:
            if node.process is not None:
                terminate(node.process)
            node.process = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        self.stop()


@contextlib.contextmanager
def kafka_bootstrap(existing: str | None) -> Iterator[str]:
    """Yield `existing` when a cluster is configured, else the address of a freshly launched local broker."""
    if existing:
        yield existing
        return
    with LocalKafka() as kafka:
        yield kafka.bootstrap
