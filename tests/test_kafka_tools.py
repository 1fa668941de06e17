"""Kafka's own console tools against Cascade's topics, as a plain Kafka user would drive them (README commands)."""

from __future__ import annotations

import asyncio

import orjson

from cascade.contracts import SearchRequest, Topic, encode
from cascade.runtime.process import CascadeProcess
from tests.conftest import client_for
from tests.processes import run_cli, service_environment


async def _tool(process: CascadeProcess, *arguments: str, stdin: bytes = b"") -> str:
    done = await asyncio.to_thread(run_cli, service_environment(process.settings, "tools"), "kafka-tool", *arguments,
                                   stdin=stdin)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return done.stdout.decode()


async def test_console_producer_asks_and_console_consumer_reads_the_answer(first_stage: CascadeProcess) -> None:
    topics = first_stage.settings.kafka.topics
    async with client_for(first_stage) as client:
        await client.index([{"doc_id": f"d{i}", "text": f"document {i}"} for i in range(5)], collection="c")
    request = SearchRequest(request_id="console-1", collection="c", query="document 2", mode="bi", k=2)
    await _tool(first_stage, "console-producer", "--topic", topics.name(Topic.QUERIES),
                "--reader-property", "parse.key=true", "--reader-property", "key.separator=\t",
                stdin=b"console-1\t" + encode(request) + b"\n")

    answer = await _tool(first_stage, "console-consumer", "--topic", topics.name(Topic.RESULTS), "--from-beginning",
                         "--max-messages", "1", "--timeout-ms", "30000", "--formatter-property", "print.key=true",
                         "--formatter-property", "print.headers=true")
    headers, key, value = answer.strip().split("\t")
    assert key == "console-1" and "content-type:application/json" in headers
    result = orjson.loads(value)
    assert result["request_id"] == "console-1" and len(result["hits"]) == 2

    described = await _tool(first_stage, "topics", "--describe", "--topic", topics.name(Topic.CANDIDATES))
    assert "PartitionCount: 6" in described
    groups = await _tool(first_stage, "consumer-groups", "--describe", "--group",
                         f"{first_stage.settings.kafka.topic_prefix}query")
    assert topics.name(Topic.QUERIES) in groups
