"""The model catalogue: an ONNX-exported BERT converted back, fetching checked end to end (package checksum,
build, the fixed pair's score), pooling and prefixes honoured, and the real models where fetched."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertModel

from cascade.runtime.model_fetch import ModelCheckFailed, fetch_model, pair_score, verified
from cascade.runtime.onnx_bert import convert_onnx_bert
from cascade.services.encoders import CATALOGUE, BiEncoder, ModelNotFetched, default_bi_encoder_path
from cascade.services.encoders.catalogue import Artifact, ModelSpec
from tests.tiny_models import build_tiny_bi_encoder

pytestmark = pytest.mark.filterwarnings(  # torch's TorchScript exporter is how the shipped graphs were made
    "ignore:You are using the legacy TorchScript:DeprecationWarning", "ignore:The feature will be removed",
    "ignore::torch.jit.TracerWarning", "ignore:Exporting aten.*:UserWarning")

PAIR = ("what is the capital of France", "Paris is the capital and largest city of France.")


def _export_onnx(model_folder: Path, out: Path) -> Path:
    """The tiny model as the langchain4j jars ship theirs: a TorchScript ONNX export with folded constants."""
    model = BertModel.from_pretrained(model_folder, add_pooling_layer=False).eval()
    with torch.no_grad():  # no two equal tensors (zero biases), which the exporter would merge into one
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    model.save_pretrained(model_folder)

    class Graph(torch.nn.Module):  # positional inputs, as the exporter feeds them
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
                    ) -> torch.Tensor:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    ids = torch.tensor([[101, 2054, 2003, 102]])
    torch.onnx.export(Graph(), (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(out), dynamo=False,
                      input_names=["input_ids", "attention_mask", "token_type_ids"],
                      output_names=["last_hidden_state"], do_constant_folding=True,
                      dynamic_axes={name: {0: "batch", 1: "tokens"} for name in
                                    ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]})
    return out


@pytest.fixture(scope="module")
def tiny_jar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A jar laid out like langchain4j's: `tiny.onnx` and `tiny-tokenizer.json`."""
    folder = tmp_path_factory.mktemp("tiny-onnx")
    source = build_tiny_bi_encoder(folder / "source")
    _export_onnx(source, folder / "tiny.onnx")
    jar = folder / "tiny.jar"
    with zipfile.ZipFile(jar, "w") as archive:
        archive.write(folder / "tiny.onnx", "tiny.onnx")
        archive.write(source / "tokenizer.json", "tiny-tokenizer.json")
    return jar


