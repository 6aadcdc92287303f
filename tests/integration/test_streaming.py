"""The streaming half end to end on a real broker: producer → rows → consumer → drift-events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.settings import KafkaSettings
from consumer.events import DriftEvent
from tests.integration.streams import consume_windows, read_topic, run_producer

WINDOW = 50


def drift_events(kafka: KafkaSettings) -> list[DriftEvent]:
    return [DriftEvent.from_bytes(r.value) for r in read_topic(kafka, kafka.drift_topic)]


def test_clean_replay_rarely_alerts(
    kafka_settings: KafkaSettings, kafka_env: dict[str, str], iris_csv: Path, artifact_root: Path
) -> None:
    run_producer(kafka_env, iris_csv, "--count", "600", "--seed", "7")

    stats = consume_windows(kafka_settings, artifact_root, window_size=WINDOW)

    assert stats.rows == 600
    assert stats.windows == 600 // WINDOW
    events = drift_events(kafka_settings)
    assert len(events) <= stats.windows // 10
    assert stats.drift_events == len(events)


@pytest.mark.parametrize("backend", ["alibi", "fast"])
def test_tutorial_noise_alerts_from_the_first_fully_drifted_window(
    kafka_settings: KafkaSettings,
    kafka_env: dict[str, str],
    iris_csv: Path,
    artifact_root: Path,
    backend: str,
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

    consume_windows(kafka_settings, artifact_root, window_size=WINDOW, ks_backend=backend)

    events = drift_events(kafka_settings)
    by_first_offset = {e.window.first_offset: e for e in events}
    first_drifted = by_first_offset[300]
    assert first_drifted.is_drift
    assert first_drifted.event_id == f"{kafka_settings.rows_topic}-0-300-349"
    assert sorted(first_drifted.drifted_features) == ["petal_length", "sepal_width"]
    assert first_drifted.detector.backend == backend
    assert first_drifted.model_version == 1
    # Every fully noised window alerts, and it names only the noised features.
    assert sorted(by_first_offset)[-6:] == [300, 350, 400, 450, 500, 550]
    for event in events:
        if event.window.first_offset >= 300:
            assert set(event.drifted_features) <= {"petal_length", "sepal_width"}
    # The window's rows are archived with their labels, for retraining.
    archived = Path(first_drifted.archive_path)
    lines = archived.read_text().splitlines()
    assert lines[0].split(",")[-1] == "target"
    assert len(lines) == 1 + WINDOW
    verdict = json.loads(archived.with_suffix(".json").read_text())
    assert verdict["event_id"] == first_drifted.event_id
