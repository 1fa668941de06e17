"""Local infrastructure, used by the runtime and never importing services: a real single-node Kafka launcher,
throwaway TLS certificates, ACL grants, Kubernetes manifests and the container image."""

from cascade.infra.local_kafka import KAFKA_VERSION, BrokerStats, LocalKafka, ensure_kafka_jars, kafka_bootstrap

__all__ = ["KAFKA_VERSION", "BrokerStats", "LocalKafka", "ensure_kafka_jars", "kafka_bootstrap"]
