"""The committed AsyncAPI document and topics reference match what the code generates."""

from pathlib import Path

from scripts.asyncapi import asyncapi_document


def test_committed_asyncapi_is_current() -> None:
    committed = (Path(__file__).parents[1] / "contracts" / "asyncapi.json").read_bytes()
    assert committed == asyncapi_document(), "contracts/asyncapi.json is stale: run `make asyncapi`"


def test_the_topics_reference_is_generated_from_the_registry() -> None:
    """docs/topics.md lists every topic and message field as the contracts define them: regenerate it with
    `python -m scripts.docs_topics` after changing one."""
    from scripts.docs_topics import OUT, render

    assert OUT.read_text() == render()
