"""docs/measurements.md from bench/*.json: every figure the benchmark scripts wrote, as they wrote it, beside the
command that measures it again. docs/benchmarks.md explains them; this page is what they are.

    python -m scripts.docs_measurements          # rewrites docs/measurements.md (a test fails when it is stale)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from scripts.benchlib import BENCH_DIR
from scripts.docs_tables import cell, write_page

OUT = Path(__file__).resolve().parent.parent / "docs" / "measurements.md"
WRITERS: dict[str, tuple[str, ...]] = {
    "adopt": ("scripts.bench_adopt", "scripts.bench_sdk"),
    "calibration": ("scripts.calibrate_reranker",),
    "distillation": ("scripts.distill",),
    "dev_suite": ("scripts.eval_dev_suite",),
    "distributed": ("scripts.bench_distributed",),
    "e2e": ("scripts.bench_e2e",),
    "faststream": ("scripts.bench_faststream",),
    "first_stage_1m": ("scripts.bench_first_stage_1m",),
    "first_stages": ("scripts.eval_first_stages",),
    "frontier": ("scripts.bench_frontier",),
    "generalisation": ("scripts.eval_generalisation",),
    "hard_cases": ("scripts.eval_hard_cases",),
    "index_build": ("scripts.bench_index_build",),
    "ingest": ("scripts.bench_ingest",),
    "int8_choice": ("scripts.compare_int8",),
    "late_interaction": ("scripts.bench_late_interaction", "scripts.bench_storage"),
    "offsets": ("scripts.bench_offsets",),
    "rerank": ("scripts.bench_rerank",),
    "reranker": ("scripts.bench_reranker",),
    "scale_out": ("scripts.bench_scale_out",),
    "soak": ("scripts.soak",),
    "sparse_choice": ("scripts.compare_sparse",),
    "teachers": ("scripts.score_teachers",),
    "tenants": ("scripts.bench_tenants",),
}
"""Each result file and the scripts that write it."""
_DEPTH = 5
"""Keys nested deeper than this (per-query runs, per-round series) stay in the JSON."""


def _leaves(value: Any, path: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """(dotted key, value) of every figure down to `_DEPTH` levels; lists are counted, not listed."""
    if isinstance(value, dict):
        if depth == _DEPTH:
            return [(path, f"{len(value)} entries")]
        return [leaf for key, inner in value.items() if key != "machine"
                for leaf in _leaves(inner, f"{path}.{key}" if path else str(key), depth + 1)]
    if isinstance(value, list):
        return [(path, f"{len(value)} items")]
    return [(path, orjson.dumps(value).decode().strip('"'))]


def _section(name: str, result: dict[str, Any]) -> list[str]:
    machine = result.get("machine", {})
    commands = ", ".join(f"`python -m {writer}`" for writer in WRITERS[name])
    lines = [f"## {name}", "", f"`bench/{name}.json`, written by {commands}."]
    if machine:
        lines.append(f"Machine: {cell(', '.join(f'{key} {value}' for key, value in machine.items()))}.")
    lines += ["", "| figure | value |", "|---|---|"]
    lines += [f"| `{key}` | {cell(value)} |" for key, value in _leaves(result)]
    return [*lines, ""]


def render() -> str:
    found = sorted(path.stem for path in BENCH_DIR.glob("*.json"))
    unknown = set(found) - set(WRITERS)
    if unknown:
        raise SystemExit(f"no writer named for {sorted(unknown)}: add them to WRITERS")
    lines = ["# Measurements", "",
             "Generated from `bench/*.json` by `python -m scripts.docs_measurements` (a test fails when it is stale).",
             "Every figure as its script wrote it; what they mean and how they were chosen is in",
             "[benchmarks.md](benchmarks.md).", ""]
    for name in found:
        lines += _section(name, orjson.loads((BENCH_DIR / f"{name}.json").read_bytes()))
    return "\n".join(lines)


def main() -> None:
    write_page(OUT, render())


if __name__ == "__main__":
    main()
