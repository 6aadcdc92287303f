"""The consumer starts as it should: its topics ensured once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import broker.topics
import consumer.assembly
from broker.settings import KafkaSettings
from consumer.__main__ import serve


@pytest.fixture
def client_logs() -> Iterator[None]:
    """The kafka loggers restored after ``quiet_client_logs()``."""
    names = ("kafka", "kafka.net")
    saved = {n: logging.getLogger(n).level for n in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def test_the_consumer_ensures_its_topics_once(
    kafka_settings: KafkaSettings,
    artifact_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    client_logs: None,
) -> None:
    calls: list[list[str]] = []
    real = broker.topics.ensure_topics

    def spy(servers: list[str], topics: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(list(topics))
        real(servers, topics, *args, **kwargs)

    monkeypatch.setattr(broker.topics, "ensure_topics", spy)
    monkeypatch.setattr(consumer.assembly, "ensure_topics", spy)
    flags = {
        **kafka_settings.model_dump(),
        "artifact_root": artifact_root,
        "group_id": f"test-{kafka_settings.rows_topic}",
        "ks_backend": "fast",
    }
    assert serve(flags, lambda: False, idle_exit=1.0) == 0
    assert len(calls) == 1
    assert sorted(calls[0]) == sorted(
        [
            kafka_settings.rows_topic,
            kafka_settings.drift_topic,
            kafka_settings.dlq_topic,
            kafka_settings.model_updates_topic,
        ]
    )
