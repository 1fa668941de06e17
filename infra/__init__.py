"""Local infrastructure: a real single-node Kafka launcher and topic provisioning."""

from infra.local_kafka import KAFKA_VERSION, BrokerStats, LocalKafka, ensure_kafka_jars, kafka_bootstrap
from infra.provision import ProvisionReport, TopicMismatchError, provision_topics

__all__ = [
    "KAFKA_VERSION",
    "BrokerStats",
    "LocalKafka",
    "ProvisionReport",
    "TopicMismatchError",
    "ensure_kafka_jars",
    "kafka_bootstrap",
    "provision_topics",
]