def test_an_onnx_bert_converts_back_to_the_same_model(tiny_jar: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(tiny_jar) as archive:
        archive.extractall(tmp_path)
    convert_onnx_bert(tmp_path / "tiny.onnx", tmp_path / "tiny-tokenizer.json", tmp_path / "converted", head_width=16)
    source = BertModel.from_pretrained(tiny_jar.parent / "source", add_pooling_layer=False).eval()
    converted = AutoModel.from_pretrained(tmp_path / "converted").eval()
    batch = AutoTokenizer.from_pretrained(tmp_path / "converted")(list(PAIR), padding=True, return_tensors="pt")
    assert list(batch) == ["input_ids", "token_type_ids", "attention_mask"]
    with torch.inference_mode():
        assert torch.allclose(source(**batch).last_hidden_state, converted(**batch).last_hidden_state, atol=1e-5)


def _spec(jar: Path, expected: float) -> ModelSpec:
    digest = hashlib.sha256(jar.read_bytes()).hexdigest()
    return ModelSpec("tiny", "test/tiny-bert", "Apache-2.0", 1.0, 1, 32, "cls", "query: ", "passage: ",
                     (Artifact("maven", "test:tiny:1", digest),), "onnx-bert", (*PAIR, expected), onnx_name="tiny",
                     head_width=16)


class _Registry:
    """Stands in for Maven and PyPI: hands out each package's file, counting downloads."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files, self.downloads = files, 0

    def __call__(self, artifact: Artifact, into: Path) -> Path:
        self.downloads += 1
        return verified(Path(shutil.copy(self.files[artifact.package], into)), artifact)


def test_fetch_checks_the_package_and_the_pair_then_keeps_the_model(
    tiny_jar: Path, tmp_path: Path
) -> None:
    registry = _Registry({"test:tiny:1": tiny_jar})
    with pytest.raises(ModelCheckFailed, match="the fixed pair scores"):
        fetch_model(_spec(tiny_jar, expected=2.0), tmp_path, registry)
    assert not (tmp_path / "tiny").exists() and not list(tmp_path.glob(".tiny-*"))  # nothing half-made is left

    wrong = ModelSpec(**{**_spec(tiny_jar, 0.0).__dict__, "artifacts": (Artifact("maven", "test:tiny:1", "0" * 64),)})
    with pytest.raises(ModelCheckFailed, match="sha256"):
        fetch_model(wrong, tmp_path, registry)

    with zipfile.ZipFile(tiny_jar) as archive:
        archive.extractall(tmp_path / "manual")
    convert_onnx_bert(tmp_path / "manual" / "tiny.onnx", tmp_path / "manual" / "tiny-tokenizer.json",
                      tmp_path / "manual" / "model", head_width=16)
    (tmp_path / "manual" / "model" / "cascade.json").write_text(json.dumps(
        {"pooling": "cls", "query_prefix": "query: ", "document_prefix": "passage: "}))
    expected = pair_score(BiEncoder(str(tmp_path / "manual" / "model"), device="cpu"), *PAIR)
    registry.downloads = 0
    folder = fetch_model(_spec(tiny_jar, expected), tmp_path, registry)
    card = json.loads((folder / "cascade.json").read_text())
    assert card["model_id"] == "test/tiny-bert" and card["pooling"] == "cls" and card["source"] == ["test:tiny:1"]
    assert fetch_model(_spec(tiny_jar, expected), tmp_path, registry) == folder
    assert registry.downloads == 1  # once per machine


def _split_into_wheels(folder: Path, out: Path, parts: int) -> list[Path]:
    """The folder zipped and split across wheels as the all-mpnet-base-v2 PyPI parts ship it."""
    zipped = Path(shutil.make_archive(str(out / "model"), "zip", folder.parent, folder.name)).read_bytes()
    size = -(-len(zipped) // parts)
    wheels = []
    for part in range(1, parts + 1):
        wheel = out / f"tiny_part_00{part}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"tiny-part_00{part}/__init__.py", "")
            archive.writestr(f"tiny-part_00{part}/input/tiny.zip.00{part}", zipped[(part - 1) * size:part * size])
        wheels.append(wheel)
    return wheels


def test_a_model_split_across_wheels_is_joined_checked_and_loaded(tiny_bi_encoder: Path, tmp_path: Path) -> None:
    wheels = _split_into_wheels(Path(shutil.copytree(tiny_bi_encoder, tmp_path / "tiny-st")), tmp_path, parts=3)
    artifacts = tuple(Artifact("pypi", f"tiny-part-00{part}==0.0.1", hashlib.sha256(wheel.read_bytes()).hexdigest())
                      for part, wheel in enumerate(wheels, start=1))
    expected = pair_score(BiEncoder(str(tiny_bi_encoder), device="cpu"), *PAIR)
    spec = ModelSpec("tiny-st", "test/tiny-st", "Apache-2.0", 1.0, 1, 32, "mean", "", "", artifacts, "split-zip",
                     (*PAIR, expected))
    folder = fetch_model(spec, tmp_path / "cache", _Registry(
        {artifact.package: wheel for artifact, wheel in zip(artifacts, wheels, strict=True)}))
    assert json.loads((folder / "cascade.json").read_text())["source"] == [a.package for a in artifacts]
    assert np.allclose(BiEncoder(str(folder), device="cpu").encode_documents(list(PAIR)),
                       BiEncoder(str(tiny_bi_encoder), device="cpu").encode_documents(list(PAIR)), atol=1e-6)


def test_pooling_and_prefixes_come_from_the_model_card(tiny_bi_encoder: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny_bi_encoder, tmp_path / "carded"))
    (folder / "cascade.json").write_text(json.dumps({"pooling": "cls", "query_prefix": "query: ",
                                                     "document_prefix": "passage: ", "model_id": "test/carded"}))
    encoder = BiEncoder(str(folder), device="cpu")
    assert encoder.model_id == "test/carded"
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()

    def cls(text: str) -> np.ndarray:
        with torch.inference_mode():
            hidden = model(**tokenizer([text], return_tensors="pt")).last_hidden_state[:, 0]
        return torch.nn.functional.normalize(hidden, dim=-1).numpy()[0]

    assert np.allclose(encoder.encode_queries(["paris"])[0], cls("query: paris"), atol=1e-5)
    assert np.allclose(encoder.encode_documents(["paris"])[0], cls("passage: paris"), atol=1e-5)


def test_an_unfetched_model_names_the_command_that_fetches_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    monkeypatch.setenv("CASCADE_CACHE_DIR", str(tmp_path))
    with pytest.raises(ModelNotFetched, match="cascade models fetch bge-small"):
        BiEncoder("bge-small")


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_fetched_catalogue_models_reproduce_their_pair_scores(name: str) -> None:
    spec = CATALOGUE[name]
    try:
        encoder = BiEncoder(name, device="cpu")
    except ModelNotFetched:
        pytest.skip(f"{name} is not fetched on this machine (`cascade models fetch {name}` needs Maven Central)")
    assert encoder.model_id == spec.model_id and encoder.dim == spec.dim
    assert pair_score(encoder, spec.check[0], spec.check[1]) == pytest.approx(spec.check[2], abs=2e-3)
    if spec.build == "installed":
        assert Path(str(default_bi_encoder_path())).is_dir()
