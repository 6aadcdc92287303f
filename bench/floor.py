"""The floor: the least any consumer judging these rows must do, on confluent-kafka.

Batch ``consume`` as the plain confluent reader, then what judging a window cannot do
without, with the consumer's own parts: the champion's decoder (msgspec, into the
feature matrix), its label predictor on every row (the accuracy needs it) and its KS
detector on every complete window. No archive, alarm, events, log lines, dead letters
or commits. Its rate bounds what ``--client confluent`` can reach on this machine:
the consumer does all of this and more, on the same cores.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.plain_reader import BenchTimeoutError, PlainRead
from bench.timing import CollectorClock, Measurement
from broker.clients import PollWait
from broker.settings import KafkaSettings
from consumer.champion import Champion
from consumer.decoding import MalformedRowError
from consumer.settings import ConsumerSettings
from models.registry import Registry


@dataclass(frozen=True)
class FloorRead:
    """A plain read's topic and settings, with the champion and window to judge by."""

    read: PlainRead
    artifact_root: Path
    window: int


def read_floor(spec: FloorRead) -> Measurement:
    """Consume ``spec.read.rows`` rows; decode, predict and KS-test them by window.

    The rows of a window are consecutive rows of the topic (the bench's topic has one
    partition and one stream); rows left over at the end of a poll start the next
    window.

    Raises
    ------
    BenchTimeoutError
        When fewer rows arrive within the read's timeout.
    """
    from broker.confluent import RowsConsumer

    read = spec.read
    logging.getLogger("kafka").setLevel(logging.ERROR)
    settings = ConsumerSettings(
        bootstrap_servers=read.bootstrap_servers,
        rows_topic=read.topic,
        artifact_root=spec.artifact_root,
        window_size=spec.window,
    )
    champion = Champion.from_registry(Registry.from_settings(settings), settings)
    decoder, detector, predict = champion.decoder, champion.detector, champion.predict_labels
    kafka = KafkaSettings(bootstrap_servers=read.bootstrap_servers, rows_topic=read.topic)
    reader = RowsConsumer(kafka, read.group_id, client_id="bench-floor")
    consumer = reader._consumer
    assigned: list[tuple[float, float]] = []

    def on_assign(consumer: object, partitions: list[object]) -> None:
        if partitions and not assigned:
            assigned.append((time.perf_counter(), time.process_time()))

    deadline = time.monotonic() + read.timeout
    wait = PollWait()
    seen = 0
    left = np.empty((0, len(champion.metadata.feature_names)))
    stages = {"poll": 0.0, "decode": 0.0, "accuracy": 0.0, "detect": 0.0}
    with CollectorClock() as collector:
        try:
            consumer.subscribe([read.topic], on_assign=on_assign)
            while seen < read.rows:
                if time.monotonic() > deadline:
                    raise BenchTimeoutError(
                        f"the floor read {seen} of {read.rows} rows in {read.timeout} s"
                    )
                started = time.perf_counter()
                messages = consumer.consume(
                    num_messages=read.max_poll_records, timeout=wait.ms / 1000
                )
                polled = time.perf_counter()
                wait.after(found=bool(messages))
                values = [m.value() for m in messages if m.error() is None]
                if not values:
                    stages["poll"] += polled - started
                    continue
                seen += len(values)
                decoded_rows = decoder.decode_all(values)
                rows = [r for r in decoded_rows if not isinstance(r, MalformedRowError)]
                x = np.concatenate([left, decoder.matrix(rows)])
                decoded = time.perf_counter()
                predict(x[len(left) :])
                predicted = time.perf_counter()
                whole = len(x) // spec.window * spec.window
                detector.predict_many(
                    [x[i : i + spec.window] for i in range(0, whole, spec.window)]
                )
                left = x[whole:]
                detected = time.perf_counter()
                stages["poll"] += polled - started
                stages["decode"] += decoded - polled
                stages["accuracy"] += predicted - decoded
                stages["detect"] += detected - predicted
            finished, finished_cpu = time.perf_counter(), time.process_time()
        finally:
            reader.close()
    assert assigned, "rows arrived, so partitions were assigned"
    return Measurement(
        rows=seen,
        seconds=finished - assigned[0][0],
        cpu_seconds=finished_cpu - assigned[0][1],
        stage_seconds=stages,
        gc_seconds=collector.seconds_between(assigned[0][0], finished),
    )
