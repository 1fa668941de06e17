"""Reading documents from JSON Lines files (BEIR's corpus.jsonl: `_id`, `title`, `text`, optional `metadata`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

__all__ = ["read_jsonl_documents"]


def read_jsonl_documents(path: Path) -> Iterator[dict[str, Any]]:
    """Document fields per line; `_id` (BEIR) or `doc_id` names the document. Blank lines are skipped."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid JSON: {exc}") from None
            document = {"doc_id": str(row.get("_id", row.get("doc_id", ""))), "title": row.get("title") or "",
                        "text": row.get("text") or ""}
            if row.get("metadata"):
                document["metadata"] = row["metadata"]
            yield document
