"""DriftEvent as driftloop shipped it at 97a4570 (schema 1.0): an old reader, for tests."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal[1] = 1


class WindowRef(BaseModel):
    """Where a window's rows lie in Kafka."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    topic: str
    """Topic the rows were read from."""
    partition: int = Field(ge=0)
    """Partition the rows were read from; windows never span partitions."""
    first_offset: int = Field(ge=0)
    """Offset of the window's first row."""
    last_offset: int = Field(ge=0)
    """Offset of the window's last row (dead-lettered offsets may lie between)."""
    size: int = Field(gt=0)
    """Number of rows in the window."""
    first_event_time: AwareDatetime
    """Event time of the first row."""
    last_event_time: AwareDatetime
    """Event time of the last row."""

    @property
    def window_id(self) -> str:
        """``topic/partition/first_offset``: what identifies a window."""
        return f"{self.topic}/{self.partition}/{self.first_offset}"


class DetectorInfo(BaseModel):
    """Which test judged the window, and with what settings."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: Literal["KSDrift"] = "KSDrift"
    """The detector: Alibi Detect's feature-wise Kolmogorov-Smirnov test."""
    backend: Literal["alibi", "fast"]
    """``alibi`` runs Alibi Detect's KSDrift; ``fast`` the equal-p-value sorted-reference path."""
    p_val: float = Field(gt=0, lt=1)
    """Significance level before correction."""
    correction: Literal["bonferroni", "fdr"]
    """Multiple-testing correction over the features."""
    threshold: float
    """The p-value threshold after correction: a feature drifts when its p-value is below."""


class DriftEvent(BaseModel):
    """One judged window. The consumer publishes those with ``is_drift``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Literal[1] = SCHEMA_VERSION
    """Version of this contract."""
    event_id: str
    """``topic-partition-first-last``: deterministic, so a replayed window keeps its id."""
    stream: str
    """Stream name of the window's rows."""
    detected_at: AwareDatetime
    """When the window was judged (UTC)."""
    window: WindowRef
    """Where the rows lie."""
    detector: DetectorInfo
    """The test and its settings."""
    is_drift: bool
    """Whether the window drifted after the correction."""
    p_values: dict[str, float]
    """Feature name to p-value."""
    distances: dict[str, float]
    """Feature name to KS statistic."""
    drifted_features: list[str]
    """Features whose p-value is below the threshold."""
    model_name: str
    """The champion model the window was judged for."""
    model_version: int
    """Its version; an event for an older version is stale."""
    reference_sha256: str
    """sha256 of the reference data the window was compared with."""
    archive_path: str
    """Where the window's rows (features and labels) are archived."""
    labeled_rows: int = 0
    """How many of the window's rows carried a label."""
    accuracy: float | None = None
    """The champion's accuracy on the labeled rows, when there were any."""

    def to_bytes(self) -> bytes:
        """UTF-8 JSON, the form on the wire."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> DriftEvent:
        """Parse wire bytes; raises ``pydantic.ValidationError`` on anything malformed."""
        return cls.model_validate_json(data)


def event_id_for(topic: str, partition: int, first_offset: int, last_offset: int) -> str:
    """The deterministic id of the event for a window.

    >>> event_id_for("rows", 0, 100, 149)
    'rows-0-100-149'
    """
    return f"{topic}-{partition}-{first_offset}-{last_offset}"
