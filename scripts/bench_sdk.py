"""The SDK as a user installs it: `pip install ./sdk` into a fresh virtual environment, timed, and what it brought.

    python -m scripts.bench_sdk

Builds the SDK's wheel (sdk/pyproject.toml: cascade.sdk and cascade.contracts), creates an empty venv, installs
the wheel with its dependencies from the package index, and writes `sdk_install_s` (the install alone, not the
venv's creation), `sdk_wheel_bytes` and `sdk_dependencies` (every distribution the install brought, with
versions) into bench/adopt.json; it fails if the install brought torch or any other heavy package.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import orjson

from scripts.benchlib import ROOT, machine, write_result

HEAVY = ("torch", "transformers", "numpy", "qdrant-client", "qdrant-edge-py", "faststream")


def build_sdk_wheel(out: Path, isolated: bool = True) -> Path:
    """The SDK's wheel, built from this checkout into `out` (without build isolation, the running interpreter's
    hatchling builds it: no package index needed)."""
    isolation = [] if isolated else ["--no-build-isolation"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *isolation, "--wheel-dir",
                    str(out), str(ROOT / "sdk")], check=True)
    [wheel] = out.glob("cascade_search_sdk-*.whl")
    return wheel


def _installed(python: Path) -> dict[str, str]:
    """The distributions in the environment of `python`, by lower-case name."""
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], check=True,
                            capture_output=True).stdout
    return {row["name"].lower(): row["version"] for row in orjson.loads(listed)}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        wheel = build_sdk_wheel(Path(folder) / "wheel")
        environment = Path(folder) / "venv"
        venv.create(environment, with_pip=True)
        python = environment / "bin" / "python"
        fresh = _installed(python)
        began = time.perf_counter()
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
                       check=True)
        install_s = time.perf_counter() - began
        installed = {name: version for name, version in _installed(python).items() if name not in fresh}
        subprocess.run([str(python), "-c", "from cascade.sdk import SearchClient; SearchClient('localhost:9092')"],
                       check=True)
        figures = {"sdk_install_s": round(install_s, 1), "sdk_wheel_bytes": wheel.stat().st_size,
                   "sdk_dependencies": dict(sorted(installed.items()))}
    heavy = sorted(name for name in installed if name in HEAVY)
    print(f"SDK wheel {figures['sdk_wheel_bytes']:,} bytes; installed in {figures['sdk_install_s']} s with "
          f"{len(installed) - 1} dependencies: {', '.join(sorted(installed))}")
    if heavy:
        sys.exit(f"the SDK's install brought {heavy}")
    print(f"wrote {write_result('adopt', figures | {'machine': machine()}, merge=True)}")


if __name__ == "__main__":
    main()
