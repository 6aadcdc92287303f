"""The consumer's settings: the environment, then command-line flags on top."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from broker.settings import KafkaSettings
from models.registry import RegistrySettings


class ConsumerSettings(KafkaSettings, RegistrySettings):
    """Everything `python -m consumer` needs; env names are ``DRIFTLOOP_<FIELD>``."""

    window_size: int = Field(default=50, ge=2)
    """Rows per window."""
    window_step: int | None = Field(default=None, ge=1)
    """Rows between window starts; the window size (tumbling) by default."""
    p_val: float = Field(default=0.05, gt=0, lt=1)
    """Significance level of the KS test before correction."""
    correction: Literal["bonferroni", "fdr"] = "bonferroni"
    """Multiple-testing correction over the features."""
    ks_backend: Literal["alibi", "fast"] = "alibi"
    """``alibi`` runs Alibi Detect's KSDrift; ``fast`` gives the same p-values cheaper."""
    group_id: str = "driftloop-consumer"
    """Kafka consumer group; instances in one group share the rows topic's partitions."""
    max_poll_records: int = Field(default=2000, ge=1)
    """Most rows taken per poll; windows completed in one poll are scored together."""
    archive_fsync: bool = True
    """fsync each archived window before its offset is committed."""
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Serve Prometheus metrics on this port; off when unset."""
    metrics_host: str = "127.0.0.1"
    """Address the metrics server binds (0.0.0.0 to be scraped from other hosts)."""

    @model_validator(mode="after")
    def _step_fits(self) -> ConsumerSettings:
        if self.window_step is not None and self.window_step > self.window_size:
            raise ValueError(
                f"window_step ({self.window_step}) must not exceed window_size "
                f"({self.window_size}): rows between windows would never be judged"
            )
        return self

    @property
    def step(self) -> int:
        return self.window_step or self.window_size
