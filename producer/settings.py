"""The producer's settings: the environment, then command-line flags on top."""

from __future__ import annotations

from pathlib import Path

from pydantic import AwareDatetime, Field, field_validator

from broker.settings import KafkaSettings
from producer.labels import LabelDelay


class ProducerSettings(KafkaSettings):
    """Everything `python -m producer` needs; env names are ``DRIFTLOOP_<FIELD>``."""

    data: Path = Path("data/iris.csv")
    """CSV to replay: feature columns (numeric or categorical) and a label column."""
    label_column: str = "target"
    """Name of the CSV's label column."""
    categorical: tuple[str, ...] = ()
    """Feature columns sent as categories (strings) even if they hold numbers,
    comma-separated; a column that is not all numbers is categorical anyway."""
    stream: str | None = None
    """Stream name, in every message; the CSV's file name without extension by default."""
    key_column: str | None = None
    """CSV column (a feature, the label or an id column of text) whose cell keys each row: all
    rows with one key go to one partition, in the order sent. Unset: rows are not keyed and
    spread over all partitions of the rows topic, each row to a partition at random, so only
    the rows within one partition keep their order."""
    rate: float = Field(default=50.0, ge=0)
    """Rows per second; 0 sends as fast as possible."""
    count: int | None = Field(default=None, ge=0)
    """Rows to send; one pass over the CSV by default. Ignored with ``loop``."""
    loop: bool = False
    """Replay forever, reshuffling each pass."""
    drift_after: int | None = Field(default=None, ge=0)
    """Add noise from this row (from 0) on; no noise when unset."""
    noise_mean: float = 3.0
    """Mean of the Gaussian noise."""
    noise_std: float = Field(default=1.0, ge=0)
    """Standard deviation of the Gaussian noise."""
    drift_features: tuple[str, ...] | None = None
    """Features to noise, comma-separated; all when unset."""
    seed: int | None = None
    """Seed for the order and the noise; a run with a seed repeats exactly."""
    shuffle: bool = True
    """Shuffle rows each pass (a CSV sorted by class would otherwise look drifted)."""
    event_start: AwareDatetime | None = None
    """Give the rows event times from this time on (ISO 8601 with a zone, e.g.
    2025-01-01T00:00:00Z), event_interval apart, instead of the time each is sent:
    old data replayed at any rate keeps its own clock. Unset: the time of sending."""
    event_interval: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    """With event_start: seconds of event time between consecutive rows."""
    label_delay: str | None = None
    """Send rows without their label, and each label later on the labels topic: ``N``
    after N more rows, ``Ts`` (e.g. ``30s``) T seconds after its row. Labels still
    held at the end of a bounded run are sent then; off when unset."""
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Serve Prometheus metrics on this port; off when unset."""
    metrics_host: str = "127.0.0.1"
    """Address the metrics server binds (0.0.0.0 to be scraped from other hosts)."""

    @field_validator("drift_features", "categorical", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("label_delay")
    @classmethod
    def _a_delay(cls, value: str | None) -> str | None:
        if value is not None:
            LabelDelay.parse(value)
        return value

    @property
    def delay(self) -> LabelDelay | None:
        """The parsed ``label_delay``; None when labels go with their rows."""
        return None if self.label_delay is None else LabelDelay.parse(self.label_delay)

    @property
    def stream_name(self) -> str:
        return self.stream or self.data.stem
