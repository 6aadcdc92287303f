"""The consumer starts quietly: its topics ensured once, no ERROR line on a normal run."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import broker.topics
from broker.clients import ExpectedClientNoise, manual_commit_consumer, quiet_client_logs
from broker.settings import KafkaSettings
from consumer.__main__ import serve
from consumer.settings import ConsumerSettings
from demo.stack import wait_until
from tests.integration.streams import read_topic, run_producer

ERROR_LINE = re.compile(r"\bERROR\b")


@pytest.fixture
def client_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record, with the kafka loggers restored after ``quiet_client_logs()``."""
    names = ("kafka", "kafka.net", *ExpectedClientNoise.LOGGERS)
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).filters)) for n in names}
    caplog.set_level(logging.INFO)
    yield caplog
    for name, (level, filters) in saved.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).filters[:] = filters


def test_the_consumer_ensures_its_topics_once(
    kafka_settings: KafkaSettings,
    artifact_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    client_logs: pytest.LogCaptureFixture,
) -> None:
    calls: list[list[str]] = []
    real = broker.topics.ensure_topics

    def spy(servers: list[str], topics: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(list(topics))
        real(servers, topics, *args, **kwargs)

    monkeypatch.setattr(broker.topics, "ensure_topics", spy)
    settings = ConsumerSettings(
        **kafka_settings.model_dump(),
        artifact_root=artifact_root,
        group_id=f"test-{kafka_settings.rows_topic}",
        ks_backend="fast",
    )
    assert serve(settings, lambda: False, idle_exit=1.0) == 0
    assert len(calls) == 1
    assert sorted(calls[0]) == sorted(
        [
            kafka_settings.rows_topic,
            kafka_settings.drift_topic,
            kafka_settings.dlq_topic,
            kafka_settings.model_updates_topic,
            kafka_settings.labels_topic,
        ]
    )


def test_a_topic_not_created_yet_is_no_error(
    kafka_settings: KafkaSettings, client_logs: pytest.LogCaptureFixture
) -> None:
    quiet_client_logs()
    topic = f"rows-later-{uuid.uuid4().hex[:8]}"
    reader = manual_commit_consumer(kafka_settings, group_id=f"test-{topic}", client_id="test")
    try:
        reader.subscribe([topic])
        # kafka-python asks for the topic's metadata on the first polls, and logs
        # "Topic ... not found in cluster metadata" at ERROR while it is missing.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            reader.poll(timeout_ms=300)
    finally:
        reader.close(autocommit=False)
    assert [r.getMessage() for r in client_logs.records if r.levelno >= logging.ERROR] == []


def test_a_normal_run_on_fresh_topics_logs_no_error_line(
    kafka_settings: KafkaSettings,
    kafka_env: dict[str, str],
    iris_csv: Path,
    artifact_root: Path,
    tmp_path: Path,
) -> None:
    # Topics no one has created: the consumer creates them itself.
    suffix = uuid.uuid4().hex[:8]
    env = {
        **kafka_env,
        "DRIFTLOOP_ROWS_TOPIC": f"rows-fresh-{suffix}",
        "DRIFTLOOP_DRIFT_TOPIC": f"drift-events-fresh-{suffix}",
        "DRIFTLOOP_MODEL_UPDATES_TOPIC": f"model-updates-fresh-{suffix}",
        "DRIFTLOOP_DLQ_TOPIC": f"rows-dlq-fresh-{suffix}",
        "DRIFTLOOP_LABELS_TOPIC": f"labels-fresh-{suffix}",
    }
    log = tmp_path / "consumer.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "consumer",
                "--ks-backend",
                "fast",
                "--artifact-root",
                str(artifact_root),
                "--idle-exit",
                "6",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "consuming topic=" in log.read_text(), 60, "the consumer consuming")
        run_producer(env, iris_csv, "--count", "200", "--seed", "7")
        assert process.wait(timeout=90) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    # The rows spread over the four partitions it created; each fills its own windows.
    fresh = KafkaSettings(
        **{**kafka_settings.model_dump(), "rows_topic": env["DRIFTLOOP_ROWS_TOPIC"]}
    )
    per_partition = Counter(r.partition for r in read_topic(fresh, fresh.rows_topic))
    assert len(per_partition) == 4
    windows = sum(n // 50 for n in per_partition.values())
    assert f"stopped: rows=200 windows={windows} " in text
    assert [line for line in text.splitlines() if ERROR_LINE.search(line)] == []
