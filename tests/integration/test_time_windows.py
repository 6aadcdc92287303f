"""Windows closing on event time, on a real broker: old data replayed fast keeps its clock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.settings import KafkaSettings
from consumer.archive import archived_verdicts
from consumer.events import DriftEvent
from tests.integration.streams import consume_windows, read_topic, run_producer

START = datetime(2025, 6, 1, tzinfo=UTC)


def test_a_slow_stream_replayed_fast_is_judged_by_time_windows(
    kafka_settings: KafkaSettings,
    kafka_env: dict[str, str],
    iris_csv: Path,
    artifact_root: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stream of one row a minute, replayed as fast as the producer sends: windows of
    50 rows or 30 minutes of event time (at least 10 rows) hold 30 rows each. The
    stream pauses for three hours after row 304 (the night), then comes back noised:
    the 5 rows before the pause are too few, merge into the first window after it,
    and that window opens the drift episode."""
    # 05:04 is the last row before the night; 08:00 the first after it.
    run_producer(
        kafka_env, iris_csv, "--count", "305", "--seed", "7",
        "--event-start", START.isoformat(), "--event-interval", "60",
    )  # fmt: skip
    run_producer(
        kafka_env, iris_csv, "--count", "300", "--seed", "8", "--drift-after", "0",
        "--event-start", (START + timedelta(hours=8)).isoformat(), "--event-interval", "60",
    )  # fmt: skip

    with caplog.at_level(logging.INFO, logger="consumer.service"):
        stats = consume_windows(
            kafka_settings,
            artifact_root,
            window_size=50,
            window_seconds=1800,
            window_min_rows=10,
        )

    verdicts = sorted(
        (
            DriftEvent.from_bytes(v.data)
            for v in archived_verdicts(artifact_root, kafka_settings.rows_topic)
        ),
        key=lambda v: v.window.first_offset,
    )
    windows = [(v.window.first_offset, v.window.last_offset, v.window.closed_by) for v in verdicts]
    # Ten windows of 30 minutes before the night; the merged one (5 rows at 05:00-05:04
    # and 30 at 08:00-08:29); eight after it. The last 30 rows' window is still open:
    # no row has come to close it.
    assert windows == [
        *[(o, o + 29, "time") for o in range(0, 300, 30)],
        (300, 334, "time"),
        *[(o, o + 29, "time") for o in range(335, 575, 30)],
    ]
    assert (stats.rows, stats.windows) == (605, 19)
    first = verdicts[0].window
    assert (first.first_event_time, first.last_event_time) == (START, START + timedelta(minutes=29))
    merged = verdicts[10].window
    assert (merged.size, merged.first_event_time, merged.last_event_time) == (
        35,
        START + timedelta(hours=5),
        START + timedelta(hours=8, minutes=29),
    )
    assert [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("window merged")
    ] == [
        f"window merged window={kafka_settings.rows_topic}/0/300 stream=iris rows=5 < min 10 "
        "(closed by time after 1800 s of event time): it stays open and takes the next rows"
    ]
    # The clean windows raise nothing; the noised rows are judged drifted in every window
    # they are in, and the merged window is the episode's onset, announced once.
    assert not any(v.is_drift for v in verdicts[:10])
    assert all(v.is_drift for v in verdicts[10:])
    [onset] = [
        DriftEvent.from_bytes(r.value)
        for r in read_topic(kafka_settings, kafka_settings.drift_topic)
    ]
    assert onset.event_id == f"{kafka_settings.rows_topic}-0-300-334"
    assert onset.is_onset and onset.window.closed_by == "time"
