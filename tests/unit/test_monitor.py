"""The loop over stand-in clients: windows, dead letters, published events, commits.

The stand-ins keep what a transaction does: sends and offsets take effect together
at the commit, or not at all (the integration tests run the same against a broker).
"""

from __future__ import annotations

import gc
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from kafka.errors import KafkaTimeoutError
from kafka.structs import TopicPartition

from consumer.archive import WindowArchive, all_windows, read_window, resolve_window
from consumer.checkpoint import CheckpointError, Resume
from consumer.dead_letters import REASON_HEADER
from consumer.decoding import RowDecoder
from consumer.detection import FastKS
from consumer.events import DriftEvent
from consumer.service import YOUNG_GC_THRESHOLD, DriftMonitor
from consumer.settings import ConsumerSettings
from producer.messages import RowMessage

FEATURES = ["a", "b"]
TP = TopicPartition("rows", 0)
WINDOW = 10


def row(seq: int, shift: float = 0.0) -> bytes:
    rng = np.random.default_rng(seq)
    return RowMessage(
        stream="s",
        seq=seq,
        event_time=datetime(2026, 1, 1, tzinfo=UTC),
        features={name: float(rng.normal()) + shift for name in FEATURES},
        label=0,
    ).to_bytes()


def record(offset: int, value: bytes) -> SimpleNamespace:
    return SimpleNamespace(
        topic=TP.topic, partition=TP.partition, offset=offset, key=b"s", value=value
    )


class Consumer:
    """Hands out the given polls, then nothing; reads back what transactions committed."""

    def __init__(self, polls: list[list[SimpleNamespace]], producer: Producer) -> None:
        self.polls = list(polls)
        self.end = sum(len(p) for p in polls)
        self.producer = producer

    def subscribe(self, topics: list[str], listener: Any) -> None:
        listener.on_partitions_assigned([TP])

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        return {TP: self.polls.pop(0)} if self.polls else {}

    def highwater(self, tp: TopicPartition) -> int:
        return self.end

    def committed(self, tp: TopicPartition, metadata: bool = False) -> Any:
        return self.producer.offsets.get(tp)

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.position = offset

    def group_metadata(self) -> str:
        return "group"


class Sent:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def get(self, timeout: float) -> None:
        if self.error is not None:
            raise self.error


class Producer:
    """A transactional producer that fails every send to the ``failing`` topics.

    ``sent`` holds what committed transactions published; ``commits`` the offset of
    partition 0 each committed transaction carried.
    """

    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        self.failing = failing
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.commits: list[int] = []
        self.offsets: dict[TopicPartition, Any] = {}
        self.fail_commits: set[int] = set()
        """Transactions (counted from 1) whose commit fails."""
        self._open: list[tuple[str, dict[str, Any]]] | None = None
        self._offsets: dict[TopicPartition, Any] = {}
        self._transactions = 0

    def begin_transaction(self) -> None:
        assert self._open is None, "one transaction at a time"
        self._open, self._offsets = [], {}

    def send(self, topic: str, **kwargs: Any) -> Sent:
        assert self._open is not None, "sends happen inside a transaction"
        self._open.append((topic, kwargs))
        return Sent(KafkaTimeoutError("no broker") if topic in self.failing else None)

    def send_offsets_to_transaction(self, offsets: dict[TopicPartition, Any], group: str) -> None:
        self._offsets = dict(offsets)

    def commit_transaction(self) -> None:
        assert self._open is not None
        self._transactions += 1
        if any(topic in self.failing for topic, _ in self._open):
            raise KafkaTimeoutError("a send of the transaction failed")
        if self._transactions in self.fail_commits:
            self.fail_commits.discard(self._transactions)
            raise KafkaTimeoutError("the transaction's commit timed out")
        self.sent += self._open
        self.offsets.update(self._offsets)
        if TP in self._offsets:
            self.commits.append(self._offsets[TP].offset)
        self._open = None

    def abort_transaction(self) -> None:
        self._open = None

    def flush(self) -> None:
        pass


