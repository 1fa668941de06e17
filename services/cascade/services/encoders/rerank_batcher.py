"""The dynamic batcher in front of the cross-encoder, owned by one task (the TEI router's design).

Callers submit (query, documents) jobs and await their scores. The task takes the first waiting job, then
keeps gathering jobs until their tokens reach `gather_tokens` or `max_wait_ms` passes, sorts all their pairs
by length (little compute is spent on padding), cuts them into forward passes of at most `pass_tokens`
padded tokens, scores them in a worker thread (the event loop keeps serving Kafka meanwhile) and hands each
job its scores with the time it queued and the batch it ran in.

Two budgets because they answer different questions. Gathering wide lets pairs of many requests share
passes of similar length. A pass's size is about the hardware: on this 2-core CPU (measured, MiniLM-L6)
1-2k padded tokens per pass ran 196 pairs/s on WikiQA where 8k ran 143 and one 100-pair batch 89, since
large activations fall out of cache; a GPU wants passes one or two orders of magnitude larger.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cascade.contracts import now_ms
from cascade.services.encoders.cross_encoder import Abandoned, CrossEncoder, Encoding
from cascade.services.faults import ServiceFault

__all__ = ["BatcherStopped", "RerankBatcher", "RerankOutcome"]


@dataclass(frozen=True)
class RerankOutcome:
    scores: npt.NDArray[np.float32]
    queue_ms: float
    """From submission to the start of its batch's compute."""
    compute_ms: float
    batch_pairs: int
    padded_tokens: int
    finished_ms: float
    """Wall clock (epoch ms) when its batch's compute ended."""


class BatcherStopped(ServiceFault):
    """The batcher's task is not running (never started, stopped, or died: then the cause is attached)."""


@dataclass
class _Job:
    pairs: list[Encoding]
    future: asyncio.Future[RerankOutcome]
    submitted: float = field(default_factory=time.perf_counter)


def _tokens(job: _Job) -> int:
    return sum(len(pair["input_ids"]) for pair in job.pairs)


class RerankBatcher:
    def __init__(self, encoder: CrossEncoder, gather_tokens: int, pass_tokens: int, max_wait_ms: float,
                 max_jobs: int = 256, on_batch: Callable[[int, int], None] | None = None) -> None:
        self.encoder = encoder
        self._on_batch = on_batch  # told each batch's pairs and padded tokens (metrics)
        self._in_hand: list[_Job] = []
        self._carried: _Job | None = None
        """A job taken from the queue that did not fit the batch gathered then: the next batch starts with it."""
        self._gather_tokens = gather_tokens
        self._pass_tokens = pass_tokens
        self._max_wait_s = max_wait_ms / 1000
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=max_jobs)  # full: callers wait (backpressure)
        self._task: asyncio.Task[None] | None = None
        self._stopped: BatcherStopped | None = BatcherStopped("the rerank batcher is not started")
        self.abandoned_jobs = 0
        """Jobs whose scoring stopped part-way because nobody waited for them any more."""

    def start(self) -> asyncio.Task[None]:
        """Start the batching task; returns it, for the process to watch."""
        self._stopped = None
        self._task = asyncio.create_task(self._run(), name="rerank-batcher")
        self._task.add_done_callback(self._ended)
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # a death was reported by `_ended`
                await self._task
            self._task = None

    def _ended(self, task: asyncio.Task[None]) -> None:
        """Whatever ends the task, every waiting caller fails at once, and so does every later one."""
        cause = None if task.cancelled() else task.exception()
        self._stopped = BatcherStopped(f"the rerank batcher died: {cause!r}" if cause else "the rerank batcher stopped")
        self._stopped.__cause__ = cause
        self._fail(self._in_hand + ([self._carried] if self._carried else []), self._stopped)
        while not self._queue.empty():
            self._fail([self._queue.get_nowait()], self._stopped)

    @staticmethod
    def _fail(jobs: list[_Job], error: BaseException) -> None:
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(error)

    async def score(self, query: str, documents: Sequence[str]) -> RerankOutcome:
        if not documents:
            return RerankOutcome(np.empty(0, dtype=np.float32), 0.0, 0.0, 0, 0, now_ms())
        if self._stopped is not None:
            raise self._stopped
        pairs = await asyncio.to_thread(self.encoder.tokenize, query, documents)
        job = _Job(pairs, asyncio.get_running_loop().create_future())
        await self._queue.put(job)
        if self._stopped is not None:  # it died while this job was being queued
            self._fail([job], self._stopped)
        return await job.future

    async def _gather(self) -> None:
        """Jobs into `_in_hand` up to `gather_tokens` together (there, a death of the batcher fails them too). A
        job that would take a batch past it waits for the next one, which it starts (alone if it is larger): a
        large job (mode cross) is then abandoned on its own when its caller stops waiting, and small ones are not
        held behind it."""
        jobs = self._in_hand = [self._carried or await self._queue.get()]
        self._carried = None
        tokens = _tokens(jobs[0])
        deadline = time.perf_counter() + self._max_wait_s
        while tokens < self._gather_tokens:
            try:
                job = self._queue.get_nowait() if self._queue.qsize() else await asyncio.wait_for(
                    self._queue.get(), timeout=max(deadline - time.perf_counter(), 0))
            except TimeoutError:
                break
            if tokens + _tokens(job) > self._gather_tokens:
                self._carried = job
                break
            jobs.append(job)
            tokens += _tokens(job)

    @property
    def pending_jobs(self) -> int:
        """Jobs queued or being scored: the candidate sets in flight."""
        return self._queue.qsize() + len(self._in_hand) + (self._carried is not None)

    async def _run(self) -> None:
        """Gather and score until cancelled; if this dies, `_ended` fails the jobs in hand and those queued."""
        while True:
            await self._gather()
            await self._score(self._in_hand)
            self._in_hand = []

    async def _score(self, jobs: list[_Job]) -> None:
        """Score `jobs` together; a job whose caller stopped waiting (cancelled: its deadline passed) is left out,
        and once every job of a batch is, its remaining passes are not run."""
        jobs = [job for job in jobs if not job.future.done()]
        if not jobs:
            return
        pairs = [pair for job in jobs for pair in job.pairs]
        started = time.perf_counter()
        try:
            scored = await asyncio.to_thread(self.encoder.score_pairs, pairs, self._pass_tokens,
                                             lambda: all(job.future.done() for job in jobs))
        except Abandoned:
            self.abandoned_jobs += len(jobs)
            return
        except Exception as exc:  # a failed batch fails its jobs, never the batcher
            self._fail(jobs, exc)
            return
        compute_ms, finished_ms = (time.perf_counter() - started) * 1000, now_ms()
        if self._on_batch:
            self._on_batch(len(pairs), scored.padded_tokens)
        offset = 0
        for job in jobs:
            outcome = RerankOutcome(scored.scores[offset : offset + len(job.pairs)],
                                    (started - job.submitted) * 1000, compute_ms, len(pairs), scored.padded_tokens,
                                    finished_ms)
            offset += len(job.pairs)
            if not job.future.done():
                job.future.set_result(outcome)
