"""A real Qdrant server, or a cluster of them, on loopback: for tests, benchmarks and `cascade qdrant`.

No Qdrant server can be installed from the package registries here, so the project's own build of it is used
(`../shared/bin/qdrant-1.18.3.xz`, recipe and checksums in `../shared/notes/qdrant-server.md`): decompressed once
per machine into the cache and checked against its checksum. `CASCADE_QDRANT_BINARY` names another binary. Each
launch gets free loopback ports and a fresh storage folder.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import orjson
import structlog

from cascade.infra.children import terminate
from cascade.infra.local_kafka import free_port

__all__ = ["QDRANT_VERSION", "LocalQdrant", "QdrantUnavailable", "ensure_qdrant_binary"]

QDRANT_VERSION = "1.18.3"
_BINARY_SHA256 = "43977b7a3517e83ccc22067e8a01f6fb2402f81499155554e5cfde89d5e862b9"
_ARCHIVE = Path(__file__).resolve().parents[4] / "shared" / "bin" / f"qdrant-{QDRANT_VERSION}.xz"
_CACHE_ROOT = Path(os.environ.get("CASCADE_CACHE_DIR", Path.home() / ".cache" / "cascade"))

log = structlog.get_logger(__name__)


class QdrantUnavailable(RuntimeError):
    """No Qdrant server binary: neither `CASCADE_QDRANT_BINARY` nor the project's archive."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_qdrant_binary(archive: Path = _ARCHIVE, cache_root: Path = _CACHE_ROOT) -> Path:
    """The server binary: `CASCADE_QDRANT_BINARY`, or the project's, decompressed from `archive` into the cache the
    first time on this machine and checked against its checksum."""
    if configured := os.environ.get("CASCADE_QDRANT_BINARY"):
        return Path(configured)
    binary = cache_root / f"qdrant-{QDRANT_VERSION}" / "qdrant"
    if binary.is_file():
        return binary
    if not archive.is_file():
        raise QdrantUnavailable(f"no Qdrant server binary: {archive} is missing (see ../shared/notes/qdrant-server.md "
                                "to build it) and CASCADE_QDRANT_BINARY names none")
    binary.parent.mkdir(parents=True, exist_ok=True)
    staging = binary.with_suffix(".tmp")
    with lzma.open(archive) as packed, staging.open("wb") as unpacked:
        shutil.copyfileobj(packed, unpacked, 1 << 20)
    if (found := _sha256(staging)) != _BINARY_SHA256:
        staging.unlink()
        raise QdrantUnavailable(f"{archive} decompresses to a binary with sha256 {found}, not {_BINARY_SHA256}")
    staging.chmod(0o755)
    staging.rename(binary)
    return binary


@dataclass
class _Node:
    command: list[str]
    env: dict[str, str]
    folder: Path
    url: str
    process: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        with (self.folder / "server.log").open("ab") as output:
            self.process = subprocess.Popen(self.command, cwd=self.folder, env=self.env, stdout=output,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def exited(self) -> bool:
        return self.process is None or self.process.poll() is not None


class LocalQdrant:
    """`nodes` Qdrant servers on loopback: one alone, or a cluster (peers over loopback, Raft consensus). Use as
    a context manager; `url` is the first node's, `urls` every node's."""

    def __init__(self, nodes: int = 1, startup_timeout_s: float = 60.0) -> None:
        self._nodes = nodes
        self._startup_timeout_s = startup_timeout_s
        self._workdir: Path | None = None
        self._running: list[_Node] = []

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self._running]

    @property
    def url(self) -> str:
        return self._running[0].url

    def storage(self, index: int = 0) -> Path:
        """Node `index`'s storage folder (its collections)."""
        return self._running[index].folder / "storage"

    def pid(self, index: int = 0) -> int:
        process = self._running[index].process
        assert process is not None, "the node is not running"
        return process.pid

    def start(self) -> LocalQdrant:
        binary = ensure_qdrant_binary()
        self._workdir = Path(tempfile.mkdtemp(prefix="cascade-qdrant-"))
        first_p2p = None
        for index in range(self._nodes):
            http, grpc, p2p = free_port(), free_port(), free_port()
            folder = self._workdir / f"node{index}"
            folder.mkdir()
            env = {**os.environ, "QDRANT__STORAGE__STORAGE_PATH": str(folder / "storage"),
                   "QDRANT__SERVICE__HTTP_PORT": str(http), "QDRANT__SERVICE__GRPC_PORT": str(grpc),
                   "QDRANT__TELEMETRY_DISABLED": "true", "QDRANT__LOG_LEVEL": "WARN"}
            arguments: list[str] = []
            if self._nodes > 1:
                env |= {"QDRANT__CLUSTER__ENABLED": "true", "QDRANT__CLUSTER__P2P__PORT": str(p2p)}
                arguments = ["--uri", f"http://127.0.0.1:{p2p}"]
                if first_p2p is not None:
                    arguments = ["--bootstrap", f"http://127.0.0.1:{first_p2p}", *arguments]
                first_p2p = first_p2p or p2p
            node = _Node([str(binary), *arguments], env, folder, f"http://127.0.0.1:{http}")
            node.launch()
            self._running.append(node)
            self._wait_until(partial(_answers, node.url), f"node {index} ready")
        if self._nodes > 1:
            self._wait_until(lambda: _peers(self.url) >= self._nodes, f"{self._nodes} peers in the cluster")
        log.info("qdrant.started", urls=self.urls)
        return self

    def _wait_until(self, done: Callable[[], bool], what: str) -> None:
        give_up_at = time.monotonic() + self._startup_timeout_s
        while not done():
            if any(node.exited() for node in self._running):
                self.stop()
                raise RuntimeError(f"a Qdrant node exited before {what}")
            if time.monotonic() > give_up_at:
                self.stop()
                raise TimeoutError(f"Qdrant: no {what} within {self._startup_timeout_s:g} s")
            time.sleep(0.1)

    def kill(self, index: int) -> None:
        """SIGKILL node `index`, keeping its storage and ports (a crash, for fault tests)."""
        process = self._running[index].process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self, index: int) -> None:
        """Launch node `index` again on its storage and ports (after `kill`); return once it answers."""
        self.kill(index)
        node = self._running[index]
        node.launch()
        self._wait_until(partial(_answers, node.url), f"node {index} ready again")

    def stop(self) -> None:
        for node in self._running:
            if node.process is not None:
                terminate(node.process)
        self._running = []
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> LocalQdrant:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _get(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return dict(orjson.loads(response.read()))
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _peers(url: str) -> int:
    cluster = _get(f"{url}/cluster")
    result = cluster.get("result") if cluster else None
    return len(result.get("peers", {})) if isinstance(result, dict) else 0

