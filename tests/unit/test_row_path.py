"""The loop's per-row path, a poll at once: what the row-by-row path of before gave, exactly.

`tests/unit/row_path_before.py` keeps `DriftMonitor._window`, `_matrices` and `_score`
as they were (commit f27e37d); both monitors read the same seeded polls of several
streams, with malformed rows, unlabeled rows and missing values, windows sliding,
tumbling or closing on time, and a restart from any poll's commit.
"""

from __future__ import annotations

import json
import logging
import tempfile
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st
from kafka.structs import OffsetAndMetadata, TopicPartition

from consumer.archive import WindowArchive
from consumer.decoding import RowDecoder
from consumer.detection import FastKS
from consumer.service import DriftMonitor, _Judged, _Poll
from consumer.settings import ConsumerSettings
from tests.unit.row_path_before import DriftMonitorBefore, matrix_before

FEATURES = ["a", "b"]
TP = TopicPartition("rows", 0)
START = datetime(2026, 1, 1, tzinfo=UTC)


class Consumer:
    """Just what `_window` asks of the consumer: the partition is ours, from ``committed``."""

    def __init__(self, committed: OffsetAndMetadata | None, end: int) -> None:
        self._committed, self.end = committed, end

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def committed(self, tp: TopicPartition, metadata: bool = False) -> Any:
        return self._committed

    def highwater(self, tp: TopicPartition) -> int:
        return self.end

    def seek(self, tp: TopicPartition, offset: int) -> None:
        raise AssertionError("the polls start at the committed offset")


def monitor(
    kind: type[DriftMonitor], root: Path, window: tuple[int, int, float | None, int], consumer: Any
) -> DriftMonitor:
    size, step, seconds, min_rows = window
    settings = ConsumerSettings(
        window_size=size,
        window_step=step,
        window_seconds=seconds,
        window_min_rows=min_rows,
        ks_backend="fast",
        artifact_root=root,
        archive_fsync=False,
        alarm="ks",
        false_alarm_rows=1000,
    )
    champion = SimpleNamespace(
        metadata=SimpleNamespace(
            model_name="m",
            version=1,
            feature_names=FEATURES,
            reference_sha256="0" * 64,
            label_column="target",
            reference_rows=100,
            categories={},
        ),
        decoder=RowDecoder(FEATURES, classes=[0, 1]),
        detector=FastKS(np.random.default_rng(0).normal(size=(100, len(FEATURES)))),
        # Some labels right, some wrong; a missing value predicts 0.
        predict_labels=lambda x: (x[:, 0] > 0).astype(np.int64),
        label="m:v1",
    )
    return kind(settings, consumer, None, champion, WindowArchive(root, fsync=False))  # type: ignore[arg-type]


values = st.one_of(st.none(), st.floats(-5, 5, allow_nan=False))


@st.composite
def message(draw: st.DrawFn, seq: int) -> tuple[bytes, float]:
    """A row's bytes (valid mostly; malformed now and then) and its seconds since the last."""
    document: dict[str, Any] = {
        "schema_version": 1,
        "stream": draw(st.sampled_from(["s", "s", "s", "t"])),
        "seq": seq,
        "event_time": "",
        "features": {name: draw(values) for name in FEATURES},
        "label": draw(st.sampled_from([0, 1, 1, None])),
    }
    odd = draw(st.integers(0, 11))
    if odd == 0:
        return b"not json", 1.0
    if odd == 1:
        document["features"].pop("a")
    return json.dumps(document).encode(), float(draw(st.integers(-30, 90)))


@st.composite
def topic(draw: st.DrawFn) -> list[SimpleNamespace]:
    """A partition's records, with event times that mostly go forward."""
    count = draw(st.integers(1, 120))
    records, at = [], START
    for offset in range(count):
        value, gap = draw(message(offset))
        at += timedelta(seconds=gap)
        if value.startswith(b"{"):
            document = json.loads(value)
            document["event_time"] = at.isoformat().replace("+00:00", "Z")
            value = json.dumps(document).encode()
        key = None if offset % 5 == 0 else b"k"
        records.append(
            SimpleNamespace(topic=TP.topic, partition=0, offset=offset, key=key, value=value)
        )
    return records


