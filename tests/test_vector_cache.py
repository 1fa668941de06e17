"""The corpus-vector cache of the evaluation scripts: an encoding interrupted part-way resumes where it stopped
(a 12-layer encoder takes hours over a large corpus on this CPU), and a finished one is read back whole."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt
import pytest

from cascade.evaluation import beir
from cascade.services.encoders import BiEncoder


class _Encoder:
    """Counts what it encodes; fails once asked for more than `fail_after` texts in all."""

    name = model_id = "fake"
    max_length = 256

    def __init__(self, fail_after: int | None = None) -> None:
        self.encoded: list[str] = []
        self.fail_after = fail_after

    def encode_documents(self, texts: list[str]) -> npt.NDArray[np.float32]:
        if self.fail_after is not None and len(self.encoded) + len(texts) > self.fail_after:
            raise KeyboardInterrupt
        self.encoded += texts
        return np.array([[float(text.removeprefix("t")), 1.0] for text in texts], dtype=np.float32)


def test_an_interrupted_encoding_resumes_where_it_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(beir, "_CACHE", tmp_path)
    texts = [f"t{i}" for i in range(10)]
    interrupted = _Encoder(fail_after=6)
    with pytest.raises(KeyboardInterrupt):
        beir.text_vectors(texts, cast(BiEncoder, interrupted), "corpus", chunk=3)
    resumed = _Encoder()
    vectors = beir.text_vectors(texts, cast(BiEncoder, resumed), "corpus", chunk=3)
    again = _Encoder()
    assert beir.text_vectors(texts, cast(BiEncoder, again), "corpus", chunk=3).tolist() == vectors.tolist()
    assert interrupted.encoded == texts[:6] and resumed.encoded == texts[6:] and again.encoded == []
    assert vectors[:, 0].tolist() == [float(i) for i in range(10)]
    assert [path.suffix for path in tmp_path.iterdir()] == [".npy"]  # the parts are gone once whole
    assert beir.text_vectors(texts[:4], cast(BiEncoder, _Encoder()), "corpus", chunk=2)[:, 0].tolist() == [0, 1, 2, 3]
