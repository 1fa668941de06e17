"""A local broker in the foreground with the topics provisioned (`make kafka`, `cascade kafka`).

With CASCADE_KAFKA_BOOTSTRAP set, no broker is started: the topics of that cluster are provisioned instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading

from infra.local_kafka import KAFKA_VERSION, LocalKafka
from infra.provision import provision_topics
from services.settings import KafkaSettings

__all__ = ["run_kafka"]


def _provision(settings: KafkaSettings) -> str:
    report = asyncio.run(
        provision_topics(settings.topics, settings.replication_factor, **settings.client_options())
    )
    return f"topics created: {', '.join(report.created) or 'none'}; already present: {len(report.existing)}"


def run_kafka() -> None:
    settings = KafkaSettings()
    if settings.bootstrap:
        print(f"using the existing cluster {settings.bootstrap}; {_provision(settings)}")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalKafka() as kafka:
        summary = _provision(settings.model_copy(update={"bootstrap": kafka.bootstrap}))
        stats = kafka.stats()
        print(f"Kafka {KAFKA_VERSION} at {kafka.bootstrap}: started in {stats.startup_s:.1f} s, "
              f"broker RSS {stats.rss_mb:.0f} MB; {summary}")
        print(f"export CASCADE_KAFKA_BOOTSTRAP={kafka.bootstrap}   # Ctrl-C stops the broker", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
