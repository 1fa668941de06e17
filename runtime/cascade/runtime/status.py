"""`cascade status`: what an operator checks first. Topics (partitions, retention), each consumer group of the
topic prefix (state, members and their partitions, lag per partition) and the store's collections (points,
indexed share).

The embedded store belongs to the process that serves it, so its collections are asked of that process
(`GET /status` on its metrics port), and only their names are read from its folder when none answers (opening it
would take its lock and tidy its folders under a running build); a Qdrant server is read directly.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import GroupAuthorizationFailedError, KafkaError

from cascade.contracts.topic_admin import partition_counts
from cascade.infra.acls import ROLE_GRANTS
from cascade.services.lag import group_lag
from cascade.services.settings import KafkaSettings, StoreSettings
from cascade.services.store import VectorStore, collection_names, open_store

__all__ = ["CollectionStatus", "GroupStatus", "Status", "TopicStatus", "collection_status", "format_status",
           "gather_status", "status_json"]


@dataclass(frozen=True)
class TopicStatus:
    name: str
    partitions: int
    retention_ms: int | None


@dataclass(frozen=True)
class MemberStatus:
    client_id: str
    host: str
    partitions: list[str]
    """`topic:partition` assigned to this member."""


@dataclass(frozen=True)
class GroupStatus:
    group: str
    state: str
    members: list[MemberStatus]
    lag: dict[str, int]
    """Per `topic:partition`: log end offset minus committed offset."""


@dataclass(frozen=True)
class CollectionStatus:
    name: str
    points: int | None
    """None when only the serving process could say (an embedded store it did not answer for)."""
    indexed_share: float | None
    """Share of the points in the HNSW index; the rest is searched brute force until the next build."""


@dataclass
class Status:
    topics: list[TopicStatus] = field(default_factory=list)
    groups: list[GroupStatus] = field(default_factory=list)
    collections: list[CollectionStatus] = field(default_factory=list)
    store_source: str = ""
    groups_hidden: list[str] = field(default_factory=list)
    """Groups of Cascade's services this login may not describe (they may exist: Kafka does not say)."""


async def collection_status(store: VectorStore) -> list[CollectionStatus]:
    found = []
    for name in sorted(await store.collections()):
        points = await store.count(name)
        pending = await store.pending_index_points(name)
        found.append(CollectionStatus(name, points, round(1 - pending / points, 4) if points else 1.0))
    return found


async def _topics(admin: AIOKafkaAdminClient, names: list[str]) -> list[TopicStatus]:
    described = await partition_counts(admin, names)
    retention: dict[str, int] = {}
    if described:
        resources = [ConfigResource(ConfigResourceType.TOPIC, name, configs={"retention.ms": None})
                     for name in described]
        for response in await admin.describe_configs(resources):
            for resource in response.to_object()["resources"]:
                for entry in resource["config_entries"]:
                    retention[resource["resource_name"]] = int(entry["config_value"])
    return [TopicStatus(name, described[name], retention.get(name)) for name in names if name in described]


def _members(description: dict[str, Any]) -> list[MemberStatus]:
    members = []
    for member in description["members"]:
        assignment = (ConsumerProtocolMemberAssignment.decode(member["member_assignment"]).assignment
                      if member["member_assignment"] else [])
        members.append(MemberStatus(member["client_id"], member["client_host"].lstrip("/"),
                                    [f"{topic}:{p}" for topic, partitions in assignment for p in sorted(partitions)]))
    return sorted(members, key=lambda member: member.client_id)


SERVICE_GROUPS = sorted({group for grants in ROLE_GRANTS.values() for grant in grants if not grant.prefixed
                         for group in grant.groups})
"""The consumer groups of Cascade's services, after the topic prefix."""


async def _hidden(admin: AIOKafkaAdminClient, prefix: str, listed: list[str]) -> list[str]:
    """Cascade's groups this login may not describe: Kafka leaves them out of its listing rather than refusing."""
    hidden = []
    for group in SERVICE_GROUPS:
        if (name := f"{prefix}{group}") in listed:
            continue
        try:
            await admin.describe_consumer_groups([name])
        except GroupAuthorizationFailedError:
            hidden.append(name)
        except KafkaError:  # no coordinator yet (a fresh cluster): nothing to tell
            pass
    return hidden


