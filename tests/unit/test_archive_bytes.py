"""The archive's faster encoding writes the bytes the earlier one wrote, to the last byte.

`tests.unit.archive_before` is the encoding of commit f27e37d: pydantic's ``to_json`` for
event times and labels, numpy for offsets and seqs. Every fast path is compared with it,
on what takes the fast path and on what falls back: other time zones, datetime
subclasses, every character a label can hold, numbers struct refuses.
"""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from pydantic_core import PydanticSerializationError, to_json

import consumer.archive as archive_module
from consumer.archive import PendingWindow, WindowArchive, archived_windows, encode_record
from consumer.events import DriftEvent
from tests.dags.scenario import drift_event
from tests.unit.archive_before import encode_record_before

FEATURES = ["a", "b", "c"]
"""``c`` is categorical in the windows that carry categories."""
CATEGORIES = {"c": ["x", "y", "é z", 'q"uote', "w"]}


class Moment(datetime):
    """A datetime subclass (as pandas' Timestamp is one): msgspec refuses it."""


ZONES = [
    timezone(timedelta(0)),  # equal to UTC, not it
    timezone(timedelta(hours=1)),
    timezone(timedelta(hours=-5, minutes=-30)),
    timezone(timedelta(seconds=30)),  # msgspec writes Z here, to_json +00:00
    timezone(timedelta(hours=2, seconds=7, microseconds=5)),
    ZoneInfo("Europe/Amsterdam"),  # an offset with seconds before 1937
    ZoneInfo("UTC"),
]


def random_times(rng: random.Random, count: int, zone: object = UTC) -> list[datetime]:
    start = datetime(rng.randint(1, 9998), 1, 1, tzinfo=UTC)
    times = []
    for _ in range(count):
        when = start + timedelta(seconds=rng.randint(0, 10**8), microseconds=rng.randint(0, 10**6))
        if rng.random() < 0.3:
            when = when.replace(microsecond=0)
        times.append(when if zone is UTC else when.replace(tzinfo=zone))  # type: ignore[arg-type]
    return times


def test_event_times_are_the_text_to_json_wrote() -> None:
    rng = random.Random(11)
    cases = [random_times(rng, 50) for _ in range(400)]
    cases += [random_times(rng, 20, zone) for zone in ZONES for _ in range(20)]
    cases += [[*random_times(rng, 3), *random_times(rng, 2, zone)] for zone in ZONES]
    cases += [
        [],
        [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)],
        [datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 0, 120000)],
        [Moment(2026, 1, 1, 0, 0, 0, 5, tzinfo=UTC)],  # a subclass, in UTC
        [datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=UTC)],
        [datetime(1800, 6, 1, 12, tzinfo=ZoneInfo("Europe/Amsterdam"))],
    ]
    for times in cases:
        assert archive_module._event_times_json(times) == to_json(times), times
        assert archive_module._event_times_json(tuple(times)) == to_json(times), times


def test_labels_are_the_text_to_json_wrote_for_every_character() -> None:
    characters = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    rng = random.Random(5)
    mixed = [
        rng.choice([None, 0, 2, -7, 10**30, "setosa", " padded ", "a\r\nb"]) for _ in range(99)
    ]
    for labels in ([characters], list(characters[:5000]), mixed, [], [None]):
        texts = [None if label is None else str(label) for label in labels]
        assert archive_module._labels_json(labels) == to_json(texts)


def test_a_lone_surrogate_in_a_label_is_refused_as_before() -> None:
    with pytest.raises(PydanticSerializationError) as before:
        to_json(["a\udcff"])
    with pytest.raises(PydanticSerializationError) as now:
        archive_module._labels_json(["a\udcff"])
    assert str(now.value) == str(before.value)


@pytest.mark.parametrize(
    "numbers",
    [
        [],
        [0, 1, -1, 2**63 - 1, -(2**63)],
        (5, 6, 7),
        np.arange(-3, 40, dtype=np.int64),
        np.arange(3, dtype=np.int32),
        [np.int64(3), True, 4],
        [1.0, 2.5, -2.5],  # struct refuses floats; numpy truncates them, as it always did
        np.array([1.9, -0.5]),
        ["12", 3],
        [np.array([3]), np.array([4])],  # struct refuses arrays
    ],
)
def test_int64s_are_the_bytes_numpy_wrote(numbers: object) -> None:
    assert archive_module._int64_bytes(numbers) == np.asarray(numbers, dtype="<i8").tobytes()  # type: ignore[arg-type]


