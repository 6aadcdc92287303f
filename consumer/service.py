"""The consumer's loop: poll, decode, window, judge, hand off, checkpoint.

Offsets are committed only once a window's results are durable: its archive
written and fsynced, then its drift event (if any) acknowledged by the broker,
and every dead letter acknowledged. The committed offset of a partition is the
first offset the next window still needs, so a consumer killed at any point
re-reads exactly the rows of the windows it had not finished, and judges them
under the same ids.

The loop reads and judges on the calling thread. Archiving a poll's windows and
publishing their drift events run on an archive thread while the next poll is
read and judged: they are mostly waiting on the disk and the broker. At most one
poll's windows are in flight; their offsets are committed once the thread is
done with them.

The commit rules live in `consumer.checkpoint`, the dead-letter topic in
`consumer.dead_letters`, the champion in `consumer.champion`; the DriftEvent of
a window is built by `consumer.events`, and `consumer.assembly` builds the whole
monitor from settings.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import TopicPartition

from consumer.archive import WindowArchive
from consumer.champion import Champion
from consumer.checkpoint import Checkpoint
from consumer.dead_letters import DeadLetters
from consumer.decoding import MalformedRowError
from consumer.detection import DriftResult
from consumer.events import DriftEvent
from consumer.metrics import ConsumerMetrics
from consumer.model_updates import ModelUpdateFollower
from consumer.settings import ConsumerSettings
from consumer.windowing import CountWindower, Window
from models.registry import Registry, RegistryError
from producer.messages import RowMessage

logger = logging.getLogger(__name__)

UPDATE_CHECK_INTERVAL_S = 0.5
"""Seconds between checks of the model-updates topic while rows keep arriving."""


@dataclass
class Stats:
    """What the consumer has done since it started.

    ``drift_events`` counts windows judged drifted, as they are judged; each one's
    event is published once the window is archived (the ``drift_events`` metric
    counts those publications).
    """

    rows: int = 0
    windows: int = 0
    drift_events: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        dead = ",".join(f"{k}:{v}" for k, v in sorted(self.dead_letters.items())) or "0"
        return (
            f"rows={self.rows} windows={self.windows} drift_events={self.drift_events} "
            f"dead_letters={dead}"
        )


@dataclass(frozen=True)
class _ArchivedWindow:
    """What the archive thread writes for one window, and the event it then publishes."""

    path: Path
    feature_names: list[str]
    label_column: str
    offsets: tuple[int, ...]
    event_times: list[datetime]
    values: np.ndarray
    labels: list[int | str | None]
    event: DriftEvent


@dataclass
class _Judged:
    tp: TopicPartition
    window: Window[RowMessage]
    values: np.ndarray
    result: DriftResult
    seconds: float


class DriftMonitor:
    """Runs the loop over a subscribed consumer; see the module docstring for the guarantees.

    `consumer.assembly.build_monitor` builds one from settings, as every process
    runs it.

    Parameters
    ----------
    settings
        Window, detector and topic settings.
    consumer
        A consumer with auto-commit off; :meth:`run` subscribes it.
    producer
        An idempotent ``acks=all`` producer for drift events and dead letters.
    champion
        The model to judge windows for.
    archive
        Where windows are written.
    registry, updates
        Where a new champion is loaded from, and the model-updates topic that says
        when; without them the champion never changes.
    metrics
        Where counts and gauges go (served or not); a private set by default.
    """

    def __init__(
        self,
        settings: ConsumerSettings,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        champion: Champion,
        archive: WindowArchive,
        registry: Registry | None = None,
        updates: ModelUpdateFollower | None = None,
        metrics: ConsumerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.champion = champion
        self.archive = archive
        self.registry = registry
        self.updates = updates
        self.metrics = metrics or ConsumerMetrics()
        self.metrics.model(champion.metadata.model_name, champion.metadata.version)
        self.dead_letters = DeadLetters(producer, settings.dlq_topic, self.metrics)
        self.stats = Stats(dead_letters=self.dead_letters.counts)
        self.checkpoint = Checkpoint(consumer)
        self._windowers: dict[TopicPartition, CountWindower[RowMessage]] = {}
        self._writer: ThreadPoolExecutor | None = None

    # -- the loop ---------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool], idle_timeout: float | None = None) -> Stats:
        """Poll and judge until ``should_stop()`` is true (or ``idle_timeout`` s without rows).

        Leaves every finished window committed. If judging, archiving or publishing
        fails, the error propagates and nothing past the last durable window is
        committed: a restarted consumer judges those windows again.
        """
        self.consumer.subscribe([self.settings.rows_topic], listener=_Rebalance(self))
        logger.info(
            "consuming topic=%s group=%s window=%d step=%d backend=%s model=%s",
            self.settings.rows_topic,
            self.settings.group_id,
            self.settings.window_size,
            self.settings.step,
            self.settings.ks_backend,
            self.champion.label,
        )
        last_rows = time.monotonic()
        # Start-up left a large heap that lives as long as the process: modules, the
        # model, its reference data. Rows held in windows keep the cyclic garbage
        # collector busy, and each of its full passes would walk all of that again;
        # frozen, it is skipped. Reference counting still frees frozen objects; only
        # reference cycles among them wait for the unfreeze when the loop ends.
        thawed = gc.get_freeze_count() == 0
        gc.collect()
        gc.freeze()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftloop-archive")
        next_update_check = time.monotonic()
        try:
            while not should_stop():
                if time.monotonic() >= next_update_check:
                    # Each check is a poll of the updates topic, which waits on that
                    # client's IO thread: not after every poll of a busy rows topic.
                    self.follow_model_updates()
                    next_update_check = time.monotonic() + UPDATE_CHECK_INTERVAL_S
                batch = self.consumer.poll(
                    timeout_ms=500, max_records=self.settings.max_poll_records
                )
                if batch:
                    last_rows = time.monotonic()
                    self.process(batch)
                else:
                    self.checkpoint.settle(wait=False)
                    if idle_timeout is not None and time.monotonic() - last_rows > idle_timeout:
                        break
            # Only on a clean stop: after a failure the windows of the failed poll have
            # left their windowers unarchived, and committing now would skip them.
            self.checkpoint.settle(wait=True)
            self.checkpoint.commit()
        finally:
            self._writer.shutdown(wait=True)
            self._writer = None
            self.checkpoint.abandon()
            if thawed:
                gc.unfreeze()
        return self.stats

    def process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Handle one poll's records: window them, judge, hand off; commit what became durable."""
        completed = self._window(batch)
        windows = self._judge(completed) if completed else []
        # Acknowledged before the poll's positions are handed to the checkpoint.
        self.dead_letters.wait()
        write = None
        if windows:
            assert self._writer is not None, "process() runs inside run()"
            write = partial(self._writer.submit, self._archive, windows)
        self.checkpoint.hand_off(write)

    def _window(
        self, batch: dict[TopicPartition, list[Any]]
    ) -> list[tuple[TopicPartition, Window[RowMessage]]]:
        """Decode a poll's records into their partitions' windowers; the windows completed.

        Malformed records go to the dead-letter topic. Each partition's position is
        stored in the checkpoint.
        """
        completed: list[tuple[TopicPartition, Window[RowMessage]]] = []
        decoder = self.champion.decoder
        for tp, records in batch.items():
            windower = self._windowers.get(tp)
            if windower is None:
                windower = self._windowers[tp] = CountWindower(
                    self.settings.window_size, self.settings.step
                )
            decoded = decoder.decode_all([record.value for record in records])
            for record, message in zip(records, decoded, strict=True):
                if isinstance(message, MalformedRowError):
                    self.dead_letters.send(record, message)
                    continue
                window = windower.add(record.offset, message)
                if window is not None:
                    completed.append((tp, window))
            self.stats.rows += len(records)
            self.metrics.rows.inc(len(records))
            if not records:
                continue
            last_offset = records[-1].offset
            self.checkpoint.store(tp, last_offset, windower.pending_offset)
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                self.metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    highwater - last_offset - 1
                )
        return completed

    def _archive(self, windows: list[_ArchivedWindow]) -> None:
        """On the archive thread: write the windows, make them durable, publish drift events."""
        for window in windows:
            self.archive.write_rows(
                window.path,
                window.feature_names,
                window.offsets,
                window.event_times,
                window.values,
                window.labels,
                window.label_column,
            )
            self.archive.write_verdict(window.path, window.event)
        self.archive.sync()
        # Published only now: a reader of the event (the retraining DAG) finds the
        # window in the archive.
        sent = [
            self.producer.send(
                self.settings.drift_topic, key=w.event.stream.encode(), value=w.event.to_bytes()
            )
            for w in windows
            if w.event.is_drift
        ]
        if sent:
            self.producer.flush()
        for future in sent:
            future.get(timeout=0)  # Raises the delivery error: the poll is never committed.
            self.metrics.drift_events.inc()

    def follow_model_updates(self) -> None:
        """Switch to the champion a ModelUpdate names; later windows are judged for it."""
        if self.updates is None or self.registry is None:
            return
        update = self.updates.poll()
        if update is None or update.version == self.champion.metadata.version:
            return
        old = self.champion
        try:
            new = Champion(self.registry.load(update.version), self.settings)
        except RegistryError as err:
            logger.error(
                "model update to v%d not applied, keeping %s: %s", update.version, old.label, err
            )
            return
        if new.metadata.feature_names != old.metadata.feature_names:
            logger.error(
                "model update to %s not applied, keeping %s: its features %s differ from %s",
                new.label,
                old.label,
                new.metadata.feature_names,
                old.metadata.feature_names,
            )
            return
        self.champion = new
        self.metrics.model(new.metadata.model_name, new.metadata.version)
        logger.warning(
            "MODEL SWITCH %s -> %s reference_sha256=%s drift_event=%s: "
            "windows completed from now on are judged against the new reference",
            old.label,
            new.label,
            new.metadata.reference_sha256[:12],
            update.drift_event_id,
        )

    def close(self) -> None:
        """Flush and close the clients the monitor was given."""
        try:
            self.producer.flush()
            self.producer.close()
        finally:
            try:
                self.consumer.close(autocommit=False)
            finally:
                if self.updates is not None:
                    self.updates.close()

    def __enter__(self) -> DriftMonitor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- judging ----------------------------------------------------------------

    def _judge(
        self, completed: list[tuple[TopicPartition, Window[RowMessage]]]
    ) -> list[_ArchivedWindow]:
        """Judge and log the completed windows; return what the archive thread is to write."""
        champion = self.champion
        judged: list[_Judged] = []
        for tp, window in completed:
            values = np.array(list(map(champion.decoder.values, window.items)), dtype=np.float64)
            started = time.perf_counter()
            result = champion.detector.predict(values)
            judged.append(_Judged(tp, window, values, result, time.perf_counter() - started))
        accuracies = self._accuracies(judged)
        archived = []
        for item, (labeled, accuracy) in zip(judged, accuracies, strict=True):
            self.metrics.window(item.result, champion.metadata.feature_names, item.seconds)
            archived.append(self._record(item, labeled, accuracy))
        return archived

    def _accuracies(self, judged: list[_Judged]) -> list[tuple[int, float | None]]:
        """The champion's accuracy on each window's labeled rows, in one predict call."""
        rows: list[np.ndarray] = []
        labels: list[Any] = []
        counts: list[int] = []
        for item in judged:
            mask = np.array([m.label is not None for m in item.window.items])
            counts.append(int(mask.sum()))
            rows.append(item.values[mask])
            labels.extend(m.label for m in item.window.items if m.label is not None)
        if not labels:
            return [(0, None)] * len(judged)
        predicted = self.champion.predict_labels(np.concatenate(rows))
        correct = np.asarray(predicted) == np.asarray(labels, dtype=np.asarray(predicted).dtype)
        out: list[tuple[int, float | None]] = []
        start = 0
        for count in counts:
            hits = correct[start : start + count]
            out.append((count, float(hits.mean()) if count else None))
            start += count
        return out

    def _record(self, item: _Judged, labeled: int, accuracy: float | None) -> _ArchivedWindow:
        """Build the window's DriftEvent, log the window and any drift, count them."""
        champion, window, result, tp = self.champion, item.window, item.result, item.tp
        names = champion.metadata.feature_names
        path = self.archive.path_for(
            tp.topic, tp.partition, window.first_offset, window.last_offset
        )
        event = DriftEvent.for_window(
            tp.topic,
            tp.partition,
            window,
            result,
            model=champion.metadata,
            backend=champion.detector.backend,
            p_val=self.settings.p_val,
            correction=self.settings.correction,
            archive_path=path,
            labeled_rows=labeled,
            accuracy=accuracy,
        )
        self.stats.windows += 1
        lowest = int(np.argmin(result.p_values))
        logger.info(
            "window=%s offsets=%d-%d size=%d min_p=%.3g min_p_feature=%s drift=%s model=%s%s",
            window_id := event.window.window_id,
            window.first_offset,
            window.last_offset,
            len(window.items),
            float(result.p_values[lowest]),
            names[lowest],
            "yes" if result.is_drift else "no",
            champion.label,
            "" if accuracy is None else f" accuracy={accuracy:.3f}",
        )
        if result.is_drift:
            self.stats.drift_events += 1
            logger.warning(
                "DRIFT *** window=%s features=%s min_p=%.3g model=%s event_id=%s",
                window_id,
                ",".join(event.drifted_features),
                float(result.p_values[lowest]),
                champion.label,
                event.event_id,
            )
        return _ArchivedWindow(
            path=path,
            feature_names=names,
            label_column=champion.metadata.label_column,
            offsets=window.offsets,
            event_times=[m.event_time for m in window.items],
            values=item.values,
            labels=[m.label for m in window.items],
            event=event,
        )

    def _forget(self, revoked: list[TopicPartition]) -> None:
        """Drop revoked partitions' windows and offsets: another instance reads them now."""
        for tp in revoked:
            self._windowers.pop(tp, None)
        self.checkpoint.forget(revoked)


class _Rebalance(ConsumerRebalanceListener):
    """Forget a partition's windows when it moves to another instance.

    kafka-python 3 calls this on its IO thread, where nothing may block (a
    synchronous commit there raises). Nothing needs to: every poll's sends are
    acknowledged before :meth:`DriftMonitor.process` returns, and every durable
    window's offset is committed asynchronously right after. If a commit is still
    in flight, the partition's new owner judges those windows again, under the
    same ids and into the same archive files.
    """

    def __init__(self, monitor: DriftMonitor) -> None:
        self.monitor = monitor

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.monitor._forget(list(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        logger.info(
            "assigned partitions %s", sorted(f"{tp.topic}/{tp.partition}" for tp in assigned)
        )
