"""The AsyncAPI 3.0 document of Cascade's topics: enough for a client in any language to follow the contract.

    python -m scripts.asyncapi > contracts/asyncapi.json     # `make asyncapi`; a test fails when the file is stale

FastStream generates the channels, messages and JSON schemas from the topic registry (a build-time tool: the
services and the SDK never import FastStream). On top of that: each channel's address carries the topic prefix as
a parameter, the Kafka bindings give partitions, retention and the record key, every message lists the headers
that are read, and the operations say which role sends and which receives on each channel (from the least-
privilege ACLs, `cascade.infra.acls`). FastStream's `correlationId` (a `correlation_id` header) is removed:
Cascade neither reads nor echoes it; `request_id` is the correlation key.
"""

from __future__ import annotations

from typing import Any

import orjson
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from cascade.contracts import DEFAULT_PREFIX
from cascade.contracts.limits import MAX_MESSAGE_BYTES
from cascade.contracts.topics import SPECS, TENANT_TOPICS, Topic, TopicRegistry
from cascade.infra.acls import ROLE_GRANTS

__all__ = ["asyncapi_document"]

_BINDING_VERSION = "0.5.0"
_SERVER = "development"
_DESCRIPTION = (
    "Topics and message schemas of Cascade, a retrieve-then-rerank search backend on Kafka.\n\n"
    "Names: a client's channels are its tenant's namespace followed by the topic (the parameter `namespace`: the "
    "deployment's prefix, `cascade.` unless it sets `CASCADE_KAFKA_TOPIC_PREFIX`, for the default tenant; "
    "`<prefix>tenant.<name>.` for tenant <name>, made by `cascade tenants add`). The services' own channels "
    "(candidates, dead letters) are the prefix followed by the topic (the parameter `prefix`). The topics exist "
    "before any client runs; no client creates or deletes a topic. Where the cluster has ACLs, a tenant logs in as "
    "`<prefix><name>` and may use its own namespace only.\n\n"
    "Records: values are UTF-8 JSON objects of at most MAX_BYTES bytes (header `content-type: application/json`), "
    "validated strictly (unknown fields refused, the limits in each schema). Keys are UTF-8 strings, named per "
    "channel; records are partitioned by Kafka's default partitioner (murmur2 of the key bytes, as Java's client "
    "does; kafkajs 2: `Partitioners.DefaultPartitioner`), which keeps the events of one document in order. Times "
    "are epoch milliseconds (UTC) from 2001 up to 2100: a time in seconds or microseconds is refused.\n\n"
    "Request and answer: `request_id` is the correlation key of a request and its answers; no correlation header "
    "is read or echoed. A request names where its answer goes: `reply_to` = `{namespace}replies` with "
    "`reply_partition` = one of its partitions, which the client reads by assignment (no consumer group) from its "
    "end offset, dropping answers to requests it did not send; or no `reply_to`, and the answer goes to "
    "`{namespace}results`, which any reader may consume in a group of its own (named "
    "`{namespace}client.` and anything, where ACLs apply). A `reply_to` outside the request's "
    "namespace, or no valid partition, is answered `invalid_reply_to` on `{namespace}results`.\n\n"
    "Errors: a record that fails validation goes to `{prefix}dlq` with a reason code (DeadLetter.reason), and its "
    "requester, when its request_id (or, if that is unreadable, empty or over-long, its key) can serve as a request "
    "id, gets an error result (SearchResult.error.code). Documents get an ack with status `rejected`.\n\n"
    "Headers: only `content-type` and the W3C trace context (`traceparent`, `tracestate`) are read; a trace context "
    "that cannot be read is ignored, never a reason to refuse a record."
)
_HEADERS = {
    "type": "object",
    "properties": {
        "content-type": {"type": "string", "const": "application/json"},
        "traceparent": {"type": "string", "description": "W3C trace context (optional)."},
        "tracestate": {"type": "string", "description": "W3C trace context (optional)."},
    },
}


