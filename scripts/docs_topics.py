"""docs/topics.md from the topic registry and the message schemas: every topic, its key, partitions, retention
and message, and every message's fields (their docstrings are the meanings).

    python -m scripts.docs_topics          # rewrites docs/topics.md (a test fails when it is stale)
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from cascade.contracts import DEFAULT_PREFIX, TopicRegistry
from cascade.contracts.messages import Candidate, ErrorInfo, Hit, StageTimings
from cascade.contracts.topics import GROWABLE, SPECS
from scripts.docs_tables import cell, default_of, type_name, write_page

OUT = Path(__file__).resolve().parent.parent / "docs" / "topics.md"
_PARTS: tuple[type[BaseModel], ...] = (Candidate, Hit, StageTimings, ErrorInfo)
"""Models that appear inside messages."""
_DAY_MS = 24 * 3600 * 1000


def _topics() -> list[str]:
    registry = TopicRegistry()
    lines = ["| topic | message | key | partitions | retention | what |", "|---|---|---|---|---|---|"]
    for topic, spec in SPECS.items():
        partitions = f"{spec.partitions}{' (raisable)' if topic in GROWABLE else ''}"
        lines.append(f"| `{registry.name(topic)}` | [{spec.message.__name__}](#{spec.message.__name__.lower()}) | "
                     f"`{spec.key}` | {partitions} | {_retention(spec.retention_ms)} | {cell(spec.description)} |")
    return lines


def _retention(ms: int) -> str:
    return f"{ms // _DAY_MS} d" if ms >= _DAY_MS else f"{ms // 3_600_000} h"


def _fields(model: type[BaseModel]) -> list[str]:
    lines = [f"### {model.__name__}", "", cell(model.__doc__), "", "| field | type | default | meaning |",
             "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        lines.append(f"| `{name}` | {cell(type_name(field.annotation))} | {default_of(field)} | "
                     f"{cell(field.description)} |")
    return [*lines, ""]


def render() -> str:
    messages = list(dict.fromkeys(spec.message for spec in SPECS.values()))
    lines = ["# Topics and messages", "",
             "Generated from `contracts/cascade/contracts/topics.py` and `messages.py` by",
             "`python -m scripts.docs_topics` (a test fails when it is stale). Names carry a prefix,",
             f"`{DEFAULT_PREFIX}` by default (`CASCADE_KAFKA_TOPIC_PREFIX`). Values are JSON; the machine-readable",
             "contract is `contracts/asyncapi.json`.", "", "## Topics", "", *_topics(), "", "## Messages", ""]
    for model in (*messages, *_PARTS):
        lines += _fields(model)
    return "\n".join(lines)


def main() -> None:
    write_page(OUT, render())


if __name__ == "__main__":
    main()
