"""Several consumers share a stream spread over partitions; kills lose and repeat nothing.

Both tests run `python -m producer` and `python -m consumer` as a user would, against
a rows topic of four partitions, and check the outcome from what a user can see: the
archive, and the drift and dead-letter topics read as committed messages only.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaProducer

from broker.settings import KafkaSettings
from broker.topics import ensure_topics
from consumer.archive import ArchivedWindow, all_windows, read_window
from consumer.events import DriftEvent
from demo.stack import StackError, wait_until
from producer.messages import RowMessage
from tests.integration.streams import read_topic

PARTITIONS = 4
WINDOW = 25


@pytest.fixture
def spread(kafka_settings: KafkaSettings, consumer_env: dict[str, str]) -> dict[str, str]:
    """The environment of a rows topic with four partitions (on each consumer client)."""
    topic = f"{kafka_settings.rows_topic}-x{PARTITIONS}"
    ensure_topics(kafka_settings.servers, [topic], partitions=PARTITIONS)
    return {**consumer_env, "DRIFTLOOP_ROWS_TOPIC": topic}


def group_of(env: dict[str, str]) -> str:
    """The test's consumer group, named after its rows topic: the tests of both clients
    reuse the instance ids, and a static member a test leaves behind stays in its group
    for a session timeout."""
    return f"scale-test-{env['DRIFTLOOP_ROWS_TOPIC']}"


class Consumer:
    """One `python -m consumer` process of the group, logging to its own file."""

    def __init__(self, env: dict[str, str], root: Path, name: str, logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.name, self.log = name, logs / f"{name}.log"
        self.env, self.root = env, root
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "consumer",
                    "--window-size",
                    str(WINDOW),
                    "--ks-backend",
                    "fast",
                    "--artifact-root",
                    str(self.root),
                    "--group-id",
                    group_of(self.env),
                    "--instance-id",
                    self.name,
                    "--session-timeout-ms",
                    "6000",
                    "--max-poll-records",
                    "200",
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def logged(self, text: str) -> int:
        return self.log.read_text().count(text) if self.log.exists() else 0

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=30) == 0, self.log.read_text()[-3000:]

    def reap(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def producer(env: dict[str, str], data: Path, stream: str, rows: int, rate: float, seed: int):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "producer",
            "--data",
            str(data),
            "--stream",
            stream,
            "--count",
            str(rows),
            "--rate",
            str(rate),
            "--drift-after",
            "0",
            "--seed",
            str(seed),
            "--quiet",
        ],
        env=env,
    )


def archived(
    root: Path, topic: str
) -> tuple[list[tuple[str, int, int]], list[ArchivedWindow], list[DriftEvent | None]]:
    """Every archived row as (stream, partition, offset), the windows and their verdicts."""
    rows, verdicts = [], []
    windows = all_windows(root, topic)
    for window in windows:
        record = read_window(window)
        stream = window.path.parent.parent.name
        rows += [(stream, window.partition, offset) for offset in record.offsets.tolist()]
        verdicts.append(None if record.verdict is None else DriftEvent.from_bytes(record.verdict))
    return rows, windows, verdicts


def all_rows_in_windows(kafka: KafkaSettings, topic: str) -> set[tuple[str, int, int]]:
    """Every row of the topic that a complete tumbling window of its stream holds."""
    by_lane: dict[tuple[str, int], list[int]] = {}
    for record in read_topic(kafka, topic):
        stream = _stream(record.value)
        if stream is not None:
            by_lane.setdefault((stream, record.partition), []).append(record.offset)
    whole = set()
    for (stream, partition), offsets in by_lane.items():
        complete = len(offsets) - len(offsets) % WINDOW
        whole |= {(stream, partition, o) for o in sorted(offsets)[:complete]}
    return whole


def wait_archived(root: Path, topic: str, expected: set[tuple[str, int, int]]) -> None:
    """Wait until every expected row is archived; fail naming some that are not."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        missing = expected - set(archived(root, topic)[0])
        if not missing:
            return
        time.sleep(0.5)
    raise AssertionError(f"{len(missing)} rows never archived, e.g. {sorted(missing)[:10]}")


def _stream(value: bytes | None) -> str | None:
    """The stream of a valid row; None for a malformed one."""
    try:
        return RowMessage.from_bytes(value or b"").stream
    except ValueError:
        return None


