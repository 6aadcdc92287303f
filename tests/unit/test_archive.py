"""The window archive: what a window's files hold, read back as retraining reads them."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from consumer.archive import WindowArchive, read_labeled_rows, select_windows

FEATURES = ["sepal length (cm)", "width,with comma"]
T0 = datetime(2026, 11, 27, 1, 2, 3, 456789, tzinfo=UTC)


def write(archive: WindowArchive, values: np.ndarray, labels: list, times=None) -> Path:
    offsets = list(range(100, 100 + len(values)))
    path = archive.path_for("rows", "s", 0, offsets[0], offsets[-1])
    times = times or [T0 + timedelta(seconds=i) for i in range(len(values))]
    archive.write_rows(path, FEATURES, offsets, times, values, labels, "target")
    archive.sync()
    return path


def test_values_read_back_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    tricky = [1e-5, 1e16, -0.0, 5e-324, 0.1 + 0.2, 1.7976931348623157e308, 100.0, -3.25]
    values = np.concatenate(
        [rng.normal(3, 1, size=(40, 2)), np.array(tricky, dtype=np.float64).reshape(-1, 2)]
    )
    labels = [i % 3 for i in range(len(values))]
    path = write(WindowArchive(tmp_path), values, labels)

    rows = read_labeled_rows([path], FEATURES, "target")
    assert rows.offsets.tolist() == list(range(100, 100 + len(values)))
    assert rows.features.tobytes() == values.tobytes()  # bit for bit, -0.0 included
    assert rows.labels == [str(label) for label in labels]


def test_labels_and_times_as_the_csv_module_reads_them(tmp_path: Path) -> None:
    labels = ['setosa, "the first"', None, "versi\ncolor", 2]
    plus_one = timezone(timedelta(hours=1))
    times = [T0, T0, T0.astimezone(plus_one), T0 + timedelta(microseconds=1)]
    path = write(WindowArchive(tmp_path), np.ones((4, 2)), labels, times)

    with open(path, newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == ["offset", "event_time", *FEATURES, "target"]
    assert [row[-1] for row in rows] == ['setosa, "the first"', "", "versi\ncolor", "2"]
    assert [datetime.fromisoformat(row[1]) for row in rows] == times
    assert rows[0][1] == "2026-11-27T01:02:03.456789Z"


def test_a_window_written_again_is_the_same_file(tmp_path: Path) -> None:
    archive = WindowArchive(tmp_path)
    values = np.random.default_rng(0).normal(size=(50, 2))
    first = write(archive, values, [1] * 50).read_bytes()
    again = write(archive, values, [1] * 50)
    assert again.read_bytes() == first
    assert sorted(p.name for p in again.parent.iterdir()) == [again.name]  # no temp files left


@pytest.mark.parametrize(
    ("values", "labels", "message"),
    [
        (np.array([[1.0, np.nan]]), [1], "finite"),
        (np.array([[1.0, np.inf]]), [1], "finite"),
        (np.ones((2, 3)), [1, 1], r"shape \(2, 3\)"),
        (np.ones((2, 2)), [1], "one of each per row"),
    ],
)
def test_bad_rows_are_refused_and_nothing_is_written(
    tmp_path: Path, values: np.ndarray, labels: list, message: str
) -> None:
    archive = WindowArchive(tmp_path)
    times = [T0] * len(values)
    with pytest.raises(ValueError, match=message):
        write(archive, values, labels, times)
    assert not (tmp_path / "archive").exists()


# --------------------------------------------------------------------------- selecting


def names(paths: list[Path]) -> list[int]:
    return [int(p.name[:12]) for p in paths]


def window_paths(firsts: range, size: int = 50) -> list[Path]:
    return [Path(f"{f:012d}-{f + size - 1:012d}.csv") for f in firsts]


@pytest.mark.parametrize(
    ("drift_first", "lookback", "expected"),
    [
        (300, 2, [200, 250, 300, 350, 400, 450, 500, 550]),
        (300, 0, [300, 350, 400, 450, 500, 550]),
        (50, 5, [0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 550]),
        (550, 1, [500, 550]),
        (325, 1, [300, 350, 400, 450, 500, 550]),  # drift window not archived: from the next
    ],
)
def test_select_windows(drift_first: int, lookback: int, expected: list[int]) -> None:
    shuffled = window_paths(range(0, 600, 50))[::-1]
    assert names(select_windows(shuffled, drift_first, lookback)) == expected


def test_select_sliding_windows() -> None:
    sliding = window_paths(range(0, 300, 25))
    assert names(select_windows(sliding, 100, 2)) == [50, 75, *range(100, 300, 25)]
