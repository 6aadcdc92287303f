"""The soak benchmark's rules: the retention bound it checks the archive against, its verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bench.soak import RSS_GROWTH_LIMIT, Reading, allowed_rows, verdict
from consumer.archive import WindowArchive, archived_windows
from tests.dags.scenario import drift_event

FEATURES = ["a", "b", "c", "d"]
WINDOW = 50
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("retention_rows", [1000, 1234, 1500])
def test_the_archive_stays_within_the_rows_retention_allows(
    tmp_path: Path, retention_rows: int
) -> None:
    # Segments of about 6 windows; 300 windows pass through, pruned as segments roll.
    record_bytes = 6000
    archive = WindowArchive(
        tmp_path, fsync=False, segment_bytes=6 * record_bytes, retention_rows=retention_rows
    )
    rng = np.random.default_rng(3)
    on_disk = []
    for first in range(0, 300 * WINDOW, WINDOW):
        offsets = list(range(first, first + WINDOW))
        archive.append(
            drift_event("rows", first, first + WINDOW - 1, features=tuple(FEATURES)),
            FEATURES,
            offsets,
            [T0 + timedelta(milliseconds=20 * o) for o in offsets],
            rng.normal(size=(WINDOW, len(FEATURES))),
            [int(o % 3) for o in offsets],
            "target",
        )
        archive.sync()
        windows = archived_windows(tmp_path, "rows", "iris", 0)
        files = list(archive.directory_for("rows", "iris", 0).glob("*.seg"))
        mean_record = sum(p.stat().st_size for p in files) / len(windows)
        rows = sum(w.last_offset - w.first_offset + 1 for w in windows)
        on_disk.append((rows, allowed_rows(retention_rows, 6 * record_bytes, mean_record, WINDOW)))
    archive.close()
    assert all(rows <= allowed for rows, allowed in on_disk)
    # Retention ran, and never kept fewer rows than it was asked to once it had them.
    assert on_disk[-1][0] < 300 * WINDOW
    assert min(rows for rows, _ in on_disk[len(on_disk) // 2 :]) >= retention_rows
    # The bound is not loose: the archive comes within two segments of it.
    assert max(rows for rows, _ in on_disk) > on_disk[-1][1] - 2 * 7 * WINDOW


def reading(rows: int, rss_kib: int, archive_rows: int = 100, allowed: int = 200) -> Reading:
    return Reading(rows, rows / 1000, rows / 2000, rss_kib, 3, 10_000, archive_rows, allowed)


def test_memory_within_ten_percent_of_the_first_reading_passes() -> None:
    readings = [reading(1_000_000, 200_000), reading(2_000_000, 260_000)]
    readings.append(reading(3_000_000, int(200_000 * RSS_GROWTH_LIMIT)))
    assert verdict(readings)[0].startswith("PASS: last RSS 1.10 x the first")


def test_memory_beyond_ten_percent_at_the_end_fails() -> None:
    lines = verdict([reading(1_000_000, 200_000), reading(2_000_000, 220_001)])
    assert len(lines) == 1
    assert lines[0].startswith("FAIL: memory grew")
    assert "220,001 KiB at 2,000,000 rows" in lines[0]


def test_an_archive_over_its_allowance_at_any_reading_fails() -> None:
    lines = verdict(
        [
            reading(1_000_000, 200_000),
            reading(2_000_000, 200_000, archive_rows=201),
            reading(3_000_000, 200_000),
        ]
    )
    assert lines == [
        "FAIL: the archive held 201 rows at 2,000,000 rows, more than the 200 its retention allows"
    ]


def test_a_verdict_needs_two_readings() -> None:
    with pytest.raises(ValueError, match="at least 2 readings"):
        verdict([reading(1_000_000, 200_000)])
