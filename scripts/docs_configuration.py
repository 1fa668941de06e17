"""docs/configuration.md from the settings classes: every environment variable, its type, default and meaning.

    python -m scripts.docs_configuration          # rewrites docs/configuration.md (a test fails when it is stale)
"""

from __future__ import annotations

from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from cascade.services.settings import BatchingSettings, KafkaSettings, ModelSettings, Settings, StoreSettings

OUT = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
GROUPS: list[tuple[str, type[BaseModel]]] = [
    ("Kafka", KafkaSettings), ("Vector store", StoreSettings), ("Models", ModelSettings),
    ("Batching and serving", BatchingSettings), ("Process", Settings)]


def _type(annotation: Any) -> str:
    """`int`, `Path or unset`, `one of edge, qdrant`."""
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in get_args(annotation))
    if get_origin(annotation) in (Union, UnionType):
        named = [_type(each) for each in get_args(annotation) if each is not type(None)]
        return " or ".join(named) + (" or unset" if type(None) in get_args(annotation) else "")
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "computed at start (see meaning)"
    value: Any = field.default
    if value is PydanticUndefined or value is None:
        return "unset"
    return f"`{value}`" if value != "" else "empty"


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


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
            lines.append(f"| `{prefix}{name.upper()}` | {_cell(_type(field.annotation))} | {_default(field)} | "
                         f"{_cell(field.description)} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    OUT.write_text(render())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
