"""The streaming half end to end on a real broker: producer → rows → consumer → drift-events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.settings import KafkaSettings
from consumer.archive import archived_verdicts, read_window, resolve_window
from consumer.events import DriftEvent
from tests.integration.streams import consume_windows, read_topic, run_producer

WINDOW = 50


def drift_events(kafka: KafkaSettings) -> list[DriftEvent]:
    return [DriftEvent.from_bytes(r.value) for r in read_topic(kafka, kafka.drift_topic)]


def test_a_clean_replay_raises_no_alarm(
    kafka_settings: KafkaSettings,
    kafka_env: dict[str, str],
    iris_csv: Path,
    artifact_root: Path,
    client: str,
) -> None:
    run_producer(kafka_env, iris_csv, "--count", "1500", "--seed", "7")

    stats = consume_windows(kafka_settings, artifact_root, window_size=WINDOW, client=client)

    assert stats.rows == 1500
    assert stats.windows == 1500 // WINDOW
    # Seeded: at the default budget a false alarm in 1,500 rows has a chance of about
    # 0.2%; this seed raises none (the rows past 1,000 go to the rank alarm).
    assert (stats.alarms, stats.episodes) == (0, 0)
    assert drift_events(kafka_settings) == []


@pytest.mark.parametrize("backend", ["alibi", "fast"])
def test_tutorial_noise_alerts_from_the_first_fully_drifted_window(
    kafka_settings: KafkaSettings,
    kafka_env: dict[str, str],
    iris_csv: Path,
    artifact_root: Path,
    backend: str,
    client: str,
) -> None:
    run_producer(
        kafka_env,
        iris_csv,
        "--count",
        "600",
        "--drift-after",
        "300",
        "--seed",
        "7",
        "--drift-features",
        "petal_length,sepal_width",
    )

    consume_windows(
        kafka_settings, artifact_root, window_size=WINDOW, ks_backend=backend, client=client
    )

    # One drift episode, announced once at its onset: the first noised window.
    [first_drifted] = drift_events(kafka_settings)
    assert first_drifted.is_drift and first_drifted.is_onset
    assert first_drifted.event_id == f"{kafka_settings.rows_topic}-0-300-349"
    assert first_drifted.episode is not None
    assert first_drifted.episode.episode_id == first_drifted.event_id
    assert sorted(first_drifted.drifted_features) == ["petal_length", "sepal_width"]
    assert set(first_drifted.episode.drifted_features) <= {"petal_length", "sepal_width"}
    assert first_drifted.detector.backend == backend
    assert first_drifted.model_version == 1
    # Every fully noised window is drift evidence, names only the noised features, and
    # belongs to the episode without announcing it again.
    verdicts = sorted(
        (
            DriftEvent.from_bytes(v.data)
            for v in archived_verdicts(artifact_root, first_drifted.window.topic)
        ),
        key=lambda v: v.window.first_offset,
    )
    noised = [v for v in verdicts if v.window.first_offset >= 300]
    assert [v.window.first_offset for v in noised] == [300, 350, 400, 450, 500, 550]
    for verdict in noised:
        assert verdict.is_drift
        assert set(verdict.drifted_features) <= {"petal_length", "sepal_width"}
        assert verdict.episode is not None
        assert verdict.episode.episode_id == first_drifted.event_id
    # The window's rows are archived with their labels, for retraining.
    archived = read_window(resolve_window(first_drifted.archive_path))
    assert archived.label_column == "target"
    assert len(archived.offsets) == WINDOW
    verdict = json.loads(archived.verdict or b"")
    assert verdict["event_id"] == first_drifted.event_id
