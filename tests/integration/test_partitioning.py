"""A stream over several partitions: the producer spreads rows, or keys them by a column.

Against the session's real broker, on a rows topic of the test's own with 4 partitions,
created as `python -m broker start` and the demo create it.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient

from broker.settings import KafkaSettings
from broker.topics import ensure_loop_topics
from tests.integration.streams import read_topic, run_producer

IRIS_FEATURES = {"sepal_length", "sepal_width", "petal_length", "petal_width"}


def partition_counts(kafka: KafkaSettings, topics: list[str]) -> dict[str, int]:
    admin = KafkaAdminClient(bootstrap_servers=kafka.servers)
    try:
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(topics)}
    finally:
        admin.close()


@pytest.fixture
def spread(kafka_settings: KafkaSettings, kafka_env: dict[str, str]) -> tuple[KafkaSettings, dict]:
    """Settings and environment naming a fresh rows topic with the default 4 partitions."""
    kafka = kafka_settings.model_copy(update={"rows_topic": f"{kafka_settings.rows_topic}-p4"})
    ensure_loop_topics(kafka)
    return kafka, {**kafka_env, "DRIFTLOOP_ROWS_TOPIC": kafka.rows_topic}


def by_partition(records: list[Any]) -> dict[int, list[dict[str, Any]]]:
    """Each partition's messages, in offset order."""
    rows: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        rows[record.partition].append({"key": record.key, **json.loads(record.value)})
    return rows


def test_the_loop_topics_get_4_rows_partitions_and_existing_topics_are_kept(
    kafka_settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    fresh = kafka_settings.model_copy(update={"rows_topic": f"{kafka_settings.rows_topic}-new"})
    caplog.set_level(logging.INFO, logger="broker.topics")
    ensure_loop_topics(fresh)
    # The fixture created the other three topics, and its rows topic, with 1 partition.
    ensure_loop_topics(kafka_settings)
    counts = partition_counts(
        kafka_settings, [fresh.rows_topic, kafka_settings.rows_topic, kafka_settings.drift_topic]
    )
    assert counts == {
        fresh.rows_topic: 4,
        kafka_settings.rows_topic: 1,
        kafka_settings.drift_topic: 1,
    }
    assert f"created topics {fresh.rows_topic} (4 partitions)" in caplog.text
    assert f"{kafka_settings.rows_topic} (1 partition)" in caplog.text


def test_by_default_a_stream_spreads_over_every_partition_each_row_once(
    spread: tuple[KafkaSettings, dict], iris_csv: Path
) -> None:
    kafka, env = spread
    run_producer(env, iris_csv, "--count", "600", "--seed", "3")
    rows = by_partition(read_topic(kafka, kafka.rows_topic))
    assert sorted(rows) == [0, 1, 2, 3]
    seqs = [row["seq"] for partition in rows.values() for row in partition]
    assert sorted(seqs) == list(range(600))
    for partition in rows.values():
        assert all(row["key"] is None for row in partition)
        # What users get without a key: each partition in the order the rows were sent.
        assert [row["seq"] for row in partition] == sorted(row["seq"] for row in partition)
        assert len(partition) > 600 / 4 / 2  # spread, not a trickle to all but one


def customers_csv(tmp_path: Path, iris_csv: Path) -> Path:
    """Iris with a text id column first: customer ``c<N>`` from the row's petal length."""
    lines = iris_csv.read_text().splitlines()
    header, body = lines[0], lines[1:]
    petal = header.split(",").index("petal_length")
    out = ["customer," + header]
    out += [f"c{customer_of(float(line.split(',')[petal]))},{line}" for line in body]
    path = tmp_path / "customers.csv"
    path.write_text("\n".join(out) + "\n")
    return path


def customer_of(petal_length: float) -> int:
    return round(petal_length * 10) % 7


@pytest.mark.parametrize("column", ["customer", "target", "petal_width"])
def test_a_key_column_keeps_each_keys_rows_on_one_partition_in_order(
    spread: tuple[KafkaSettings, dict], iris_csv: Path, tmp_path: Path, column: str
) -> None:
    kafka, env = spread
    data = customers_csv(tmp_path, iris_csv) if column == "customer" else iris_csv
    run_producer(env, data, "--count", "450", "--seed", "5", "--key-column", column)
    rows = by_partition(read_topic(kafka, kafka.rows_topic))
    assert sorted(row["seq"] for partition in rows.values() for row in partition) == list(
        range(450)
    )
    assert len(rows) > 1  # the keys themselves spread over partitions
    home: dict[bytes, int] = {}
    for number, partition in rows.items():
        for row in partition:
            assert home.setdefault(row["key"], number) == number, f"{row['key']!r} on two"
            # The key is this row's cell of the column, whatever the column's role.
            key = row["key"].decode()
            if column == "customer":
                assert set(row["features"]) == IRIS_FEATURES  # the id is not a feature
                assert key == f"c{customer_of(row['features']['petal_length'])}"
            elif column == "target":
                assert key == str(row["label"])
            else:
                assert float(key) == row["features"]["petal_width"]
        seqs = [row["seq"] for row in partition]
        assert seqs == sorted(seqs)
    assert len(home) == {"customer": 7, "target": 3, "petal_width": 22}[column]
