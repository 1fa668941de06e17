"""The committed AsyncAPI document matches what the code generates."""

from pathlib import Path

from scripts.asyncapi import asyncapi_document


def test_committed_asyncapi_is_current() -> None:
    committed = (Path(__file__).parents[1] / "contracts" / "asyncapi.json").read_bytes()
    assert committed == asyncapi_document(), "contracts/asyncapi.json is stale: run `make asyncapi`"

