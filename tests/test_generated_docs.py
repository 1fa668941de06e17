"""The reference pages generated from the code and from bench/ are current: regenerate one with its script after
changing what it is made from."""

from __future__ import annotations

from scripts import docs_measurements, docs_topics


def test_the_topics_reference_is_generated_from_the_registry() -> None:
    """`python -m scripts.docs_topics` after changing a topic or a message."""
    assert docs_topics.OUT.read_text() == docs_topics.render()


def test_the_measurements_are_rendered_from_bench() -> None:
    """`python -m scripts.docs_measurements` after a benchmark wrote bench/*.json."""
    assert docs_measurements.OUT.read_text() == docs_measurements.render()
