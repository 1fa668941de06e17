"""Kafka's own command-line tools, from the same jars as the local broker (`cascade kafka-tool NAME ...`).

Each tool gets `--bootstrap-server` and a `--command-config` written from Cascade's security settings (a 0600
file in a private folder, removed afterwards), so the same commands work against a plain or a secured cluster.
`alter_user` sets a user's SCRAM credentials and client quotas through `configs` (Kafka's ConfigCommand), the
password in such a file too: it is never on a command line.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cascade.contracts.security import KafkaSecurity
from cascade.infra.local_kafka import ensure_kafka_jars, jaas_config

__all__ = ["TOOLS", "KafkaToolFailed", "alter_user", "client_properties", "run_tool"]

_LOG_CONFIG = Path(__file__).parent / "kafka" / "tools-log4j2.properties"

TOOLS = {
    "topics": "org.apache.kafka.tools.TopicCommand",
    "consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "configs": "kafka.admin.ConfigCommand",
}


class KafkaToolFailed(RuntimeError):
    """A Kafka tool run on Cascade's behalf exited with an error (its output is attached)."""


def client_properties(security: KafkaSecurity, folder: Path) -> str:
    """A Java client's properties for `security`; a client certificate is joined with its key in `folder`."""
    lines = [f"security.protocol={security.protocol}"]
    if security.sasl_mechanism:
        login = jaas_config(security.username or "", security.password or "", security.sasl_mechanism)
        lines += [f"sasl.mechanism={security.sasl_mechanism}", f"sasl.jaas.config={login}"]
    if security.ca_file:
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={security.ca_file}"]
    if security.cert_file and security.key_file:
        keystore = folder / "client-keystore.pem"
        keystore.touch(mode=0o600)
        keystore.write_bytes(security.key_file.read_bytes() + security.cert_file.read_bytes())
        lines += ["ssl.keystore.type=PEM", f"ssl.keystore.location={keystore}"]
    return "\n".join(lines) + "\n"


def _command(name: str, arguments: Sequence[str], bootstrap: str, security: KafkaSecurity, private: Path
             ) -> list[str]:
    config = private / "client.properties"
    config.touch(mode=0o600)
    config.write_text(client_properties(security, private))
    given = set(arguments)
    return ["java", f"-Dlog4j2.configurationFile={_LOG_CONFIG}", "-cp", f"{ensure_kafka_jars()}/*", TOOLS[name],
            *([] if "--bootstrap-server" in given else ["--bootstrap-server", bootstrap]),
            *([] if "--command-config" in given else ["--command-config", str(config)]),
            *arguments]


def run_tool(name: str, arguments: Sequence[str], bootstrap: str, security: KafkaSecurity) -> int:
    """Run tool `name` in the foreground (stdin and stdout are the caller's); its exit status."""
    with tempfile.TemporaryDirectory(prefix="cascade-kafka-tool-") as private:  # mode 0700
        return subprocess.run(_command(name, arguments, bootstrap, security, Path(private)), check=False).returncode


def alter_user(user: str, bootstrap: str, admin: KafkaSecurity, *, add: dict[str, str] | None = None,
               delete: Sequence[str] = ()) -> None:
    """Add (or replace) configs of `user`, e.g. `SCRAM-SHA-512` credentials (`iterations=8192,password=...`)
    or quotas (`producer_byte_rate`), and delete others (Kafka takes credentials and quotas in separate calls);
    as the admin user `admin`. Raises KafkaToolFailed."""
    with tempfile.TemporaryDirectory(prefix="cascade-kafka-tool-") as private:  # mode 0700
        arguments = ["--alter", "--entity-type", "users", "--entity-name", user]
        if add:
            configs = Path(private) / "configs.properties"
            configs.touch(mode=0o600)
            configs.write_text("".join(f"{key}={value}\n" for key, value in add.items()))
            arguments += ["--add-config-file", str(configs)]
        if delete:
            arguments += ["--delete-config", ",".join(delete)]
        done = subprocess.run(_command("configs", arguments, bootstrap, admin, Path(private)), check=False,
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise KafkaToolFailed(f"changing user {user!r}'s configs failed: {(done.stderr or done.stdout)[-2000:]}")
