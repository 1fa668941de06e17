"""The SDK through a cluster outage: a call that cannot reach the cluster raises, and leaves nothing open."""

from __future__ import annotations

import gc
import warnings

import pytest
from aiokafka.errors import KafkaConnectionError

from cascade.sdk.acks import AckWaiter, ReindexWaiter


@pytest.mark.parametrize("waiter_type", [AckWaiter, ReindexWaiter])
async def test_a_wait_that_cannot_reach_the_cluster_closes_its_consumer(
        waiter_type: type[AckWaiter] | type[ReindexWaiter]) -> None:
    """Each `index` or `reindex` during an outage used to leave an open consumer behind ("Unclosed
    AIOKafkaConsumer", its connections retried for ever)."""
    waiter = waiter_type("acks", bootstrap_servers="127.0.0.1:1", request_timeout_ms=2000)
    with pytest.raises(KafkaConnectionError):
        await waiter.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        del waiter
        gc.collect()
    assert [str(each.message) for each in caught if "Unclosed" in str(each.message)] == []
