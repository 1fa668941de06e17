"""Relevance probabilities, through Kafka: a cross-encoder shipped with a calibration gives every reranked hit its
raw score and the probability the calibration makes of it, and `min_probability` keeps only the likely hits; a
model without one refuses `min_probability` with a clear error instead of answering unfiltered."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pydantic
import pytest

from cascade.contracts.messages import Mode
from cascade.evaluation.model_card import with_calibration
from cascade.runtime.process import CascadeProcess
from cascade.sdk import SearchFailed
from cascade.services.encoders import Calibration, CrossEncoder
from cascade.services.encoders.calibration import read_calibration
from cascade.services.settings import Settings
from tests.conftest import client_for

DOCS = [{"doc_id": f"d{i}", "text": f"document {i} about subject {i % 4} and topic {i % 3}"} for i in range(16)]
SLOPE, INTERCEPT = 40.0, 0.5


@pytest.fixture
def calibrated_cross_encoder(tiny_cross_encoder: Path, tmp_path: Path) -> Path:
    """The tiny cross-encoder with a steep calibration, so its near-equal raw scores spread over (0, 1)."""
    folder = Path(shutil.copytree(tiny_cross_encoder, tmp_path / "calibrated"))
    (folder / "cascade.json").write_text(json.dumps({"calibration": {"slope": SLOPE, "intercept": INTERCEPT}}))
    return folder


@pytest.fixture
async def calibrated(settings: Settings, calibrated_cross_encoder: Path) -> AsyncIterator[CascadeProcess]:
    settings = settings.model_copy(update={
        "models": settings.models.model_copy(update={"cross_encoder": str(calibrated_cross_encoder),
                                                     "fusion_weight": 0.5}),
        "batching": settings.batching.model_copy(update={"cross_max_documents": 20}),
    })
    process = CascadeProcess(settings, {"ingest", "query", "rerank"})
    await process.start()
    yield process
    await process.stop()


def test_the_calibration_is_read_from_the_model_card(calibrated_cross_encoder: Path, tiny_cross_encoder: Path
                                                     ) -> None:
    assert read_calibration(str(calibrated_cross_encoder)) == Calibration(SLOPE, INTERCEPT)
    assert read_calibration(str(tiny_cross_encoder)) is None
    assert CrossEncoder.load(str(calibrated_cross_encoder), device="cpu").calibration == Calibration(SLOPE, INTERCEPT)
    probabilities = Calibration(2.0, -1.0).probabilities(np.array([-1000.0, 0.5, 1000.0], dtype=np.float32))
    assert probabilities.tolist() == pytest.approx([0.0, 0.5, 1.0], abs=1e-12)  # no overflow at the ends


@pytest.mark.parametrize("mode", ["rerank", "cross"])
async def test_hits_carry_the_raw_score_and_its_probability_and_a_threshold_keeps_the_likely_ones(
        calibrated: CascadeProcess, mode: Mode) -> None:
    async with client_for(calibrated) as client:
        await client.index(DOCS, collection="c")
        everything = await client.search("subject 2", collection="c", mode=mode, k=16, candidates=16)
        probabilities = sorted(hit.probability or 0.0 for hit in everything.hits)
        threshold = probabilities[len(probabilities) // 2]
        likely = await client.search("subject 2", collection="c", mode=mode, k=4, candidates=16,
                                     min_probability=threshold)
        all_likely = await client.search("subject 2", collection="c", mode=mode, k=16, candidates=16,
                                         min_probability=threshold)
    for hit in everything.hits:
        assert hit.rerank_score is not None and hit.probability is not None
        assert hit.probability == pytest.approx(1 / (1 + math.exp(-(SLOPE * hit.rerank_score + INTERCEPT))), abs=1e-5)
    assert 0 < probabilities[0] < probabilities[-1] < 1  # the steep curve spreads them
    # the first 4 likely hits in the answer's order (the threshold applies before the cut to k)
    expected = [hit.doc_id for hit in everything.hits if (hit.probability or 0.0) >= threshold]
    assert len(expected) >= 4 and [hit.doc_id for hit in likely.hits] == expected[:4]
    assert [hit.doc_id for hit in all_likely.hits] == expected and len(expected) < len(everything.hits)


async def test_a_threshold_on_an_uncalibrated_model_is_refused_and_other_modes_cannot_ask(
        all_roles: CascadeProcess) -> None:
    async with client_for(all_roles) as client:
        await client.index(DOCS, collection="c")
        plain = await client.search("subject 2", collection="c", mode="rerank")
        with pytest.raises(SearchFailed) as caught:
            await client.search("subject 2", collection="c", mode="rerank", min_probability=0.5)
        with pytest.raises(pydantic.ValidationError, match="min_probability needs a cross-encoder's scores"):
            await client.search("subject 2", collection="c", mode="bi", min_probability=0.5)
    assert caught.value.code == "invalid_request"
    assert "ships no calibration" in str(caught.value)
    assert all(hit.rerank_score is not None and hit.probability is None for hit in plain.hits)


def test_the_model_card_states_the_calibration_once(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# a reranker\n\nHow it was trained.\n")
    fitted = {"slope": 0.75, "intercept": -2.5, "pairs": 12000, "relevant": 700, "candidates": 20,
              "first_stage": "minilm", "fitted_on": "dev splits"}
    (tmp_path / "cascade.json").write_text(json.dumps({"fusion_weight": 0.3, "calibration": fitted}))
    with_calibration(tmp_path)
    card = with_calibration(tmp_path).read_text()  # written anew, not appended twice
    assert card.startswith("# a reranker\n\nHow it was trained.\n\n## Calibration")
    assert card.count("## Calibration") == 1 and "0.7500 * score -2.5000" in card and "12,000" in card
