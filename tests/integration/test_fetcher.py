"""The fetching process (`broker.fetcher`) on the real broker: what the loop's poll sees."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata, TopicPartition

from broker.fetcher import FetcherError, FetchingConsumer
from broker.settings import KafkaSettings
from broker.topics import ensure_topics


class Moves(ConsumerRebalanceListener):
    """Notes the partitions as they come and go."""

    def __init__(self) -> None:
        self.assigned: list[set[TopicPartition]] = []
        self.revoked: list[set[TopicPartition]] = []

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.assigned.append(set(assigned))

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.revoked.append(set(revoked))


def produce(
    settings: KafkaSettings, topic: str, messages: list[tuple[int, bytes | None, bytes | None]]
) -> None:
    """(partition, key, value) messages, in order."""
    producer = KafkaProducer(bootstrap_servers=settings.servers)
    for partition, key, value in messages:
        producer.send(topic, value=value, key=key, partition=partition)
    producer.flush()
    producer.close()


@pytest.fixture
def fetching(kafka_settings: KafkaSettings) -> Iterator[Any]:
    """Builds FetchingConsumers in a group of the test's own; closes them afterwards."""
    built: list[FetchingConsumer] = []
    group = f"test-fetcher-{uuid.uuid4().hex[:8]}"

    def build(**member: Any) -> FetchingConsumer:
        consumer = FetchingConsumer(
            kafka_settings, group, client_id=f"test-{len(built)}", max_poll_records=100, **member
        )
        built.append(consumer)
        return consumer

    build.group = group  # type: ignore[attr-defined]
    yield build
    for consumer in built:
        consumer.close()


def read(consumer: FetchingConsumer, count: int, timeout: float = 30.0) -> list[Any]:
    """Poll until ``count`` records came (every record, in the order the polls gave them)."""
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(found) < count:
        assert time.monotonic() < deadline, f"read {len(found)} of {count} records"
        for records in consumer.poll(timeout_ms=200).values():
            found += records
    return found


def test_it_returns_every_record_of_its_partition_in_order_with_keys_and_values(
    kafka_settings: KafkaSettings, fetching: Any
) -> None:
    topic = kafka_settings.rows_topic
    messages = [
        (0, None if i % 3 else f"k{i}".encode(), b"" if i == 7 else f"v{i}".encode())
        for i in range(450)
    ]
    messages[11] = (0, b"tombstone", None)
    produce(kafka_settings, topic, messages)
    consumer = fetching()
    moves = Moves()
    consumer.subscribe([topic], moves)
    records = read(consumer, len(messages))
    assert [r.offset for r in records] == list(range(len(messages)))
    assert [(r.key, r.value) for r in records] == [(k, v) for _, k, v in messages]
    assert {(r.topic, r.partition) for r in records} == {(topic, 0)}
    # (A topic created just before may first be assigned as nothing: its metadata
    # came after the first join.)
    assert [assigned for assigned in moves.assigned if assigned] == [{TopicPartition(topic, 0)}]
    assert consumer.highwater(TopicPartition(topic, 0)) == len(messages)
    assert consumer.poll(timeout_ms=300) == {}  # nothing more, nothing twice


def test_it_returns_what_kafka_python_returns_past_transactions_compression_and_headers(
    kafka_settings: KafkaSettings, fetching: Any
) -> None:
    """The fetcher decodes records itself (`broker.records`): against kafka-python's own
    ConsumerRecords, read_committed, on committed and aborted transactions, gzip
    batches, headers and values of one-, two- and three-byte lengths."""
    topic = kafka_settings.rows_topic
    tp = TopicPartition(topic, 0)
    servers = kafka_settings.servers
    transactional = KafkaProducer(
        bootstrap_servers=servers, transactional_id=f"test-lean-{uuid.uuid4().hex[:8]}"
    )
    transactional.init_transactions()
    for outcome in ("committed", "aborted", "committed", "aborted", "committed"):
        transactional.begin_transaction()
        for i in range(30):
            transactional.send(topic, key=b"t", value=f"{outcome} {i}".encode(), partition=0)
        transactional.flush()  # in the log before the transaction ends, either way
        if outcome == "committed":
            transactional.commit_transaction()
        else:
            transactional.abort_transaction()
    transactional.close()
    squeezed = KafkaProducer(
        bootstrap_servers=servers, compression_type="gzip", linger_ms=500, batch_size=1 << 20
    )
    for i in range(300):  # small values first, in few batches; then long ones
        squeezed.send(
            topic,
            key=None if i % 4 else f"key {i}".encode(),
            value=f"small {i}".encode() if i < 200 else b"v" * (i * 91 % 9000),
            headers=[("source", b"test"), ("empty", b"")] if i % 3 else [],
            partition=0,
        )
    squeezed.flush()
    squeezed.close()
    plain = KafkaConsumer(
        bootstrap_servers=servers, isolation_level="read_committed", enable_auto_commit=False
    )
    plain.assign([tp])
    plain.seek_to_beginning(tp)
    expected: list[tuple[int, bytes | None, bytes | None]] = []
    deadline = time.monotonic() + 30
    while len(expected) < 390:
        assert time.monotonic() < deadline, f"kafka-python read {len(expected)} of 390"
        for records in plain.poll(timeout_ms=200).values():
            expected += [(r.offset, r.key, r.value) for r in records]
    plain.close()
    assert not [value for _, _, value in expected if value and value.startswith(b"aborted")]

    consumer = fetching()
    consumer.subscribe([topic], Moves())
    records = read(consumer, len(expected))
    assert [(r.offset, r.key, r.value) for r in records] == expected
    # From the middle of a compressed batch: the batch is fetched whole, the rows
    # before the offset are skipped.
    small = [i for i, (_, _, value) in enumerate(expected) if value == b"small 57"]
    consumer.seek(tp, expected[small[0]][0])
    again = read(consumer, len(expected) - small[0])
    assert [(r.offset, r.key, r.value) for r in again] == expected[small[0] :]


