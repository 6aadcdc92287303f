"""`python -m producer`: replay a CSV's rows to the rows topic."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from kafka.partitioner import DefaultPartitioner

from broker.cli import add_flags, build
from broker.clients import quiet_client_logs, reliable_producer
from broker.errors import BrokerUnavailableError
from broker.logs import LogSettings, configure_logging
from data.dataset import Dataset, DatasetError, load_dataset
from producer.labels import DelayedLabels, HeldLabel
from producer.messages import LabelMessage, RowMessage
from producer.metrics import ProducerMetrics
from producer.replay import DriftPlan, Pacer, replay, replayed_time
from producer.settings import ProducerSettings

logger = logging.getLogger("producer")

# Topics of the consumer and the DAG: the producer only writes the rows topic, and
# does not create it.
NOT_THE_PRODUCERS = frozenset(
    {"drift_topic", "model_updates_topic", "dlq_topic", "rows_partitions"}
)


def parse_args(argv: list[str] | None) -> tuple[ProducerSettings, LogSettings, bool]:
    """The settings, the log settings and ``--quiet`` from ``argv`` and the environment."""
    parser = argparse.ArgumentParser(
        prog="python -m producer",
        description="Replay a CSV's rows to Kafka as RowMessages, optionally adding "
        "Gaussian noise from a given row on to simulate drift. Rows are spread over all "
        "partitions of the rows topic, or keyed by --key-column so that each key's rows stay "
        "on one partition, in order. Every flag can also be "
        "set in the environment variable its help names; a flag beats the environment.",
    )
    add_flags(parser, ProducerSettings, exclude=NOT_THE_PRODUCERS)
    add_flags(parser, LogSettings)
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    return build(ProducerSettings, args), build(LogSettings, args), args.quiet


class Progress:
    """A progress line on a terminal, a log line every 10 % otherwise."""

    def __init__(self, total: int | None, quiet: bool) -> None:
        self.total = total
        self.tty = sys.stderr.isatty() and not quiet
        self.quiet = quiet
        self.started = time.monotonic()
        self._next_log = 0

    def update(self, sent: int, noised: bool) -> None:
        if self.quiet:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        state = "noised" if noised else "clean"
        if self.tty:
            if sent % 10 == 0 or sent == self.total:
                sys.stderr.write(f"\rsent {sent}{of} rows ({sent / elapsed:.0f}/s, {state})  ")
                sys.stderr.flush()
        elif sent >= self._next_log:
            logger.info("sent=%d%s rate=%.0f/s rows=%s", sent, of, sent / elapsed, state)
            step = max((self.total or 1000) // 10, 1)
            self._next_log = sent + step

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    settings, log_settings, quiet = parse_args(argv)
    configure_logging(log_settings)
    quiet_client_logs()
    try:
        dataset = load_dataset(
            settings.data,
            label_column=settings.label_column,
            key_column=settings.key_column,
            categorical=settings.categorical,
        )
        plan = DriftPlan(
            after=settings.drift_after,
            mean=settings.noise_mean,
            std=settings.noise_std,
            features=settings.drift_features,
        )
        count = None if settings.loop else (settings.count or len(dataset.features))
        rows = replay(
            dataset.features.to_numpy(dtype=object),
            dataset.labels.tolist(),
            dataset.feature_names,
            count=count,
            drift=plan,
            seed=settings.seed,
            shuffle=settings.shuffle,
            keys=dataset.keys,
            categorical=dataset.categorical,
        )
        # Validate the whole plan (e.g. unknown --drift-features) before connecting.
        first = next(rows, None)
    except (DatasetError, ValueError) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    try:
        # Unkeyed rows go each to a partition at random (kafka-python's default
        # partitioner, named so that a change of default cannot stick a run to one).
        producer = reliable_producer(
            settings, client_id="driftloop-producer", partitioner=DefaultPartitioner()
        )
    except BrokerUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    signal.signal(signal.SIGTERM, _raise_interrupt)
    metrics = ProducerMetrics()
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_port, settings.metrics_host)
    failures: list[Exception] = []
    pacer = Pacer(settings.rate)
    progress = Progress(count, quiet)
    sent = 0
    logger.info(
        "replaying %s to topic=%s stream=%s rows=%s rate=%s/s drift_after=%s label_delay=%s %s",
        settings.data,
        settings.rows_topic,
        settings.stream_name,
        "endless" if count is None else count,
        settings.rate or "max",
        settings.drift_after,
        settings.label_delay or "none",
        _partitioning(settings.key_column, dataset),
    )
    held = None if settings.delay is None else DelayedLabels(settings.delay)
    labels_sent = 0
    interrupted = False
    try:
        row = first
        while row is not None:
            pacer.wait()
            message = RowMessage(
                stream=settings.stream_name,
                seq=row.seq,
                event_time=(
                    datetime.now(UTC)
                    if settings.event_start is None
                    else replayed_time(settings.event_start, settings.event_interval, row.seq)
                ),
                features=row.features,
                label=row.label if held is None else None,
            )
            noised = plan.after is not None and row.seq >= plan.after
            key = None if row.key is None else row.key.encode()
            future = producer.send(settings.rows_topic, key=key, value=message.to_bytes())
            future.add_callback(_count, metrics.rows_sent.labels(noised="yes" if noised else "no"))
            future.add_errback(_failed, failures, metrics)
            sent += 1
            progress.update(sent, noised)
            if held is not None:
                if row.label is not None:
                    held.hold(row.seq, row.label, time.monotonic())
                labels_sent += _send_labels(
                    producer, settings, held.due(time.monotonic()), failures, metrics
                )
            if failures:
                break
            row = next(rows, None)
        if held is not None and not failures:
            # A bounded run ends with every label told; an interrupted one keeps the rest.
            labels_sent += _send_labels(producer, settings, held.drain(), failures, metrics)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
        # Flush even on Ctrl-C: rows handed to the client are delivered, not dropped.
        producer.flush(timeout=30)
        producer.close(timeout=10)
    if failures:
        print(f"error: delivery failed: {failures[0]}", file=sys.stderr)
        return 1
    logger.info(
        "sent %d rows to %s%s%s",
        sent,
        settings.rows_topic,
        "" if held is None else f", {labels_sent} labels to {settings.labels_topic}",
        " (interrupted)" if interrupted else "",
    )
    return 130 if interrupted else 0


def _send_labels(
    producer: Any,
    settings: ProducerSettings,
    labels: list[HeldLabel],
    failures: list[Exception],
    metrics: ProducerMetrics,
) -> int:
    """Send held labels to the labels topic, keyed by the stream name; how many."""
    key = settings.stream_name.encode()
    for held in labels:
        message = LabelMessage(
            stream=settings.stream_name,
            seq=held.seq,
            label=held.label,
            event_time=datetime.now(UTC),
        )
        future = producer.send(settings.labels_topic, key=key, value=message.to_bytes())
        future.add_callback(_count, metrics.labels_sent)
        future.add_errback(_failed, failures, metrics)
    return len(labels)


def _partitioning(key_column: str | None, dataset: Dataset) -> str:
    """How rows are spread, for the start-up line: unkeyed, or by which column in which role."""
    if key_column is None:
        return "key_column=none (rows spread over all partitions)"
    if key_column == dataset.label_column:
        role = "label"
    elif key_column in dataset.feature_names:
        role = "feature"
    else:
        role = "key-only"
    return f"key_column={key_column} key_role={role}"


def _count(counter: Any, metadata: Any) -> None:
    counter.inc()


def _failed(failures: list[Exception], metrics: ProducerMetrics, err: Exception) -> None:
    metrics.send_failures.inc()
    failures.append(err)


if __name__ == "__main__":
    sys.exit(main())