async def _groups(admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, names: list[str]) -> list[GroupStatus]:
    groups = []
    for name in names:  # one group a request: aiokafka 0.14 fails to decode an answer describing several
        [response] = await admin.describe_consumer_groups([name])
        [description] = response.to_object()["groups"]
        lag = await group_lag(admin, consumer, name)
        groups.append(GroupStatus(name, description["state"], _members(description),
                                  {f"{tp.topic}:{tp.partition}": lag[tp] for tp in sorted(lag)}))
    return groups


def _ask_serving_process(status_url: str) -> list[CollectionStatus] | None:
    try:
        with urllib.request.urlopen(status_url, timeout=5) as response:
            return [CollectionStatus(**each) for each in orjson.loads(response.read())["collections"]]
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


async def gather_status(kafka: KafkaSettings, store: StoreSettings, status_url: str) -> Status:
    status = Status()
    admin = AIOKafkaAdminClient(**kafka.client_options())
    consumer = AIOKafkaConsumer(**kafka.client_options())
    await admin.start()
    await consumer.start()
    try:
        status.topics = await _topics(admin, list(kafka.topics.all()))
        prefix = kafka.topic_prefix
        listed = sorted(group for group, *_ in await admin.list_consumer_groups() if group.startswith(prefix))
        status.groups = await _groups(admin, consumer, listed)
        status.groups_hidden = await _hidden(admin, prefix, listed)
    finally:
        await consumer.stop()
        await admin.close()
    served = None if store.kind == "qdrant" else await asyncio.to_thread(_ask_serving_process, status_url)
    if served is not None:
        status.collections, status.store_source = served, f"asked the serving process at {status_url}"
    elif store.kind == "qdrant":
        opened = open_store(store)
        try:
            status.collections = await collection_status(opened)
        finally:
            await opened.close()
        status.store_source = f"read {store.url}"
    else:  # never opened here: it is its serving process's (opening takes its lock and tidies its folders)
        names = collection_names(store.path)  # the folder's listing, the store not opened
        status.collections = [CollectionStatus(name, None, None) for name in names]
        status.store_source = (f"names only, from {store.path}: no process answered at {status_url}, and the "
                               "embedded store is read through the process serving it (--process names its URL)")
    return status


def _retention(ms: int | None) -> str:
    if ms is None:
        return "?"
    if ms < 0:
        return "forever"
    return f"{ms / 3_600_000:g} h" if ms % 3_600_000 == 0 else f"{ms / 1000:g} s"


def _by_topic(partitions: dict[str, str]) -> str:
    """`{"t:0": "a", "t:1": "b"}` as `t[0=a 1=b]` (or `t[0,1]` when the values are empty)."""
    topics: dict[str, list[str]] = {}
    for name, value in partitions.items():
        topic, partition = name.rsplit(":", 1)
        topics.setdefault(topic, []).append(f"{partition}={value}" if value else partition)
    separator = " " if any(partitions.values()) else ","
    return "  ".join(f"{topic}[{separator.join(values)}]" for topic, values in topics.items())


def format_status(status: Status) -> str:
    lines = ["topics"]
    lines += [f"  {topic.name:<32} {topic.partitions:>3} partitions   retention {_retention(topic.retention_ms)}"
              for topic in status.topics]
    lines.append("consumer groups")
    if not status.groups and not status.groups_hidden:
        lines.append("  none yet")
    if status.groups_hidden:
        lines.append(f"  access denied: this login may not describe {', '.join(status.groups_hidden)} (grant it "
                     "Describe on them, as the operator role has, to see members and lag)")
    for group in status.groups:
        lines.append(f"  {group.group}  {group.state}, {len(group.members)} member(s), "
                     f"lag {sum(group.lag.values())}")
        lines += [f"    member {member.client_id} ({member.host}): "
                  f"{_by_topic(dict.fromkeys(member.partitions, '')) or 'no partitions'}" for member in group.members]
        if group.lag:
            lines.append(f"    lag {_by_topic({name: str(lag) for name, lag in group.lag.items()})}")
    lines.append(f"collections ({status.store_source})")
    if not status.collections:
        lines.append("  none yet")
    lines += [f"  {each.name:<32} {each.points:>9,} points   {each.indexed_share:.0%} indexed"
              if each.points is not None and each.indexed_share is not None else f"  {each.name:<32}         ? points"
              for each in status.collections]
    return "\n".join(lines)


def status_json(status: Status) -> bytes:
    return orjson.dumps(asdict(status), option=orjson.OPT_INDENT_2)
