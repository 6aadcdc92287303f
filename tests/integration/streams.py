"""Driving the loop's processes from tests: run the producer, the consumer, read a topic."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from broker.clients import manual_commit_consumer, reliable_producer
from broker.settings import KafkaSettings
from consumer.archive import WindowArchive
from consumer.service import Champion, DriftMonitor, Stats
from consumer.settings import ConsumerSettings
from models.registry import Registry


def run_producer(env: dict[str, str], iris_csv: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `python -m producer` to completion, unthrottled, and check it succeeded."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "producer",
            "--data",
            str(iris_csv),
            "--rate",
            "0",
            "--quiet",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result


def consume_windows(
    kafka: KafkaSettings, artifact_root: Path, idle_timeout: float = 3.0, **overrides: Any
) -> Stats:
    """Run the consumer in-process until the rows topic has been idle for ``idle_timeout`` s."""
    settings = ConsumerSettings(
        **kafka.model_dump(),
        artifact_root=artifact_root,
        group_id=f"test-{kafka.rows_topic}",
        **{"ks_backend": "fast", **overrides},
    )
    producer = reliable_producer(settings, client_id="test-consumer-events")
    consumer = manual_commit_consumer(settings, settings.group_id, client_id="test-consumer")
    champion = Champion.from_registry(Registry(artifact_root, settings.model_name), settings)
    monitor = DriftMonitor(settings, consumer, producer, champion, WindowArchive(artifact_root))
    try:
        return monitor.run(lambda: False, idle_timeout=idle_timeout)
    finally:
        producer.close()
        consumer.close(autocommit=False)


def read_topic(kafka: KafkaSettings, topic: str, timeout: float = 15.0) -> list[Any]:
    """Every record of ``topic``, from the start to its end offsets at the time of the call."""
    consumer = KafkaConsumer(bootstrap_servers=kafka.servers, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"could not read {topic} to its end in time"
            for batch in consumer.poll(timeout_ms=300).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()
