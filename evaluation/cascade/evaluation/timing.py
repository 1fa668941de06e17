"""Running many awaitables with bounded concurrency, a progress bar, and each one's latency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from tqdm import tqdm

__all__ = ["timed_gather"]

T = TypeVar("T")


async def timed_gather(items: Sequence[T], work: Callable[[T], Awaitable[object]], concurrency: int,
                       desc: str) -> list[tuple[T, float]]:
    """Await `work(item)` for every item, at most `concurrency` at once: (item, milliseconds), in completion order."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[tuple[T, float]] = []

    with tqdm(total=len(items), desc=desc, unit="item") as bar:
        async def one(item: T) -> None:
            async with gate:
                began = time.perf_counter()
                await work(item)
                latencies.append((item, (time.perf_counter() - began) * 1000))
            bar.update()

        await asyncio.gather(*(one(item) for item in items))
    return latencies
