"""Which archived windows a retrain reads, and the labeled rows in them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from consumer.archive import (
    ArchivedWindow,
    ArchiveError,
    WindowArchive,
    archived_windows,
    count_labeled_rows,
    read_labeled_rows,
    read_window,
)
from data.dataset import Dataset
from retraining.windows import training_windows
from tests.dags.scenario import T0, drift_event, write_archive
from tests.legacy_archive import write_window_files
from tests.unit.retraining.conftest import FEATURES, TOPIC


def names(windows: list[ArchivedWindow]) -> list[int]:
    return [w.first_offset for w in windows]


def test_training_windows_read_the_consumers_archive_layout(root: Path, iris: Dataset) -> None:
    events = write_archive(root, TOPIC, iris, rows=300, drift_after=150)
    (root / "archive" / TOPIC / "iris" / "0" / "notes.txt").write_text("not a window")
    windows = training_windows(root, events[3], lookback=1)
    assert names(windows) == [100, 150, 200, 250]
    assert all(w.path.parent == root / "archive" / TOPIC / "iris" / "0" for w in windows)
    assert all(w.in_segment and w.path.suffix == ".seg" for w in windows)
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
    by_partition = {p: [w for w in windows if w.partition == p] for p in (0, 1, 2)}
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
    assert names([w for w in windows if w.partition == 1]) == [200, 250]
    assert names([w for w in windows if w.partition == 0]) == [150, 200, 250]


def test_labeled_rows_are_deduplicated_ordered_and_labeled_only(root: Path, iris: Dataset) -> None:
    events = write_archive(root, TOPIC, iris, rows=200, window=50, labeled_every=2)
    # A sliding window overlapping two tumbling ones repeats rows 25..74.
    first_two = [read_window(w) for w in archived_windows(root, TOPIC, "iris", 0)[:2]]
    archive = WindowArchive(root, fsync=False)
    keep = slice(25, 75)
    archive.append(
        drift_event(TOPIC, 25, 74, features=tuple(FEATURES)),
        FEATURES,
        [o for r in first_two for o in r.offsets.tolist()][keep],
        [T0.fromisoformat(t) for r in first_two for t in r.event_times][keep],
        np.concatenate([r.values for r in first_two])[keep],
        [label or None for r in first_two for label in r.labels][keep],
        "target",
    )
    archive.close()
    windows = training_windows(root, drift_event(TOPIC, 50, 99), lookback=2)
    assert names(windows) == [0, 25, 50, 100, 150]
    assert len(events) == 4

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


def test_an_archive_of_per_window_files_is_still_read(root: Path, iris: Dataset) -> None:
    # Windows 0..199 archived by an earlier version, 200..299 by this one.
    segments = root / "segments"
    events = write_archive(segments, TOPIC, iris, rows=300, drift_after=150)
    for window, event in zip(
        archived_windows(segments, TOPIC, "iris", 0)[:4], events[:4], strict=True
    ):
        record = read_window(window)
        write_window_files(
            root,
            event,
            record.feature_names,
            record.offsets.tolist(),
            [T0.fromisoformat(t) for t in record.event_times],
            record.values,
            [label or None for label in record.labels],
            record.label_column,
        )
    archive = WindowArchive(root, fsync=False)
    for window, event in list(
        zip(archived_windows(segments, TOPIC, "iris", 0), events, strict=True)
    )[4:]:
        record = read_window(window)
        archive.append(
            event,
            record.feature_names,
            record.offsets.tolist(),
            [T0.fromisoformat(t) for t in record.event_times],
            record.values,
            [label or None for label in record.labels],
            record.label_column,
        )
    archive.close()

    windows = training_windows(root, events[3], lookback=1)
    assert names(windows) == [100, 150, 200, 250]
    assert [w.in_segment for w in windows] == [False, False, True, True]
    mixed = read_labeled_rows(windows, FEATURES, "target")
    alike = read_labeled_rows(training_windows(segments, events[3], lookback=1), FEATURES, "target")
    assert mixed.features.tobytes() == alike.features.tobytes()
    assert mixed.labels == alike.labels and mixed.offsets.tolist() == alike.offsets.tolist()
    assert count_labeled_rows(windows, "target") == 200
