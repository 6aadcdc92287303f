"""Kafka connection settings and topic names, read from the environment."""

from __future__ import annotations

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """Where the broker is and what the topics are called.

    Every process's settings class extends this one. Values come from the
    environment; keyword arguments (the command-line flags) beat it.
    """

    model_config = SettingsConfigDict(env_prefix="DRIFTLOOP_", extra="ignore", frozen=True)

    bootstrap_servers: str = Field(
        default="localhost:9092",
        validation_alias=AliasChoices("bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    """Comma-separated host:port list (env ``KAFKA_BOOTSTRAP_SERVERS``)."""

    rows_topic: str = "rows"
    """Topic the producer writes RowMessages to (env ``DRIFTLOOP_ROWS_TOPIC``)."""

    drift_topic: str = "drift-events"
    """Topic the consumer writes DriftEvents to (env ``DRIFTLOOP_DRIFT_TOPIC``)."""

    model_updates_topic: str = "model-updates"
    """Topic ModelUpdates are published on (env ``DRIFTLOOP_MODEL_UPDATES_TOPIC``)."""

    dlq_topic: str = "rows-dlq"
    """Dead-letter topic for malformed rows (env ``DRIFTLOOP_DLQ_TOPIC``)."""

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


def settings_error(err: ValidationError) -> str:
    """A settings validation error as one line naming the setting, for ``error: ...``."""
    first = err.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "settings"
    return f"{where}: {first['msg']}"
