"""`cascade qdrant`: a local Qdrant server, or a cluster on loopback, in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

from cascade.infra.local_qdrant import QDRANT_VERSION, LocalQdrant, QdrantUnavailable

__all__ = ["run_qdrant"]


def run_qdrant(nodes: int) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with LocalQdrant(nodes) as qdrant:
            shape = f"a cluster of {nodes} peers (Raft)" if nodes > 1 else "one node"
            print(f"Qdrant {QDRANT_VERSION}, {shape}: {' '.join(qdrant.urls)}")
            cluster = f" CASCADE_STORE_SHARDS={nodes} CASCADE_STORE_REPLICAS=2" if nodes > 1 else ""
            print(f"export CASCADE_STORE_KIND=qdrant CASCADE_STORE_URL={','.join(qdrant.urls)}{cluster}"
                  "   # Ctrl-C stops it", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
    except QdrantUnavailable as exc:
        sys.exit(f"cascade qdrant: {exc}")
