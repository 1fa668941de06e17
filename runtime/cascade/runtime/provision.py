"""Topic provisioning from the registry: create what is missing, grow what may grow, check the rest. Safe to run
repeatedly, and by every process at start."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from aiokafka.errors import for_code

from cascade.contracts import TopicRegistry
from cascade.contracts.topic_admin import TopicToCreate, create_topics, partition_counts

__all__ = ["ProvisionReport", "TopicMismatchError", "provision_topics"]


class TopicMismatchError(RuntimeError):
    """An existing topic that may not grow has fewer partitions than the registry asks for."""


@dataclass
class ProvisionReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    grown: list[str] = field(default_factory=list)
    """Existing growable topics whose partitions were raised."""


async def _settled_partition_counts(
    admin: AIOKafkaAdminClient, wanted: dict[str, int], timeout_s: float = 15.0
) -> dict[str, int]:
    """Partition counts once new topics and partitions have reached the broker's metadata (creating them
    returns before that)."""
    deadline = time.monotonic() + timeout_s
    while True:
        present = await partition_counts(admin, list(wanted))
        if all(present.get(name, 0) >= count for name, count in wanted.items()) or time.monotonic() > deadline:
            return present
        await asyncio.sleep(0.1)


async def _grow(admin: AIOKafkaAdminClient, counts: dict[str, int]) -> None:
    response = await admin.create_partitions({name: NewPartitions(count) for name, count in counts.items()})
    for topic, code, message in response.topic_errors:
        if code != 0:
            error = for_code(code)
            raise error(f"adding partitions to {topic}: {message or error.description}")


async def provision_topics(registry: TopicRegistry, replication_factor: int | None = None, **client_options: Any
                           ) -> ProvisionReport:
    """Create every registry topic that is missing (replicated `replication_factor` times, or as the cluster's
    size calls for: `replication_for`) and raise the partitions of a growable topic (queries,
    candidates) to the registry's count; raise TopicMismatchError if another topic has too few."""
    wanted = {name: spec.partitions for name, spec in registry.all().items()}
    specs = registry.all()
    report = ProvisionReport()
    admin = AIOKafkaAdminClient(**client_options)
    await admin.start()
    try:
        present = await partition_counts(admin, list(wanted))
        missing = [TopicToCreate(name, wanted[name], {"retention.ms": str(specs[name].retention_ms)})
                   for name in wanted if name not in present]
        if missing:
            await create_topics(admin, missing, replication_factor)  # one another provisioner made meanwhile stays
            report.created = [topic.name for topic in missing]
        report.existing = [name for name in wanted if name not in report.created]
        grow = {name: count for name, count in wanted.items()
                if name in registry.growable() and 0 < present.get(name, count) < count}
        if grow:
            await _grow(admin, grow)
            report.grown = sorted(grow)
        if missing or grow:
            changed = {*report.created, *grow}
            present = await _settled_partition_counts(
                admin, {name: count if name in changed else 1 for name, count in wanted.items()})
        too_small = {name: (present.get(name, 0), count) for name, count in wanted.items()
                     if present.get(name, 0) < count}
        if too_small:
            details = ", ".join(f"{name} has {have} partitions, needs {need}"
                                for name, (have, need) in too_small.items())
            raise TopicMismatchError(f"topics do not match the registry: {details}")
        return report
    finally:
        await admin.close()
