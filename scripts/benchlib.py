"""What every benchmark records beside its figures: the machine, the versions, and where results go."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import orjson
import torch

__all__ = ["BENCH_DIR", "DATA_DIR", "ROOT", "machine", "write_result"]

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
DATA_DIR = Path(os.environ.get("CASCADE_DATA_DIR", ROOT.parent / "shared" / "data"))


def machine() -> dict[str, Any]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    BENCH_DIR.mkdir(exist_ok=True)
    path = BENCH_DIR / f"{name}.json"
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS  # keys such as N=10 become "10"
    path.write_bytes(orjson.dumps(result, option=options) + b"\n")
    return path
