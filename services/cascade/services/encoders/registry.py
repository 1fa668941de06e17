"""The first-stage encoders of one process: the configured default bi-encoder, loaded at start, the catalogue
models that collections name and the late-interaction (ColBERT) encoder, each loaded once on first use (off the
event loop). Only catalogue names are accepted from messages, so a producer cannot make a service load an
arbitrary path."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from cascade.services.encoders.bi_encoder import BiEncoder
from cascade.services.encoders.catalogue import CATALOGUE
from cascade.services.encoders.late_interaction import LateInteractionEncoder

__all__ = ["BiEncoders", "LateInteractionLoader", "UnknownModel"]

log = structlog.get_logger(__name__)


class UnknownModel(LookupError):
    """A collection names a model this process cannot load (not in the catalogue, or not fetched here)."""


class LateInteractionLoader:
    """The process's late-interaction (ColBERT) encoder, if one is configured (`load` is None where none is)."""

    def __init__(self, load: Callable[[], LateInteractionEncoder] | None = None) -> None:
        self._load = load
        self._loaded: LateInteractionEncoder | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> LateInteractionEncoder:
        """The encoder, loaded the first time (UnknownModel where none is configured)."""
        if self._load is None:
            raise UnknownModel("no late-interaction (ColBERT) encoder is configured in this process: set "
                               "CASCADE_MODELS_LATE_INTERACTION to its folder")
        async with self._lock:
            if self._loaded is None:
                try:
                    self._loaded = await asyncio.to_thread(self._load)
                except OSError as exc:  # a folder missing or incomplete
                    raise UnknownModel(f"the late-interaction (ColBERT) encoder cannot be loaded: {exc}") from None
                log.info("late_interaction.loaded", model=self._loaded.model_id, dim=self._loaded.dim)
            return self._loaded


class BiEncoders:
    def __init__(self, default: BiEncoder, load: Callable[[str], BiEncoder]) -> None:
        self.default = default
        self._load = load
        self._loaded = {default.name: default}
        self._lock = asyncio.Lock()

    async def get(self, name: str | None) -> BiEncoder:
        """The encoder called `name` (None: the default), loading a catalogue model the first time."""
        name = name or self.default.name
        if (found := self._loaded.get(name)) is not None:
            return found
        if name not in CATALOGUE:
            raise UnknownModel(f"model {name!r} is neither this process's default ({self.default.name!r}) nor a "
                               f"catalogue model ({', '.join(sorted(CATALOGUE))})")
        async with self._lock:
            if name not in self._loaded:
                try:
                    self._loaded[name] = await asyncio.to_thread(self._load, name)
                except (LookupError, OSError) as exc:  # not fetched on this machine, or its folder is missing
                    raise UnknownModel(str(exc)) from None
                log.info("bi_encoder.loaded", model=name, dim=self._loaded[name].dim)
            return self._loaded[name]
