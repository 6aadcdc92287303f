"""The window archive: segments written and read back exactly, torn tails, re-judged windows,
per-window files of earlier versions, and retention."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import consumer.archive as archive_module
from consumer.archive import (
    HEAD_SIZE,
    ArchivedWindow,
    PendingWindow,
    WindowArchive,
    all_windows,
    archived_verdicts,
    archived_windows,
    count_labeled_rows,
    encode_record,
    read_labeled_rows,
    read_window,
    resolve_window,
    select_windows,
)
from consumer.events import DriftEvent
from models.registry import Registry
from tests.dags.scenario import drift_event
from tests.legacy_archive import write_window_files

FEATURES = ["sepal length (cm)", "width,with comma"]
T0 = datetime(2026, 11, 27, 1, 2, 3, 456789, tzinfo=UTC)
TRICKY = [1e-5, 1e16, -0.0, 5e-324, 0.1 + 0.2, 1.7976931348623157e308, 100.0, -3.25]
LABELS = ['setosa, "the first"', None, "versi\ncolor", 2, "a\r\nb", " padded "]


def event(first: int, last: int, partition: int = 0, **kwargs: object) -> DriftEvent:
    return drift_event("rows", first, last, partition=partition, features=tuple(FEATURES))


def append(
    archive: WindowArchive,
    first: int,
    values: np.ndarray,
    labels: list,
    times: list[datetime] | None = None,
    partition: int = 0,
) -> DriftEvent:
    offsets = list(range(first, first + len(values)))
    times = times or [T0 + timedelta(seconds=i) for i in range(len(values))]
    return archive.append(
        event(offsets[0], offsets[-1], partition),
        FEATURES,
        offsets,
        times,
        values,
        labels,
        "target",
    )


def tricky_values(rows: int = 40) -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.concatenate(
        [rng.normal(3, 1, size=(rows, 2)), np.array(TRICKY, dtype=np.float64).reshape(-1, 2)]
    )


def test_values_labels_and_times_read_back_exactly(tmp_path: Path) -> None:
    values = tricky_values()
    labels = [LABELS[i % len(LABELS)] for i in range(len(values))]
    plus_one = timezone(timedelta(hours=1))
    times = [T0 + timedelta(seconds=i) for i in range(len(values))]
    times[1] = times[1].astimezone(plus_one)
    archive = WindowArchive(tmp_path)
    archived = append(archive, 100, values, labels, times)
    archive.sync()

    (window,) = archived_windows(tmp_path, "rows", "iris", 0)
    assert str(window) == archived.archive_path
    record = read_window(window)
    assert record.values.tobytes() == values.tobytes()  # bit for bit, -0.0 and 5e-324 too
    assert record.offsets.tolist() == list(range(100, 100 + len(values)))
    assert [datetime.fromisoformat(t) for t in record.event_times] == times
    assert record.event_times[0] == "2026-11-27T01:02:03.456789Z"
    assert DriftEvent.from_bytes(record.verdict or b"") == archived

    rows = read_labeled_rows([window], FEATURES, "target")
    labeled = [i for i, label in enumerate(labels) if label is not None]
    assert rows.features.tobytes() == values[labeled].tobytes()
    assert rows.labels == [str(labels[i]).strip() for i in labeled]


def test_segments_read_as_the_per_window_files_did(tmp_path: Path) -> None:
    values = tricky_values()
    labels = [LABELS[i % len(LABELS)] for i in range(len(values))]
    times = [T0 + timedelta(seconds=i) for i in range(len(values))]
    offsets = list(range(100, 100 + len(values)))
    old = tmp_path / "old"
    csv_path = write_window_files(
        old, event(100, offsets[-1]), FEATURES, offsets, times, values, labels, "target"
    )
    archive = WindowArchive(tmp_path / "new")
    append(archive, 100, values, labels, times)
    archive.sync()

    (legacy,) = archived_windows(old, "rows", "iris", 0)
    (segment,) = archived_windows(tmp_path / "new", "rows", "iris", 0)
    assert legacy.path == csv_path and not legacy.in_segment and segment.in_segment
    from_csv, from_segment = read_window(legacy), read_window(segment)
    assert from_csv.values.tobytes() == from_segment.values.tobytes()
    assert from_csv.labels == from_segment.labels
    assert from_csv.event_times == from_segment.event_times
    for read in (
        lambda w: read_labeled_rows([w], FEATURES, "target"),
        lambda w: read_labeled_rows([w], FEATURES[::-1], "target"),
    ):
        a, b = read(legacy), read(segment)
        assert a.features.tobytes() == b.features.tobytes() and a.labels == b.labels
    assert resolve_window(str(legacy)) == legacy
    assert resolve_window(str(segment)) == segment
    # An event's per-window name finds the window in the segments too.
    assert resolve_window(csv_path.as_posix().replace(str(old), str(tmp_path / "new"))) == segment


def test_a_poll_is_one_fsync_per_segment_and_one_per_new_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    monkeypatch.setattr(archive_module.os, "fsync", lambda fd: synced.append("file"))
    monkeypatch.setattr(archive_module, "fsync_dir", lambda path: synced.append(str(path)))
    archive = WindowArchive(tmp_path)
    for first in range(0, 500, 50):
        append(archive, first, np.ones((50, 2)), [1] * 50)
    archive.sync()
    assert synced.count("file") == 1
    assert str(tmp_path / "archive" / "rows" / "iris" / "0") in synced
    synced.clear()
    for first in range(500, 1000, 50):
        append(archive, first, np.ones((50, 2)), [1] * 50)
    archive.sync()
    assert synced == ["file"]  # the segment exists already: no directory to sync
    assert len(os.listdir(tmp_path / "archive" / "rows" / "iris" / "0")) == 1


def test_segments_roll_by_size_and_a_new_process_begins_its_own(tmp_path: Path) -> None:
    probe = WindowArchive(tmp_path / "probe", fsync=False)
    append(probe, 0, np.ones((50, 2)), [1] * 50)
    probe.close()
    (record,) = archived_windows(tmp_path / "probe", "rows", "iris", 0)
    # Closed once it holds more than one record: two windows per segment.
    archive = WindowArchive(tmp_path, fsync=False, segment_bytes=record.length + 1)
    for first in range(0, 500, 50):
        append(archive, first, np.ones((50, 2)), [1] * 50)
    archive.close()
    again = WindowArchive(tmp_path, fsync=False)
    append(again, 500, np.ones((50, 2)), [1] * 50)
    again.close()
    windows = archived_windows(tmp_path, "rows", "iris", 0)
    assert [w.first_offset for w in windows] == list(range(0, 550, 50))
    segments = sorted({w.path.name for w in windows})
    assert len(segments) == 6  # 10 windows, two per segment, then the new process's
    assert segments[-1].endswith("-000000000500.seg")


@pytest.mark.parametrize(
    "tear",
    [
        pytest.param(lambda data: data[:-1], id="cut-in-the-last-record"),
        pytest.param(lambda data: data[: -HEAD_SIZE - 1], id="cut-before-the-last-payload"),
        pytest.param(lambda data: data + b"\0" * 4096, id="zeros-after"),
        pytest.param(lambda data: data[:-100] + bytes(100), id="last-record-partly-zeros"),
        pytest.param(lambda data: data + b"DLW1" + bytes(40), id="a-head-begun"),
    ],
)
def test_a_torn_tail_is_ignored(tmp_path: Path, tear, caplog: pytest.LogCaptureFixture) -> None:
    archive = WindowArchive(tmp_path)
    for first in range(0, 200, 50):
        append(archive, first, np.ones((50, 2)), [1] * 50)
    archive.close()
    (segment,) = {w.path for w in archived_windows(tmp_path, "rows", "iris", 0)}
    intact = segment.read_bytes()
    segment.write_bytes(tear(intact))
    torn_last = not tear(intact).startswith(intact)

    with caplog.at_level(logging.INFO, logger="consumer.archive"):
        windows = archived_windows(tmp_path, "rows", "iris", 0)
    expected = [0, 50, 100] if torn_last else [0, 50, 100, 150]
    assert [w.first_offset for w in windows] == expected
    assert "torn tail" in caplog.text
    assert len(read_labeled_rows(windows, FEATURES, "target")) == 50 * len(expected)
    assert len(archived_verdicts(tmp_path, "rows")) == len(expected)


def test_a_window_judged_again_after_a_crash_is_read_once_its_last_record(
    tmp_path: Path,
) -> None:
    values = np.random.default_rng(1).normal(size=(50, 2))
    crashed = WindowArchive(tmp_path)
    append(crashed, 0, values, [1] * 50)
    append(crashed, 50, values, [1] * 50)
    crashed.sync()  # killed before the transaction: both windows are cut again
    restarted = WindowArchive(tmp_path)
    again = [append(restarted, 0, values, [1] * 50), append(restarted, 50, values, [1] * 50)]
    restarted.sync()

    windows = archived_windows(tmp_path, "rows", "iris", 0)
    assert [w.first_offset for w in windows] == [0, 50]
    assert {w.path for w in windows} == {Path(again[0].archive_path.partition("#")[0])}
    assert [str(w) for w in windows] == [e.archive_path for e in again]
    verdicts = [DriftEvent.from_bytes(v.data) for v in archived_verdicts(tmp_path)]
    assert sorted(verdicts, key=lambda e: e.window.first_offset) == again
    assert len(read_labeled_rows(windows, FEATURES, "target")) == 100
    assert len(all_windows(tmp_path, "rows")) == 2


def test_after_a_failed_write_the_next_window_begins_a_new_segment(tmp_path: Path) -> None:
    archive = WindowArchive(tmp_path)
    append(archive, 0, np.ones((50, 2)), [1] * 50)
    archive.sync()
    (segment,) = archive._open.values()
    real_write = segment.handle.write

    def half_then_fail(data: bytes) -> int:
        real_write(data[: len(data) // 2])
        segment.handle.flush()
        raise OSError(28, "No space left on device")

    segment.handle.write = half_then_fail  # type: ignore[method-assign]
    with pytest.raises(OSError, match="No space"):
        append(archive, 50, np.ones((50, 2)), [1] * 50)
    append(archive, 50, np.ones((50, 2)), [1] * 50)  # the consumer cuts it again
    append(archive, 100, np.ones((50, 2)), [1] * 50)
    archive.sync()

    windows = archived_windows(tmp_path, "rows", "iris", 0)
    assert [w.first_offset for w in windows] == [0, 50, 100]
    assert windows[0].path == segment.path != windows[1].path == windows[2].path


def poll_windows(firsts: range, partitions: int = 2) -> list[PendingWindow]:
    """A poll's windows over ``partitions`` partitions, with seqs, labels and tricky values."""
    values = tricky_values(46)  # 50 rows
    labels = [LABELS[i % len(LABELS)] for i in range(50)]
    return [
        PendingWindow(
            event(first, first + 49, partition),
            FEATURES,
            list(range(first, first + 50)),
            [T0 + timedelta(seconds=first + i) for i in range(50)],
            values + first,
            labels,
            "target",
            seqs=[7 * first + i for i in range(50)],
        )
        for first in firsts
        for partition in range(partitions)
    ]


