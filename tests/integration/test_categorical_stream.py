"""A mixed CSV (numeric, categorical, missing values) through the loop against the broker.

Trained, replayed by the producer with a shift in its categorical feature, judged by
the consumer: no row is dead-lettered for its strings or nulls, the drift is found
naming the categorical feature only, and the archive gives the strings back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from broker.settings import KafkaSettings
from consumer.archive import all_windows, read_labeled_rows
from consumer.events import DriftEvent
from data.dataset import load_dataset
from models.registry import Registry
from models.training import train_and_register
from tests.integration.streams import consume_windows, read_topic, run_producer

ROWS = 2000
DRIFT_AFTER = 1000


def mixed_csv(path: Path, rows: int = 600, seed: int = 1) -> Path:
    """colour (3 categories, the rarest 15%), size (numeric, 10% NA), weight (numeric)."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], size=rows, p=[0.5, 0.35, 0.15])
    size = rng.normal(10, 2, size=rows).round(2)
    weight = rng.normal(50, 5, size=rows).round(1)
    label = np.where((colour == "red") | (size > 11), "big", "small")
    lines = ["colour,size,weight,kind"]
    for i in range(rows):
        cell = "NA" if rng.random() < 0.1 else str(size[i])
        lines.append(f"{colour[i]},{cell},{weight[i]},{label[i]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_shifted_category_is_detected_by_name(
    kafka_settings: KafkaSettings, kafka_env: dict[str, str], tmp_path: Path
) -> None:
    data = mixed_csv(tmp_path / "mixed.csv")
    root = tmp_path / "var"
    dataset = load_dataset(data, label_column="kind")
    assert dataset.categorical == ("colour",)
    metadata = train_and_register(Registry(root), dataset, seed=7)
    assert metadata.categories == {"colour": ["blue", "green", "red"]}

    # From row 1,000 on, every row's colour is the rarest one, blue.
    run_producer(
        kafka_env,
        data,
        "--label-column",
        "kind",
        "--count",
        str(ROWS),
        "--drift-after",
        str(DRIFT_AFTER),
        "--drift-features",
        "colour",
        "--seed",
        "3",
    )
    stats = consume_windows(kafka_settings, root, window_size=50)

    assert stats.rows == ROWS
    assert dict(stats.dead_letters) == {}  # strings and nulls are data, not errors
    events = [
        DriftEvent.from_bytes(r.value)
        for r in read_topic(kafka_settings, kafka_settings.drift_topic)
    ]
    onsets = [e for e in events if e.is_onset]
    assert onsets, "the shift of colour raised no drift episode"
    for event in onsets:
        assert event.alarm is not None and event.alarm.features == ["colour"]
        assert "colour" in event.drifted_features
        assert event.categorical_features == ["colour"]
        assert set(event.missing_shares) == {"colour", "size", "weight"}

    windows = all_windows(root, kafka_settings.rows_topic)
    rows = read_labeled_rows(windows, metadata.feature_names, "kind")
    assert len(rows) == ROWS and rows.categorical == ("colour",)
    colours = set(rows.features[:, 0].tolist())
    assert colours == {"red", "green", "blue"}
    sizes = rows.features[:, 1].astype(float)
    assert 0.05 < np.isnan(sizes).mean() < 0.15  # the NA cells, archived as missing