def monitor(
    tmp_path: Path, consumer: Consumer, producer: Producer, commit_interval_ms: int = 0
) -> DriftMonitor:
    # A small budget, so that one shifted window of 10 rows is enough to alarm: the
    # KS rule guards the rank alarm's warm-up at a level of 10 / 1000 / 2 features.
    # Every poll is committed unless told otherwise.
    settings = ConsumerSettings(
        window_size=WINDOW,
        ks_backend="fast",
        artifact_root=tmp_path,
        archive_fsync=False,
        false_alarm_rows=1000,
        commit_interval_ms=commit_interval_ms,
    )
    reference = np.random.default_rng(0).normal(size=(1000, len(FEATURES)))
    champion = SimpleNamespace(
        metadata=SimpleNamespace(
            model_name="m",
            version=1,
            feature_names=FEATURES,
            reference_sha256="0" * 64,
            label_column="target",
            reference_rows=len(reference),
            categories={},
        ),
        decoder=RowDecoder(FEATURES, classes=[0]),
        detector=FastKS(reference),
        predict_labels=lambda x: np.zeros(len(x), dtype=np.int64),
        label="m:v1",
    )
    return DriftMonitor(
        settings,
        consumer,
        producer,
        champion,  # type: ignore[arg-type]
        WindowArchive(tmp_path, fsync=False),
    )


def drift_metric(m: DriftMonitor) -> tuple[float, float]:
    """(episode onsets published, windows judged drifted), as the metrics say."""
    published = m.metrics.registry.get_sample_value(
        "driftloop_consumer_drift_events_total", {"state": "onset"}
    )
    drifted = m.metrics.registry.get_sample_value(
        "driftloop_consumer_windows_total", {"drift": "yes"}
    )
    return published or 0.0, drifted or 0.0


def test_windows_are_judged_published_and_committed(tmp_path: Path) -> None:
    # Two polls: a clean window, then a shifted one and half of the next.
    polls = [
        [record(i, row(i)) for i in range(10)],
        [record(i, row(i, shift=5.0)) for i in range(10, 25)],
    ]
    producer = Producer()
    m = monitor(tmp_path, Consumer(polls, producer), producer)
    stats = m.run(lambda: False, idle_timeout=0)
    assert (stats.rows, stats.windows, stats.drift_events) == (25, 2, 1)
    events = [DriftEvent.from_bytes(kw["value"]) for topic, kw in producer.sent]
    assert [e.event_id for e in events] == ["rows-0-10-19"]
    assert resolve_window(events[0].archive_path).first_offset == 10
    assert drift_metric(m) == (1.0, 1.0)
    # Each poll is committed once its windows are written, up to the open window (20-24).
    assert producer.commits == [10, 20]


def test_the_loop_collects_garbage_less_often_and_gives_the_settings_back(
    tmp_path: Path,
) -> None:
    polls = [[record(i, row(i)) for i in range(25)]]
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []

    def watching() -> bool:
        seen.append(gc.get_threshold())
        return False

    producer = Producer()
    stats = monitor(tmp_path, Consumer(polls, producer), producer).run(watching, idle_timeout=0)
    assert stats.windows == 2
    assert set(seen) == {(YOUNG_GC_THRESHOLD, *before[1:])}
    assert gc.get_threshold() == before
    # A process that turned the collector off, or set a larger threshold, keeps its choice.
    gc.disable()
    try:
        seen.clear()
        producer = Producer()
        monitor(tmp_path / "off", Consumer(polls, producer), producer).run(watching, idle_timeout=0)
        assert set(seen) == {before} and not gc.isenabled()
    finally:
        gc.enable()
    gc.set_threshold(YOUNG_GC_THRESHOLD * 2, *before[1:])
    try:
        seen.clear()
        producer = Producer()
        monitor(tmp_path / "larger", Consumer(polls, producer), producer).run(
            watching, idle_timeout=0
        )
        assert set(seen) == {(YOUNG_GC_THRESHOLD * 2, *before[1:])}
    finally:
        gc.set_threshold(*before)