def segment_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.seg"))}


def test_append_many_writes_what_append_writes_window_by_window(tmp_path: Path) -> None:
    # Two partitions, segments of two windows each (a roll inside every poll), two polls.
    polls = [poll_windows(range(0, 250, 50)), poll_windows(range(250, 400, 50))]
    probe = WindowArchive(tmp_path / "probe", fsync=False)
    probe.append_many(polls[0][:1])
    probe.close()
    (record,) = archived_windows(tmp_path / "probe", "rows", "iris", 0)
    root = tmp_path / "root"

    def write(many: bool) -> tuple[dict[str, bytes], list[DriftEvent]]:
        archive = WindowArchive(root, segment_bytes=record.length * 3 // 2)
        events = []
        for windows in polls:
            if many:
                events += archive.append_many(windows)
            else:
                events += [
                    archive.append(
                        w.event,
                        w.feature_names,
                        w.offsets,
                        w.event_times,
                        w.values,
                        w.labels,
                        w.label_column,
                        w.seqs,
                    )
                    for w in windows
                ]
            archive.sync()
        archive.close()
        written = segment_bytes(root)
        shutil.rmtree(root)
        return written, events

    one_by_one, many = write(many=False), write(many=True)
    assert many == one_by_one
    assert len(many[0]) == 2 * 4  # per partition: 8 windows, two per segment
    assert [e.archive_path.rpartition("/")[2] for e in many[1][:4]] == [
        "00000001-000000000000.seg#000000000000-000000000049",
        "00000001-000000000000.seg#000000000000-000000000049",
        "00000001-000000000000.seg#000000000050-000000000099",
        "00000001-000000000000.seg#000000000050-000000000099",
    ]


def test_append_many_refuses_bad_rows_and_writes_nothing_of_the_poll(tmp_path: Path) -> None:
    archive = WindowArchive(tmp_path)
    windows = poll_windows(range(0, 150, 50))
    bad = windows[-1]
    windows[-1] = PendingWindow(
        bad.event, FEATURES, bad.offsets, bad.event_times, bad.values, bad.labels[:-1], "target"
    )
    with pytest.raises(ValueError, match="one of each per row"):
        archive.append_many(windows)
    archive.sync()
    assert all_windows(tmp_path, "rows") == []
    assert archive.open_segments() == []


def test_after_a_failed_write_in_a_poll_the_poll_is_appended_again_to_new_segments(
    tmp_path: Path,
) -> None:
    archive = WindowArchive(tmp_path)
    archive.append_many(poll_windows(range(0, 100, 50)))
    archive.sync()
    first = archive.open_segments()

    def full(data: bytes) -> int:
        raise OSError(28, "No space left on device")

    segment = archive._open[first[0].parent]
    segment.handle.write = full  # type: ignore[method-assign]
    with pytest.raises(OSError, match="No space"):
        archive.append_many(poll_windows(range(100, 200, 50)))
    # Partition 0's segment is given up; partition 1's windows were not written.
    assert archive.open_segments() == [first[1]]
    again = archive.append_many(poll_windows(range(100, 200, 50)))  # judged again
    archive.sync()

    for partition in (0, 1):
        windows = archived_windows(tmp_path, "rows", "iris", partition)
        assert [w.first_offset for w in windows] == [0, 50, 100, 150]
        assert read_window(windows[-1]).values.tobytes() == (tricky_values(46) + 150).tobytes()
    assert sorted({e.archive_path.partition("#")[0] for e in again}) == [
        (first[0].parent / "00000002-000000000100.seg").as_posix(),
        first[1].as_posix(),
    ]
    # What rolls partition 1's segment is the bytes it holds, not those it was refused.
    assert archive._open[first[1].parent].size == first[1].stat().st_size


def test_retention_keeps_a_segment_a_poll_fills_and_closes(tmp_path: Path) -> None:
    # The open segment was last written long ago; this poll's first window goes to it,
    # its second closes it, and beginning the next segment prunes by age.
    windows = poll_windows(range(0, 150, 50), partitions=1)
    probe = WindowArchive(tmp_path / "probe", fsync=False)
    probe.append_many(windows[:1])
    probe.close()
    (record,) = archived_windows(tmp_path / "probe", "rows", "iris", 0)
    archive = WindowArchive(tmp_path, segment_bytes=record.length * 3 // 2, retention_hours=1)
    archive.append_many(windows[:1])
    archive.sync()
    (segment,) = archive.open_segments()
    long_ago = datetime.now(UTC).timestamp() - 48 * 3600
    os.utime(segment, (long_ago, long_ago))
    archive.append_many(windows[1:])
    archive.sync()
    windows_read = archived_windows(tmp_path, "rows", "iris", 0)
    assert [w.first_offset for w in windows_read] == [0, 50, 100]
    assert segment.exists()


@pytest.mark.parametrize(
    ("seqs", "categories", "sha256"),
    [
        (None, None, "f6f4a33692a72c16a2daf85c038867b055f341a4d0ccedc1fcfe651362b43810"),
        (
            [10, 11, 12, 13],
            {"c": ["x", "y", "z", "w"]},
            "c07f59a1d5a8cfe8dd0461c9b63e56ab494bf74e9df45d33b89ff8064446eed4",
        ),
    ],
)
def test_a_records_bytes_stay_what_they_were(
    seqs: list[int] | None, categories: dict[str, list[str]] | None, sha256: str
) -> None:
    # Pinned as encode_record wrote them before it encoded the rows only once per window
    # (commit 56f26fa): segments written since read as every earlier one.
    times = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i) for i in range(4)]
    values = np.array([[0.5, -1.25, 0.0], [3.0, np.nan, 1.0], [-0.1, 2.5, 1.0], [7.75, 0.3, 2.0]])
    record = encode_record(
        5, 9, ["a", "b", "c"], [5, 6, 8, 9], times, values, [0, None, "a", 2], "target",
        b'{"v":1}', seqs, categories,
    )  # fmt: skip
    assert hashlib.sha256(record).hexdigest() == sha256


