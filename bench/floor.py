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

from bench.plain_reader import ConfluentPolls, PlainRead
from bench.timing import CollectorClock, Measurement
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
    polls = ConfluentPolls(read, "floor")
    seen = 0
    left = np.empty((0, len(champion.metadata.feature_names)))
    stages = {"decode": 0.0, "accuracy": 0.0, "detect": 0.0}
    with CollectorClock() as collector:
        for values in polls:
            polled = time.perf_counter()
            seen += len(values)
            decoded_rows = decoder.decode_all(values)
            rows = [r for r in decoded_rows if not isinstance(r, MalformedRowError)]
            x = np.concatenate([left, decoder.matrix(rows)])
            decoded = time.perf_counter()
            predict(x[len(left) :])
            predicted = time.perf_counter()
            whole = len(x) // spec.window * spec.window
            detector.predict_many([x[i : i + spec.window] for i in range(0, whole, spec.window)])
            left = x[whole:]
            stages["decode"] += decoded - polled
            stages["accuracy"] += predicted - decoded
            stages["detect"] += time.perf_counter() - predicted
        finished, finished_cpu = time.perf_counter(), time.process_time()
    assert polls.assigned is not None, "rows arrived, so partitions were assigned"
    return Measurement(
        rows=seen,
        seconds=finished - polls.assigned[0],
        cpu_seconds=finished_cpu - polls.assigned[1],
        stage_seconds={"poll": polls.polling, **stages},
        gc_seconds=collector.seconds_between(polls.assigned[0], finished),
    )
