"""A model-based check of offsets: random interleavings of polls, confirmations, failures, refused sends and
rebalances drive the real BatchConsumer and OffsetCommitter over a fake broker, against the reference model
"every record is handled at least once; no commit passes a record not yet handled" (handled: in a batch whose
outputs the cluster confirmed). Used by tests/test_offsets_model.py and scripts/bench_offsets.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from cascade.services.faults import ClusterFault
from tests.fake_partitions import FakeConsumer, FakeSender, batch_consumer, settle, stop_consuming

PARTITIONS = 2
LENGTH = 12
"""Records per partition: enough for several batches and rewinds in one schedule."""
_DRAIN_ROUNDS = 200


@dataclass
class Tally:
    """What every schedule run so far found."""

    schedules: int = 0
    skipped_records: int = 0


class OffsetsModel(RuleBasedStateMachine):
    tally = Tally()

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.sender = FakeSender()
        self.broker = FakeConsumer(PARTITIONS, LENGTH)
        self.handled: set[tuple[int, int]] = set()
        self.checked_commits = 0

    @initialize(depth=st.integers(0, 2))
    def start(self, depth: int) -> None:
        """Depth 0 settles each batch before the next poll; 1 and 2 pipeline."""
        self.consumer = batch_consumer(self.sender, depth)
        self.task = self.loop.create_task(self.consumer.consume(self.broker))
        self._run()

    def _run(self) -> None:
        self.loop.run_until_complete(settle())

    def _undecided(self) -> list[int]:
        return [index for index, (_, confirmed) in enumerate(self.sender.pending) if not confirmed.done()]

    def _decide(self, pick: int, error: BaseException | None) -> None:
        undecided = self._undecided()
        records, confirmed = self.sender.pending[undecided[pick % len(undecided)]]
        if error is None:
            self.handled |= {(record.partition, record.offset) for record in records}
            confirmed.set_result(None)
        else:
            confirmed.set_exception(error)
        self._run()

    @rule(partition=st.integers(0, PARTITIONS - 1), records=st.integers(1, 5))
    def poll(self, partition: int, records: int) -> None:
        self.broker.allow(self.broker.partitions[partition], records)
        self._run()

    @rule(records=st.integers(1, 5))
    def poll_every_partition(self, records: int) -> None:
        """One batch across partitions: a rewind or rebalance may cover one of its partitions and not another."""
        self.broker.allow(None, records)
        self._run()

    @precondition(lambda self: self._undecided())
    @rule(pick=st.integers(0, 1_000))
    def confirm(self, pick: int) -> None:
        self._decide(pick, None)

    @precondition(lambda self: self._undecided())
    @rule(pick=st.integers(0, 1_000))
    def fail(self, pick: int) -> None:
        self._decide(pick, ClusterFault("unconfirmed"))

    @rule()
    def refuse_next_send(self) -> None:
        self.sender.refuse_next = True

    @rule(partition=st.integers(0, PARTITIONS - 1))
    def rebalance(self, partition: int) -> None:
        self.broker.rebalance(self.consumer, [self.broker.partitions[partition]])
        self._run()

    @rule(partition=st.integers(0, PARTITIONS - 1))
    def revoke_and_later_assign(self, partition: int) -> None:
        """Revoked (its batches settle while another member owns it), then assigned back."""
        moved = self.broker.partitions[partition]
        self.broker.assigned.discard(moved)
        self.consumer.committer.forget([moved])
        self._run()
        self.broker.assigned.add(moved)
        self.broker.rebalance(self.consumer, [moved])
        self._run()

    @invariant()
    def commits_never_pass_an_unhandled_record(self) -> None:
        for offsets in self.broker.commits[self.checked_commits:]:
            for partition, committed in offsets.items():
                unhandled = [offset for offset in range(committed)
                             if (partition.partition, offset) not in self.handled]
                assert not unhandled, f"commit {committed} of {partition} passes unhandled records {unhandled}"
        self.checked_commits = len(self.broker.commits)

    @invariant()
    def the_consumer_keeps_running(self) -> None:
        assert not self.task.done(), self.task

    def teardown(self) -> None:
        """Confirm everything from now on and poll until the log is consumed: nothing may be left behind."""
        try:
            for _ in range(_DRAIN_ROUNDS):
                if self._drained():
                    break
                self.sender.refuse_next = False
                for index in self._undecided():
                    self._decide(index, None)
                for partition in self.broker.partitions:
                    self.broker.allow(partition, LENGTH)
                self._run()
            self.commits_never_pass_an_unhandled_record()
            skipped = [(p, offset) for p in range(PARTITIONS) for offset in range(LENGTH)
                       if (p, offset) not in self.handled]
            type(self).tally.schedules += 1
            type(self).tally.skipped_records += len(skipped)
            assert not skipped, f"records never handled: {skipped}"
            assert self._drained(), f"not drained: committed {self.broker.committed}"
        finally:
            self.loop.run_until_complete(self._stop())
            self.loop.close()

    def _drained(self) -> bool:
        return not self._undecided() and all(
            self.broker.committed.get(partition) == LENGTH for partition in self.broker.partitions)

    async def _stop(self) -> None:
        await stop_consuming(self.sender, self.consumer, self.task)

