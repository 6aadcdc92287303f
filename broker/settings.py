"""Kafka connection settings and topic names, read from the environment."""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """Where the broker is and what the topics are called.

    Every process's settings class extends this one. Values come from the
    environment (``DRIFTLOOP_<FIELD>``, ``KAFKA_BOOTSTRAP_SERVERS`` for the broker);
    keyword arguments (the command-line flags, see :mod:`broker.cli`) beat it. Each
    field's docstring is its ``--help`` text.
    """

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLOOP_", extra="ignore", frozen=True, use_attribute_docstrings=True
    )

    bootstrap_servers: str = Field(
        default="localhost:9092",
        validation_alias=AliasChoices("bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    """Kafka brokers, a comma-separated host:port list."""

    rows_topic: str = "rows"
    """Topic the producer writes RowMessages to."""

    rows_partitions: int = Field(default=4, ge=1)
    """Partitions of the rows topic when driftloop creates it; an existing topic keeps its own."""

    drift_topic: str = "drift-events"
    """Topic the consumer writes DriftEvents to."""

    model_updates_topic: str = "model-updates"
    """Topic ModelUpdates are published on."""

    dlq_topic: str = "rows-dlq"
    """Dead-letter topic for malformed rows (and malformed or unknown labels)."""

    labels_topic: str = "labels"
    """Topic of Labels: a row's label sent after the row, by whoever learns it."""

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers or any(":" not in s for s in servers):
            raise ValueError(
                f"KAFKA_BOOTSTRAP_SERVERS must be host:port[,host:port...], got {value!r}"
            )
        return ",".join(servers)

    @property
    def servers(self) -> list[str]:
        """The bootstrap servers as a list, the form kafka-python takes."""
        return self.bootstrap_servers.split(",")
