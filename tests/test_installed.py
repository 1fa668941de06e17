"""Cascade installed from its wheel (not the checkout): its bundled models are found where it is told they are, and a
model that is missing is refused as unavailable, never an internal error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cascade.services.encoders import BiEncoder, resolve_model
from cascade.services.encoders.registry import BiEncoders, UnknownModel
from cascade.services.settings import BUNDLED_RERANKER
from tests.processes import CLI_HANG_GUARD_S

ROOT = Path(__file__).resolve().parents[1]
_LAYERS = ("contracts", "services", "runtime", "sdk", "infra", "evaluation")
"""The folders pyproject.toml packages (each holds one layer of the `cascade` namespace)."""
_REPORT = ("import json, cascade.services.settings as settings; from cascade.services.settings import ModelSettings; "
           "from cascade.services.encoders.catalogue import resolve_model; "
           "print(json.dumps({'package': settings.__file__, 'cross_encoder': ModelSettings().cross_encoder, "
           "'distilled': resolve_model('minilm-distilled')}))")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, installed into a folder of its own (its dependencies are this venv's)."""
    folder = tmp_path_factory.mktemp("installed")
    source = folder / "source"  # built from a copy: a build leaves its build/ folder beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for layer in _LAYERS:
        shutil.copytree(ROOT / layer, source / layer, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(folder / "wheel"), str(source)], check=True, timeout=CLI_HANG_GUARD_S)
    [wheel] = (folder / "wheel").glob("*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                    str(folder / "site"), str(wheel)], check=True, timeout=CLI_HANG_GUARD_S)
    return folder / "site"


def _run(site: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    """`_REPORT` run by the installed copy, outside the checkout, with CASCADE_MODELS_DIR only as `env` says."""
    environment = {key: value for key, value in os.environ.items() if key != "CASCADE_MODELS_DIR"}
    return subprocess.run([sys.executable, "-c", _REPORT], cwd=cwd, capture_output=True,
                          env=environment | {"PYTHONPATH": str(site)} | env, timeout=CLI_HANG_GUARD_S)


def test_an_installed_cascade_finds_its_models_where_it_is_told(installed: Path, tmp_path: Path) -> None:
    told = json.loads(_run(installed, tmp_path, CASCADE_MODELS_DIR=str(ROOT / "models")).stdout)
    assert told["package"].startswith(str(installed))  # the installed copy, not the checkout
    assert told["cross_encoder"] == str(ROOT / "models" / BUNDLED_RERANKER)
    assert Path(told["distilled"]).is_dir()
    untold = _run(installed, tmp_path)  # no models beside site-packages: it says where to point
    assert untold.returncode != 0 and b"set CASCADE_MODELS_DIR" in untold.stderr


async def test_a_bundled_model_that_is_missing_is_unavailable(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASCADE_MODELS_DIR", str(tmp_path))  # nothing there
    default = BiEncoder()
    encoders = BiEncoders(default, lambda name: BiEncoder(resolve_model(name), device="cpu"))
    with pytest.raises(UnknownModel, match=r"is trained by this project and is not at .*set CASCADE_MODELS_DIR"):
        await encoders.get("minilm-distilled")
