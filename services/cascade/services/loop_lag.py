"""How late the event loop runs a timer: the time something held it (CPU work on the loop, a blocking call).

A service's event loop polls Kafka, heartbeats its consumer groups and answers `/metrics`; work that holds it
for seconds gets the member evicted (its session expires) and stalls every request behind it. This samples
the loop every `interval_s` while the process is busy (less often when idle) and reports each sample's lateness;
a stall over `warn_s` is logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

__all__ = ["watch_loop_lag"]

log = structlog.get_logger(__name__)


async def watch_loop_lag(observe: Callable[[float], None], busy: Callable[[], bool] = lambda: True,
                         interval_s: float = 0.05, idle_interval_s: float = 1.0, warn_s: float = 0.1) -> None:
    """Until cancelled: sleep `interval_s` (`idle_interval_s` while not `busy`: an idle loop has nothing to stall
    it, and waking it 20 times a second cost half an idle service's CPU), and `observe` how much later than that
    the loop woke up (seconds)."""
    loop = asyncio.get_running_loop()
    while True:
        interval = interval_s if busy() else idle_interval_s
        began = loop.time()
        await asyncio.sleep(interval)
        lag = max(loop.time() - began - interval, 0.0)
        observe(lag)
        if lag > warn_s:
            log.warning("event_loop.stalled", lag_ms=round(lag * 1000, 1),
                        consequence="polls, heartbeats and answers waited that long")