def test_a_window_without_rows_is_archived_with_its_verdict(tmp_path: Path) -> None:
    archive = WindowArchive(tmp_path)
    archived = archive.append(event(7, 9), FEATURES, [], [], np.empty((0, 2)), [], "target")
    archive.sync()
    (window,) = archived_windows(tmp_path, "rows", "iris", 0)
    record = read_window(window)
    assert (window.first_offset, window.last_offset, len(record.offsets)) == (7, 9, 0)
    assert record.values.shape == (0, 2)
    assert DriftEvent.from_bytes(record.verdict or b"") == archived


@pytest.mark.parametrize(
    ("values", "labels", "message"),
    [
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
        append(archive, 0, values, labels, times)
    archive.sync()
    assert archived_windows(tmp_path, "rows", "iris", 0) == []


# --------------------------------------------------------------------------- retention


def test_retention_removes_old_segments_but_not_lineage_or_the_open_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Six segments of two windows (100 rows) each, the first three written long ago.
    for first in range(0, 600, 100):
        archive = WindowArchive(tmp_path, fsync=False)
        append(archive, first, np.ones((50, 2)), [1] * 50)
        append(archive, first + 50, np.ones((50, 2)), [1] * 50)
        archive.close()
    directory = tmp_path / "archive" / "rows" / "iris" / "0"
    segments = sorted(directory.glob("*.seg"))
    long_ago = datetime.now(UTC).timestamp() - 48 * 3600
    for path in segments[:3]:
        os.utime(path, (long_ago, long_ago))
    # A registered version was trained on a window of the second segment.
    lineage = next(
        w for w in archived_windows(tmp_path, "rows", "iris", 0) if w.first_offset == 150
    )
    Registry(tmp_path).register(
        _model(),
        np.zeros((4, 2)),
        feature_names=["a", "b"],
        label_column="target",
        training_data_sha256="0" * 64,
        metrics={},
        cause="test",
        decision="promoted",
        training_rows=4,
        training_windows=[str(lineage)],
    )

    by_age = WindowArchive(tmp_path, fsync=False, retention_hours=24)
    with caplog.at_level(logging.INFO, logger="consumer.archive"):
        append(by_age, 600, np.ones((50, 2)), [1] * 50)  # begins a segment: prunes
    assert sorted(directory.glob("*.seg")) == [segments[1], *segments[3:], *by_age.open_segments()]
    assert caplog.text.count("archive retention removed segment=") == 2
    assert str(segments[0]) in caplog.text

    by_age.close()
    by_rows = WindowArchive(tmp_path, fsync=False, retention_rows=150)
    append(by_rows, 650, np.ones((50, 2)), [1] * 50)
    by_rows.close()
    # Newest first: 650 (open), 600, 500..599 make 150 rows; 300..499 go; the lineage one stays.
    assert [p.name for p in sorted(directory.glob("*.seg"))] == [
        segments[1].name,
        segments[5].name,
        "00000007-000000000600.seg",
        "00000008-000000000650.seg",
    ]
    assert [w.first_offset for w in archived_windows(tmp_path, "rows", "iris", 0)] == [
        100,
        150,
        500,
        550,
        600,
        650,
    ]
    assert resolve_window(str(lineage)) == lineage


def _model():
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier().fit(np.array([[0, 0], [1, 1]]), [0, 1])


# --------------------------------------------------------------------------- selecting


def window_list(firsts: range, size: int = 50) -> list[ArchivedWindow]:
    return [
        ArchivedWindow(Path("00000001-000000000000.seg"), 0, f, f + size - 1, f, 1) for f in firsts
    ]


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
    shuffled = window_list(range(0, 600, 50))[::-1]
    assert [w.first_offset for w in select_windows(shuffled, drift_first, lookback)] == expected


def test_select_sliding_windows() -> None:
    sliding = window_list(range(0, 300, 25))
    assert [w.first_offset for w in select_windows(sliding, 100, 2)] == [
        50,
        75,
        *range(100, 300, 25),
    ]


def test_seqs_are_archived_and_late_labels_join_rows_by_them(tmp_path: Path) -> None:
    values = tricky_values(6)  # 10 rows
    labels: list = [None] * 10
    labels[0] = "setosa"
    seqs = [500 + 3 * i for i in range(10)]
    archive = WindowArchive(tmp_path)
    archive.append(
        event(0, 9), FEATURES, list(range(10)), [T0] * 10, values, labels, "target", seqs
    )
    archive.sync()
    (window,) = archived_windows(tmp_path, "rows", "iris", 0)
    assert read_window(window).seqs.tolist() == seqs  # type: ignore[union-attr]

    # The archived label wins over a late one; a late label of another stream joins nothing.
    late = {"iris": {500: "virginica", 503: "versicolor", 527: "setosa"}, "other": {506: "x"}}
    rows = read_labeled_rows([window], FEATURES, "target", late)
    assert rows.offsets.tolist() == [0, 1, 9]
    assert rows.labels == ["setosa", "versicolor", "setosa"]
    assert rows.features.tobytes() == values[[0, 1, 9]].tobytes()
    assert count_labeled_rows([window], "target", late) == 3
    assert count_labeled_rows([window], "target") == 1


def test_records_without_seqs_read_as_before_and_join_no_late_label(tmp_path: Path) -> None:
    archive = WindowArchive(tmp_path)
    append(archive, 0, tricky_values(6), [None] * 10)
    archive.sync()
    (window,) = archived_windows(tmp_path, "rows", "iris", 0)
    record = read_window(window)
    assert record.seqs is None
    assert b'"seqs"' not in record_bytes(window)
    assert count_labeled_rows([window], "target", {"iris": dict.fromkeys(range(10), "a")}) == 0


def record_bytes(window: ArchivedWindow) -> bytes:
    assert window.position is not None
    return window.path.read_bytes()[window.position : window.position + window.length]


def test_seqs_must_match_the_rows(tmp_path: Path) -> None:
    archive = WindowArchive(tmp_path)
    with pytest.raises(ValueError, match="10 offsets and 9 seqs"):
        archive.append(
            event(0, 9),
            FEATURES,
            list(range(10)),
            [T0] * 10,
            tricky_values(6),
            [None] * 10,
            "target",
            list(range(9)),
        )
    assert archived_windows(tmp_path, "rows", "iris", 0) == []


def test_categorical_windows_read_back_as_strings_whatever_their_codes(tmp_path: Path) -> None:
    """Two consumers coded an unseen category differently ("Biscoe" is 2 in one window,
    "Dream" in the other): each record says what its codes mean, and the reader gives
    strings (None where missing) and NaN for a missing number, in event-time order."""
    archive = WindowArchive(tmp_path)
    first = np.array([[0.0, 1.5], [2.0, np.nan], [np.nan, 3.0]])
    second = np.array([[2.0, 4.0], [1.0, 5.0]])
    for start, values, strings, partition in (
        (0, first, ["Torgersen", "Island", "Biscoe", "unused"], 0),
        (10, second, ["Torgersen", "Island", "Dream"], 1),
    ):
        offsets = list(range(start, start + len(values)))
        archive.append(
            event(offsets[0], offsets[-1], partition),
            FEATURES,
            offsets,
            [T0 + timedelta(seconds=start + i) for i in range(len(values))],
            values,
            ["a"] * len(values),
            "target",
            categories={FEATURES[0]: strings},
        )
    archive.sync()
    windows = [
        *archived_windows(tmp_path, "rows", "iris", 0),
        *archived_windows(tmp_path, "rows", "iris", 1),
    ]
    record = read_window(windows[0])
    assert record.categories == {FEATURES[0]: ["Torgersen", "Island", "Biscoe"]}
    assert record.cells(FEATURES[0]) == ["Torgersen", "Biscoe", None]
    assert np.isnan(record.cells(FEATURES[1])[1])
    rows = read_labeled_rows(windows, FEATURES, "target")
    assert rows.categorical == (FEATURES[0],)
    assert rows.features[:, 0].tolist() == ["Torgersen", "Biscoe", None, "Dream", "Island"]
    numbers = rows.features[:, 1].astype(float)
    assert np.isnan(numbers[1]) and numbers[[0, 2, 3, 4]].tolist() == [1.5, 3.0, 4.0, 5.0]


def test_a_code_its_categories_lack_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    archive = WindowArchive(tmp_path)
    with pytest.raises(ValueError, match="not codes of its categories"):
        archive.append(
            event(0, 0),
            FEATURES,
            [0],
            [T0],
            np.array([[3.0, 1.0]]),
            [None],
            "target",
            categories={FEATURES[0]: ["a", "b"]},
        )
    assert not (tmp_path / "archive").exists()