_PARAMETERS = {
    "namespace": {"default": DEFAULT_PREFIX, "description": "The tenant's namespace: the deployment's prefix for the "
                  "default tenant, `<prefix>tenant.<name>.` for tenant <name>."},
    "prefix": {"default": DEFAULT_PREFIX, "description": "The deployment's topic prefix."},
}


def _parameter(topic: Topic) -> str:
    """The parameter a channel's address starts with: a tenant's namespace, or the deployment's prefix."""
    return "namespace" if topic in TENANT_TOPICS else "prefix"


def _base_document(registry: TopicRegistry) -> dict[str, Any]:
    """FastStream's document: a channel, message and schema per topic."""
    broker = KafkaBroker("localhost:9092", description="Any Kafka cluster.")
    for topic, spec in SPECS.items():
        broker.publisher(registry.name(topic), title=topic.value, description=spec.description, schema=spec.message)
    document = AsyncAPI(broker, title="Cascade", version="1", description=_DESCRIPTION.replace(
        "MAX_BYTES", f"{MAX_MESSAGE_BYTES:,}")).to_specification()
    jsonable: dict[str, Any] = document.to_jsonable()
    return jsonable


def _roles_of(topic: Topic) -> dict[str, list[str]]:
    """Which roles receive (Read) and send (Write) on `topic`, by the ACLs each role is given."""
    roles: dict[str, list[str]] = {"receive": [], "send": []}
    for role, grants in ROLE_GRANTS.items():
        for grant in grants:
            if grant.prefixed or topic.value not in grant.topics:
                continue
            for operation, action in (("Read", "receive"), ("Write", "send")):
                if operation in grant.operations and role not in roles[action]:
                    roles[action].append(role)
    return roles


def asyncapi_document(registry: TopicRegistry | None = None) -> bytes:
    """The document as pretty, key-sorted JSON (stable bytes, so staleness is a plain comparison)."""
    registry = registry or TopicRegistry()
    document = _base_document(registry)
    operations: dict[str, Any] = {}
    for topic, spec in SPECS.items():  # FastStream keys channels and messages by the publisher's title
        channel = document["channels"][topic.value]
        message = document["components"]["messages"].pop(f"{topic.value}:Message")
        message.pop("correlationId", None)
        message |= {"title": f"{topic.value} record", "headers": _HEADERS, "bindings": {"kafka": {
            "bindingVersion": _BINDING_VERSION,
            "key": {"type": "string", "description": f"The record key: {spec.key}."}}}}
        document["components"]["messages"][topic.value] = message
        roles = _roles_of(topic)
        channel |= {
            "address": f"{{{_parameter(topic)}}}{topic.value}",
            "parameters": {_parameter(topic): _PARAMETERS[_parameter(topic)]},
            "description": f"{spec.description} Key: {spec.key}. Sent by: {', '.join(roles['send']) or 'none'}; "
                           f"received by: {', '.join(roles['receive']) or 'none'}.",
            "messages": {"record": {"$ref": f"#/components/messages/{topic.value}"}},
            "bindings": {"kafka": {"bindingVersion": _BINDING_VERSION, "partitions": spec.partitions,
                                   "topicConfiguration": {"retention.ms": spec.retention_ms}}},
        }
        for action, names in roles.items():
            for role in names:
                operations[f"{role}.{action}.{topic.value}"] = {
                    "action": action, "title": f"{role} {action}s {topic.value}",
                    "channel": {"$ref": f"#/channels/{topic.value}"},
                    "messages": [{"$ref": f"#/channels/{topic.value}/messages/record"}],
                }
    document["operations"] = operations
    document["servers"][_SERVER]["description"] = (
        "Any Kafka cluster (SASL_SSL with SCRAM or client certificates where secured; docs/security.md).")
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


if __name__ == "__main__":
    import sys

    sys.stdout.buffer.write(asyncapi_document())
