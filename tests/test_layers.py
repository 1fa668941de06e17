"""The layers run one way: contracts <- services <- runtime, and infra never imports services or the runtime."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "contracts": {"services", "runtime", "infra", "sdk", "evaluation"},
    "sdk": {"services", "runtime", "infra", "evaluation"},
    "services": {"runtime", "infra", "evaluation"},
    "infra": {"services", "runtime", "evaluation"},
}


def _imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_lower_layers(package: str) -> None:
    wrong = {str(path.relative_to(ROOT)): sorted(_imported_packages(path) & FORBIDDEN[package])
             for path in (ROOT / package).rglob("*.py")}
    assert not {path: names for path, names in wrong.items() if names}
