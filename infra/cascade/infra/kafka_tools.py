"""Kafka's own command-line tools, from the same jars as the local broker (`cascade kafka-tool NAME ...`).

Each tool gets `--bootstrap-server` and a `--command-config` written from Cascade's security settings (a 0600
file in a private folder, removed afterwards), so the same commands work against a plain or a secured cluster.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cascade.contracts.security import KafkaSecurity
from cascade.infra.local_kafka import ensure_kafka_jars, jaas_config

__all__ = ["TOOLS", "client_properties", "run_tool"]

_LOG_CONFIG = Path(__file__).parent / "kafka" / "tools-log4j2.properties"

TOOLS = {
    "topics": "org.apache.kafka.tools.TopicCommand",
    "consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "get-offsets": "org.apache.kafka.tools.GetOffsetShell",
}


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


def run_tool(name: str, arguments: Sequence[str], bootstrap: str, security: KafkaSecurity) -> int:
    """Run tool `name` in the foreground (stdin and stdout are the caller's); its exit status."""
    lib = ensure_kafka_jars()
    with tempfile.TemporaryDirectory(prefix="cascade-kafka-tool-") as private:  # mode 0700
        config = Path(private) / "client.properties"
        config.touch(mode=0o600)
        config.write_text(client_properties(security, Path(private)))
        given = set(arguments)
        command = ["java", f"-Dlog4j2.configurationFile={_LOG_CONFIG}", "-cp", f"{lib}/*",
                   TOOLS[name],
                   *([] if "--bootstrap-server" in given else ["--bootstrap-server", bootstrap]),
                   *([] if "--command-config" in given else ["--command-config", str(config)]),
                   *arguments]
        return subprocess.run(command, check=False).returncode