def test_consumers_joining_leaving_and_killed_share_the_partitions_exactly_once(
    kafka_settings: KafkaSettings,
    spread: dict[str, str],
    iris_csv: Path,
    artifact_root: Path,
    tmp_path: Path,
) -> None:
    topic = spread["DRIFTLOOP_ROWS_TOPIC"]
    consumers: list[Consumer] = []
    producers: list[subprocess.Popen] = []
    try:
        first = Consumer(spread, artifact_root, "c1", tmp_path)
        consumers.append(first)
        wait_until(lambda: first.logged("assigned partitions") >= 1, 60, "c1 assigned")
        # Two streams spread over the four partitions, for about 33 s: time enough for
        # two consumers to start and join on a loaded machine (each about 8 s here)
        # while rows still come.
        producers = [
            producer(spread, iris_csv, "alpha", 4000, 120, seed=1),
            producer(spread, iris_csv, "beta", 2700, 80, seed=2),
        ]
        wait_until(lambda: first.logged(" window=") >= 8, 60, "c1 judging windows")
        # 1 -> 3 consumers.
        consumers += [Consumer(spread, artifact_root, n, tmp_path) for n in ("c2", "c3")]
        wait_until(
            lambda: all(c.logged(" window=") >= 4 for c in consumers), 90, "all three judging"
        )
        # 3 -> 2: c2 is killed mid-stream and not restarted; its partitions move on
        # once its session ends.
        consumers[1].kill()
        for p in producers:
            assert p.wait(timeout=120) == 0
        expected = all_rows_in_windows(kafka_settings, topic)
        wait_archived(artifact_root, topic, expected)
        for c in (consumers[0], consumers[2]):
            c.stop()
    finally:
        for c in consumers:
            c.reap()
        for p in producers:
            if p.poll() is None:
                p.kill()

    rows, windows, verdicts = archived(artifact_root, topic)
    counts = Counter(rows)
    assert set(counts) == expected
    assert max(counts.values()) == 1, "a row archived in two windows"
    # Every window has exactly one verdict, which names the window's stream and partition.
    for window, event in zip(windows, verdicts, strict=True):
        assert event is not None
        assert event.stream == window.path.parent.parent.name
        assert (event.window.partition, event.window.first_offset) == (
            window.partition,
            window.first_offset,
        )
    # The streams were spread: each has windows from every partition.
    assert {(s, p) for s, p, _ in rows} == {
        (s, p) for s in ("alpha", "beta") for p in range(PARTITIONS)
    }
    # Each consumer judged some of it.
    assert all(c.logged(" window=") > 0 for c in consumers)


KILLS = 10


def test_kill_9_at_random_points_leaves_every_event_and_dead_letter_once(
    kafka_settings: KafkaSettings,
    spread: dict[str, str],
    iris_csv: Path,
    artifact_root: Path,
    tmp_path: Path,
) -> None:
    topic = spread["DRIFTLOOP_ROWS_TOPIC"]
    chooser = random.Random(20261201)
    malformed: list[bytes] = []
    junk_failed: list[BaseException] = []
    stop_junk = threading.Event()

    def send_junk() -> None:
        """A malformed row now and then, each one different, on every partition."""
        junk = KafkaProducer(bootstrap_servers=kafka_settings.servers, acks="all")
        try:
            n = 0
            while not stop_junk.wait(0.25):
                value = f'{{"not a row": {n}}}'.encode()
                # Acknowledged before it counts: a send that timed out here could still
                # land in the topic, and be dead-lettered without the test knowing.
                junk.send(topic, value=value, partition=n % PARTITIONS).get(timeout=60)
                malformed.append(value)
                n += 1
        except BaseException as err:
            junk_failed.append(err)
            raise
        finally:
            junk.close()

    consumer = Consumer(spread, artifact_root, "solo", tmp_path)
    rows = producer(spread, iris_csv, "iris", 9000, 180, seed=5)
    junk_thread = threading.Thread(target=send_junk, daemon=True)
    junk_thread.start()
    try:
        for kill in range(KILLS):
            judged = consumer.logged(" window=")
            wait_until(
                lambda n=judged: consumer.logged(" window=") > n,
                60,
                f"a window judged before kill {kill + 1}",
            )
            # Anywhere: while judging, archiving, or in the transaction.
            time.sleep(chooser.uniform(0.0, 1.2))
            consumer.kill()
            consumer.start()
        assert rows.wait(timeout=120) == 0
        stop_junk.set()
        junk_thread.join(timeout=90)
        assert not junk_failed, f"the test's producer of malformed rows failed: {junk_failed}"
        expected = all_rows_in_windows(kafka_settings, topic)
        wait_archived(artifact_root, topic, expected)
        # A window archived by a killed consumer counts only once the restarted one has
        # judged it again and committed it: wait for the topics to agree with the
        # archive (they do once the last consumer caught up; duplicates never go away).
        try:
            wait_until(
                lambda: (
                    committed_outcome(kafka_settings, artifact_root, topic)[1:]
                    == (Counter(malformed), True)
                ),
                120,
                "every event and dead letter committed",
            )
        except StackError as err:
            raise AssertionError(
                f"{err}: {outcome_gap(kafka_settings, artifact_root, topic, malformed)}"
            ) from err
        wait_until(
            lambda: consumer.logged("consuming topic=") == KILLS + 1, 60, "the last consumer"
        )
        consumer.stop()
    finally:
        stop_junk.set()
        consumer.reap()
        if rows.poll() is None:
            rows.kill()

    archived_rows, _, _ = archived(artifact_root, topic)
    assert max(Counter(archived_rows).values()) == 1
    events, letters, agree = committed_outcome(kafka_settings, artifact_root, topic)
    assert events, "the noised stream opened drift episodes"
    assert max(events.values()) == 1, "an event published twice"
    assert agree, "the drift topic holds each announced window's event, and only those"
    assert len(malformed) > 20
    assert letters == Counter(malformed), "every malformed row dead-lettered exactly once"


