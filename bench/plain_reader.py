"""The ceiling: a client reading the topic and ``json.loads``-decoding every value.

kafka-python's reader (:func:`read_plain`) and confluent-kafka's
(:func:`read_plain_confluent`, batch ``consume``). This module imports only the
Kafka clients and the broker settings, so the process it runs in holds what a
plain reader needs and no more.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from bench.timing import AssignmentClock, CollectorClock, Measurement
from broker.clients import PollWait, manual_commit_consumer
from broker.settings import KafkaSettings


class BenchTimeoutError(RuntimeError):
    """A reader did not get through the topic in the time allowed."""


@dataclass(frozen=True)
class PlainRead:
    """What the plain reader reads, and with which consumer settings.

    Attributes
    ----------
    bootstrap_servers : str
        The broker.
    topic : str
        The rows topic.
    group_id : str
        A consumer group of its own, so the read starts at the earliest offset.
    rows : int
        Rows on the topic; the read ends once that many were decoded.
    max_poll_records : int
        The drift consumer's ``max_poll_records``.
    timeout : float
        Seconds before giving up.
    """

    bootstrap_servers: str
    topic: str
    group_id: str
    rows: int
    max_poll_records: int
    timeout: float = 300.0


def read_plain(spec: PlainRead) -> Measurement:
    """Read ``spec.rows`` rows and ``json.loads`` each value; commit nothing.

    The consumer is :func:`broker.clients.manual_commit_consumer`, polled with
    the drift consumer's ``max_poll_records`` and timeouts
    (:class:`broker.clients.PollWait`): the same client settings.

    Raises
    ------
    BenchTimeoutError
        When fewer than ``spec.rows`` rows arrive within ``spec.timeout`` seconds.
    """
    logging.getLogger("kafka").setLevel(logging.ERROR)
    settings = KafkaSettings(bootstrap_servers=spec.bootstrap_servers, rows_topic=spec.topic)
    consumer = manual_commit_consumer(settings, spec.group_id, client_id="bench-plain-reader")
    clock = AssignmentClock()
    deadline = time.monotonic() + spec.timeout
    loads = json.loads
    wait = PollWait()  # the drift consumer's poll timeouts
    seen = 0
    polling = decoding = 0.0
    with CollectorClock() as collector:
        try:
            consumer.subscribe([spec.topic], listener=clock)
            while seen < spec.rows:
                if time.monotonic() > deadline:
                    raise BenchTimeoutError(
                        f"the plain reader read {seen} of {spec.rows} rows in {spec.timeout} s"
                    )
                started = time.perf_counter()
                batch = consumer.poll(timeout_ms=wait.ms, max_records=spec.max_poll_records)
                polled = time.perf_counter()
                wait.after(found=bool(batch))
                for records in batch.values():
                    for record in records:
                        loads(record.value)
                    seen += len(records)
                decoding += time.perf_counter() - polled
                polling += polled - started
            finished, finished_cpu = time.perf_counter(), time.process_time()
        finally:
            consumer.close(autocommit=False)
    # Rows arrived, so partitions were assigned.
    assert clock.assigned_at is not None and clock.assigned_cpu is not None
    return Measurement(
        rows=seen,
        seconds=finished - clock.assigned_at,
        cpu_seconds=finished_cpu - clock.assigned_cpu,
        stage_seconds={"poll": polling, "decode": decoding},
        gc_seconds=collector.seconds_between(clock.assigned_at, finished),
    )


class ConfluentPolls:
    """A read of the topic by batch ``consume``, clocked: iterate for each poll's values.

    The consumer is the one ``--client confluent`` runs (:class:`broker.confluent.RowsConsumer`,
    its settings), read without the kafka-python-shaped records: ``consume`` and
    ``Message.value()``, the fastest the client gives, polled with ``max_poll_records``
    and the drift consumer's timeouts. Iteration stops once ``spec.rows`` rows came and
    closes the consumer; :attr:`assigned` is when (wall, CPU) the first partitions came,
    :attr:`polling` the seconds spent in ``consume``.

    Raises
    ------
    BenchTimeoutError
        When fewer than ``spec.rows`` rows arrive within ``spec.timeout`` seconds.
    """

    def __init__(self, spec: PlainRead, reader: str) -> None:
        self.spec = spec
        self.reader = reader
        self.assigned: tuple[float, float] | None = None
        self.polling = 0.0

    def __iter__(self) -> Iterator[list[bytes]]:
        from broker.confluent import RowsConsumer

        spec = self.spec
        settings = KafkaSettings(bootstrap_servers=spec.bootstrap_servers, rows_topic=spec.topic)
        rows = RowsConsumer(settings, spec.group_id, client_id=f"bench-{self.reader}")
        consumer = rows._consumer

        def on_assign(consumer: object, partitions: list[object]) -> None:
            if partitions and self.assigned is None:
                self.assigned = (time.perf_counter(), time.process_time())

        deadline = time.monotonic() + spec.timeout
        wait = PollWait()  # the drift consumer's poll timeouts
        seen = 0
        try:
            consumer.subscribe([spec.topic], on_assign=on_assign)
            while seen < spec.rows:
                if time.monotonic() > deadline:
                    raise BenchTimeoutError(
                        f"the {self.reader.replace('-', ' ')} read {seen} of {spec.rows} rows "
                        f"in {spec.timeout} s"
                    )
                started = time.perf_counter()
                messages = consumer.consume(
                    num_messages=spec.max_poll_records, timeout=wait.ms / 1000
                )
                self.polling += time.perf_counter() - started
                wait.after(found=bool(messages))
                values = [m.value() for m in messages if m.error() is None]
                seen += len(values)
                if values:
                    yield values  # type: ignore[misc]
        finally:
            rows.close()


def read_plain_confluent(spec: PlainRead) -> Measurement:
    """As :func:`read_plain`, on confluent-kafka: batch ``consume`` (:class:`ConfluentPolls`).

    Raises
    ------
    BenchTimeoutError
        When fewer than ``spec.rows`` rows arrive within ``spec.timeout`` seconds.
    """
    polls = ConfluentPolls(spec, "plain-confluent-reader")
    loads = json.loads
    seen = 0
    decoding = 0.0
    with CollectorClock() as collector:
        for values in polls:
            polled = time.perf_counter()
            for value in values:
                loads(value)
            seen += len(values)
            decoding += time.perf_counter() - polled
        finished, finished_cpu = time.perf_counter(), time.process_time()
    assert polls.assigned is not None, "rows arrived, so partitions were assigned"
    return Measurement(
        rows=seen,
        seconds=finished - polls.assigned[0],
        cpu_seconds=finished_cpu - polls.assigned[1],
        stage_seconds={"poll": polls.polling, "decode": decoding},
        gc_seconds=collector.seconds_between(polls.assigned[0], finished),
    )
