"""Topic provisioning from the registry: create what is missing, check what exists. Safe to run repeatedly."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from contracts import TopicRegistry

__all__ = ["ProvisionReport", "TopicMismatchError", "provision_topics"]


class TopicMismatchError(RuntimeError):
    """An existing topic does not match the registry (too few partitions)."""


@dataclass
class ProvisionReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    described = await admin.describe_topics(names)
    return {
        topic["topic"]: len(topic["partitions"]) for topic in described if topic.get("error_code", 0) == 0
    }


async def _settled_partition_counts(
    admin: AIOKafkaAdminClient, wanted: dict[str, int], timeout_s: float = 15.0
) -> dict[str, int]:
    """Partition counts once new topics' metadata has reached the broker (creation returns before that)."""
    deadline = time.monotonic() + timeout_s
    while True:
        present = await _partition_counts(admin, list(wanted))
        if all(present.get(name, 0) > 0 for name in wanted) or time.monotonic() > deadline:
            return present
        await asyncio.sleep(0.1)


def _raise_refusals(response: Any) -> None:
    """CreateTopics answers per topic; a refusal (a missing ACL, a bad config) raises its Kafka error."""
    for topic, code, *message in response.topic_errors:
        if code not in (0, TopicAlreadyExistsError.errno):
            error = for_code(code)
            raise error(f"creating topic {topic}: {message[0] if message and message[0] else error.description}")


async def provision_topics(
    registry: TopicRegistry,
    replication_factor: int = 1,
    partitions: dict[str, int] | None = None,
    **client_options: Any,
) -> ProvisionReport:
    """Create every registry topic that is missing; raise TopicMismatchError if one has too few partitions.

    `partitions` overrides the registry's count per full topic name (a deployment may want more).
    """
    wanted = {name: (partitions or {}).get(name, spec.partitions) for name, spec in registry.all().items()}
    specs = registry.all()
    report = ProvisionReport()
    admin = AIOKafkaAdminClient(**client_options)
    await admin.start()
    try:
        present = await _partition_counts(admin, list(wanted))
        missing = [
            NewTopic(
                name, wanted[name], replication_factor,
                topic_configs={"retention.ms": str(specs[name].retention_ms)},
            )
            for name in wanted if name not in present
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another provisioner won the race
                _raise_refusals(await admin.create_topics(missing))
            report.created = [topic.name for topic in missing]
            present = await _settled_partition_counts(admin, wanted)
        report.existing = [name for name in wanted if name not in report.created]
        too_small = {name: (present.get(name, 0), count) for name, count in wanted.items()
                     if present.get(name, 0) < count}
        if too_small:
            details = ", ".join(f"{name} has {have} partitions, needs {need}"
                                for name, (have, need) in too_small.items())
            raise TopicMismatchError(f"topics do not match the registry: {details}")
        return report
    finally:
        await admin.close()
