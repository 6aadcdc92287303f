"""Malformed messages go to the dead-letter topic with their reason; nothing is lost."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaProducer

from broker.settings import KafkaSettings
from consumer.archive import archived_windows, read_window
from tests.integration.streams import consume_windows, read_topic

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def row(seq: int, **features: object) -> bytes:
    values: dict[str, object] = {name: 5.0 + (seq % 7) / 10 for name in FEATURES}
    values.update(features)
    return json.dumps(
        {
            "schema_version": 1,
            "stream": "iris",
            "seq": seq,
            "event_time": datetime.now(UTC).isoformat(),
            "features": values,
            "label": seq % 3,
        },
        allow_nan=True,
    ).encode()


MALFORMED = {
    "not-json": b"sepal_length=5.1",
    "invalid-field": row(0, petal_width="wide"),
    "non-finite-value": row(0, petal_width=float("nan")),
    "unknown-schema-version": row(0).replace(b'"schema_version": 1', b'"schema_version": 99'),
    "wrong-feature-set": row(0, petal_colour=1.0),
}


def test_malformed_rows_are_dead_lettered_and_never_stop_the_loop(
    kafka_settings: KafkaSettings, artifact_root: Path, client: str
) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_settings.servers)
    sent_valid = 0
    for i in range(100):
        producer.send(kafka_settings.rows_topic, key=b"iris", value=row(i))
        sent_valid += 1
        if i % 20 == 10:
            for value in MALFORMED.values():
                producer.send(kafka_settings.rows_topic, key=b"iris", value=value)
    producer.flush()
    producer.close()

    stats = consume_windows(kafka_settings, artifact_root, window_size=25, client=client)

    dead = read_topic(kafka_settings, kafka_settings.dlq_topic)
    reasons = [dict(r.headers)["driftloop.error.reason"].decode() for r in dead]
    assert sorted(set(reasons)) == sorted(MALFORMED)
    assert len(dead) == 5 * len(MALFORMED)
    assert {r.value for r in dead} == set(MALFORMED.values())
    assert all(r.key == b"iris" for r in dead)
    assert dict(stats.dead_letters) == {reason: 5 for reason in MALFORMED}
    # Every valid row entered exactly one tumbling window.
    assert stats.windows == sent_valid // 25
    windows = archived_windows(artifact_root, kafka_settings.rows_topic, "iris", 0)
    archived_rows = sum(len(read_window(w).offsets) for w in windows)
    assert archived_rows == sent_valid
