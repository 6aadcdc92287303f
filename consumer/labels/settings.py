"""The label companion's settings: the environment, then command-line flags on top."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from broker.settings import KafkaSettings
from models.registry import RegistrySettings


class LabelSettings(KafkaSettings, RegistrySettings):
    """Everything `python -m consumer.labels` needs; env names are ``DRIFTLOOP_<FIELD>``.

    Its group id and metrics port have their own names (``DRIFTLOOP_LABELS_GROUP_ID``,
    ``DRIFTLOOP_LABELS_METRICS_PORT``), so one environment can serve it and the consumer.
    """

    model_config = SettingsConfigDict(use_attribute_docstrings=True)

    labels_group_id: str = "driftloop-labels"
    """Kafka consumer group of the label companion (one process per labels topic)."""
    min_labeled_share: float = Field(default=1.0, gt=0, le=1)
    """Share of a window's rows that must be labeled (archived or late label) before its
    late accuracy is reported, once; 1 waits for every row's label."""
    join_interval_seconds: float = Field(default=2.0, gt=0)
    """Seconds between passes over the window archive, joining labels to new windows."""
    labels_fsync: bool = True
    """fsync the label store before the labels' offsets are committed."""
    labels_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Serve the companion's Prometheus metrics on this port; off when unset."""
    metrics_host: str = "127.0.0.1"
    """Address the metrics server binds (0.0.0.0 to be scraped from other hosts)."""
