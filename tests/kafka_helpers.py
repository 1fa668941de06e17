"""Producing raw records and collecting decoded ones, for tests that talk to the broker like any client."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import BaseModel

from cascade.contracts import decode

M = TypeVar("M", bound=BaseModel)


async def produce(bootstrap: str, topic: str, records: Iterable[tuple[str | None, bytes]],
                  partition: int | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key.encode() if key else None, partition=partition)
                   for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def eventually(done: Callable[[], bool | Awaitable[bool]], within_s: float, every_s: float = 0.1) -> None:
    """Wait until `done()` holds (or the coroutine it returns answers True), checking every `every_s` (state
    other tasks or the broker change, with no event to wait on)."""
    async with asyncio.timeout(within_s):
        while True:
            held = done()
            if await held if inspect.isawaitable(held) else held:
                return
            await asyncio.sleep(every_s)


class Collector:
    """Reads a topic from the beginning in the background, decoding every record as `model`."""

    def __init__(self, bootstrap: str, topic: str, model: type[M]) -> None:
        self.items: list[M] = []
        self._arrived = asyncio.Event()
        self._model = model
        self._consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"test-{uuid.uuid4()}",
                                          auto_offset_reset="earliest")
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Collector:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        async for record in self._consumer:
            self.items.append(decode(record.value or b"", self._model))
            self._arrived.set()

    async def wait_for(self, done: Callable[[list[M]], bool], within_s: float = 60.0) -> list[M]:
        async with asyncio.timeout(within_s):
            while not done(self.items):
                self._arrived.clear()
                await self._arrived.wait()
        return self.items

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
        await self._consumer.stop()
