"""A consumer that cannot archive a window fails without committing or publishing past it."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from broker.settings import KafkaSettings
from consumer.archive import resolve_window
from consumer.events import DriftEvent
from tests.integration.streams import consume_windows, drift_monitor, read_topic, run_producer


def committed(kafka: KafkaSettings, group: str) -> int | None:
    consumer = KafkaConsumer(bootstrap_servers=kafka.servers, group_id=group)
    try:
        return consumer.committed(TopicPartition(kafka.rows_topic, 0))
    finally:
        consumer.close()


def test_a_window_that_cannot_be_archived_is_not_committed(
    kafka_settings: KafkaSettings, kafka_env: dict[str, str], iris_csv: Path, artifact_root: Path
) -> None:
    # Every row noised: both windows drift.
    run_producer(kafka_env, iris_csv, "--count", "100", "--seed", "7", "--drift-after", "0")
    # The archive's directory cannot be created: a file stands where it would go.
    (artifact_root / "archive").write_text("in the way")
    with (
        drift_monitor(kafka_settings, artifact_root, window_size=50) as monitor,
        pytest.raises(OSError),
    ):
        monitor.run(lambda: False, idle_timeout=3)
    assert committed(kafka_settings, f"test-{kafka_settings.rows_topic}") is None
    # A drift event is published only once its window is in the archive.
    assert read_topic(kafka_settings, kafka_settings.drift_topic) == []

    # Once the disk is fixed, a restarted consumer judges both windows.
    (artifact_root / "archive").unlink()
    stats = consume_windows(kafka_settings, artifact_root, window_size=50)
    assert stats.windows == 2
    assert committed(kafka_settings, f"test-{kafka_settings.rows_topic}") == 100
    events = [
        DriftEvent.from_bytes(r.value)
        for r in read_topic(kafka_settings, kafka_settings.drift_topic)
    ]
    # Both windows drift; the first opens the episode and is its one announcement.
    assert [e.window.first_offset for e in events] == [0]
    assert all(resolve_window(e.archive_path).first_offset == 0 for e in events)
