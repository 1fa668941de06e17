"""The reranker's batch planning, the dynamic batcher, its int8 CPU path, and the query vector cache."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
from transformers import AutoModelForSequenceClassification

from cascade.services.encoders import BatcherStopped, CrossEncoder, RerankBatcher, plan_passes
from cascade.services.encoders.int8 import quantize_int8
from cascade.services.query import QueryVectorCache
from tests.kafka_helpers import eventually
from tests.tiny_models import build_tiny_cross_encoder


def test_passes_are_length_sorted_and_within_the_token_budget() -> None:
    lengths = [50, 10, 200, 12, 11, 180, 60, 300]
    passes = plan_passes(lengths, token_budget=400)
    assert sorted(i for rows in passes for i in rows) == list(range(len(lengths)))
    flat = [lengths[i] for rows in passes for i in rows]
    assert flat == sorted(lengths)
    for rows in passes:
        assert len(rows) * max(lengths[i] for i in rows) <= 400 or len(rows) == 1


def test_a_pair_longer_than_the_budget_still_gets_a_pass() -> None:
    assert plan_passes([1000, 5], token_budget=100) == [[1], [0]]


async def test_batcher_merges_jobs_and_matches_direct_scoring(tiny_cross_encoder: Path) -> None:
    encoder = CrossEncoder.load(str(tiny_cross_encoder))
    jobs = {f"query {i}": [f"document {j} " * (j + 1) for j in range(7)] for i in range(4)}
    # Deterministic on a busy machine: the gather budget is exactly the four jobs' tokens and the wait is
    # long, so the batch closes when the fourth job arrives, however slowly the tokenisations finish.
    tokens = sum(len(pair["input_ids"]) for query, docs in jobs.items() for pair in encoder.tokenize(query, docs))
    batcher = RerankBatcher(encoder, gather_tokens=tokens, pass_tokens=512, max_wait_ms=30_000)
    batcher.start()
    try:
        outcomes = await asyncio.gather(*(batcher.score(query, docs) for query, docs in jobs.items()))
    finally:
        await batcher.stop()
    for (query, docs), outcome in zip(jobs.items(), outcomes, strict=True):
        np.testing.assert_allclose(outcome.scores, encoder.score(query, docs), atol=1e-5)
        assert outcome.batch_pairs == 28  # all four jobs ran as one batch
        assert outcome.padded_tokens >= sum(len(pair["input_ids"]) for pair in encoder.tokenize(query, docs))


async def test_a_job_that_would_overflow_the_batch_starts_the_next_one(tiny_cross_encoder: Path) -> None:
    """A small job, then a large one (mode cross over a collection): not one batch, so the large one can be
    abandoned on its own and the small one is not held behind it."""
    encoder = CrossEncoder.load(str(tiny_cross_encoder))
    small, large = ["document one", "document two"], [f"document {j} " * 20 for j in range(60)]
    budget = 2 * sum(len(pair["input_ids"]) for pair in encoder.tokenize("q", small))
    batcher = RerankBatcher(encoder, gather_tokens=budget, pass_tokens=512, max_wait_ms=30_000)
    batcher.start()
    try:
        first = asyncio.create_task(batcher.score("q", small))
        await eventually(lambda: batcher.pending_jobs == 1, within_s=60)  # taken first; it waits 30 s for more
        outcomes = [await batcher.score("q", large), await first]
    finally:
        await batcher.stop()
    assert [outcome.batch_pairs for outcome in outcomes] == [60, 2]


async def test_batcher_fails_the_jobs_of_a_failed_batch_and_keeps_running(tiny_cross_encoder: Path) -> None:
    encoder = CrossEncoder.load(str(tiny_cross_encoder))
    batcher = RerankBatcher(encoder, gather_tokens=4096, pass_tokens=512, max_wait_ms=1)
    batcher.start()
    original = encoder.score_tokenized
    encoder.score_tokenized = lambda pairs: (_ for _ in ()).throw(RuntimeError("device lost"))  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError, match="device lost"):
            await batcher.score("q", ["d"])
        encoder.score_tokenized = original  # type: ignore[method-assign]
        assert len((await batcher.score("q", ["d", "e"])).scores) == 2
    finally:
        await batcher.stop()


def test_cross_encoder_handles_two_class_heads(tmp_path: Path) -> None:
    encoder = CrossEncoder.load(str(build_tiny_cross_encoder(tmp_path, num_labels=2)))
    assert encoder.score("q", ["a", "b", "c"]).shape == (3,)


def test_query_cache_is_lru_and_counts() -> None:
    cache = QueryVectorCache(capacity=2)
    vector = np.ones(3, dtype=np.float32)
    assert cache.get(("m", "a")) is None
    cache.put(("m", "a"), vector)
    cache.put(("m", "b"), vector)
    assert cache.get(("m", "a")) is not None  # a is now the most recent
    cache.put(("m", "c"), vector)  # evicts b
    assert cache.get(("m", "b")) is None
    assert (cache.hits, cache.misses, len(cache)) == (1, 2, 2)


async def test_a_dead_batcher_fails_waiting_and_later_calls_at_once(tiny_cross_encoder: Path) -> None:
    batcher = RerankBatcher(CrossEncoder.load(str(tiny_cross_encoder)), gather_tokens=4096, pass_tokens=512,
                            max_wait_ms=1)
    task = batcher.start()

    async def broken(jobs: object) -> None:
        raise SystemError("scheduler bug")

    batcher._score = broken  # type: ignore[method-assign]
    try:
        with pytest.raises(BatcherStopped, match="scheduler bug"):
            await asyncio.wait_for(batcher.score("q", ["d"]), timeout=5)
        await asyncio.wait([task], timeout=5)
        assert isinstance(task.exception(), SystemError)
        with pytest.raises(BatcherStopped, match="died"):
            await asyncio.wait_for(batcher.score("q", ["d"]), timeout=1)
    finally:
        await batcher.stop()


def test_the_int8_path_quantises_the_linear_layers_and_ranks_like_fp32(tmp_path: Path) -> None:
    torch.manual_seed(1)  # every weight from one seed: the figures must not depend on which tests ran before
    folder = build_tiny_cross_encoder(tmp_path / "spread")
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    with torch.no_grad():  # weights of a trained model's scale: random init scores every pair about the same
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, 0.25)
    model.save_pretrained(folder)
    documents = [f"document {word} about {topic}" for word in ("one", "two", "three", "four") for topic in
                 ("ships", "wings", "lift", "drag", "paris")]
    full = CrossEncoder.load(str(folder), device="cpu")
    int8 = CrossEncoder.load(str(folder), device="cpu", precision="int8")
    assert not any(isinstance(module, torch.nn.Linear) for module in int8.model.modules())
    assert any(isinstance(module, DynamicLinear) for module in int8.model.modules())
    exact, quantised = full.score("lift and drag", documents), int8.score("lift and drag", documents)
    assert spearmanr(exact, quantised).statistic > 0.9
    assert np.abs(exact - quantised).max() < 0.25 * np.ptp(exact)  # 32-wide layers: the coarsest case


def test_int8_is_refused_off_the_cpu() -> None:
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match="int8 is the CPU path"):
        quantize_int8(model)