def test_polls_wait_for_the_commit_interval_but_a_drift_event_does_not(tmp_path: Path) -> None:
    polls = [
        [record(i, row(i)) for i in range(10)],
        [record(i, row(i)) for i in range(10, 20)],
        [record(i, row(i, shift=5.0)) for i in range(20, 35)],
    ]
    producer = Producer()
    consumer = Consumer(polls, producer)
    m = monitor(tmp_path, consumer, producer, commit_interval_ms=60_000)
    committed_at_poll = []
    poll = consumer.poll

    def watched(timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        m.in_flight.settle(wait=True)
        committed_at_poll.append(list(producer.commits))
        return poll(timeout_ms, max_records)

    consumer.poll = watched  # type: ignore[method-assign]
    m.run(lambda: False, idle_timeout=0)
    # The clean polls wait (archived, not committed); the drift event's poll commits
    # all three at once, with the onset published in the same transaction.
    assert committed_at_poll[:4] == [[], [], [], [30]]
    events = [DriftEvent.from_bytes(kw["value"]) for topic, kw in producer.sent]
    assert [e.event_id for e in events] == ["rows-0-20-29"]
    assert producer.commits == [30]


def test_an_idle_consumer_commits_what_its_interval_archived(tmp_path: Path) -> None:
    polls = [[record(i, row(i)) for i in range(j, j + 10)] for j in range(0, 30, 10)]
    producer = Producer()
    m = monitor(tmp_path, Consumer(polls, producer), producer, commit_interval_ms=60_000)
    # Stopped by the commit itself: it comes once the stream is quiet, not at the stop.
    deadline = time.monotonic() + 30
    stats = m.run(lambda: bool(producer.commits) or time.monotonic() > deadline)
    assert time.monotonic() < deadline
    assert (stats.windows, stats.drift_events) == (3, 0)
    assert producer.commits == [30]


def test_the_drift_events_metric_counts_only_published_events(tmp_path: Path) -> None:
    polls = [[record(i, row(i, shift=5.0)) for i in range(20)]]
    producer = Producer(failing=("drift-events",))
    m = monitor(tmp_path, Consumer(polls, producer), producer)
    with pytest.raises(KafkaTimeoutError):
        m.run(lambda: False, idle_timeout=0)
    # Both windows were judged drifted; the episode's onset did not reach the broker
    # (the second window, inside the episode, is not announced).
    assert drift_metric(m) == (0.0, 2.0)
    assert producer.commits == []


def test_malformed_rows_are_dead_lettered_and_committed_past(tmp_path: Path) -> None:
    values = [row(i) for i in range(10)]
    values.insert(3, b"not json")
    polls = [[record(offset, value) for offset, value in enumerate(values)]]
    producer = Producer()
    stats = monitor(tmp_path, Consumer(polls, producer), producer).run(
        lambda: False, idle_timeout=0
    )
    assert (stats.windows, dict(stats.dead_letters)) == (1, {"not-json": 1})
    [(topic, sent)] = producer.sent
    assert (topic, sent["value"]) == ("rows-dlq", b"not json")
    assert dict(sent["headers"])[REASON_HEADER] == b"not-json"
    assert producer.commits == [11]


def test_a_dead_letter_that_cannot_be_sent_stops_the_commit(tmp_path: Path) -> None:
    polls = [[record(0, b"not json")]]
    producer = Producer(failing=("rows-dlq",))
    m = monitor(tmp_path, Consumer(polls, producer), producer)
    with pytest.raises(KafkaTimeoutError):
        m.run(lambda: False, idle_timeout=0)
    assert producer.commits == []


class Replay:
    """A partition's records, read from the committed offset on, ``size`` per poll."""

    def __init__(
        self,
        records: list[SimpleNamespace],
        producer: Producer,
        size: int,
        rebalance_at: int | None = None,
    ) -> None:
        committed = producer.offsets.get(TP)
        self.position = 0 if committed is None else committed.offset
        self.records, self.producer, self.size = records, producer, size
        self.end = len(records)
        self.rebalance_at, self.polls = rebalance_at, 0

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener
        listener.on_partitions_assigned([TP])

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        self.polls += 1
        if self.polls == self.rebalance_at:
            # The partition is revoked and assigned back; the records fetched before
            # are returned all the same, past the committed offset.
            self.listener.on_partitions_revoked([TP])
            self.listener.on_partitions_assigned([TP])
        batch = self.records[self.position : self.position + self.size]
        self.position += len(batch)
        return {TP: batch} if batch else {}

    def highwater(self, tp: TopicPartition) -> int:
        return self.end

    def committed(self, tp: TopicPartition, metadata: bool = False) -> Any:
        return self.producer.offsets.get(tp)

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.position = offset

    def group_metadata(self) -> str:
        return "group"


def two_streams(n: int, seed: int) -> list[SimpleNamespace]:
    """``n`` rows of streams ``a`` and ``b`` interleaved at random, a malformed one now and then."""
    rng = np.random.default_rng(seed)
    records = []
    for offset in range(n):
        if rng.random() < 0.03:
            value = b"not json"
        else:
            stream = "a" if rng.random() < 0.6 else "b"
            value = RowMessage(
                stream=stream,
                seq=offset,
                event_time=datetime(2026, 1, 1, tzinfo=UTC),
                features={name: float(rng.normal()) for name in FEATURES},
                label=0,
            ).to_bytes()
        records.append(record(offset, value))
    return records


def windows_of(producer: Producer, tmp_path: Path) -> list[tuple[str, tuple[int, ...]]]:
    """Each archived window's stream and offsets, read back from the archive."""
    out = []
    for window in all_windows(tmp_path, TP.topic):
        record = read_window(window)
        stream = DriftEvent.from_bytes(record.verdict or b"").stream
        out.append((stream, tuple(record.offsets.tolist())))
    return sorted(out)


def test_streams_sharing_a_partition_never_share_a_window(tmp_path: Path) -> None:
    records = two_streams(200, seed=1)
    producer = Producer()
    m = monitor(tmp_path, Replay(records, producer, size=37), producer)
    m.run(lambda: False, idle_timeout=0)
    windows = windows_of(producer, tmp_path)
    streams = {
        r.offset: RowMessage.from_bytes(r.value).stream for r in records if r.value[:1] == b"{"
    }
    assert {s for s, _ in windows} == {"a", "b"}
    for stream, offsets in windows:
        assert len(offsets) == WINDOW
        assert {streams[o] for o in offsets} == {stream}
    # Every verdict names its window's one stream.
    for window in all_windows(tmp_path, TP.topic):
        verdict = DriftEvent.from_bytes(read_window(window).verdict or b"")
        assert verdict.stream == window.path.parent.parent.name


@pytest.mark.parametrize(
    ("failing_commit", "commit_interval_ms"), [(1, 0), (2, 0), (3, 0), (5, 0), (1, 60_000)]
)
def test_a_consumer_restarted_after_a_failed_commit_repeats_nothing(
    tmp_path: Path, failing_commit: int, commit_interval_ms: int
) -> None:
    records = two_streams(300, seed=2)
    # The reference: one run, nothing fails.
    clean = Producer()
    monitor(tmp_path / "clean", Replay(records, clean, size=41), clean).run(
        lambda: False, idle_timeout=0
    )
    # The same stream, the given transaction failing: the consumer stops; a new one
    # resumes from what was committed (the archive keeps what the failed poll wrote).
    producer = Producer()
    producer.fail_commits = {failing_commit}
    with pytest.raises(KafkaTimeoutError):
        monitor(
            tmp_path / "run", Replay(records, producer, size=41), producer, commit_interval_ms
        ).run(lambda: False, idle_timeout=0)
    monitor(tmp_path / "run", Replay(records, producer, size=41), producer).run(
        lambda: False, idle_timeout=0
    )
    assert windows_of(producer, tmp_path / "run") == windows_of(clean, tmp_path / "clean")
    letters = sorted(
        kw["value"] + bytes(dict(kw["headers"])["driftloop.source.offset"])
        for topic, kw in producer.sent
        if topic == "rows-dlq"
    )
    expected = sorted(
        kw["value"] + bytes(dict(kw["headers"])["driftloop.source.offset"])
        for topic, kw in clean.sent
        if topic == "rows-dlq"
    )
    assert letters == expected and len(set(letters)) == len(letters)


@pytest.mark.parametrize("commit_interval_ms", [0, 60_000])
@pytest.mark.parametrize("rebalance_at", [2, 4, 6])
def test_records_fetched_before_a_rebalance_are_read_again_from_the_commit(
    tmp_path: Path, rebalance_at: int, commit_interval_ms: int
) -> None:
    records = two_streams(300, seed=3)
    clean = Producer()
    monitor(tmp_path / "clean", Replay(records, clean, size=23), clean).run(
        lambda: False, idle_timeout=0
    )
    producer = Producer()
    replay = Replay(records, producer, size=23, rebalance_at=rebalance_at)
    monitor(tmp_path / "run", replay, producer, commit_interval_ms).run(
        lambda: False, idle_timeout=0
    )
    assert windows_of(producer, tmp_path / "run") == windows_of(clean, tmp_path / "clean")


def test_a_window_that_cannot_be_judged_is_dead_lettered_and_the_loop_goes_on(
    tmp_path: Path,
) -> None:
    records = [record(i, row(i)) for i in range(30)]
    producer = Producer()
    m = monitor(tmp_path, Replay(records, producer, size=30), producer)
    real = m.champion.detector.predict
    calls = []

    def predict(values: np.ndarray) -> Any:
        calls.append(len(values))
        if len(calls) == 2:
            raise FloatingPointError("overflow in the detector")
        return real(values)

    def predict_many(windows: list[np.ndarray]) -> Any:
        raise FloatingPointError("overflow in the detector")

    # The poll's windows are judged together; when that fails, one by one.
    m.champion.detector.predict = predict  # type: ignore[method-assign]
    m.champion.detector.predict_many = predict_many  # type: ignore[method-assign]
    stats = m.run(lambda: False, idle_timeout=0)
    assert stats.windows == 2
    assert dict(stats.dead_letters) == {"window-failed": WINDOW}
    letters = [kw for topic, kw in producer.sent if topic == "rows-dlq"]
    assert [int(dict(kw["headers"])["driftloop.source.offset"]) for kw in letters] == list(
        range(10, 20)
    )
    assert b"overflow in the detector" in dict(letters[0]["headers"])["driftloop.error.detail"]
    assert producer.commits == [30]


def test_a_commit_naming_windows_this_archive_lacks_stops_the_consumer(tmp_path: Path) -> None:
    # Another consumer archived stream s up to row 30 elsewhere and committed 20.
    producer = Producer()
    producer.offsets[TP] = Resume(20, 35, {"s": 30}, window=(WINDOW, WINDOW)).commit()
    records = [record(i, row(i)) for i in range(40)]
    with pytest.raises(CheckpointError, match="must use the same artifact root"):
        monitor(tmp_path, Replay(records, producer, size=40), producer).run(
            lambda: False, idle_timeout=0
        )
    assert producer.commits == []


def test_a_commit_by_a_consumer_cutting_other_windows_stops_the_consumer(tmp_path: Path) -> None:
    producer = Producer()
    producer.offsets[TP] = Resume(20, 35, window=(50, 50)).commit()
    records = [record(i, row(i)) for i in range(40)]
    with pytest.raises(CheckpointError, match="must cut the same windows"):
        monitor(tmp_path, Replay(records, producer, size=40), producer).run(
            lambda: False, idle_timeout=0
        )


def test_windows_closing_on_time_are_judged_logged_and_resumed_alike(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Windows of 10 rows or 5 minutes (at least 3 rows). Rows a minute apart make
    windows of 5 rows closed by time; two rows before a pause merge into the next
    window; rows 10 s apart fill a window. A consumer restarted from any commit
    judges the same windows."""
    seconds = [60 * i for i in range(12)] + [1800 + 60 * i for i in range(6)]
    seconds += [2110 + 10 * i for i in range(12)]
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def timed_row(i: int) -> bytes:
        message = RowMessage.from_bytes(row(i))
        return message.model_copy(
            update={"event_time": start + timedelta(seconds=seconds[i])}
        ).to_bytes()

    records = [record(i, timed_row(i)) for i in range(len(seconds))]

    def run(producer: Producer, size: int, until: int | None = None) -> list[DriftEvent]:
        m = monitor(tmp_path, Replay(records[:until], producer, size=size), producer)
        m.settings = m.settings.model_copy(update={"window_seconds": 300.0, "window_min_rows": 3})
        judged: list[DriftEvent] = []
        record_window = m._record

        def recorded(*args: Any) -> Any:
            archived = record_window(*args)
            judged.append(archived.event)
            return archived

        m._record = recorded  # type: ignore[method-assign]
        m.run(lambda: False, idle_timeout=0)
        return judged

    with caplog.at_level(logging.INFO, logger="consumer.service"):
        events = run(Producer(), size=7)
    windows = [(e.window.first_offset, e.window.last_offset, e.window.closed_by) for e in events]
    # Minutes 0-4 | 5-9 | 10, 11 and a pause: 2 rows < 3, merged with 30-34 | 10 fast
    # rows from minute 35 on; the last 3 rows' window stays open.
    assert windows == [(0, 4, "time"), (5, 9, "time"), (10, 16, "time"), (17, 26, "rows")]
    assert all(e.alarm is not None and e.alarm.fired is False for e in events)
    lines = [r.getMessage() for r in caplog.records]
    assert any("window_seconds=300 window_min_rows=3" in line for line in lines)
    merges = [line for line in lines if line.startswith("window merged")]
    assert merges == [
        "window merged window=rows/0/10 stream=s rows=2 < min 3 (closed by time after 300 s "
        "of event time): it stays open and takes the next rows"
    ]
    assert sum(" size=5 closed_by=time " in line for line in lines) == 2
    assert any(" size=10 closed_by=rows " in line for line in lines)
    archived = [
        DriftEvent.from_bytes(read_window(w).verdict or b"").window.closed_by
        for w in all_windows(tmp_path, TP.topic)
    ]
    assert archived == ["time", "time", "time", "rows"]

    # Stopped after any row, then restarted: the windows, each judged once, are those.
    for until in range(1, len(records)):
        producer = Producer()
        before = run(producer, size=3, until=until)
        committed = Resume.decode(producer.offsets[TP].offset, producer.offsets[TP].metadata)
        assert committed.time == (300.0, 3)
        after = run(producer, size=3)
        got = [(e.window.first_offset, e.window.last_offset) for e in before + after]
        assert got == [w[:2] for w in windows], until


def test_an_assignment_of_another_topic_is_an_error_that_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A static member rejoining its group gets its old assignment, topic and all."""

    class Stale(Consumer):
        def subscribe(self, topics: list[str], listener: Any) -> None:
            listener.on_partitions_assigned([TopicPartition("last-weeks-rows", 0), TP])

    producer = Producer()
    with caplog.at_level(logging.ERROR, logger="consumer.service"):
        monitor(tmp_path, Stale([], producer), producer).run(lambda: False, idle_timeout=0)
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert line.startswith(
        f"assigned partitions of another topic than {TP.topic}: last-weeks-rows/0;"
    )
    assert "use a group id of its own for each rows topic" in line
