"""`cascade qdrant` and the clusters the server benchmarks run on: real Qdrant servers on loopback."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request

import orjson

from infra.local_qdrant import LocalQdrant
from tests.processes import CLI_HANG_GUARD_S


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return dict(orjson.loads(response.read()))


def test_cascade_qdrant_serves_until_sigterm() -> None:
    process = subprocess.Popen([sys.executable, "-m", "runtime.cli", "qdrant"], stdout=subprocess.PIPE)
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
