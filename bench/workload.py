"""The benchmark's rows: Iris replayed as RowMessages, half clean, half noised, on one topic."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from broker.clients import reliable_producer
from broker.settings import KafkaSettings
from broker.topics import ensure_topics
from data.dataset import load_dataset
from producer.messages import RowMessage
from producer.replay import DriftPlan, replay

STREAM = "iris"
"""Stream name and message key, as ``python -m producer`` derives it from ``iris.csv``."""
START = datetime(2026, 1, 1, tzinfo=UTC)
"""Event time of the first row; the rows are 20 ms apart, as if replayed at 50 rows/s."""
GAP = timedelta(milliseconds=20)
LOAD_BATCH_BYTES = 256 * 1024
"""Producer batch size while loading: a backlog, as an unthrottled producer would leave."""


@dataclass(frozen=True)
class Workload:
    """What the topic holds.

    Attributes
    ----------
    values : list of bytes
        The encoded RowMessages, in offset order.
    drift_from : int
        Offset of the first noised row.
    seed : int
        Seed of the replay's order and noise.
    """

    values: list[bytes]
    drift_from: int
    seed: int

    @property
    def rows(self) -> int:
        """Number of rows."""
        return len(self.values)

    @property
    def mean_bytes(self) -> float:
        """Mean size of a value."""
        return sum(map(len, self.values)) / max(len(self.values), 1)


def encode_rows(iris_csv: Path, rows: int, seed: int = 7) -> Workload:
    """Replay Iris into ``rows`` encoded RowMessages, labels included.

    The first half is clean; from ``rows // 2`` on every feature carries the
    producer's default noise (Gaussian, mean 3, std 1), so the consumer meets
    both verdicts. The rows are shuffled per pass over the data set, as the
    producer sends them.

    Parameters
    ----------
    iris_csv : pathlib.Path
        The Iris CSV (``data.dataset.write_iris_csv``).
    rows : int
        How many rows to encode, at least 2.
    seed : int, default 7
        Seed of the order and the noise; the same seed gives the same bytes.

    Returns
    -------
    Workload

    Raises
    ------
    ValueError
        If ``rows`` is below 2.
    """
    values = list(encoded_rows(iris_csv, rows, seed))
    return Workload(values=values, drift_from=rows // 2, seed=seed)


def encoded_rows(iris_csv: Path, rows: int, seed: int = 7) -> Iterator[bytes]:
    """The values of :func:`encode_rows`, one at a time: a topic of any length in little memory.

    Raises
    ------
    ValueError
        If ``rows`` is below 2 (when the first value is asked for).
    """
    if rows < 2:
        raise ValueError(f"rows must be at least 2, got {rows}")
    dataset = load_dataset(iris_csv)
    for row in replay(
        dataset.features.to_numpy(),
        dataset.labels.tolist(),
        dataset.feature_names,
        count=rows,
        drift=DriftPlan(after=rows // 2),
        seed=seed,
    ):
        yield RowMessage(
            stream=STREAM,
            seq=row.seq,
            event_time=START + row.seq * GAP,
            features=row.features,
            label=row.label,
        ).to_bytes()


def load_topic(settings: KafkaSettings, workload: Workload) -> float:
    """Create ``settings.rows_topic`` with one partition and write every row to it.

    Uses the producer's client settings (idempotent, ``acks=all``) with larger
    batches, so loading is quick and the consumer reads batches like those an
    unthrottled producer leaves behind.

    Returns
    -------
    float
        Seconds the load took.
    """
    return write_rows(settings, workload.values, workload.rows)


def write_rows(settings: KafkaSettings, values: Iterable[bytes], rows: int) -> float:
    """Create ``settings.rows_topic`` with one partition and write ``rows`` values to it.

    As :func:`load_topic` does; ``values`` may be a generator (:func:`encoded_rows`).

    Returns
    -------
    float
        Seconds the load took.

    Raises
    ------
    RuntimeError
        If a send fails, or the topic does not end at offset ``rows`` afterwards.
    """
    ensure_topics(settings.servers, [settings.rows_topic], partitions=1)
    ensure_topics(
        settings.servers,
        [settings.drift_topic, settings.dlq_topic, settings.model_updates_topic],
    )
    producer = reliable_producer(
        settings, client_id="bench-loader", linger_ms=50, batch_size=LOAD_BATCH_BYTES
    )
    failures: list[Exception] = []
    started = time.perf_counter()
    try:
        key = STREAM.encode()
        topic = settings.rows_topic
        send = producer.send
        for value in values:
            send(topic, key=key, value=value, partition=0).add_errback(failures.append)
        producer.flush()
    finally:
        producer.close()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"loading {topic} failed: {failures[0]}") from failures[0]
    end = _end_offset(settings, topic)
    if end != rows:
        raise RuntimeError(f"{topic} holds {end} rows after loading {rows}")
    return elapsed


def _end_offset(settings: KafkaSettings, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.servers, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        return int(consumer.end_offsets([tp])[tp])
    finally:
        consumer.close()
