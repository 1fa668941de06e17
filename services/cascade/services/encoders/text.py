"""The text a model sees for a document: title and body, as BEIR evaluations of sentence-transformers do."""

__all__ = ["document_text"]


def document_text(title: str, text: str) -> str:
    return f"{title} {text}" if title else text
