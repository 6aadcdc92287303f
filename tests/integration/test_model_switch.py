"""A running consumer switches to a promoted champion on a ModelUpdate, without a restart."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from kafka import KafkaProducer

from broker.settings import KafkaSettings
from consumer.archive import archived_verdicts
from consumer.events import DriftEvent
from data.dataset import load_dataset
from demo.stack import wait_until
from models.promotion import ModelUpdate
from models.registry import Registry
from models.training import evaluate, train_classifier
from tests.integration.streams import drift_monitor, read_topic, run_producer

WINDOW = 50


def promote_model_trained_on_noised_iris(registry: Registry, iris_csv: Path) -> ModelUpdate:
    """What the retraining DAG does, done by hand: a champion for the drifted data."""
    iris = load_dataset(iris_csv)
    rng = np.random.default_rng(11)
    noised = iris.features.to_numpy() + rng.normal(3.0, 1.0, iris.features.shape)
    estimator = train_classifier(noised, iris.labels, seed=7)
    metadata = registry.register(
        estimator,
        noised,
        feature_names=iris.feature_names,
        label_column=iris.label_column,
        training_data_sha256=iris.sha256,
        metrics=evaluate(estimator, noised, iris.labels),
        cause="test: drifted Iris",
        decision="promoted",
        parent_version=1,
        training_rows=len(noised),
    )
    registry.promote(metadata.version)
    return ModelUpdate(
        model_name=registry.model_name,
        version=metadata.version,
        previous_version=1,
        drift_event_id="test",
        challenger_metrics=metadata.metrics,
        champion_metrics={"accuracy": 0.3},
        model_path=str(registry.version_dir(metadata.version)),
        reference_path=str(registry.version_dir(metadata.version) / "reference.npy"),
        reference_sha256=metadata.reference_sha256,
        promoted_at=datetime.now(UTC),
    )


def test_consumer_judges_windows_after_a_model_update_against_the_new_reference(
    kafka_settings: KafkaSettings,
    kafka_env: dict[str, str],
    iris_csv: Path,
    artifact_root: Path,
    client: str,
) -> None:
    registry = Registry(artifact_root)
    stop = threading.Event()
    with drift_monitor(kafka_settings, artifact_root, window_size=WINDOW, client=client) as monitor:
        loop = threading.Thread(target=monitor.run, args=(stop.is_set,))
        loop.start()
        try:
            run_producer(kafka_env, iris_csv, "--count", "300", "--drift-after", "0", "--seed", "1")
            wait_until(lambda: monitor.stats.windows == 6, 60, "six drifted windows")
            assert monitor.stats.drift_windows == 6
            assert monitor.stats.episodes == 1

            update = promote_model_trained_on_noised_iris(registry, iris_csv)
            with KafkaProducer(bootstrap_servers=kafka_settings.servers) as producer:
                producer.send(kafka_settings.model_updates_topic, update.to_bytes()).get(10)
            wait_until(lambda: monitor.champion.metadata.version == 2, 30, "the model switch")

            run_producer(kafka_env, iris_csv, "--count", "300", "--drift-after", "0", "--seed", "2")
            wait_until(lambda: monitor.stats.windows == 12, 60, "six more windows")
        finally:
            stop.set()
            loop.join(timeout=30)

    events = [
        DriftEvent.from_bytes(r.value)
        for r in read_topic(kafka_settings, kafka_settings.drift_topic)
    ]
    assert {e.model_version for e in events if e.window.first_offset < 300} == {1}
    # The switch re-baselines the consumer: the episode resolves, and is announced.
    assert [(e.event_id, e.episode.state if e.episode else None) for e in events] == [
        (f"{kafka_settings.rows_topic}-0-0-49", "onset"),
        (f"{kafka_settings.rows_topic}-0-250-299-resolved-v2", "resolved"),
    ]
    after = [e for e in events if e.window.first_offset >= 300]
    assert after == [], "the drifted data is what the new champion was trained on"
    verdicts = sorted(
        (json.loads(v.data) for v in archived_verdicts(artifact_root, kafka_settings.rows_topic)),
        key=lambda v: v["window"]["first_offset"],
    )
    judged_by = [v["model_version"] for v in verdicts]
    assert judged_by == [1] * 6 + [2] * 6
    reference = {v["reference_sha256"] for v in verdicts[6:]}
    assert reference == {update.reference_sha256}


def test_models_promote_by_hand_switches_a_running_consumer_and_back(
    kafka_settings: KafkaSettings,
    kafka_env: dict[str, str],
    iris_csv: Path,
    artifact_root: Path,
) -> None:
    registry = Registry(artifact_root)
    promote_model_trained_on_noised_iris(registry, iris_csv)
    registry.promote(1, by="hand", reason="test: start from v1")

    def promote(version: int, reason: str) -> str:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "models",
                "promote",
                str(version),
                "--reason",
                reason,
                "--artifact-root",
                str(artifact_root),
            ],
            env=kafka_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    stop = threading.Event()
    with drift_monitor(kafka_settings, artifact_root, window_size=WINDOW) as monitor:
        loop = threading.Thread(target=monitor.run, args=(stop.is_set,))
        loop.start()
        try:
            assert monitor.champion.metadata.version == 1
            out = promote(2, "v1 misjudges the new sensors")
            assert "v2 is champion (was v1), promoted by hand" in out
            wait_until(lambda: monitor.champion.metadata.version == 2, 30, "the switch to v2")
            promote(1, "rollback: v2 misbehaves")
            wait_until(lambda: monitor.champion.metadata.version == 1, 30, "the rollback to v1")
        finally:
            stop.set()
            loop.join(timeout=30)

    updates = [
        ModelUpdate.from_bytes(r.value)
        for r in read_topic(kafka_settings, kafka_settings.model_updates_topic)
    ]
    assert [(u.version, u.previous_version, u.promoted_by) for u in updates] == [
        (2, 1, "hand"),
        (1, 2, "hand"),
    ]
    assert updates[1].reason == "rollback: v2 misbehaves"
    history = [(p.version, p.promoted_by, p.reason) for p in registry.promotions()][-2:]
    assert history == [
        (2, "hand", "v1 misjudges the new sensors"),
        (1, "hand", "rollback: v2 misbehaves"),
    ]
