"""Settings come from CASCADE_* variables; secrets never show in their representation."""

import pytest

from services.settings import Settings


def test_environment_overrides_each_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASCADE_KAFKA_BOOTSTRAP", "broker:9092")
    monkeypatch.setenv("CASCADE_KAFKA_TOPIC_PREFIX", "prod.")
    monkeypatch.setenv("CASCADE_STORE_HNSW_EF", "256")
    monkeypatch.setenv("CASCADE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("CASCADE_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("CASCADE_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("CASCADE_KAFKA_SASL_PASSWORD", "hunter2")
    settings = Settings()
    assert settings.kafka.bootstrap == "broker:9092"
    assert settings.kafka.topics.prefix == "prod."
    assert settings.store.hnsw_ef == 256
    options = settings.kafka.client_options()
    assert options["sasl_plain_password"] == "hunter2"
    assert "hunter2" not in repr(settings)


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASCADE_STORE_HNSW_M", "1")
    with pytest.raises(ValueError, match="hnsw_m"):
        Settings()
