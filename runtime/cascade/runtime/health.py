"""The operator's port: `/metrics` (Prometheus text), `/healthz` (the process serves), `/readyz` (it can do
its work: Kafka answers, the consumers run, models and store are loaded), `/status` (what the process holds:
its store's collections, for `cascade status`), served by uvicorn in the process's own event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import uvicorn
from prometheus_client import CollectorRegistry, make_asgi_app

__all__ = ["HealthServer"]

Problems = Callable[[], Awaitable[list[str]]]
"""What keeps the process from being ready; empty when ready."""
Describe = Callable[[], Awaitable[dict[str, Any]]]
"""What the process holds, as JSON."""
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _respond(send: Send, status: int, body: bytes, content_type: bytes = b"text/plain") -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": body})


class HealthServer:
    def __init__(self, registry: CollectorRegistry, problems: Problems, describe: Describe, host: str,
                 port: int) -> None:
        self._metrics = make_asgi_app(registry)
        self._problems = problems
        self._describe = describe
        self._server = uvicorn.Server(uvicorn.Config(self._app, host=host, port=port, interface="asgi3",
                                                     lifespan="off", log_config=None, access_log=False))
        self._task: asyncio.Task[None] | None = None

    async def _app(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if path == "/metrics":
            await self._metrics(scope, receive, send)
        elif path == "/healthz":
            await _respond(send, 200, b"ok\n")
        elif path == "/readyz":
            problems = await self._problems()
            await _respond(send, 503 if problems else 200, orjson.dumps({"ready": not problems, "problems": problems}),
                           b"application/json")
        elif path == "/status":
            await _respond(send, 200, orjson.dumps(await self._describe()), b"application/json")
        else:
            await _respond(send, 404, b"not found: /metrics, /healthz, /readyz, /status\n")

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one picked for port 0)."""
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    async def _serve(self) -> None:
        config = self._server.config
        try:
            await self._server.serve()
        except SystemExit:  # uvicorn exits the process when it cannot listen
            raise OSError(f"the metrics and health server cannot listen on {config.host}:{config.port} (is the "
                          "port taken?): set CASCADE_METRICS_PORT (0 picks a free port)") from None

    async def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._serve(), name="health-server")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start (e.g. the port is taken)
                raise RuntimeError("the health server stopped before it started")
            await asyncio.sleep(0.01)
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._server.should_exit = True
            await self._task
            self._task = None
