"""Labels that come after their rows, on the labels topic, joined on a real broker.

Rows go unlabeled (``--label-delay``), their labels later; the companion
(`python -m consumer.labels`, run in-process) stores labels that came before their
rows were archived, keeps a repeated one once, joins them all, logs each window's
late accuracy, and dead-letters the label of a row that never came as ``unknown-row``.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from broker.settings import KafkaSettings
from consumer.archive import archived_windows, count_labeled_rows, read_labeled_rows
from consumer.dead_letters import REASON_HEADER
from consumer.labels.companion import CompanionStats, build_companion
from consumer.labels.settings import LabelSettings
from consumer.labels.store import late_accuracies, late_labels
from producer.messages import LabelMessage, RowMessage
from tests.integration.streams import consume_windows, read_topic, run_producer

ROWS = 200
WINDOW = 50
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def companion(kafka: KafkaSettings, root: Path) -> CompanionStats:
    settings = LabelSettings(
        **kafka.model_dump(), artifact_root=root, labels_group_id=f"test-{kafka.labels_topic}"
    )
    with build_companion(settings, client_id="test-labels") as running:
        return running.run(lambda: False, idle_timeout=3.0)


def send(kafka: KafkaSettings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka.servers, acks="all")
    for key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def test_late_labels_join_archived_rows_whatever_comes_first(
    kafka_settings: KafkaSettings,
    kafka_env: dict[str, str],
    iris_csv: Path,
    artifact_root: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kafka = kafka_settings
    run_producer(kafka_env, iris_csv, "--count", str(ROWS), "--seed", "7", "--label-delay", "30")
    rows = [RowMessage.from_bytes(r.value) for r in read_topic(kafka, kafka.rows_topic)]
    sent = [LabelMessage.from_bytes(r.value) for r in read_topic(kafka, kafka.labels_topic)]
    assert [r.label for r in rows] == [None] * ROWS
    # Every label after its row, 30 rows later: the rows' order is the labels' order.
    assert [m.seq for m in sent] == list(range(ROWS))
    truth = {m.seq: str(m.label) for m in sent}
    # The label of seq 3 once more, and one for a row of a second stream that never came
    # (its rows skip seq 42).
    now = datetime.now(UTC)
    ghost = LabelMessage(stream="gappy", seq=42, label=1, event_time=now)
    send(kafka, kafka.labels_topic, [(b"iris", sent[3].to_bytes()), (b"gappy", ghost.to_bytes())])
    values = {name: 5.0 for name in FEATURES}
    send(
        kafka,
        kafka.rows_topic,
        [
            (b"", RowMessage(stream="gappy", seq=s, event_time=now, features=values).to_bytes())
            for s in range(101)
            if s != 42
        ],
    )

    # The labels come first: stored, nothing to join yet, nothing dead-lettered.
    caplog.set_level(logging.INFO)
    early = companion(kafka, artifact_root)
    assert early.labels == {"new": ROWS + 1, "duplicate": 1}
    assert (early.dead_letters, early.late_windows) == ({}, 0)

    consume_windows(kafka, artifact_root, window_size=WINDOW)
    iris = archived_windows(artifact_root, kafka.rows_topic, "iris", 0)
    assert len(iris) == ROWS // WINDOW
    assert count_labeled_rows(iris, "target") == 0  # archived unlabeled

    late = companion(kafka, artifact_root)
    assert late.late_windows == ROWS // WINDOW
    assert late.dead_letters == {"unknown-row": 1}

    # Retraining reads each row with the label that came later.
    joined = late_labels(artifact_root, kafka.labels_topic)
    assert count_labeled_rows(iris, "target", joined) == ROWS
    labeled = read_labeled_rows(iris, FEATURES, "target", joined)
    by_offset = {m.seq: m for m in rows}  # one partition: offset i holds seq i
    assert labeled.labels == [truth[by_offset[o].seq] for o in labeled.offsets.tolist()]

    lines = [r.getMessage() for r in caplog.records if "late accuracy=" in r.getMessage()]
    assert len(lines) == ROWS // WINDOW
    for line in lines:
        match = re.search(r"stream=iris late accuracy=([0-9.]+) labeled=50/50", line)
        assert match, line
        # The champion was trained on Iris: clean rows are nearly all right.
        assert float(match.group(1)) >= 0.9
    points = late_accuracies(artifact_root)
    assert sorted(p.first_offset for p in points) == [0, 50, 100, 150]
    assert {(p.model_version, p.labeled, p.size) for p in points} == {(1, 50, 50)}

    (letter,) = read_topic(kafka, kafka.dlq_topic)
    assert letter.key == b"gappy"
    assert LabelMessage.from_bytes(letter.value) == ghost
    assert dict(letter.headers)[REASON_HEADER] == b"unknown-row"

    # A restart reports nothing twice.
    again = companion(kafka, artifact_root)
    assert (again.late_windows, again.dead_letters, dict(again.labels)) == (0, {}, {})
