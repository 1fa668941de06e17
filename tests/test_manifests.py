"""The Kubernetes manifests against the code: every variable they set is a real setting, every probe path is
served, the KEDA trigger watches the reranker's real group and topic. (No cluster here: parsed, not applied.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from contracts import DEFAULT_PREFIX, Topic, TopicRegistry
from services.settings import BatchingSettings, KafkaSettings, ModelSettings, Settings, StoreSettings

MANIFESTS = sorted((Path(__file__).parents[1] / "infra" / "k8s").glob("*.yaml"))
SERVED_PATHS = {"/healthz", "/readyz", "/metrics"}


def _names(model: type[BaseSettings], skip: frozenset[str] = frozenset()) -> set[str]:
    prefix = str(model.model_config.get("env_prefix", ""))
    return {f"{prefix}{field}".upper() for field in model.model_fields if field not in skip}


SETTINGS = _names(Settings, frozenset({"kafka", "store", "models", "batching"})) | set().union(
    *(_names(group) for group in (KafkaSettings, StoreSettings, ModelSettings, BatchingSettings)))


def _containers() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{path.name}:{document['metadata']['name']}", container)
            for path in MANIFESTS for document in yaml.safe_load_all(path.read_text())
            if document["kind"] == "Deployment" for container in document["spec"]["template"]["spec"]["containers"]]


@pytest.mark.parametrize(("where", "container"), _containers(), ids=[where for where, _ in _containers()])
def test_deployments_set_real_settings_and_probe_served_paths(where: str, container: dict[str, Any]) -> None:
    unknown = {env["name"] for env in container["env"]} - SETTINGS
    assert not unknown, f"{where} sets variables no setting reads: {unknown}"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["metrics"] == Settings.model_fields["metrics_port"].default
    for probe in ("livenessProbe", "readinessProbe"):
        http = container[probe]["httpGet"]
        assert http["path"] in SERVED_PATHS and http["port"] == "metrics", (where, probe)


def test_the_autoscaler_watches_the_reranker_group_and_topic() -> None:
    [scaler] = [document for path in MANIFESTS for document in yaml.safe_load_all(path.read_text())
                if document["kind"] == "ScaledObject"]
    [trigger] = scaler["spec"]["triggers"]
    topics = TopicRegistry(DEFAULT_PREFIX)
    assert trigger["metadata"]["topic"] == topics.name(Topic.CANDIDATES)
    assert trigger["metadata"]["consumerGroup"] == f"{DEFAULT_PREFIX}reranker"
    assert scaler["spec"]["maxReplicaCount"] == topics.spec(Topic.CANDIDATES).partitions
