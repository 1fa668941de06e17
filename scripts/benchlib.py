"""What every benchmark records beside its figures: the machine, the versions, and where results go."""

from __future__ import annotations

import asyncio
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import torch
from tqdm import tqdm

from cascade.services.store import StoredDocument, VectorStore

__all__ = ["BENCH_DIR", "DATA_DIR", "ROOT", "machine", "upsert_points", "write_result"]

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


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process has used so far (/proc); 0 for one that has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def write_result(name: str, result: dict[str, Any], merge: bool = False) -> Path:
    """bench/<name>.json; with `merge`, `result`'s keys replace those of the file (other scripts' or parts' figures
    are kept)."""
    BENCH_DIR.mkdir(exist_ok=True)
    path = BENCH_DIR / f"{name}.json"
    if merge and path.exists():
        result = orjson.loads(path.read_bytes()) | result
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS  # keys such as N=10 become "10"
    path.write_bytes(orjson.dumps(result, option=options) + b"\n")
    return path


async def upsert_points(store: VectorStore, collection: str, vectors: npt.NDArray[np.float32], model: str,
                        pause_s: float = 0.0, chunk: int = 2_000) -> None:
    """`vectors` as points p0, p1, ... (payload "point i") through the store interface, `chunk` at a time;
    `pause_s` after each chunk, which holds the GIL ~0.25 s, so that consumers in this process can heartbeat."""
    await store.ensure_collection(collection, vectors.shape[1], model)
    for start in tqdm(range(0, len(vectors), chunk), desc=f"upsert {len(vectors):,}", unit="chunk"):
        await store.upsert(collection, [
            StoredDocument(doc_id=f"p{start + i}", vector=vector.tolist(), title="", text=f"point {start + i}",
                           content_hash="", model_id=model, ingested_at_ms=0.0)
            for i, vector in enumerate(vectors[start : start + chunk])])
        await asyncio.sleep(pause_s)