@pytest.mark.parametrize("numbers", [[2**63], [-(2**63) - 1], [None], ["x"]])
def test_int64s_numpy_refused_are_refused_as_before(numbers: list) -> None:
    with pytest.raises((OverflowError, TypeError, ValueError)) as before:
        np.asarray(numbers, dtype="<i8")
    with pytest.raises(type(before.value)) as now:
        archive_module._int64_bytes(numbers)
    assert str(now.value) == str(before.value)


def varied_window(rng: random.Random, first: int, partition: int, rows: int) -> PendingWindow:
    """A window with what varies in a stream: missing values, codes, labels, zones, seqs."""
    values = np.round(np.array([[rng.gauss(5, 2), rng.gauss(0, 1e6)] for _ in range(rows)]), 3)
    categorical = rng.random() < 0.5
    codes = [float(rng.randrange(len(CATEGORIES["c"]))) for _ in range(rows)]
    values = np.column_stack([values, codes]) if rows else np.empty((0, 3))
    for _ in range(rng.randrange(4)):  # missing values
        if rows:
            values[rng.randrange(rows), rng.randrange(3)] = np.nan
    choices = [None, 0, 1, 2, "setosa", 'vir"ginica', "ünïcode", "a\nb", " padded "]
    labels = [rng.choice(choices) for _ in range(rows)]
    zone = rng.choice([UTC, UTC, UTC, *ZONES])
    times = random_times(rng, rows, zone)
    offsets: object = list(range(first, first + rows))
    if rng.random() < 0.3:
        offsets = tuple(offsets)  # type: ignore[arg-type]
    seqs = None if rng.random() < 0.3 else [rng.randrange(10**9) for _ in range(rows)]
    last = first + max(rows, 1) - 1
    return PendingWindow(
        drift_event("rows", first, last, partition=partition, features=tuple(FEATURES)),
        FEATURES,
        offsets,  # type: ignore[arg-type]
        times,
        values,
        labels,
        "target",
        seqs,
        CATEGORIES if categorical else None,
    )


def before(window: PendingWindow, verdict: bytes) -> bytes:
    """The window's record as commit f27e37d encoded it."""
    ref = window.event.window
    return encode_record_before(
        ref.first_offset, ref.last_offset, window.feature_names, window.offsets,
        window.event_times, window.values, window.labels, window.label_column, verdict,
        window.seqs, window.categories,
    )  # fmt: skip


def test_segments_hold_the_records_encode_record_wrote_before(tmp_path: Path) -> None:
    # Seeded polls over three partitions, windows of varied rows (an empty one too),
    # segments small enough to roll inside polls: every segment must be the earlier
    # encoding's records of its windows, one after the other, rolled where their sizes say.
    rng = random.Random(2026)
    segment_bytes = 9000
    archive = WindowArchive(tmp_path, fsync=False, segment_bytes=segment_bytes)
    nexts = [0, 0, 0]
    expected: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    for _ in range(12):
        poll = []
        for _ in range(rng.randrange(1, 9)):
            partition = rng.randrange(3)
            rows = rng.choice([0, 1, 7, 50, 50, 50, 120])
            poll.append(varied_window(rng, nexts[partition], partition, rows))
            nexts[partition] += max(rows, 1)
        archived = archive.append_many(poll)
        archive.sync()
        for window, event in zip(poll, archived, strict=True):
            record = before(window, event.to_bytes())
            expected[window.event.window.partition].append(record)
            ref = window.event.window
            assert encode_record(
                ref.first_offset, ref.last_offset, window.feature_names, window.offsets,
                window.event_times, window.values, window.labels, window.label_column,
                event.to_bytes(), window.seqs, window.categories,
            ) == record  # fmt: skip
    archive.close()

    for partition, records in expected.items():
        # Where the segments roll: once a segment holds segment_bytes, the next window
        # begins the next one.
        segments: list[bytes] = []
        for record in records:
            if not segments or len(segments[-1]) >= segment_bytes:
                segments.append(b"")
            segments[-1] += record
        windows = archived_windows(tmp_path, "rows", "iris", partition)
        paths = sorted({w.path for w in windows})
        assert [p.read_bytes() for p in paths] == segments
        assert len(windows) == len(records) and len(paths) > 2


def test_an_archived_event_is_the_event_with_its_archive_path(tmp_path: Path) -> None:
    rng = random.Random(3)
    archive = WindowArchive(tmp_path, fsync=False)
    poll = [varied_window(rng, first, 0, 50) for first in range(0, 200, 50)]
    for window, event in zip(poll, archive.append_many(poll), strict=True):
        assert event == window.event.model_copy(update={"archive_path": event.archive_path})
        assert DriftEvent.from_bytes(event.to_bytes()) == event
    shutil.rmtree(tmp_path / "archive")
