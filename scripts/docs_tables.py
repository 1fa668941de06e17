"""Markdown table cells from pydantic fields, shared by the generated reference pages (docs/configuration.md,
docs/topics.md)."""

from __future__ import annotations

from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

__all__ = ["cell", "default_of", "type_name", "write_page"]


def _literal_values(annotation: Any) -> list[Any] | None:
    """The values of a Literal, or of a union of Literals (each once); None for any other type."""
    if get_origin(annotation) is Literal:
        return list(dict.fromkeys(get_args(annotation)))
    if get_origin(annotation) in (Union, UnionType):
        parts = [_literal_values(each) for each in get_args(annotation) if each is not type(None)]
        if all(part is not None for part in parts):
            return list(dict.fromkeys(value for part in parts for value in part or ()))
    return None


def type_name(annotation: Any) -> str:
    """`int`, `Path or unset`, `one of edge, qdrant`."""
    if (values := _literal_values(annotation)) is not None:
        unset = " or unset" if type(None) in get_args(annotation) else ""
        return "one of " + ", ".join(f"`{value}`" for value in values) + unset
    if get_origin(annotation) in (Union, UnionType):
        named = [type_name(each) for each in get_args(annotation) if each is not type(None)]
        return " or ".join(named) + (" or unset" if type(None) in get_args(annotation) else "")
    if get_origin(annotation) is not None and getattr(annotation, "__metadata__", None) is not None:
        return type_name(get_args(annotation)[0])  # Annotated[...]: its type
    if get_origin(annotation) in (list, dict, tuple):
        return f"{get_origin(annotation).__name__} of " + ", ".join(type_name(each) for each in get_args(annotation))
    return getattr(annotation, "__name__", str(annotation))


def default_of(field: FieldInfo, missing: str = "required") -> str:
    """The default as a cell; `missing` where the field has none."""
    if field.default_factory is not None:
        return "computed (see meaning)"
    value: Any = field.default
    if value is PydanticUndefined:
        return missing
    if value is None:
        return "unset"
    return f"`{value}`" if value != "" else "empty"


def cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def write_page(path: Path, text: str) -> None:
    path.write_text(text)
    print(f"wrote {path}")