def outcome_gap(kafka: KafkaSettings, root: Path, topic: str, malformed: list[bytes]) -> str:
    """How the committed drift and dead-letter topics differ from what they should hold."""
    events, letters, _ = committed_outcome(kafka, root, topic)
    verdicts = archived(root, topic)[2]
    announced = {event.event_id for event in verdicts if event is not None and event.announces}
    sent = Counter(malformed)
    extra = letters - sent
    return (
        f"dead letters missing {sorted((sent - letters).elements())[:5]}, "
        f"twice {sorted(v for v in extra if letters[v] > 1)[:5]}, "
        f"never sent {sorted(v for v in extra if letters[v] == 1)[:5]}; "
        f"events not announced by the archive {sorted(set(events) - announced)[:5]}, "
        f"announced but not committed {sorted(announced - set(events))[:5]}"
    )


def committed_outcome(
    kafka: KafkaSettings, root: Path, topic: str
) -> tuple[Counter[str], Counter[bytes], bool]:
    """The drift topic's event ids and the dead-letter topic's values, as committed; and
    whether the events are exactly the archived verdicts that announce."""
    events = Counter(
        DriftEvent.from_bytes(r.value).event_id for r in read_topic(kafka, kafka.drift_topic)
    )
    letters = Counter(r.value for r in read_topic(kafka, kafka.dlq_topic))
    verdicts = archived(root, topic)[2]
    announced = {event.event_id for event in verdicts if event is not None and event.announces}
    return events, letters, set(events) == announced


def test_a_second_consumer_under_the_same_instance_id_takes_over_and_the_first_says_why(
    kafka_settings: KafkaSettings,
    spread: dict[str, str],
    iris_csv: Path,
    artifact_root: Path,
    tmp_path: Path,
) -> None:
    first = Consumer(spread, artifact_root, "twin", tmp_path / "a")
    second: Consumer | None = None
    rows = producer(spread, iris_csv, "iris", 3000, 200, seed=4)
    try:
        wait_until(lambda: first.logged(" window=") >= 2, 60, "the first consumer judging")
        second = Consumer(spread, artifact_root, "twin", tmp_path / "b")
        assert first.process is not None
        # The first stops: exit 3 with the reason when Kafka says it was fenced; the
        # broker sometimes reports the fenced transaction as an unknown error (exit 1).
        code = first.process.wait(timeout=60)
        assert code in (1, 3), first.log.read_text()[-2000:]
        if code == 3:
            assert (
                f"another consumer of group '{group_of(spread)}' started as instance 'twin'"
                in first.log.read_text()
            )
        wait_until(lambda: second.logged(" window=") >= 2, 60, "the second consumer judging")
    finally:
        rows.kill()
        for c in (first, second):
            if c is not None:
                c.reap()
