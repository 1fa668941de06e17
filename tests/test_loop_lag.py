"""The loop-lag sampler: close samples while the process works, sparse ones while it idles."""

from __future__ import annotations

import asyncio
import time

import pytest
import structlog
from structlog.testing import LogCapture

from cascade.services import loop_lag
from cascade.services.loop_lag import watch_loop_lag


@pytest.mark.parametrize(("busy", "most"), [(True, 30), (False, 2)])
async def test_the_loop_is_sampled_closely_only_while_busy(busy: bool, most: int) -> None:
    """Sampling an idle loop 20 times a second cost about half an idle service's CPU (0.45% of a core each)."""
    samples: list[float] = []
    watching = asyncio.create_task(watch_loop_lag(samples.append, lambda: busy, interval_s=0.05,
                                                  idle_interval_s=1.0))
    await asyncio.sleep(1.5)
    watching.cancel()
    assert (len(samples) >= 10) == busy and len(samples) <= most


async def test_a_stall_is_observed_and_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    captured = LogCapture()
    monkeypatch.setattr(loop_lag, "log", structlog.wrap_logger(structlog.PrintLogger(), processors=[captured]))
    samples: list[float] = []
    watching = asyncio.create_task(loop_lag.watch_loop_lag(samples.append, interval_s=0.05, warn_s=0.1))
    await asyncio.sleep(0.1)
    time.sleep(0.3)  # noqa: ASYNC251 - the stall under test
    await asyncio.sleep(0.1)
    watching.cancel()
    assert max(samples) >= 0.25
    [warned] = [entry for entry in captured.entries if entry["event"] == "event_loop.stalled"]
    assert warned["lag_ms"] >= 250
