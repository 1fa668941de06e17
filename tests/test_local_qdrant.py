"""`cascade qdrant` and the clusters the server benchmarks run on: real Qdrant servers on loopback."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import urllib.request

import orjson
from structlog.testing import capture_logs

from cascade.infra.local_qdrant import LocalQdrant
from cascade.services.settings import StoreSettings
from cascade.services.store import QdrantStore, StoredDocument
from tests.processes import CLI_HANG_GUARD_S


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return dict(orjson.loads(response.read()))


def test_cascade_qdrant_serves_until_sigterm() -> None:
    process = subprocess.Popen([sys.executable, "-m", "cascade.runtime.cli", "qdrant"], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline().decode()
        exported = process.stdout.readline().decode()
        url = exported.split("CASCADE_STORE_URL=")[1].split()[0]
        assert banner.startswith("Qdrant 1.18.3, one node: http://127.0.0.1:")
        assert _get(f"{url}/collections")["status"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=CLI_HANG_GUARD_S) == 0


def test_a_three_node_cluster_agrees_on_its_peers() -> None:
    with LocalQdrant(nodes=3) as cluster:
        assert len(cluster.urls) == 3
        for url in cluster.urls:  # every peer sees the other two through Raft
            result = _get(f"{url}/cluster")["result"]
            assert isinstance(result, dict) and result["status"] == "enabled" and len(result["peers"]) == 3


async def test_the_store_fails_over_to_another_peer_and_loses_nothing_acknowledged() -> None:
    """Collections of 3 shards with 2 replicas on 3 peers: the peer in use is killed (SIGKILL); reads and writes
    go on through the next peer, and every acknowledged write is there once it is back."""
    with LocalQdrant(nodes=3) as cluster:
        store = QdrantStore(StoreSettings(kind="qdrant", url=",".join(cluster.urls), shards=3))  # 2 copies: the default
        try:
            await store.ensure_collection("docs", 4, "m")
            await store.upsert("docs", [_doc(i) for i in range(50)])
            cluster.kill(0)
            with capture_logs() as logged:
                assert len(await store.search("docs", [1.0, 0.0, 0.0, 0.0], 10)) == 10
            assert [entry["next"] for entry in logged if entry["event"] == "qdrant.failover"] == [cluster.urls[1]]
            await store.upsert("docs", [_doc(i) for i in range(50, 100)])
            assert await store.count("docs") == 100
            await asyncio.to_thread(cluster.restart, 0)
        finally:
            await store.close()
        back = QdrantStore(StoreSettings(kind="qdrant", url=cluster.urls[0]))  # the restarted peer alone
        try:
            assert len(await back.stored_states("docs", [f"d{i}" for i in range(100)])) == 100
        finally:
            await back.close()


def _doc(i: int) -> StoredDocument:
    vector = [1.0, i / 100, 0.0, 0.0]
    norm = sum(x * x for x in vector) ** 0.5
    return StoredDocument(doc_id=f"d{i}", vector=[x / norm for x in vector], title="", text=f"doc {i}",
                          content_hash="h", model_id="m", ingested_at_ms=0.0)