def test_it_starts_at_the_groups_committed_offset(
    kafka_settings: KafkaSettings, fetching: Any
) -> None:
    topic = kafka_settings.rows_topic
    tp = TopicPartition(topic, 0)
    produce(kafka_settings, topic, [(0, None, f"v{i}".encode()) for i in range(50)])
    first = fetching()
    first.subscribe([topic], Moves())
    read(first, 50)
    first._member.commit({tp: OffsetAndMetadata(30, "", -1)})
    first.close()
    second = fetching()
    second.subscribe([topic], Moves())
    records = read(second, 20)
    assert [r.offset for r in records] == list(range(30, 50))
    assert second.committed(tp) == 30


def test_after_a_seek_nothing_fetched_before_it_is_returned(
    kafka_settings: KafkaSettings, fetching: Any
) -> None:
    topic = kafka_settings.rows_topic
    tp = TopicPartition(topic, 0)
    produce(kafka_settings, topic, [(0, None, f"v{i}".encode()) for i in range(2000)])
    consumer = fetching()
    consumer.subscribe([topic], Moves())
    first = read(consumer, 1)
    # The fetcher has read ahead (100 rows a poll, several polls in the pipe): a seek
    # back must drop all of that.
    time.sleep(0.5)
    consumer.seek(tp, 5)
    again = read(consumer, 100)
    assert first[0].offset == 0
    assert [r.offset for r in again[:100]] == list(range(5, 105))
    with pytest.raises(ValueError, match="not assigned"):
        consumer.seek(TopicPartition(topic, 9), 0)


def test_partitions_move_between_members_and_a_revoked_one_is_not_read_on(
    kafka_settings: KafkaSettings, fetching: Any
) -> None:
    topic = f"{kafka_settings.rows_topic}-two"
    ensure_topics(kafka_settings.servers, [topic], partitions=2)
    produce(kafka_settings, topic, [(i % 2, None, f"v{i}".encode()) for i in range(400)])
    first_moves, second_moves = Moves(), Moves()
    first = fetching()
    first.subscribe([topic], first_moves)
    assert len(read(first, 400)) == 400
    second = fetching()
    second.subscribe([topic], second_moves)
    # Both poll until the group settles with a partition each.
    deadline = time.monotonic() + 60
    while len(first.assignment()) != 1 or len(second.assignment()) != 1:
        assert time.monotonic() < deadline, "the group did not settle"
        first.poll(timeout_ms=50)
        second.poll(timeout_ms=50)
    (kept,) = first.assignment()
    (moved,) = second.assignment()
    assert kept != moved
    produce(kafka_settings, topic, [(p, None, b"new") for p in (0, 1) for _ in range(10)])
    deadline = time.monotonic() + 30
    seen: dict[str, list[Any]] = {"first": [], "second": []}
    while len(seen["first"]) < 210 or len(seen["second"]) < 210:
        assert time.monotonic() < deadline, {k: len(v) for k, v in seen.items()}
        for name, consumer in (("first", first), ("second", second)):
            for tp, records in consumer.poll(timeout_ms=50).items():
                assert tp in consumer.assignment()
                seen[name] += records
    # Each reads its partition from the group's committed offset (none: the start), as
    # after any rebalance (eager: every partition was revoked), then the new rows; the
    # first member never again returns a row of the partition it gave away.
    for name, tp in (("first", kept), ("second", moved)):
        assert [(r.partition, r.offset) for r in seen[name]] == [
            (tp.partition, offset) for offset in range(210)
        ]
        assert [r.value for r in seen[name][200:]] == [b"new"] * 10


def test_a_fetcher_that_died_is_reported_by_the_next_poll(
    kafka_settings: KafkaSettings, fetching: Any
) -> None:
    topic = kafka_settings.rows_topic
    produce(kafka_settings, topic, [(0, None, b"v")])
    consumer = fetching()
    consumer.subscribe([topic], Moves())
    read(consumer, 1)
    os.kill(consumer._process.pid, signal.SIGKILL)
    consumer._process.wait(timeout=10)
    with pytest.raises(FetcherError, match=r"exited with code -9"):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            consumer.poll(timeout_ms=100)


def test_close_stops_the_fetcher_and_a_dead_parent_takes_it_along(
    kafka_settings: KafkaSettings, fetching: Any
) -> None:
    consumer = fetching()
    consumer.subscribe([kafka_settings.rows_topic], Moves())
    consumer.poll(timeout_ms=100)
    process = consumer._process
    consumer.close()
    assert process.poll() is not None
    # A consumer's process killed outright: its fetcher sees the pipe close and exits.
    script = (
        "import os, sys\n"
        "from broker.fetcher import FetchingConsumer\n"
        "from broker.settings import KafkaSettings\n"
        f"settings = KafkaSettings(bootstrap_servers={kafka_settings.bootstrap_servers!r})\n"
        f"c = FetchingConsumer(settings, 'test-orphan-{uuid.uuid4().hex[:6]}', 'orphan')\n"
        "print(c._process.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    parent = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    orphan = int(parent.stdout.split()[0])
    deadline = time.monotonic() + 15
    while _alive(orphan):
        assert time.monotonic() < deadline, f"the fetcher {orphan} outlived its consumer"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
