"""`cascade-eval`: evaluate BEIR folders through the services, embedded (local Kafka, in-process services)
when no cluster is configured, or against the running deployment named by CASCADE_KAFKA_BOOTSTRAP."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from cascade.evaluation.harness import EvalOptions, evaluate_split
from cascade.evaluation.report import markdown_table, write_report
from cascade.infra.local_kafka import LocalKafka
from cascade.runtime.clients import sdk_client
from cascade.runtime.process import CascadeProcess
from cascade.services.encoders import BiEncoder
from cascade.services.reranker.fusion import configured_fusion_weight
from cascade.services.settings import Settings

__all__ = ["run_evaluation", "serving"]


def _relative(model: str) -> str:
    """A local model folder as a path relative to the working directory (reports name no machine paths)."""
    return os.path.relpath(model) if Path(model).is_dir() else model


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Settings]:
    """The configured cluster as it is, or a local broker with every role served in this process."""
    if settings.kafka.bootstrap:
        yield settings
        return
    with LocalKafka() as kafka:
        # Pure cross-encoder scores come back; the fused variant is computed from them and reported beside.
        local = settings.model_copy(update={
            "kafka": settings.kafka.model_copy(update={"bootstrap": kafka.bootstrap}),
            "models": settings.models.model_copy(update={"fusion_weight": 0.0}),
        })
        process = CascadeProcess(local, {"ingest", "query", "rerank"})
        await process.start()
        try:
            yield local
        finally:
            await process.stop()


async def run_evaluation(settings: Settings, folders: list[Path], options: EvalOptions, out: Path
                         ) -> list[dict[str, Any]]:
    if options.fusion_weight is None and settings.models.cross_encoder:
        options = EvalOptions(**{**options.__dict__, "fusion_weight": configured_fusion_weight(
            settings.models.fusion_weight, settings.models.cross_encoder) or None})
    models = settings.models
    bi_encoder = BiEncoder(options.model or models.bi_encoder, max_length=models.bi_max_length,
                           batch_size=models.encode_batch_size, device=models.device)
    reports = []
    async with serving(settings) as served:
        kafka = served.kafka
        async with sdk_client(kafka) as client:
            for folder in folders:
                report = await evaluate_split(client, folder, options, bi_encoder=bi_encoder)
                report["models"] = {"bi_encoder": bi_encoder.model_id, "cross_encoder": _relative(models.cross_encoder),
                                    "cross_max_length": models.cross_max_length,
                                    "cross_precision": models.cross_precision}
                reports.append(report)
                write_report(reports, out)
                print(markdown_table([report]))
    return reports
