"""Settings come from CASCADE_* variables; secrets never show in their representation."""

import logging

import orjson
import pytest
import structlog

from cascade.runtime.clients import sdk_client
from cascade.services.log import configure_logging
from cascade.services.settings import Settings


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


def test_the_protocol_decides_and_a_mismatch_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASCADE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")  # with the default PLAINTEXT protocol
    with pytest.raises(ValueError, match="needs security protocol SASL_PLAINTEXT or SASL_SSL, not PLAINTEXT"):
        Settings()
    monkeypatch.setenv("CASCADE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ValueError, match="needs a SASL mechanism, a user name and a password"):
        Settings()


@pytest.mark.parametrize("environment", [
    {},
    {"SECURITY_PROTOCOL": "SSL"},
    {"SECURITY_PROTOCOL": "SASL_PLAINTEXT", "SASL_MECHANISM": "PLAIN", "SASL_USERNAME": "u", "SASL_PASSWORD": "s3"},
    {"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "SCRAM-SHA-256", "SASL_USERNAME": "u", "SASL_PASSWORD": "s3"},
    {"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "SCRAM-SHA-512", "SASL_USERNAME": "u", "SASL_PASSWORD": "s3"},
])
async def test_every_client_gets_the_same_security(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> None:
    """The services' aiokafka clients and the SDK connect the same way."""
    for name, value in environment.items():
        monkeypatch.setenv(f"CASCADE_KAFKA_{name}", value)
    kafka = Settings().kafka
    aiokafka = kafka.client_options()
    client = sdk_client(kafka)
    for options in (client._kafka_options,):
        for key in ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
            assert options.get(key) == aiokafka.get(key), key
        assert ("ssl_context" in options and options["ssl_context"] is not None) == ("ssl_context" in aiokafka)
    assert "s3" not in repr(kafka) + repr(kafka.security) + repr(client.security)


def test_library_log_lines_come_out_as_json_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "INFO")
    try:
        logging.getLogger("aiokafka").warning("Unable connect to %s", "node 1")
        structlog.get_logger("cascade").warning("cluster.retry", attempt=1)
    finally:
        with capsys.disabled():  # back on the session's stderr: the captured one closes with this test
            configure_logging("console", "WARNING")
    library, ours = (orjson.loads(line) for line in capsys.readouterr().err.splitlines())
    assert library["event"] == "Unable connect to node 1" and library["logger"] == "aiokafka"
    assert library["level"] == "warning" and "timestamp" in library
    assert ours["event"] == "cluster.retry" and ours["attempt"] == 1


def test_the_configuration_reference_is_generated_from_the_settings() -> None:
    """docs/configuration.md lists every setting as the settings classes define it: regenerate it with
    `python -m scripts.docs_configuration` after changing one."""
    from scripts.docs_configuration import OUT, render

    assert OUT.read_text() == render()
