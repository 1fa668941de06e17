"""Which versions of a collection a write goes to, read from the store so that every ingest pod agrees.

A collection `docs` is served from the version its name resolves to (`docs@vN`). A version after it that exists
(`docs@v(N+1)`, and on) is being built by a reindex, or was left by one that did not finish, or was switched back
from: every write to `docs` is applied to the newest such version too, so that switching to it loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from cascade.services.store import VERSION_MARK, VectorStore, base_name, version_of

__all__ = ["Versions", "versions"]


@dataclass(frozen=True)
class Versions:
    served: str
    """The version the name resolves to (the name itself for a collection not made yet)."""
    building: str | None
    """The newest version after it, which writes reach too."""


async def versions(store: VectorStore, name: str) -> Versions:
    """Read once per batch, before its writes: a switch between the read and the writes sends them to both the
    old version and the new one, never to the old one alone."""
    served = await store.resolve(name)
    if not await store.has_collection(served):
        return Versions(name, None)
    building, number = None, version_of(served) + 1
    while await store.has_collection(after := f"{base_name(name)}{VERSION_MARK}{number}"):
        building, number = after, number + 1
    return Versions(served, building)
