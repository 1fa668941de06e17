"""The SDK's own distribution (sdk/pyproject.toml): it carries the contracts, declares only light dependencies, and
imports and builds a client with torch, the model and store libraries and FastStream all refused."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from scripts.bench_sdk import HEAVY, build_sdk_wheel
from tests.processes import CLI_HANG_GUARD_S

_LIGHT = {"aiokafka", "opentelemetry-api", "orjson", "pydantic", "structlog"}
_REFUSING = """
import importlib.abc, json, pkgutil, sys
REFUSED = {"torch", "transformers", "numpy", "qdrant_client", "qdrant_edge", "faststream", "pydantic_settings"}
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in REFUSED:
            raise ImportError(f"the SDK imported {name}")
sys.meta_path.insert(0, Refuse())
import cascade.contracts, cascade.sdk
for package in (cascade.contracts, cascade.sdk):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        __import__(module.name)
from cascade.sdk import SearchClient
SearchClient("localhost:9092")
print(json.dumps({"sdk": cascade.sdk.__file__, "contracts": cascade.contracts.__file__}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sdk_wheel(tmp_path_factory.mktemp("sdk-wheel"), isolated=False)


def test_the_wheel_carries_the_sdk_and_the_contracts_and_light_dependencies(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [metadata] = [name for name in names if name.endswith(".dist-info/METADATA")]
        requires = {line.split(":", 1)[1].strip().split("~=")[0].split("=")[0].lower()
                    for line in archive.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")}
    assert {"cascade/sdk/client.py", "cascade/contracts/messages.py", "cascade/sdk/py.typed"} <= set(names)
    assert not [name for name in names if name.startswith(("cascade/services", "cascade/runtime"))]
    assert requires == _LIGHT
    assert not requires & set(HEAVY)


def test_the_installed_sdk_imports_without_anything_heavy(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(wheel)], check=True, timeout=CLI_HANG_GUARD_S)
    # -S: no .pth files, so the checkout's folders (this venv's editable install) are not on the path
    path = f"import sys; sys.path[:0] = [{str(site)!r}, {sysconfig.get_paths()['purelib']!r}]\n"
    ran = subprocess.run([sys.executable, "-S", "-c", path + _REFUSING], capture_output=True, cwd=tmp_path,
                         timeout=CLI_HANG_GUARD_S)
    assert ran.returncode == 0, ran.stderr.decode()
    found = json.loads(ran.stdout)
    assert found["sdk"].startswith(str(site)) and found["contracts"].startswith(str(site))
