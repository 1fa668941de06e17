"""Plain-text rendering of results for terminals: hits as a table, and the latency breakdown."""

from __future__ import annotations

import textwrap

from cascade.contracts import SearchResult

__all__ = ["format_result", "format_side_by_side", "format_timings"]

_STAGES = (("queue", "query_queue_ms"), ("encode", "encode_ms"), ("ann", "ann_ms"),
           ("rerank wait", "rerank_queue_ms"), ("rerank", "rerank_ms"), ("total", "total_ms"))


def format_timings(result: SearchResult) -> str:
    timings = result.timings
    parts = [f"{label} {value:.1f}" for label, field in _STAGES if (value := getattr(timings, field)) is not None]
    if timings.rerank_batch_pairs:
        parts.append(f"batch {timings.rerank_batch_pairs} pairs/{timings.rerank_padded_tokens} tokens")
    return "ms: " + ", ".join(parts)


def _lines(result: SearchResult, width: int) -> list[str]:
    if result.error is not None:
        return [f"error {result.error.code}: {result.error.message}"]
    return [textwrap.shorten(f"{rank}. {hit.score:+.3f}{_chance(hit.probability)} {_label(hit.title, hit.text)}",
                             width) for rank, hit in enumerate(result.hits, start=1)]


def _chance(probability: float | None) -> str:
    return "" if probability is None else f" ({probability:.0%})"


def _label(title: str, text: str) -> str:
    return text if not title or title in text else f"{title}: {text}"


def format_result(result: SearchResult, width: int = 100) -> str:
    return "\n".join([f"[{result.mode}] {format_timings(result)}", *_lines(result, width)])


def format_side_by_side(left: SearchResult, right: SearchResult, width: int = 60) -> str:
    columns = [[f"[{left.mode}]", *_lines(left, width)], [f"[{right.mode}]", *_lines(right, width)]]
    rows = max(len(column) for column in columns)
    padded = [column + [""] * (rows - len(column)) for column in columns]
    table = [f"{a:<{width}} | {b}" for a, b in zip(*padded, strict=True)]
    return "\n".join([*table, f"{'':<{width}} |", f"{format_timings(left):<{width}} | {format_timings(right)}"])
