"""Stopping the servers the local tools start (Kafka brokers, Qdrant nodes)."""

from __future__ import annotations

import subprocess

__all__ = ["terminate"]


def terminate(process: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGTERM, and SIGKILL if it has not exited within `grace_s`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
