"""SDK clients made from the services' settings (for the CLI, the evaluation harness, the demo, benchmarks)."""

from __future__ import annotations

from cascade.sdk import SearchClient
from cascade.services.settings import KafkaSettings

__all__ = ["sdk_client"]


def sdk_client(settings: KafkaSettings) -> SearchClient:
    """An SDK client on the configured cluster and topic prefix, as the configured tenant."""
    return SearchClient(settings.bootstrap, topic_prefix=settings.topic_prefix, tenant=settings.tenant,
                        security=settings.security, client_id=settings.client_id)
