"""Driving the loop's processes from tests: run the producer, the consumer, read a topic."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from broker.settings import KafkaSettings
from consumer.assembly import build_monitor
from consumer.service import DriftMonitor, Stats
from consumer.settings import ConsumerSettings


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


@contextmanager
def drift_monitor(
    kafka: KafkaSettings, artifact_root: Path, **overrides: Any
) -> Iterator[DriftMonitor]:
    """The consumer's loop, built as `python -m consumer` builds it, closed on exit."""
    settings = ConsumerSettings(
        **kafka.model_dump(),
        artifact_root=artifact_root,
        group_id=f"test-{kafka.rows_topic}",
        **{"ks_backend": "fast", **overrides},
    )
    with build_monitor(settings, client_id="test-consumer") as monitor:
        yield monitor


def consume_windows(
    kafka: KafkaSettings, artifact_root: Path, idle_timeout: float = 3.0, **overrides: Any
) -> Stats:
    """Run the consumer in-process until the rows topic has been idle for ``idle_timeout`` s."""
    with drift_monitor(kafka, artifact_root, **overrides) as monitor:
        return monitor.run(lambda: False, idle_timeout=idle_timeout)


def read_topic(kafka: KafkaSettings, topic: str, timeout: float = 15.0) -> list[Any]:
    """Every committed record of ``topic``, from the start to its end at the time of the call.

    Read as every reader of driftloop's topics should: committed messages only, so the
    sends of an aborted transaction (a killed consumer's) are not seen.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.servers,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
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
