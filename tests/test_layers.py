"""The layers run one way. Contracts at the bottom; the SDK and the services each on the contracts; infra beside
them; the runtime on the services (and the SDK, for its client commands); evaluation and scripts on top. The
SDK's distribution (contracts + sdk) imports nothing heavy, and nothing imports the checkout's folders by their
bare names (only the `cascade` namespace is installed)."""

from __future__ import annotations

import ast
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
HEAVY = {"torch", "transformers", "numpy", "qdrant_client", "qdrant_edge", "faststream", "prometheus_client",
         "uvicorn", "pydantic_settings"}
"""What the SDK's distribution must not need (sdk/pyproject.toml depends on aiokafka, pydantic, orjson,
opentelemetry-api and structlog only)."""


def _imports(path: Path) -> set[str]:
    """Every absolute module name `path` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _layer_files(layer: str) -> list[Path]:
    return sorted((ROOT / layer / "cascade" / layer).rglob("*.py"))


def _cascade_layers(modules: set[str]) -> set[str]:
    return {module.split(".")[1] for module in modules if module.startswith("cascade.") and module.count(".")}


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_only_the_layers_below_it(layer: str) -> None:
    assert _layer_files(layer)
    wrong = {str(path.relative_to(ROOT)): sorted(_cascade_layers(_imports(path)) - ALLOWED[layer] - {layer})
             for path in _layer_files(layer)}
    assert not {path: layers for path, layers in wrong.items() if layers}


@pytest.mark.parametrize("layer", ["contracts", "sdk"])
def test_the_sdk_distribution_needs_nothing_heavy(layer: str) -> None:
    wrong = {str(path.relative_to(ROOT)): sorted({name.split(".")[0] for name in _imports(path)} & HEAVY)
             for path in _layer_files(layer)}
    assert not {path: names for path, names in wrong.items() if names}


def test_nothing_imports_a_folder_by_its_bare_name() -> None:
    sources = [path for folder in (*LAYERS, "scripts", "tests") for path in (ROOT / folder).rglob("*.py")]
    wrong = {str(path.relative_to(ROOT)): sorted(name for name in _imports(path) if name.split(".")[0] in LAYERS)
             for path in sources}
    assert not {path: names for path, names in wrong.items() if names}
