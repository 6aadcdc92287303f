"""Fixtures shared by every test folder: the real Kafka broker and per-test topics."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.local import DEFAULT_LIB_DIR, LocalBroker, free_port
from broker.settings import KafkaSettings
from broker.topics import ensure_topics
from data.dataset import load_dataset, write_iris_csv
from models.registry import Registry
from models.training import train_and_register

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A real Apache Kafka broker on a free port, for the whole test session."""
    broker = LocalBroker(
        home=tmp_path_factory.mktemp("kafka"),
        port=free_port(),
        lib_dir=REPO / DEFAULT_LIB_DIR,
    )
    broker.start(timeout=120)
    yield broker
    broker.stop()


@pytest.fixture
def kafka_settings(kafka_broker: LocalBroker) -> KafkaSettings:
    """Settings naming topics no other test uses, created on the session's broker."""
    suffix = uuid.uuid4().hex[:8]
    settings = KafkaSettings(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        rows_topic=f"rows-{suffix}",
        drift_topic=f"drift-events-{suffix}",
        model_updates_topic=f"model-updates-{suffix}",
        dlq_topic=f"rows-dlq-{suffix}",
        labels_topic=f"labels-{suffix}",
    )
    ensure_topics(
        settings.servers,
        [
            settings.rows_topic,
            settings.drift_topic,
            settings.model_updates_topic,
            settings.dlq_topic,
            settings.labels_topic,
        ],
    )
    return settings


@pytest.fixture
def kafka_env(kafka_settings: KafkaSettings) -> dict[str, str]:
    """The environment a driftloop subprocess needs to use ``kafka_settings``."""
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
            "DRIFTLOOP_ROWS_TOPIC": kafka_settings.rows_topic,
            "DRIFTLOOP_DRIFT_TOPIC": kafka_settings.drift_topic,
            "DRIFTLOOP_MODEL_UPDATES_TOPIC": kafka_settings.model_updates_topic,
            "DRIFTLOOP_DLQ_TOPIC": kafka_settings.dlq_topic,
            "DRIFTLOOP_LABELS_TOPIC": kafka_settings.labels_topic,
        }
    )
    return env


CLIENTS = ("kafka-python", "confluent")
"""The Kafka clients the consumer runs on (``--client``)."""


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> str:
    """The consumer's Kafka client: a test that takes it runs once on each."""
    return str(request.param)


@pytest.fixture
def consumer_env(kafka_env: dict[str, str], client: str) -> dict[str, str]:
    """``kafka_env`` for a `python -m consumer` on ``client``."""
    return {**kafka_env, "DRIFTLOOP_CLIENT": client}


@pytest.fixture(scope="session")
def iris_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_iris_csv(tmp_path_factory.mktemp("data") / "iris.csv")


@pytest.fixture
def artifact_root(tmp_path: Path, iris_csv: Path) -> Path:
    """An artifact root whose registry has a champion trained on Iris."""
    train_and_register(Registry(tmp_path / "var"), load_dataset(iris_csv), seed=7)
    return tmp_path / "var"