class Lines(logging.Handler):
    """The log lines of the consumer's modules, in order."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")


def windowed(m: DriftMonitor, poll: list[SimpleNamespace]) -> tuple[Any, ...]:
    """The poll through ``m``'s path, and the lines it logged (dead letters, merges)."""
    lines, logger = Lines(), logging.getLogger("consumer")
    level = logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    try:
        polled = m._window({TP: poll})
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
    return (*outcome(m, polled), lines.lines)


def outcome(m: DriftMonitor, poll: _Poll) -> tuple[Any, ...]:
    """Everything a poll's path gives: windows, dead letters, commit, counts, matrices, scores."""
    matrices = m._matrices([window for _, _, window in poll.completed]) if poll.completed else []
    judged = [
        _Judged(tp, stream, window, values, None, 0.0)  # type: ignore[arg-type]
        for (tp, stream, window), values in zip(poll.completed, matrices, strict=True)
    ]
    return (
        poll.completed,
        [(d.offset, d.key, d.value, d.error.reason, d.error.detail) for d in poll.dead],
        poll.partitions,
        m._partitions[TP].commit(),
        m._partitions[TP].streams,
        m.stats.rows,
        m.metrics.rows._value.get(),
        [(v.shape, v.tobytes()) for v in matrices],
        m._score(judged) if judged else None,
        m._accuracies(judged) if judged else None,
    )


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    records=topic(),
    cuts=st.lists(st.floats(0, 1), min_size=1, max_size=6),
    restart=st.integers(1, 4),
    window=st.one_of(
        st.tuples(st.integers(2, 6), st.integers(0, 5)).map(
            lambda w: (w[0], max(1, w[0] - w[1]), None, 1)
        ),
        st.tuples(st.integers(2, 6), st.integers(1, 6)).map(
            lambda w: (w[0], w[0], 60.0, min(w[1], w[0]))
        ),
    ),
)
def test_a_poll_at_once_gives_what_the_rows_one_by_one_gave(
    records: list[SimpleNamespace],
    cuts: list[float],
    restart: int,
    window: tuple[int, int, float | None, int],
) -> None:
    bounds = [0, *sorted(int(c * len(records)) for c in cuts), len(records)]
    polls = [records[a:b] for a, b in pairwise(bounds) if b > a]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        def pair(committed: OffsetAndMetadata | None) -> tuple[DriftMonitor, DriftMonitor]:
            return (
                monitor(DriftMonitor, root, window, Consumer(committed, len(records))),
                monitor(DriftMonitorBefore, root, window, Consumer(committed, len(records))),
            )

        new, old = pair(None)
        for i, poll in enumerate(polls):
            if i == restart:
                # Restarted from the last commit: the rows from its offset are read again.
                resume = new._partitions[TP].commit()
                for stream in resume.streams:  # its windows are archived, as the commit says
                    new.archive.directory_for(TP.topic, stream, 0).mkdir(
                        parents=True, exist_ok=True
                    )
                committed = resume.commit()
                event(f"restart, {len(resume.streams)} streams past the offset")
                new, old = pair(committed)
                poll = records[committed.offset : poll[-1].offset + 1]
                if not poll:
                    continue
            assert windowed(new, poll) == windowed(old, poll)


def test_the_matrix_reads_floats_and_missing_values_as_np_array_did() -> None:
    decoder = RowDecoder(FEATURES, classes=[0])
    rng = np.random.default_rng(3)
    rows = decoder.decode_all(
        [
            json.dumps(
                {
                    "schema_version": 1,
                    "stream": "s",
                    "seq": seq,
                    "event_time": "2026-01-01T00:00:00Z",
                    "features": {
                        "a": None if seq % 7 == 0 else float(rng.normal()),
                        "b": int(rng.integers(-3, 3)) if seq % 2 else 1e308 * (seq % 3 - 1),
                    },
                }
            ).encode()
            for seq in range(100)
        ]
    )
    for count in (0, 1, 100):
        got, expected = decoder.matrix(rows[:count]), matrix_before(decoder, rows[:count])
        assert (got.shape, got.dtype, got.tobytes()) == (
            expected.shape,
            expected.dtype,
            expected.tobytes(),
        )
