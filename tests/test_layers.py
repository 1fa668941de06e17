"""The layers run one way. Contracts at the bottom; the SDK and the services each on the contracts; infra beside
them; the runtime on the services (and the SDK, for its client commands); evaluation and scripts on top. The
SDK's distribution (contracts + sdk) imports only the standard library and what sdk/pyproject.toml declares;
nothing imports the checkout's folders by their bare names (only the `cascade` namespace is installed), and no
layer makes `cascade` a regular package (which would hide every other layer)."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("contracts", "sdk", "services", "infra", "runtime", "evaluation")
ALLOWED = {
    "contracts": set(),
    "sdk": {"contracts"},
    "services": {"contracts"},
    "infra": {"contracts"},
    "runtime": {"contracts", "sdk", "services", "infra"},
    "evaluation": {"contracts", "sdk", "services", "infra", "runtime"},
}
"""The `cascade.<layer>` packages each layer may import besides itself."""
SDK_IMPORTS = {"aiokafka", "pydantic", "orjson", "structlog", "opentelemetry"}
"""The import names of sdk/pyproject.toml's dependencies (checked against it below)."""
NEVER_INSTALLED = {"scripts", "tests", *LAYERS}
"""Top-level names that exist only in the checkout."""


def _imports(path: Path) -> set[str]:
    """Every absolute module name `path` imports, `from cascade import sdk` counted as `cascade.sdk`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "cascade":
                found |= {f"cascade.{alias.name}" for alias in node.names}
    return found


def _layer_files(layer: str) -> list[Path]:
    return sorted((ROOT / layer / "cascade" / layer).rglob("*.py"))


def _cascade_layers(modules: set[str]) -> set[str]:
    return {module.split(".")[1] for module in modules if module.startswith("cascade.")}


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_only_the_layers_below_it(layer: str) -> None:
    assert _layer_files(layer)
    wrong = {str(path.relative_to(ROOT)): sorted(_cascade_layers(_imports(path)) - ALLOWED[layer] - {layer})
             for path in _layer_files(layer)}
    assert not {path: layers for path, layers in wrong.items() if layers}


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_nothing_that_exists_only_in_the_checkout(layer: str) -> None:
    wrong = {str(path.relative_to(ROOT)): sorted(top for name in _imports(path)
                                                 if (top := name.split(".")[0]) in NEVER_INSTALLED)
             for path in _layer_files(layer)}
    assert not {path: names for path, names in wrong.items() if names}


@pytest.mark.parametrize("layer", ["contracts", "sdk"])
def test_the_sdk_distribution_imports_only_what_it_declares(layer: str) -> None:
    allowed = set(sys.stdlib_module_names) | SDK_IMPORTS | {"cascade"}
    wrong = {str(path.relative_to(ROOT)): sorted({name.split(".")[0] for name in _imports(path)} - allowed)
             for path in _layer_files(layer)}
    assert not {path: names for path, names in wrong.items() if names}


def test_the_sdk_declares_the_dependencies_it_imports() -> None:
    declared = tomllib.loads((ROOT / "sdk" / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {requirement.split("~=")[0].split("==")[0].replace("-api", "").replace("-", "_")
             for requirement in declared}
    assert names == SDK_IMPORTS


def test_cascade_stays_a_namespace_shared_by_the_layers() -> None:
    assert not [layer for layer in LAYERS if (ROOT / layer / "cascade" / "__init__.py").exists()]


def test_nothing_imports_a_folder_by_its_bare_name() -> None:
    sources = [path for folder in (*LAYERS, "scripts", "tests") for path in (ROOT / folder).rglob("*.py")]
    wrong = {str(path.relative_to(ROOT)): sorted(name for name in _imports(path) if name.split(".")[0] in LAYERS)
             for path in sources}
    assert not {path: names for path, names in wrong.items() if names}
