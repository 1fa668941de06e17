"""Service processes started the way operators start them (`cascade serve ...`), for crash and scaling tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cascade.services.settings import Settings

SESSION_TIMEOUT_MS = 6000
"""Short, so a killed member's partitions move to the survivor quickly."""
CLI_HANG_GUARD_S = 300
"""Only against a hung command: a cold machine takes a minute just to import torch, so tests check what a command
did (its exit status, its message, its log), never its duration."""


def service_environment(settings: Settings, name: str, **env: str) -> dict[str, str]:
    return os.environ | {
        "CASCADE_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "CASCADE_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
        "CASCADE_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        "CASCADE_INSTANCE_ID": name,
        "CASCADE_MODELS_LATE_INTERACTION": settings.models.late_interaction,  # as the test's own processes
        "CASCADE_STORE_KIND": settings.store.kind,
        "CASCADE_STORE_PATH": str(settings.store.path),
        **({"CASCADE_STORE_URL": settings.store.url} if settings.store.url else {}),
        "CASCADE_LOG_LEVEL": "WARNING",
        **env,
    }


def start_service(settings: Settings, role: str, name: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cascade.runtime.cli", "serve", role],
                            env=service_environment(settings, name, **env))


def start_reranker(settings: Settings, cross_encoder: Path, name: str) -> subprocess.Popen[bytes]:
    return start_service(settings, "rerank", name, CASCADE_MODELS_CROSS_ENCODER=str(cross_encoder))


def run_cli(environment: dict[str, str], *arguments: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """`cascade ARGUMENTS` to its end, its output captured."""
    return subprocess.run([sys.executable, "-m", "cascade.runtime.cli", *arguments], input=stdin, capture_output=True,
                          timeout=CLI_HANG_GUARD_S, env=environment)
