"""The label store and the join: duplicates, corrections, labels before rows, unknown rows,
late accuracy once, torn tails."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumer.labels.joining import LabelJoiner
from consumer.labels.metrics import LabelMetrics
from consumer.labels.store import LabelStore, late_accuracies, late_labels, read_stream
from data.dataset import Dataset, load_dataset
from producer.messages import LabelMessage
from tests.dags.scenario import write_archive

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def label(seq: int, value: int | str, stream: str = "iris") -> tuple[LabelMessage, int, int, bytes]:
    message = LabelMessage(stream=stream, seq=seq, label=value, event_time=NOW)
    return message, 0, seq, message.to_bytes()


def test_a_repeated_label_is_kept_once_and_a_different_one_wins(tmp_path: Path) -> None:
    store = LabelStore(tmp_path, "labels")
    outcomes = [o for _, o, _ in store.add([label(1, 0), label(2, 1), label(1, 0)])]
    outcomes += [o for _, o, _ in store.add([label(2, 2), label(2, "2")])]
    store.close()
    assert outcomes == ["new", "new", "duplicate", "correction", "correction"]
    again = LabelStore(tmp_path, "labels")  # read back from disk
    assert {s: x.label for s, x in again.of("iris").labels.items()} == {1: 0, 2: "2"}
    assert late_labels(tmp_path, "labels") == {"iris": {1: "0", 2: "2"}}
    # A duplicate after a restart is still a duplicate.
    assert [o for _, o, _ in again.add([label(1, 0)])] == ["duplicate"]


def test_a_torn_tail_loses_only_what_was_not_synced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = LabelStore(tmp_path, "labels")
    store.add([label(1, 0)])
    store.sync()
    store.add([label(2, 1)])
    store.close()
    (segment,) = (tmp_path / "labels" / "labels" / "iris").glob("*.seg")
    data = segment.read_bytes()
    segment.write_bytes(data[:-5])  # the second record torn, as a crash before fsync leaves it
    caplog.set_level(logging.INFO)
    assert sorted(read_stream(segment.parent).labels) == [1]
    assert "torn tail" in caplog.text
    # The next process begins a segment of its own: nothing valid follows the torn tail.
    later = LabelStore(tmp_path, "labels")
    later.add([label(2, 1)])
    later.close()
    assert sorted(read_stream(segment.parent).labels) == [1, 2]
    assert len(list(segment.parent.glob("*.seg"))) == 2


@pytest.fixture
def root(artifact_root: Path) -> Path:
    """An artifact root whose champion (v1) was trained on Iris."""
    return artifact_root


@pytest.fixture
def iris(iris_csv: Path) -> Dataset:
    return load_dataset(iris_csv)


def joiner(root: Path, store: LabelStore) -> LabelJoiner:
    return LabelJoiner(root, "rows", store, LabelMetrics())


def test_labels_before_their_rows_wait_and_join_once_archived(
    root: Path, iris: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    store = LabelStore(root, "labels", fsync=False)
    store.add([label(s, 0) for s in range(100)])  # before any row is archived
    join = joiner(root, store)
    assert join.scan() == 0
    assert len(join.waiting()["iris"]) == 100
    assert join.unknown(partitions=1) == {}

    # Rows 0-99 archived with every second label; the late ones fill the rest.
    write_archive(root, "rows", iris, rows=100, labeled_every=2, drift_after=1000)
    caplog.set_level(logging.INFO)
    assert join.scan() == 2
    assert join.waiting() == {}
    points = join.report()
    assert [(p.first_offset, p.labeled, p.size, p.model_version) for p in points] == [
        (0, 50, 50, 1),
        (50, 50, 50, 1),
    ]
    assert caplog.text.count("late accuracy=") == 2
    assert "labeled=50/50 model=classifier:v1" in caplog.text
    assert join.report() == []  # reported once
    store.close()
    assert len(late_accuracies(root)) == 2
    # A restarted joiner finds them reported.
    restarted = joiner(root, LabelStore(root, "labels", fsync=False))
    restarted.scan()
    assert restarted.report() == []


def test_a_window_waits_until_its_share_of_labels_came(root: Path, iris: Dataset) -> None:
    write_archive(root, "rows", iris, rows=50, labeled_every=50, drift_after=1000)  # 1 labeled
    store = LabelStore(root, "labels", fsync=False)
    join = joiner(root, store)
    join.scan()
    store.add([label(s, 0) for s in range(1, 49)])
    assert join.report() == []  # 49 of 50
    store.add([label(49, 0)])
    (point,) = join.report()
    assert (point.labeled, point.size) == (50, 50)


def test_labels_of_archived_rows_join_and_one_beyond_every_partition_waits(
    root: Path, iris: Dataset
) -> None:
    # Partition 0 holds seqs 0-99, partition 1 seqs 0-49 (seq = offset in the scenario).
    write_archive(root, "rows", iris, rows=100, drift_after=1000)
    write_archive(root, "rows", iris, rows=50, drift_after=1000, partition=1)
    store = LabelStore(root, "labels", fsync=False)
    store.add([label(120, 0), label(70, 1), label(30, 2), label(5, 0, stream="other")])
    join = joiner(root, store)
    join.scan()
    # 30 and 70 are archived; 120 is beyond every partition's last seq: it may still come.
    assert sorted(s.seq for s in join.waiting()["iris"]) == [120]
    assert join.unknown(partitions=2) == {}
    # A stream with no archived row in some partition keeps its labels waiting.
    assert join.waiting()["other"][0].seq == 5
    assert join.unknown(partitions=2) == {}
    store.mark_unknown("iris", [120])
    assert "iris" not in join.waiting()
