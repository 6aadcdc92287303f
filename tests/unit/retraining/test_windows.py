"""Which archived windows a retrain reads, and the labeled rows in them."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.archive import ArchiveError, count_labeled_rows, read_labeled_rows
from data.dataset import Dataset
from retraining.windows import training_windows
from tests.dags.scenario import drift_event, write_archive
from tests.unit.retraining.conftest import FEATURES, TOPIC


def names(paths: list[Path]) -> list[int]:
    return [int(p.name[:12]) for p in paths]


def test_training_windows_read_the_consumers_archive_layout(root: Path, iris: Dataset) -> None:
    events = write_archive(root, TOPIC, iris, rows=300, drift_after=150)
    (root / "archive" / TOPIC / "iris" / "0" / "notes.txt").write_text("not a window")
    windows = training_windows(root, events[3], lookback=1)
    assert names(windows) == [100, 150, 200, 250]
    assert all(w.parent == root / "archive" / TOPIC / "iris" / "0" for w in windows)
    assert training_windows(root, drift_event("other-topic", 0, 49), lookback=2) == []


def test_a_streams_windows_come_from_every_partition_since_the_onset(
    root: Path, iris: Dataset
) -> None:
    # The stream's rows spread over three partitions, row o of each at T0 + o seconds.
    events = {
        p: write_archive(root, TOPIC, iris, rows=300, drift_after=150, partition=p)
        for p in (0, 1, 2)
    }
    windows = training_windows(root, events[1][3], lookback=1)
    by_partition = {p: [w for w in windows if w.parent.name == str(p)] for p in (0, 1, 2)}
    assert {p: names(ws) for p, ws in by_partition.items()} == {
        p: [100, 150, 200, 250] for p in (0, 1, 2)
    }
    rows = read_labeled_rows(windows, FEATURES, "target")
    assert len(rows) == 3 * 200  # the same offsets in three partitions are distinct rows
    assert list(rows.partitions[:3]) == [0, 1, 2]  # ordered by event time, then partition


def test_a_window_of_another_partition_that_began_before_the_onset_is_left_out(
    root: Path, iris: Dataset
) -> None:
    onset = write_archive(root, TOPIC, iris, rows=300, partition=0)[3]  # rows 150-199
    # Partition 1's rows run 25 s ahead: its window 150-199 spans T0+125..T0+174.
    write_archive(root, TOPIC, iris, rows=300, partition=1, shift_seconds=-25)
    windows = training_windows(root, onset, lookback=0)
    assert names([w for w in windows if w.parent.name == "1"]) == [200, 250]
    assert names([w for w in windows if w.parent.name == "0"]) == [150, 200, 250]


def test_labeled_rows_are_deduplicated_ordered_and_labeled_only(root: Path, iris: Dataset) -> None:
    write_archive(root, TOPIC, iris, rows=200, window=50, labeled_every=2)
    directory = root / "archive" / TOPIC / "iris" / "0"
    # A sliding window overlapping two tumbling ones repeats rows 25..74.
    header, *rows = [
        line
        for path in sorted(directory.glob("*.csv"))[:2]
        for line in path.read_text().splitlines()
    ]
    overlap = [r for r in rows if not r.startswith("offset") and 25 <= int(r.split(",")[0]) < 75]
    (directory / "000000000025-000000000074.csv").write_text("\n".join([header, *overlap]) + "\n")
    windows = training_windows(root, drift_event(TOPIC, 50, 99), lookback=2)
    assert names(windows) == [0, 25, 50, 100, 150]

    rows_read = read_labeled_rows(windows, FEATURES, "target")

    assert rows_read.offsets.tolist() == list(range(0, 200, 2))
    assert rows_read.features.shape == (100, 4)
    assert set(rows_read.labels) == {"0", "1", "2"}
    assert count_labeled_rows(windows, "target") == 100


def test_a_window_without_the_label_column_is_an_error(root: Path, iris: Dataset) -> None:
    events = write_archive(root, TOPIC, iris, rows=100)
    windows = training_windows(root, events[0], lookback=0)
    with pytest.raises(ArchiveError, match="lacks column"):
        read_labeled_rows(windows, FEATURES, "species")
