"""The loop over stand-in clients: windows, dead letters, published events, commits."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from kafka.errors import KafkaTimeoutError
from kafka.structs import TopicPartition

from consumer.archive import WindowArchive
from consumer.dead_letters import REASON_HEADER
from consumer.decoding import RowDecoder
from consumer.detection import FastKS
from consumer.events import DriftEvent
from consumer.service import DriftMonitor
from consumer.settings import ConsumerSettings
from producer.messages import RowMessage

FEATURES = ["a", "b"]
TP = TopicPartition("rows", 0)
WINDOW = 10


def row(seq: int, shift: float = 0.0) -> bytes:
    rng = np.random.default_rng(seq)
    return RowMessage(
        stream="s",
        seq=seq,
        event_time=datetime(2026, 1, 1, tzinfo=UTC),
        features={name: float(rng.normal()) + shift for name in FEATURES},
        label=0,
    ).to_bytes()


def record(offset: int, value: bytes) -> SimpleNamespace:
    return SimpleNamespace(
        topic=TP.topic, partition=TP.partition, offset=offset, key=b"s", value=value
    )


class Consumer:
    """Hands out the given polls, then nothing; runs commit callbacks on the next poll."""

    def __init__(self, polls: list[list[SimpleNamespace]]) -> None:
        self.polls = list(polls)
        self.end = sum(len(p) for p in polls)
        self.commits: list[tuple[str, int]] = []
        self._callbacks: list[Any] = []

    def subscribe(self, topics: list[str], listener: Any) -> None:
        listener.on_partitions_assigned([TP])

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        for callback, offsets in self._callbacks:
            callback(offsets, None)
        self._callbacks = []
        return {TP: self.polls.pop(0)} if self.polls else {}

    def highwater(self, tp: TopicPartition) -> int:
        return self.end

    def commit_async(self, offsets: dict[TopicPartition, Any], callback: Any) -> None:
        self.commits.append(("async", offsets[TP].offset))
        self._callbacks.append((callback, offsets))

    def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        self.commits.append(("sync", offsets[TP].offset))


class Sent:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def get(self, timeout: float) -> None:
        if self.error is not None:
            raise self.error


class Producer:
    """Acknowledges every send, except those to ``failing`` topics."""

    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        self.failing = failing
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, topic: str, **kwargs: Any) -> Sent:
        self.sent.append((topic, kwargs))
        return Sent(KafkaTimeoutError("no broker") if topic in self.failing else None)

    def flush(self) -> None:
        pass


def monitor(tmp_path: Path, consumer: Consumer, producer: Producer) -> DriftMonitor:
    # A small budget, so that one shifted window of 10 rows is enough to alarm: the
    # KS rule guards the rank alarm's warm-up at a level of 10 / 1000 / 2 features.
    settings = ConsumerSettings(
        window_size=WINDOW,
        ks_backend="fast",
        artifact_root=tmp_path,
        archive_fsync=False,
        false_alarm_rows=1000,
    )
    reference = np.random.default_rng(0).normal(size=(1000, len(FEATURES)))
    champion = SimpleNamespace(
        metadata=SimpleNamespace(
            model_name="m",
            version=1,
            feature_names=FEATURES,
            reference_sha256="0" * 64,
            label_column="target",
            reference_rows=len(reference),
        ),
        decoder=RowDecoder(FEATURES, classes=[0]),
        detector=FastKS(reference),
        predict_labels=lambda x: np.zeros(len(x), dtype=np.int64),
        label="m:v1",
    )
    return DriftMonitor(
        settings,
        consumer,
        producer,
        champion,  # type: ignore[arg-type]
        WindowArchive(tmp_path, fsync=False),
    )


def drift_metric(m: DriftMonitor) -> tuple[float, float]:
    """(episode onsets published, windows judged drifted), as the metrics say."""
    published = m.metrics.registry.get_sample_value(
        "driftloop_consumer_drift_events_total", {"state": "onset"}
    )
    drifted = m.metrics.registry.get_sample_value(
        "driftloop_consumer_windows_total", {"drift": "yes"}
    )
    return published or 0.0, drifted or 0.0


def test_windows_are_judged_published_and_committed(tmp_path: Path) -> None:
    # Two polls: a clean window, then a shifted one and half of the next.
    polls = [
        [record(i, row(i)) for i in range(10)],
        [record(i, row(i, shift=5.0)) for i in range(10, 25)],
    ]
    consumer, producer = Consumer(polls), Producer()
    m = monitor(tmp_path, consumer, producer)
    stats = m.run(lambda: False, idle_timeout=0)
    assert (stats.rows, stats.windows, stats.drift_events) == (25, 2, 1)
    events = [DriftEvent.from_bytes(kw["value"]) for topic, kw in producer.sent]
    assert [e.event_id for e in events] == ["rows-0-10-19"]
    assert Path(events[0].archive_path).is_file()
    assert drift_metric(m) == (1.0, 1.0)
    # Each poll is committed once its windows are written, up to the open window (20-24).
    assert consumer.commits == [("async", 10), ("async", 20)]


def test_the_drift_events_metric_counts_only_published_events(tmp_path: Path) -> None:
    polls = [[record(i, row(i, shift=5.0)) for i in range(20)]]
    consumer = Consumer(polls)
    m = monitor(tmp_path, consumer, Producer(failing=("drift-events",)))
    with pytest.raises(KafkaTimeoutError):
        m.run(lambda: False, idle_timeout=0)
    # Both windows were judged drifted; the episode's onset did not reach the broker
    # (the second window, inside the episode, is not announced).
    assert drift_metric(m) == (0.0, 2.0)
    assert consumer.commits == []


def test_malformed_rows_are_dead_lettered_and_committed_past(tmp_path: Path) -> None:
    values = [row(i) for i in range(10)]
    values.insert(3, b"not json")
    polls = [[record(offset, value) for offset, value in enumerate(values)]]
    consumer, producer = Consumer(polls), Producer()
    stats = monitor(tmp_path, consumer, producer).run(lambda: False, idle_timeout=0)
    assert (stats.windows, dict(stats.dead_letters)) == (1, {"not-json": 1})
    [(topic, sent)] = producer.sent
    assert (topic, sent["value"]) == ("rows-dlq", b"not json")
    assert dict(sent["headers"])[REASON_HEADER] == b"not-json"
    assert consumer.commits == [("async", 11)]


def test_a_dead_letter_that_cannot_be_sent_stops_the_commit(tmp_path: Path) -> None:
    polls = [[record(0, b"not json")]]
    consumer = Consumer(polls)
    m = monitor(tmp_path, consumer, Producer(failing=("rows-dlq",)))
    with pytest.raises(KafkaTimeoutError):
        m.run(lambda: False, idle_timeout=0)
    assert consumer.commits == []
