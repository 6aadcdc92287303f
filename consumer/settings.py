"""The consumer's settings: the environment, then command-line flags on top."""

from __future__ import annotations

import socket
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
    window_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Also close a window after this many seconds of event time (the rows' own
    times), whichever comes first: a slow stream is still judged. The row at or past
    the window's first event time plus this closes it and begins the next one, so a
    stream that stops has its last window judged when its next row comes. Tumbling
    windows only; off when unset."""
    window_min_rows: int = Field(default=10, ge=1)
    """With window_seconds: a window closing on time with fewer rows is merged into
    the next one (logged), so no window is judged on a handful of rows."""
    false_alarm_rows: int = Field(default=1_000_000, ge=1000)
    """The false-alarm budget: clean rows a stream passes, on average, per false drift
    alarm (at least 1,000). The main knob: a larger budget alarms less often on noise
    and a little later on drift."""
    alarm: Literal["rank", "ks"] = "rank"
    """What decides that a stream drifted: rank, a sequential test on every row's rank
    (location, scale and shape, several window lengths); ks, a KS-drifted window at
    the level the budget implies."""
    alarm_warmup_rows: int = Field(default=1000, ge=400)
    """Rows of a stream (after a start or a new champion) that form the rank alarm's
    baseline; meanwhile the ks rule guards the stream against the champion's reference."""
    episode_clean_windows: int = Field(default=5, ge=1)
    """Clean windows in a row that resolve a drift episode."""
    p_val: float = Field(default=0.05, gt=0, lt=1)
    """Significance level of each window's KS test before correction: the evidence
    logged and archived per window (drift=yes/no), not what raises alarms."""
    correction: Literal["bonferroni", "fdr"] = "bonferroni"
    """Multiple-testing correction over the features."""
    ks_backend: Literal["alibi", "fast"] = "fast"
    """``fast`` (the default) computes KSDrift's p-values bit for bit from a pre-sorted
    reference, without calling Alibi Detect; ``alibi`` runs Alibi Detect's KSDrift."""
    client: Literal["kafka-python", "confluent"] = "kafka-python"
    """The Kafka client the rows are read and the transactions written with:
    ``kafka-python`` (the default) or ``confluent`` (confluent-kafka, librdkafka: reads
    several times faster). The same loop, commits and transactions either way."""
    fetch_process: bool = True
    """With ``kafka-python``, fetch the rows in a process of its own (`broker.fetcher`):
    the client's parsing of what it fetched, half of the consumer's time per row, runs
    beside the judging on another core. Off, the consumer reads in its own process.
    confluent-kafka fetches on librdkafka's threads either way."""
    group_id: str = "driftloop-consumer"
    """Kafka consumer group; instances in one group share the rows topic's partitions."""
    instance_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,200}$")
    """This consumer's name in the group, unique per process (letters, digits, ``.``,
    ``_``, ``-``); the host name by default. Restarted under the same name, a consumer
    gets its partitions back at once (static membership), and its predecessor's open
    transaction is aborted."""
    session_timeout_ms: int = Field(default=10_000, ge=6_000, le=300_000)
    """How long the group waits for a consumer that stopped answering before its
    partitions go to the others (a restart under the same instance id is quicker)."""
    transaction_timeout_ms: int = Field(default=10_000, ge=1_000, le=900_000)
    """How long the broker keeps a dead consumer's open transaction before aborting it;
    until then readers of committed messages wait on the drift and dead-letter topics."""
    max_poll_records: int = Field(default=2000, ge=1)
    """Most rows taken per poll; windows completed in one poll are scored together."""
    commit_interval_ms: int = Field(default=1000, ge=0, le=60_000)
    """Most milliseconds between transactions while rows keep arriving: the polls of
    an interval are archived as they come and committed (fsync, then offsets and
    dead letters) in one transaction. A poll with a drift event to announce commits
    at once, and so does an idle or stopping consumer; 0 commits every poll."""
    archive_fsync: bool = True
    """fsync the archived windows before their offsets are committed."""
    archive_segment_mib: float = Field(default=64, gt=0)
    """Size (MiB) at which an archive segment is closed and the next one begun."""
    archive_segment_hours: float = Field(default=1, gt=0)
    """Age (hours) at which an archive segment is closed and the next one begun."""
    archive_retention_hours: float | None = Field(default=None, gt=0)
    """Remove archive segments last written longer ago than this; off when unset.
    Segments a registered model version was trained on are kept."""
    archive_retention_rows: int | None = Field(default=None, ge=1)
    """Keep about this many newest rows per partition and stream, removing older
    segments; off when unset. Segments a registered model version was trained on are kept."""
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
        if self.window_seconds is not None:
            if self.step != self.window_size:
                raise ValueError(
                    f"window_seconds closes tumbling windows only: window_step "
                    f"({self.window_step}) must be unset or equal window_size "
                    f"({self.window_size})"
                )
            if self.window_min_rows > self.window_size:
                raise ValueError(
                    f"window_min_rows ({self.window_min_rows}) must not exceed window_size "
                    f"({self.window_size}): no window could close on time"
                )
        if self.false_alarm_rows <= self.step:
            raise ValueError(
                f"false_alarm_rows ({self.false_alarm_rows}) must exceed the window step "
                f"({self.step}): one KS test per step must fit in the budget"
            )
        return self

    @property
    def member_id(self) -> str:
        """The instance id, or this host's name (made valid for Kafka) when unset."""
        if self.instance_id is not None:
            return self.instance_id
        host = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname())
        return host.strip(".")[:200] or "driftloop-consumer"

    @property
    def transactional_id(self) -> str:
        """The producer's transactional id: one per group member, kept across restarts."""
        return f"{self.group_id}.{self.member_id}"

    @property
    def step(self) -> int:
        return self.window_step or self.window_size

    @property
    def window_time(self) -> tuple[float, int] | None:
        """(seconds, minimum rows) of time windows; None when windows close on rows only."""
        if self.window_seconds is None:
            return None
        return (self.window_seconds, self.window_min_rows)
