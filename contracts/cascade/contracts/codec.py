"""orjson encoding and strict decoding of contract messages, with one readable error type."""

from __future__ import annotations

from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from cascade.contracts.limits import MAX_ERROR_CHARS, MAX_MESSAGE_BYTES
from cascade.contracts.messages import ContractBreach

__all__ = ["ContractError", "decode", "describe_errors", "encode"]

M = TypeVar("M", bound=BaseModel)


class ContractError(ValueError):
    """A message that breaks the contract: too large, not JSON, not UTF-8, or failing validation."""

    def __init__(self, reason: ContractBreach, message: str) -> None:
        super().__init__(message[:MAX_ERROR_CHARS])
        self.reason = reason


def encode(message: BaseModel) -> bytes:
    return orjson.dumps(message.model_dump(mode="json"))


def describe_errors(error: ValidationError) -> str:
    """One line naming each failing field and why."""
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in item["loc"]) or "message"
        parts.append(f"{where}: {item['msg']}")
    return f"invalid {error.title}: " + "; ".join(parts)


def decode(raw: bytes | bytearray | memoryview, model: type[M]) -> M:
    """Parse and validate `raw` as `model`; every failure is a ContractError saying what is wrong."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ContractError("too_large", f"message is {len(raw)} bytes, more than the limit of {MAX_MESSAGE_BYTES}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ContractError("not_json", f"not valid UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ContractError("not_an_object", f"expected a JSON object for {model.__name__}, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ContractError("invalid_fields", describe_errors(exc)) from None
