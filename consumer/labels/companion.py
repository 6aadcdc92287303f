"""The label companion's loop: take labels, store them durably, commit, join, report.

Per poll of the labels topic: each Label is decoded (a malformed one is a dead
letter, reasons as for rows), stored (a duplicate kept once, a correction appended:
the later wins), the store fsynced, the poll's dead letters acknowledged, and only
then the offsets committed: a label whose offset is committed is on disk. Every
``join_interval_seconds`` the window archive is scanned for new windows, late
accuracies are reported, and labels whose row cannot come any more are dead-lettered
as ``unknown-row`` (sent and acknowledged before the store notes them, so a crash
in between sends one twice rather than never).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from consumer.dead_letters import DeadLetter, DeadLetters
from consumer.decoding import LabelDecoder, MalformedRowError
from consumer.labels.joining import LabelJoiner
from consumer.labels.metrics import LabelMetrics
from consumer.labels.settings import LabelSettings
from consumer.labels.store import LabelStore
from producer.messages import LabelMessage

logger = logging.getLogger(__name__)


@dataclass
class CompanionStats:
    """What a run of the companion did."""

    labels: Counter[str] = field(default_factory=Counter)
    """Labels read, by outcome (new, duplicate, correction)."""
    dead_letters: Counter[str] = field(default_factory=Counter)
    """Labels dead-lettered, by reason."""
    late_windows: int = 0
    """Windows whose late accuracy was reported."""

    def summary(self) -> str:
        return (
            f"labels={dict(self.labels)} dead_letters={dict(self.dead_letters)} "
            f"late_windows={self.late_windows}"
        )


class LabelCompanion:
    """Runs the loop (see the module docstring) over a consumer subscribed to nothing yet.

    Parameters
    ----------
    settings : LabelSettings
    consumer : kafka.KafkaConsumer
        Auto-commit off, committed messages only; :meth:`run` subscribes it.
    producer : kafka.KafkaProducer
        For dead letters (idempotent, ``acks=all``).
    store : LabelStore
    joiner : LabelJoiner
    decoder : callable
        The LabelDecoder for the champion now (called per join pass: a new champion
        with other classes is taken up).
    metrics : LabelMetrics
    """

    def __init__(
        self,
        settings: LabelSettings,
        consumer: Any,
        producer: Any,
        store: LabelStore,
        joiner: LabelJoiner,
        decoder: Callable[[], LabelDecoder],
        metrics: LabelMetrics,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.store = store
        self.joiner = joiner
        self._decoder_of = decoder
        self.decoder = decoder()
        self.metrics = metrics
        self.dead_letters = DeadLetters(producer, settings.dlq_topic, metrics)
        self.stats = CompanionStats(dead_letters=self.dead_letters.counts)

    def run(
        self, should_stop: Callable[[], bool], idle_timeout: float | None = None
    ) -> CompanionStats:
        """Take and join labels until ``should_stop()``, or ``idle_timeout`` s of nothing new."""
        self.consumer.subscribe([self.settings.labels_topic])
        last_news = time.monotonic()
        next_join = 0.0
        while not should_stop():
            batch = self.consumer.poll(timeout_ms=500)
            records = [r for rs in batch.values() for r in rs]
            news = bool(records)
            if records:
                self._take(records)
            now = time.monotonic()
            if now >= next_join:
                news = self.join() or news
                next_join = now + self.settings.join_interval_seconds
            if news:
                last_news = now
            elif idle_timeout is not None and now - last_news >= idle_timeout:
                break
        return self.stats

    def _take(self, records: list[Any]) -> None:
        letters: list[DeadLetter] = []
        taken: list[tuple[LabelMessage, int, int, bytes]] = []
        for record in records:
            try:
                message = self.decoder.decode_label(record.value)
            except MalformedRowError as err:
                letters.append(
                    self._letter(record.partition, record.offset, record.key, record.value, err)
                )
                continue
            taken.append((message, record.partition, record.offset, record.value))
        for message, outcome, before in self.store.add(taken):
            self.stats.labels[outcome] += 1
            self.metrics.received.labels(outcome=outcome).inc()
            if outcome == "correction" and before is not None:
                logger.info(
                    "label correction stream=%s seq=%d label=%r -> %r (the later wins)",
                    message.stream,
                    message.seq,
                    before.label,
                    message.label,
                )
            elif outcome == "duplicate":
                logger.debug(
                    "label duplicate stream=%s seq=%d kept once", message.stream, message.seq
                )
        # Durable first, then the dead letters acknowledged, then the offsets.
        self.store.sync()
        self._send(letters)
        self.consumer.commit()

    def join(self) -> bool:
        """One pass: new windows, late accuracies, unknown rows; whether anything happened."""
        self.decoder = self._decoder_of()
        new = self.joiner.scan()
        points = self.joiner.report()
        self.stats.late_windows += len(points)
        partitions = len(self.consumer.partitions_for_topic(self.settings.rows_topic) or ())
        gone = self.joiner.unknown(partitions) if partitions else {}
        letters = []
        for labels in gone.values():
            for stored in labels:
                err = MalformedRowError(
                    "unknown-row",
                    f"no row with seq {stored.seq} was archived, and every partition of "
                    f"{self.settings.rows_topic} has archived larger seqs of the stream",
                )
                letters.append(
                    self._letter(
                        stored.partition,
                        stored.offset,
                        LabelMessage.model_validate_json(stored.value).stream.encode(),
                        stored.value.encode(),
                        err,
                    )
                )
        self._send(letters)
        for stream_dir, labels in gone.items():
            self.store.mark_unknown(stream_dir, [s.seq for s in labels])
        self.store.sync()
        return bool(new or points or letters)

    def _letter(
        self,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        err: MalformedRowError,
    ) -> DeadLetter:
        return self.dead_letters.note(
            self.settings.labels_topic, partition, offset, key, value, err
        )

    def _send(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        futures = self.dead_letters.send(letters)
        self.producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises if the broker did not take one: nothing is committed

    def close(self) -> None:
        """Close the store and the clients."""
        self.store.close()
        self.producer.flush(timeout=30)
        self.producer.close(timeout=10)
        self.consumer.close(autocommit=False)

    def __enter__(self) -> LabelCompanion:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_companion(settings: LabelSettings, client_id: str = "driftloop-labels") -> LabelCompanion:
    """The companion for ``settings``, its clients connected and the loop's topics created.

    Raises
    ------
    consumer.champion.NoChampionError
        When no model has been promoted yet (its classes check the labels).
    broker.errors.BrokerUnavailableError
        When no broker answers.
    """
    from broker.clients import manual_commit_consumer, reliable_producer
    from broker.topics import ensure_loop_topics
    from consumer.champion import NoChampionError, model_classes
    from models.registry import Registry

    registry = Registry.from_settings(settings)
    if registry.champion_version() is None:
        raise NoChampionError.in_registry(registry)
    loaded: dict[int, LabelDecoder] = {}

    def decoder() -> LabelDecoder:
        version = registry.champion_version()
        assert version is not None
        if version not in loaded:
            loaded.clear()
            loaded[version] = LabelDecoder(model_classes(registry.load(version)))
        return loaded[version]

    ensure_loop_topics(settings)
    metrics = LabelMetrics()
    store = LabelStore(settings.artifact_root, settings.labels_topic, fsync=settings.labels_fsync)
    joiner = LabelJoiner(
        settings.artifact_root, settings.rows_topic, store, metrics, settings.min_labeled_share
    )
    producer = reliable_producer(settings, client_id=f"{client_id}-dlq")
    try:
        consumer = manual_commit_consumer(
            settings, group_id=settings.labels_group_id, client_id=client_id
        )
    except BaseException:
        producer.close()
        raise
    if settings.labels_metrics_port is not None:
        metrics.serve(settings.labels_metrics_port, settings.metrics_host)
    return LabelCompanion(settings, consumer, producer, store, joiner, decoder, metrics)
