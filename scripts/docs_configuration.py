"""docs/configuration.md from the settings classes: every environment variable, its type, default and meaning.

    python -m scripts.docs_configuration          # rewrites docs/configuration.md (a test fails when it is stale)
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from cascade.services.settings import BatchingSettings, KafkaSettings, ModelSettings, Settings, StoreSettings
from scripts.docs_tables import cell, default_of, type_name, write_page

OUT = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
GROUPS: list[tuple[str, type[BaseModel]]] = [
    ("Kafka", KafkaSettings), ("Vector store", StoreSettings), ("Models", ModelSettings),
    ("Batching and serving", BatchingSettings), ("Process", Settings)]


def render() -> str:
    lines = ["# Configuration", "",
             "Generated from `services/cascade/services/settings.py` by `python -m scripts.docs_configuration` (a test",
             "fails when it is stale). Every setting is an environment variable (or a line of `.env`).", ""]
    for title, group in GROUPS:
        prefix = str(group.model_config.get("env_prefix", ""))
        lines += [f"## {title}", "", "| variable | type | default | meaning |", "|---|---|---|---|"]
        for name, field in group.model_fields.items():
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                continue  # a group of its own, above
            lines.append(f"| `{prefix}{name.upper()}` | {cell(type_name(field.annotation))} | "
                         f"{default_of(field, missing='unset')} | "
                         f"{cell(field.description)} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    write_page(OUT, render())


if __name__ == "__main__":
    main()
