"""Markdown table cells from pydantic fields, shared by the generated reference pages (docs/configuration.md,
docs/topics.md)."""

from __future__ import annotations

from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

__all__ = ["cell", "default_of", "type_name"]


def type_name(annotation: Any) -> str:
    """`int`, `Path or unset`, `one of edge, qdrant`."""
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in dict.fromkeys(get_args(annotation)))
    if get_origin(annotation) in (Union, UnionType):
        named = [type_name(each) for each in get_args(annotation) if each is not type(None)]
        if all(name.startswith("one of ") for name in named):  # Literal | Literal: one list of values
            values = dict.fromkeys(value for name in named for value in name.removeprefix("one of ").split(", "))
            named = ["one of " + ", ".join(values)]
        return " or ".join(named) + (" or unset" if type(None) in get_args(annotation) else "")
    if get_origin(annotation) is not None and getattr(annotation, "__metadata__", None) is not None:
        return type_name(get_args(annotation)[0])  # Annotated[...]: its type
    if get_origin(annotation) in (list, dict, tuple):
        return f"{get_origin(annotation).__name__} of " + ", ".join(type_name(each) for each in get_args(annotation))
    return getattr(annotation, "__name__", str(annotation))


def default_of(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "computed (see meaning)"
    value: Any = field.default
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    return f"`{value}`" if value != "" else "empty"


def cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")
