"""The evaluation harness end to end on a tiny BEIR folder, through the real services and broker."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from cascade.evaluation.hard_cases import load_hard_cases, pairwise_accuracy
from cascade.evaluation.harness import EvalOptions, evaluate_split
from cascade.evaluation.report import write_report
from cascade.runtime.process import CascadeProcess
from cascade.sdk import SearchClient
from cascade.services.encoders import BiEncoder
from cascade.services.settings import Settings


@pytest.fixture
def beir_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "tinybeir"
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{i}", "title": f"topic {i}", "text": f"document about subject {i} and more"}
            for i in range(30)]
    (folder / "corpus.jsonl").write_bytes(b"\n".join(orjson.dumps(doc) for doc in docs))
    (folder / "queries.jsonl").write_bytes(b"\n".join(
        orjson.dumps({"_id": f"q{i}", "text": f"subject {i}"}) for i in range(5)))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" +
                                               "".join(f"q{i}\td{i}\t1\n" for i in range(5)))
    return folder


@pytest.fixture
async def services(settings: Settings, tiny_cross_encoder: Path) -> AsyncIterator[Settings]:
    settings = settings.model_copy(update={
        "models": settings.models.model_copy(update={"cross_encoder": str(tiny_cross_encoder), "fusion_weight": 0.0})})
    process = CascadeProcess(settings, {"ingest", "query", "rerank"})
    await process.start()
    yield settings
    await process.stop()


async def test_harness_reports_every_mode(services: Settings, beir_folder: Path, tmp_path: Path) -> None:
    kafka = services.kafka
    async with SearchClient(kafka.bootstrap, topic_prefix=kafka.topic_prefix) as client:
        report = await evaluate_split(client, beir_folder, EvalOptions(modes=("bi", "rerank"), fusion_weight=0.5,
                                                                       candidate_sweep=(30, 5)),
                                      bi_encoder=BiEncoder(services.models.bi_encoder))
    assert report["queries"] == 5
    assert set(report["metrics"]) == {"bi", "rerank", "rerank+fusion(0.5)"}
    for metrics in report["metrics"].values():
        assert 0 <= metrics["ndcg@10"] <= 1
        assert metrics["recall@100"] == pytest.approx(1.0)  # 30 documents: every one is in the top 100
    assert report["first_stage_recall@100_vs_exact"] == pytest.approx(1.0)
    assert report["latency_ms"]["rerank"]["p50"] > 0
    assert report["failures"] == {"bi": 0, "rerank": 0}
    async with SearchClient(kafka.bootstrap, topic_prefix=kafka.topic_prefix) as client:
        subset = await evaluate_split(client, beir_folder, EvalOptions(modes=("bi",), max_queries=2))
    assert subset["queries"] == 2
    assert subset["metrics"]["bi"]["recall@100"] == pytest.approx(1.0)  # scored on its own 2 queries only
    sweep = report["candidate_sweep"]["rerank"]
    assert sweep[30] == {"rerank": report["metrics"]["rerank"], "fused": report["metrics"]["rerank+fusion(0.5)"]}
    async with SearchClient(kafka.bootstrap, topic_prefix=kafka.topic_prefix) as client:
        five = await evaluate_split(client, beir_folder, EvalOptions(modes=("rerank",), fusion_weight=0.5,
                                                                     candidates=5))
    assert sweep[5]["rerank"] == pytest.approx(five["metrics"]["rerank"])  # the sweep is what 5 candidates give
    assert sweep[5]["fused"] == pytest.approx(five["metrics"]["rerank+fusion(0.5)"])
    paths = write_report([report], tmp_path / "out")
    assert all(path.stat().st_size > 0 for path in paths)


def test_hard_cases_load_and_score_pairwise() -> None:
    cases = load_hard_cases()
    assert len({case.id for case in cases}) == len(cases) == 40
    assert Counter(case.kind for case in cases) == {"negation": 20, "constraint": 20}
    assert all(case.satisfies != case.violates and case.query for case in cases)
    prefers_first = pairwise_accuracy(cases, lambda query, passages: [1.0, 0.0])
    assert prefers_first == {"negation": 1.0, "constraint": 1.0, "all": 1.0}
    assert pairwise_accuracy(cases, lambda query, passages: [0.0, 0.0])["all"] == 0.0  # a tie is not right


async def test_a_deployment_that_fuses_is_not_fused_again(settings: Settings, tiny_cross_encoder: Path,
                                                         beir_folder: Path) -> None:
    """Evaluating a running deployment whose reranker fuses (weight 0.5): its answers are the fused ranking,
    reported as they are. Before, the harness fused them with the first stage a second time."""
    settings = settings.model_copy(update={
        "models": settings.models.model_copy(update={"cross_encoder": str(tiny_cross_encoder), "fusion_weight": 0.5})})
    process = CascadeProcess(settings, {"ingest", "query", "rerank"})
    await process.start()
    try:
        async with SearchClient(settings.kafka.bootstrap, topic_prefix=settings.kafka.topic_prefix) as client:
            report = await evaluate_split(client, beir_folder, EvalOptions(modes=("bi", "rerank"), fusion_weight=0.5,
                                                                           candidate_sweep=(30, 5)))
    finally:
        await process.stop()
    assert set(report["metrics"]) == {"bi", "rerank"}
    assert report["fusion_applied"] == {"rerank": 0.5}
    assert "candidate_sweep" not in report
